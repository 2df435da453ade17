package controller_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/signing"
)

// holdHelperEnv makes the test binary a controller that pulls once,
// prints "pulled" and then holds its connections open until killed.
const holdHelperEnv = "D2D_CONTROLLER_HOLD_HELPER"

func init() {
	if dir := os.Getenv(holdHelperEnv); dir != "" {
		os.Exit(helperHold(dir))
	}
}

func helperHold(dir string) int {
	id, err := signing.LoadIdentity(filepath.Join(dir, "pki", "ctl.crt"), filepath.Join(dir, "pki", "ctl.key"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	trust, err := signing.LoadTrust(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	members, err := controller.ParseMembers(os.Getenv("D2D_CONTROLLER_TEST_NODES"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	c, err := controller.New(context.Background(), controller.Config{Identity: id, Trust: trust, Dir: filepath.Join(dir, "state"), Members: members})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if err := c.Pull(context.Background(), nil, controller.PullOptions{}).Err(); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("pulled")
	select {} // hold every session open; only SIGKILL ends this
}

// TestControllerRestartStorm: a controller killed and restarted ten times
// in a row leaves ten sets of connections its nodes never see closed
// (more than their eight-per-peer limit). The eleventh start still pulls
// at once: each node lets the controller's new connection replace a dead
// one instead of refusing it until the idle timeout.
func TestControllerRestartStorm(t *testing.T) {
	m := newMesh(t, "")
	for _, n := range []string{"PE-1", "P-2", "PE-3"} {
		m.synthetic(n, 1)
	}
	dir := t.TempDir()
	if err := m.ca.Save(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	ctl := m.controllerIdentity()
	if err := ctl.Save(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, mb := range m.ctlMembers() {
		nodes = append(nodes, mb.Name+"@"+mb.Peer.Addr.String())
	}
	start := time.Now()
	const kills = 10
	for i := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), holdHelperEnv+"="+dir, "D2D_CONTROLLER_TEST_NODES="+strings.Join(nodes, ","))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "pulled" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("start %d: %q %v", i+1, sc.Text(), sc.Err())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("start %d exit: %v, want killed", i+1, err)
		}
	}
	t.Logf("%d starts, pulls and kills in %v", kills, time.Since(start).Round(time.Millisecond))

	var want []string
	for _, n := range []string{"PE-1", "P-2", "PE-3"} {
		want = append(want, m.synthetic(n, 1)...)
	}
	c, err := controller.New(context.Background(), controller.Config{Identity: ctl, Trust: m.trust,
		Dir: filepath.Join(dir, "state"), Members: m.ctlMembers(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := pull(t, c)
	if err := res.Err(); err != nil {
		t.Fatalf("pull on start %d: %v", kills+1, err)
	}
	stored := map[string]bool{}
	for _, e := range c.Store().List() {
		stored[e.ID] = true
	}
	for _, id := range want {
		if !stored[id] {
			t.Errorf("report %s, made after the storm, was not pulled", id)
		}
	}
}

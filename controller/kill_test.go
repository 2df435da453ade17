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

	"go.uber.org/goleak"

	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/signing"
)

// The test binary doubles as a controller process for TestPullSurvivesKill.
const helperEnv = "D2D_CONTROLLER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperPull())
	}
	goleak.VerifyTestMain(m,
		// quic-go and memberlist keep package-level workers.
		goleak.IgnoreAnyFunction("github.com/quic-go/quic-go.(*Transport).listen"),
	)
}

// helperPull is `d2d controller pull` in a child process: it prints one
// line per stored report and pauses a little after each, so the parent
// can SIGKILL it in the middle of a pull.
func helperPull() int {
	dir := os.Getenv(helperEnv)
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
	defer c.Close()
	res := c.Pull(context.Background(), nil, controller.PullOptions{OnReport: func(ev controller.ReportEvent) {
		fmt.Printf("stored %s %s %s\n", ev.Node, ev.ID, ev.Outcome)
		time.Sleep(40 * time.Millisecond)
	}})
	if err := res.Err(); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("done")
	return 0
}

// TestPullSurvivesKill SIGKILLs a controller process in the middle of a
// pull, then pulls again in a fresh controller on the same state: every
// report is present exactly once, verified, and marked pulled on its node.
func TestPullSurvivesKill(t *testing.T) {
	m := newMesh(t, "")
	var want []string
	for _, n := range []string{"PE-1", "P-2", "PE-3"} {
		want = append(want, m.synthetic(n, 5)...)
	}
	dir := t.TempDir()
	if err := m.ca.Save(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	if err := m.controllerIdentity().Save(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, mb := range m.ctlMembers() {
		nodes = append(nodes, mb.Name+"@"+mb.Peer.Addr.String())
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "D2D_CONTROLLER_TEST_NODES="+strings.Join(nodes, ","))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	stored := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "stored ") {
			t.Fatalf("helper: %s", line)
		}
		if stored++; stored == 4 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for sc.Scan() {
		if sc.Text() == "done" {
			t.Fatal("the helper finished before it was killed")
		}
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper exit: %v, want killed", err)
	}

	c, err := controller.New(context.Background(), controller.Config{Identity: m.controllerIdentity(), Trust: m.trust,
		Dir: filepath.Join(dir, "state"), Members: m.ctlMembers(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := len(c.Store().List()); got < 1 || got >= len(want) {
		t.Errorf("after the kill the store holds %d of %d reports; the kill was not mid-pull", got, len(want))
	}
	res := pull(t, c)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, m, c.Store(), want)
	for _, n := range []string{"PE-1", "P-2", "PE-3"} {
		if un := m.agent(n).Store().Unpulled(); len(un) != 0 {
			t.Errorf("%s still has %d unpulled reports", n, len(un))
		}
	}
	// And once more: nothing left to do.
	again := pull(t, c)
	for _, n := range again.Nodes {
		if n.Listed != n.Skipped {
			t.Errorf("third pull from %s read reports again: %+v", n.Node, n)
		}
	}
}

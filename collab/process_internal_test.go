package collab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

const childEnv = "D2D_COLLAB_CHILD_CA"

// TestChildProcess is the body of the child process of TestAcrossProcesses:
// it serves a testProvider under a CA loaded from the directory in
// $D2D_COLLAB_CHILD_CA, prints "READY <addr> <thumbprint>" and serves until
// its stdin closes.
func TestChildProcess(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("child process helper for TestAcrossProcesses")
	}
	ca, err := signing.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	pki := &testPKI{ca: ca, trust: signing.NewTrust(ca.Cert)}
	e, _ := node(t, pki, "P-2")
	fmt.Printf("READY %s %s\n", e.Addr(), e.cfg.Identity.Thumbprint())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

func startChild(t *testing.T, pki *testPKI) (*exec.Cmd, Peer) {
	t.Helper()
	dir := t.TempDir()
	if err := pki.ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(20 * time.Second):
		t.Fatal("child did not start")
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		t.Fatalf("child said %q", line)
	}
	p := Peer{Name: "P-2", Addr: netip.MustParseAddrPort(f[1])}
	if err := p.Thumbprint.UnmarshalText([]byte(f[2])); err != nil {
		t.Fatal(err)
	}
	return cmd, p
}

// TestAcrossProcesses calls a peer in another process, then kills that
// process with SIGKILL in the middle of a call.
func TestAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	cmd, p := startChild(t, pki)
	ctx := context.Background()
	s, err := a.Session(ctx, p, []string{"ietf-ping", "slow"})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := s.CallTool(ctx, "echo", json.RawMessage(`{"x":1}`), CallOptions{})
	if err != nil || ev.Node != "P-2" {
		t.Fatalf("call across processes: %+v, %v", ev.Node, err)
	}

	started := make(chan struct{}, 1)
	errc := make(chan error, 1)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	begin := time.Now()
	go func() {
		_, _, err := s.CallTool(cctx, "slow", nil, CallOptions{Progress: func(float64, float64, string) {
			select {
			case started <- struct{}{}:
			default:
			}
		}})
		errc <- err
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("slow call did not start")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrPeerGone) {
		t.Errorf("err = %v, want ErrTimeout or ErrPeerGone", err)
	}
	if UntrustedReason(err) == "" {
		t.Errorf("no untrusted reason for %v", err)
	}
	if el := time.Since(begin); el > 3*time.Second {
		t.Errorf("returned after %v with a 2s deadline", el)
	}
}

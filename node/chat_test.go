package node_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/simulate"
)

// screen collects what the shell writes to the terminal.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// waitFor waits until text appears on the screen after offset from and
// returns the offset just past it.
func (s *screen) waitFor(from int, text string) int {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		b := s.buf.Bytes()
		if from > len(b) {
			from = len(b)
		}
		i := bytes.Index(b[from:], []byte(text))
		shown := string(b)
		s.mu.Unlock()
		if i >= 0 {
			return from + i + len(text)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%q did not appear on the screen; the screen shows:\n%s", text, shown)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestChatThroughPTY uses the shell as a person does: typed keys through a
// pseudo-terminal, answers to the consent prompts, history recall with the
// arrow key, and the screen read back.
func TestChatThroughPTY(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Seed: 2, RollbackSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := simulate.ParseFault("acl-drop:PE-1:2001:P-2:3%")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Network.Inject(f); err != nil {
		t.Fatal(err)
	}

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 60, Cols: 220}); err != nil {
		t.Fatal(err)
	}
	scr := &screen{t: t}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptmx.Read(b)
			scr.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	history := filepath.Join(t.TempDir(), "history")
	done := make(chan error, 1)
	go func() {
		done <- node.Chat(ctx, node.ChatOptions{
			Socket:      filepath.Join(d.Dir, "PE-1", "admin.sock"),
			In:          tty,
			Out:         tty,
			HistoryFile: history,
		})
	}()
	typeKeys := func(s string) {
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}

	at := scr.waitFor(0, "d2d> ")
	const intent = "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"
	typeKeys(intent + "\r")
	at = scr.waitFor(at, "HYPOTHESIS  PE-1 egress ACL 2001 drops")
	at = scr.waitFor(at, "EVIDENCE")
	at = scr.waitFor(at, "Apply on PE-1: acl-rule-set")
	typeKeys("y\r")
	at = scr.waitFor(at, "applied")
	at = scr.waitFor(at, "Keep change")
	typeKeys("n\r")
	at = scr.waitFor(at, "rolled-back")

	// The deny rule is back: the operator declined to keep the change.
	dev, _ := d.Network.Device("PE-1")
	acls, err := dev.ACLs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acls {
		for _, r := range a.Rules {
			if a.Name == "2001" && r.ID == "10" && !r.Enabled {
				t.Error("rule 10 still disabled after the operator declined to keep the change")
			}
		}
	}

	// Up arrow brings the intent back; Ctrl-U clears the line.
	at = scr.waitFor(at, "d2d> ")
	typeKeys("\x1b[A")
	at = scr.waitFor(at, intent)
	typeKeys("\x15help\r")
	at = scr.waitFor(at, "Mitigations run only after you approve them")
	typeKeys("quit\r")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Chat: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not exit on quit")
	}
	b, err := os.ReadFile(history)
	if err != nil || !strings.Contains(string(b), intent) {
		t.Errorf("history file %q = %q, %v: want the intent", history, b, err)
	}
}

// TestChatNoAgent names the missing agent instead of hanging.
func TestChatNoAgent(t *testing.T) {
	err := node.Chat(context.Background(), node.ChatOptions{Socket: filepath.Join(t.TempDir(), "none.sock"), Command: "list reports"})
	if err == nil || !strings.Contains(err.Error(), "d2d agent") {
		t.Fatalf("Chat without an agent: %v, want an error naming `d2d agent`", err)
	}
}

package simulate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/d2dmesh/d2d/simulate"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      bool
	}{
		{name: "plain", in: "ip -6 addr add fc00:0:1::1/128 dev lo", want: []string{"ip", "-6", "addr", "add", "fc00:0:1::1/128", "dev", "lo"}},
		{name: "spaces", in: "  a \t b  ", want: []string{"a", "b"}},
		{name: "single quotes", in: `sh -c 'echo $X; ls'`, want: []string{"sh", "-c", "echo $X; ls"}},
		{name: "double quotes", in: `nft add rule x "a \"b\" \$c"`, want: []string{"nft", "add", "rule", "x", `a "b" $c`}},
		{name: "backslash", in: `a\ b c`, want: []string{"a b", "c"}},
		{name: "empty quotes", in: `a '' b`, want: []string{"a", "", "b"}},
		{name: "unterminated", in: `a 'b`, err: true},
		{name: "unterminated double", in: `a "b`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := simulate.SplitCommand(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if d := cmp.Diff(tt.want, got); d != "" && !tt.err {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseLabFault(t *testing.T) {
	tests := []struct {
		in   string
		want simulate.LabFault
		err  bool
	}{
		{in: "acl-drop pe1 2001 p2 3%", want: simulate.LabFault{Kind: "acl-drop", Node: "pe1", ACL: "2001", Peer: "p2", Rule: "10", Rate: 0.03}},
		{in: "acl-drop pe1 2001 p2 0.5 20", want: simulate.LabFault{Kind: "acl-drop", Node: "pe1", ACL: "2001", Peer: "p2", Rule: "20", Rate: 0.5}},
		{in: "link-down p2 pe3", want: simulate.LabFault{Kind: "link-down", Node: "p2", Peer: "pe3"}},
		{in: "agent-stop pe3", want: simulate.LabFault{Kind: "agent-stop", Node: "pe3"}},
		{in: "acl-drop pe1 2001 p2 0%", err: true},
		{in: "acl-drop pe1 2001 p2 150%", err: true},
		{in: "acl-drop pe1 2001 p2", err: true},
		{in: "link-down p2", err: true},
		{in: "meteor-strike pe1", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := simulate.ParseLabFault(strings.Fields(tt.in))
			if tt.err {
				if !errors.Is(err, simulate.ErrLab) {
					t.Fatalf("err = %v, want ErrLab", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestLabDownAfterCrash leaves what a `lab up` killed half-way would —
// namespaces with links between them, a lab directory, no state file —
// and checks that `lab down` finds and removes it all by name, and that
// a second down is a no-op.
func TestLabDownAfterCrash(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.LookPath(t, "ip", "iproute2")
	var r [3]byte
	_, _ = rand.Read(r[:])
	name := "d2dA" + hex.EncodeToString(r[:])
	dir := t.TempDir()
	cfg := simulate.LabConfig{Topology: "../containerlab/srv6-triangle.clab.yml", Name: name, Dir: dir}
	prefix := "clab-" + name + "-"
	t.Cleanup(func() {
		for _, n := range []string{"pe1", "p2", "other"} {
			_ = exec.Command("ip", "netns", "del", prefix+n).Run()
		}
	})
	for _, n := range []string{"pe1", "p2"} {
		if out, err := exec.Command("ip", "netns", "add", prefix+n).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	if out, err := exec.Command("ip", "-n", prefix+"pe1", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", prefix+"p2").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(dir, name, "pe1", "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A pid file naming a process that is not the lab's agent must not
	// get that process signalled.
	if err := os.WriteFile(filepath.Join(dir, name, "pe1", "agent.pid"), []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := simulate.LabUp(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("lab up over leftovers: %v, want an error saying the lab exists", err)
	}
	ctx := context.Background()
	for i := range 2 {
		if err := simulate.LabDown(ctx, cfg); err != nil {
			t.Fatalf("down #%d: %v", i+1, err)
		}
	}
	for _, n := range []string{"pe1", "p2"} {
		if simulate.NamespaceExists(prefix + n) {
			t.Errorf("namespace %s left", prefix+n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
		t.Errorf("lab directory left: %v", err)
	}
}

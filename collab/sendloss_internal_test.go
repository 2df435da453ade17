package collab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/netns"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/d2dmesh/d2d/signing"
)

// TestSessionSurvivesLocalNetfilterDrop runs two endpoints in a network
// namespace whose nftables output chain drops a third of the caller's
// datagrams: sendmsg fails with EPERM for those, as it does under an
// egress ACL on a router. The session must treat them as lost and keep
// working, not close.
func TestSessionSurvivesLocalNetfilterDrop(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.LookPath(t, "nft", "nftables")
	var r [3]byte
	_, _ = rand.Read(r[:])
	ns, err := netns.New("d2dG-" + hex.EncodeToString(r[:]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })

	open := func() net.PacketConn {
		var pc net.PacketConn
		if err := ns.Do(func() error {
			var err error
			pc, err = net.ListenPacket("udp", "127.0.0.1:0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return pc
	}
	pki := newPKI(t)
	mk := func(name string) (*Endpoint, *testProvider) {
		prov := newTestProvider(name)
		cfg := testConfig(t, pki, pki.issue(t, name, signing.IssueOptions{}), prov)
		cfg.PacketConn = open()
		cfg.CallTimeout = 10 * time.Second
		return listen(t, cfg), prov
	}
	caller, _ := mk("A")
	callee, prov := mk("B")

	ctx := context.Background()
	s, err := caller.Session(ctx, peerOf(callee), []string{"ietf-ping"})
	if err != nil {
		t.Fatal(err)
	}
	rule := fmt.Sprintf("add rule inet d2dtest out udp dport %d numgen random mod 3 == 0 counter drop", callee.Addr().Port())
	if err := ns.Script(ctx, "nft add table inet d2dtest",
		"nft add chain inet d2dtest out { type filter hook output priority 0 ; }"); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Run(ctx, "sh", "-c", "nft '"+rule+"'"); err != nil {
		t.Fatal(err)
	}
	const calls = 20
	for i := range calls {
		if _, _, err := s.CallTool(ctx, "echo", json.RawMessage(`{}`), CallOptions{}); err != nil {
			t.Fatalf("call %d through the lossy egress: %v", i, err)
		}
	}
	if n := prov.count("echo"); n != calls {
		t.Errorf("callee served %d calls, want %d", n, calls)
	}
	out, err := ns.Run(ctx, "nft", "list", "chain", "inet", "d2dtest", "out")
	if err != nil {
		t.Fatal(err)
	}
	var pkts int
	if _, err := fmt.Sscanf(afterWord(string(out), "packets"), "%d", &pkts); err != nil || pkts == 0 {
		t.Fatalf("the drop rule matched no packet (%v): the test did not exercise the loss\n%s", err, out)
	}
	t.Logf("%d datagrams dropped by netfilter; all %d calls completed on one session", pkts, calls)
}

// afterWord returns what follows the first occurrence of w in s.
func afterWord(s, w string) string {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return s[i+len(w):]
		}
	}
	return ""
}

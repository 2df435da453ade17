package collab

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

// TestFanOutBatchVerdicts: a fan-out checks its results' signatures in
// one batch, and the batch must give each call its own verdict: honest
// peers (one called twice) verify, a peer signing for another session is
// rejected alone, and calls that end without a result (a silent peer) do
// not hold the batch up beyond their own deadline.
func TestFanOutBatchVerdicts(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	var honest []*Endpoint
	for i := range 4 {
		e, _ := node(t, pki, fmt.Sprintf("P-%d", i))
		honest = append(honest, e)
	}
	const session = "0123456789abcdef0123456789abcdef"
	var signer *signing.Signer
	var mu sync.Mutex
	rs := startRaw(t, pki, "PE-9", func(m rawMsg) [][]byte {
		switch m.Method {
		case mcp.MethodInitialize:
			return initReply(m, session)
		case mcp.MethodToolsCall:
			var p mcp.CallToolParams
			_ = json.Unmarshal(m.Params, &p)
			mu.Lock()
			defer mu.Unlock()
			e := &Endpoint{cfg: Config{Signer: signer}}
			// A valid signature, but for another session.
			body, err := e.signResult(mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent("0% loss")}},
				mcp.MethodToolsCall, p.Name, p.Arguments, "ffffffffffffffffffffffffffffffff")
			if err != nil {
				panic(err)
			}
			return [][]byte{reply(m.ID, body)}
		}
		return nil
	})
	nonces, err := signing.OpenNonceSource(t.TempDir()+"/n", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer nonces.Close()
	signer = signing.NewSigner(rs.id, nonces)
	silent := silentPeer(t, pki, "P-8", false)

	echo := func(p Peer, args string) Call {
		return Call{Peer: p, Method: mcp.MethodToolsCall, Target: "echo", Arguments: json.RawMessage(args), Capabilities: []string{"ietf-ping"}}
	}
	calls := []Call{
		echo(peerOf(honest[0]), `{"n":0}`),
		echo(rs.peer(), `{"n":1}`),
		echo(peerOf(honest[1]), `{"n":2}`),
		echo(peerOf(honest[0]), `{"n":3}`),
		echo(silent, `{"n":4}`),
		echo(peerOf(honest[2]), `{"n":5}`),
		echo(peerOf(honest[3]), `{"n":6}`),
	}
	calls[4].Timeout = 300 * time.Millisecond
	for round := range 2 {
		var got []string
		for _, o := range a.FanOut(context.Background(), calls) {
			switch {
			case o.Err != nil:
				got = append(got, o.Untrusted)
			case o.Evidence.Node != o.Call.Peer.Name:
				got = append(got, "evidence from "+o.Evidence.Node)
			default:
				got = append(got, "ok")
			}
		}
		want := []string{"ok", "bad signature: signature not bound to this request", "ok", "ok", "timeout", "ok", "ok"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round %d: verdicts (-want +got):\n%s", round, diff)
		}
	}
}

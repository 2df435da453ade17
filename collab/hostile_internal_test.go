package collab

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/quic-go/quic-go"
)

// rawMsg is a JSON-RPC message as a raw test server sees it.
type rawMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// rawServer is a QUIC+TLS peer with a real certificate whose MCP side is
// scripted by handle: it returns the lines to write back (nil: silence).
type rawServer struct {
	addr  net.Addr
	id    *signing.Identity
	mu    sync.Mutex
	seen  []rawMsg
	close func()
}

func (r *rawServer) methods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m []string
	for _, x := range r.seen {
		m = append(m, x.Method)
	}
	return m
}

func startRaw(t *testing.T, pki *testPKI, name string, handle func(m rawMsg) [][]byte) *rawServer {
	t.Helper()
	id := pki.issue(t, name, signing.IssueOptions{})
	cfg := testConfig(t, pki, id, nil)
	if err := cfg.populate(); err != nil {
		t.Fatal(err)
	}
	e := &Endpoint{cfg: cfg}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(e.serverTLS(), &quic.Config{MaxIdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &rawServer{addr: pc.LocalAddr(), id: id}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.CloseWithError(0, "")
				st, err := conn.AcceptStream(ctx)
				if err != nil {
					return
				}
				ls := newLineStream(st, 64<<20)
				for {
					var m rawMsg
					if err := ls.ReadObject(&m); err != nil {
						return
					}
					rs.mu.Lock()
					rs.seen = append(rs.seen, m)
					rs.mu.Unlock()
					for _, line := range handle(m) {
						if _, err := st.Write(append(line, '\n')); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	rs.close = func() {
		cancel()
		ln.Close()
		tr.Close()
		pc.Close()
		wg.Wait()
	}
	t.Cleanup(rs.close)
	return rs
}

func (r *rawServer) peer() Peer {
	return Peer{Name: r.id.Name, Addr: r.addr.(*net.UDPAddr).AddrPort(), Thumbprint: r.id.Thumbprint()}
}

func reply(id json.RawMessage, result any) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
	return b
}

func initReply(m rawMsg, session string) [][]byte {
	caps, _ := json.Marshal(mcp.D2DCapabilities{Granted: []string{"ietf-ping", "ietf-interface-counters"}})
	return [][]byte{reply(m.ID, mcp.InitializeResult{ProtocolVersion: mcp.LatestProtocolVersion,
		Capabilities: mcp.ServerCapabilities{Experimental: map[string]json.RawMessage{"d2d": caps}},
		Meta:         map[string]any{SessionMetaKey: session}})}
}

// silentPeer accepts QUIC and TLS but never answers initialize (or, with
// answerInit, answers initialize and nothing after).
func silentPeer(t *testing.T, pki *testPKI, name string, answerInit bool) Peer {
	rs := startRaw(t, pki, name, func(m rawMsg) [][]byte {
		if answerInit && m.Method == mcp.MethodInitialize {
			return initReply(m, "00112233445566778899aabbccddeeff")
		}
		return nil
	})
	return rs.peer()
}

func TestSilentPeer(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")

	t.Run("never answers initialize", func(t *testing.T) {
		p := silentPeer(t, pki, "P-2", false)
		start := time.Now()
		_, err := a.Session(context.Background(), p, []string{"ietf-ping"})
		if !errors.Is(err, ErrTimeout) || UntrustedReason(err) != "timeout" {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el > a.cfg.HandshakeTimeout+500*time.Millisecond {
			t.Errorf("returned after %v, handshake timeout %v", el, a.cfg.HandshakeTimeout)
		}
	})
	t.Run("never answers a call", func(t *testing.T) {
		rs := startRaw(t, pki, "P-3", func(m rawMsg) [][]byte {
			if m.Method == mcp.MethodInitialize {
				return initReply(m, "00112233445566778899aabbccddeeff")
			}
			return nil
		})
		s, err := a.Session(context.Background(), rs.peer(), []string{"ietf-ping"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err = s.CallTool(ctx, "echo", nil, CallOptions{})
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el > 800*time.Millisecond {
			t.Errorf("returned after %v, deadline 300ms", el)
		}
		waitFor(t, func() bool { return strings.Contains(strings.Join(rs.methods(), ","), mcp.NotifyCancelled) })
	})
}

// TestHostileCallee: a callee that replays an old signed result, or signs
// for another session, is rejected by the caller.
func TestHostileCallee(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	const session = "0123456789abcdef0123456789abcdef"
	var signer *signing.Signer
	var mu sync.Mutex
	var first []byte
	mode := "replay"
	rs := startRaw(t, pki, "P-2", func(m rawMsg) [][]byte {
		switch m.Method {
		case mcp.MethodInitialize:
			return initReply(m, session)
		case mcp.MethodToolsCall:
			var p mcp.CallToolParams
			_ = json.Unmarshal(m.Params, &p)
			sid := session
			mu.Lock()
			defer mu.Unlock()
			if mode == "rebind" {
				sid = "ffffffffffffffffffffffffffffffff"
			}
			if mode == "replay" && first != nil {
				return [][]byte{reply(m.ID, json.RawMessage(first))}
			}
			e := &Endpoint{cfg: Config{Signer: signer}}
			body, err := e.signResult(mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent("0% loss")}}, mcp.MethodToolsCall, p.Name, p.Arguments, sid)
			if err != nil {
				panic(err)
			}
			if first == nil {
				first = body
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

	s, err := a.Session(context.Background(), rs.peer(), []string{"ietf-ping"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := s.CallTool(ctx, "echo", json.RawMessage(`{"a":1}`), CallOptions{}); err != nil {
		t.Fatalf("honest first call: %v", err)
	}
	tests := []struct {
		name, mode string
		args       string
		reason     string
	}{
		{"replayed result", "replay", `{"a":1}`, "bad signature: replayed nonce"},
		{"replayed for other arguments", "replay", `{"a":2}`, "bad signature: does not verify for this request"},
		{"signed for another session", "rebind", `{"a":1}`, "bad signature: signature not bound to this request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			mode = tc.mode
			mu.Unlock()
			_, _, err := s.CallTool(ctx, "echo", json.RawMessage(tc.args), CallOptions{})
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			if got := UntrustedReason(err); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestOversize(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	cfg := testConfig(t, pki, pki.issue(t, "PE-1", signing.IssueOptions{}), nil)
	cfg.MaxMessageBytes = 4096
	a := listen(t, cfg)
	b, _ := node(t, pki, "P-2")

	t.Run("outgoing", func(t *testing.T) {
		s, err := a.Session(context.Background(), peerOf(b), []string{"ietf-ping"})
		if err != nil {
			t.Fatal(err)
		}
		big := json.RawMessage(`{"pad":"` + strings.Repeat("x", 5000) + `"}`)
		if _, _, err := s.CallTool(context.Background(), "echo", big, CallOptions{}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("err = %v, want ErrTooLarge", err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Errorf("session unusable after a refused send: %v", err)
		}
	})
	t.Run("incoming", func(t *testing.T) {
		rs := startRaw(t, pki, "P-3", func(m rawMsg) [][]byte {
			if m.Method == mcp.MethodInitialize {
				return initReply(m, "00112233445566778899aabbccddeeff")
			}
			// 64 KiB without a newline, then more: the caller must stop at 4 KiB.
			return [][]byte{[]byte(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"x":"` + strings.Repeat("y", 1<<20) + `"}}`)}
		})
		s, err := a.Session(context.Background(), rs.peer(), []string{"ietf-ping"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CallTool(context.Background(), "echo", nil, CallOptions{}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("err = %v, want ErrTooLarge", err)
		}
	})
}

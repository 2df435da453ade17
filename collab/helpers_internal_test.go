package collab

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"go.uber.org/goleak"
)

// leakCheck fails t if goroutines started during the test outlive it and
// its cleanups (which close the endpoints).
func leakCheck(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// testPKI is one domain CA.
type testPKI struct {
	ca    *signing.CA
	trust *signing.Trust
}

func newPKI(tb testing.TB) *testPKI {
	tb.Helper()
	ca, err := signing.NewCA("test-domain", 24*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return &testPKI{ca: ca, trust: signing.NewTrust(ca.Cert)}
}

func (p *testPKI) issue(tb testing.TB, name string, opt signing.IssueOptions) *signing.Identity {
	tb.Helper()
	id, err := p.ca.Issue(name, opt)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// tbWriter routes slog output to t.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(b []byte) (int, error) { w.tb.Log(string(b)); return len(b), nil }

// testConfig returns a Config for a node of pki with a short-timeout
// profile for tests.
func testConfig(tb testing.TB, pki *testPKI, id *signing.Identity, prov device.Provider) Config {
	tb.Helper()
	nonces, err := signing.OpenNonceSource(filepath.Join(tb.TempDir(), "nonce"), 1024)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nonces.Close() })
	cfg := Config{
		Identity:         id,
		Trust:            pki.trust,
		Signer:           signing.NewSigner(id, nonces),
		Provider:         prov,
		Policy:           StaticPolicy{ByRole: map[string][]string{"device": {"ietf-ping", "ietf-interface-counters", "slow"}}},
		ListenAddr:       "127.0.0.1:0",
		HandshakeTimeout: 2 * time.Second,
		CallTimeout:      3 * time.Second,
	}
	if _, ok := tb.(*testing.B); !ok && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func listen(tb testing.TB, cfg Config) *Endpoint {
	tb.Helper()
	e, err := Listen(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// node starts an endpoint named name serving a testProvider.
func node(tb testing.TB, pki *testPKI, name string) (*Endpoint, *testProvider) {
	tb.Helper()
	prov := newTestProvider(name)
	e := listen(tb, testConfig(tb, pki, pki.issue(tb, name, signing.IssueOptions{}), prov))
	return e, prov
}

func peerOf(e *Endpoint) Peer {
	return Peer{Name: e.cfg.Identity.Name, Addr: e.Addr(), Thumbprint: e.cfg.Identity.Thumbprint()}
}

// testProvider is a small device.Provider: tools echo (ietf-ping), slow
// (slow, waits for cancellation), secret (secret); one resource
// (ietf-interface-counters); one prompt.
type testProvider struct {
	node      string
	calls     sync.Map // tool name → *atomic.Int32
	cancelled chan struct{}
	started   chan struct{}
	once      sync.Once

	mu   sync.Mutex
	subs map[string]func(string)
}

func newTestProvider(node string) *testProvider {
	return &testProvider{node: node, cancelled: make(chan struct{}), started: make(chan struct{}, 16), subs: map[string]func(string){}}
}

func (p *testProvider) uri() string {
	return "mcp://" + p.node + "/ietf-interfaces:interfaces/interface=eth1"
}

func (p *testProvider) Node() string { return p.node }
func (p *testProvider) Offered() []string {
	return []string{"ietf-ping", "ietf-interface-counters", "slow", "secret"}
}

func (p *testProvider) Capability(method, target string) (string, bool) {
	switch method {
	case mcp.MethodToolsCall:
		switch target {
		case "echo":
			return "ietf-ping", true
		case "slow", "secret":
			return target, true
		}
	case mcp.MethodResourcesRead:
		if target == p.uri() {
			return "ietf-interface-counters", true
		}
	case mcp.MethodPromptsGet:
		if target == "diagnose" {
			return "ietf-ping", true
		}
	}
	return "", false
}

func (p *testProvider) ListTools(device.Grant) []mcp.Tool {
	schema := json.RawMessage(`{"type":"object"}`)
	return []mcp.Tool{{Name: "echo", InputSchema: schema}, {Name: "slow", InputSchema: schema}, {Name: "secret", InputSchema: schema}}
}

func (p *testProvider) count(tool string) int32 {
	v, _ := p.calls.LoadOrStore(tool, new(atomic.Int32))
	return v.(*atomic.Int32).Load()
}

func (p *testProvider) CallTool(ctx context.Context, req device.ToolRequest) (*mcp.CallToolResult, error) {
	v, _ := p.calls.LoadOrStore(req.Name, new(atomic.Int32))
	v.(*atomic.Int32).Add(1)
	switch req.Name {
	case "echo":
		for i := range 3 {
			if req.Progress != nil {
				req.Progress(float64(i+1), 3, "step")
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent("echo from " + p.node)},
			StructuredContent: req.Arguments, Meta: map[string]any{"caller": req.Caller}}, nil
	case "slow":
		if req.Progress != nil {
			req.Progress(1, 0, "started")
		}
		select {
		case p.started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		p.once.Do(func() { close(p.cancelled) })
		return nil, ctx.Err()
	case "secret":
		return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent("secret")}}, nil
	}
	return nil, fmt.Errorf("no tool %q", req.Name)
}

func (p *testProvider) ListResources(device.Grant) []mcp.Resource {
	return []mcp.Resource{{URI: p.uri(), Name: "eth1"}}
}

func (p *testProvider) ReadResource(_ context.Context, uri string) (*mcp.ReadResourceResult, error) {
	if uri != p.uri() {
		return nil, mcp.Errorf(mcp.CodeResourceNotFound, "no %s", uri)
	}
	return &mcp.ReadResourceResult{Contents: []mcp.ResourceContents{{URI: uri, MimeType: "application/yang-data+json",
		Text: `{"ietf-interfaces:interface":{"name":"eth1","statistics":{"in-errors":"0"}}}`, ContentID: "v1"}}}, nil
}

func (p *testProvider) Subscribe(_ context.Context, uri string, updated func(string)) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs[uri] = updated
	return func() {
		p.mu.Lock()
		delete(p.subs, uri)
		p.mu.Unlock()
	}, nil
}

func (p *testProvider) fire(uri, cid string) bool {
	p.mu.Lock()
	fn := p.subs[uri]
	p.mu.Unlock()
	if fn == nil {
		return false
	}
	fn(cid)
	return true
}

func (p *testProvider) ListPrompts(device.Grant) []mcp.Prompt {
	return []mcp.Prompt{{Name: "diagnose", Arguments: []mcp.PromptArgument{{Name: "iface", Required: true}}}}
}

func (p *testProvider) GetPrompt(_ context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	if name != "diagnose" {
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "no prompt %q", name)
	}
	return &mcp.GetPromptResult{Messages: []mcp.PromptMessage{{Role: "user", Content: mcp.TextContent("check " + args["iface"])}}}, nil
}

package collab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

func TestHappyPath(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	var auditMu sync.Mutex
	var audits []AuditRecord
	a, _ := node(t, pki, "PE-1")
	bcfg := testConfig(t, pki, pki.issue(t, "P-2", signing.IssueOptions{}), newTestProvider("P-2"))
	bcfg.Audit = func(r AuditRecord) { auditMu.Lock(); audits = append(audits, r); auditMu.Unlock() }
	b := listen(t, bcfg)
	bprov := bcfg.Provider.(*testProvider)
	ctx := context.Background()

	s, err := a.Session(ctx, peerOf(b), []string{"ietf-ping", "ietf-interface-counters", "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ietf-interface-counters", "ietf-ping"}, s.Granted()); diff != "" {
		t.Errorf("granted (-want +got):\n%s", diff)
	}
	if len(s.ID()) != 32 {
		t.Errorf("session id %q, want 32 hex digits", s.ID())
	}
	if s2, err := a.Session(ctx, peerOf(b), []string{"ietf-ping"}); err != nil || s2 != s {
		t.Errorf("second Session = %p, %v; want reuse of %p", s2, err, s)
	}

	tools, err := s.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	if diff := cmp.Diff([]string{"echo"}, names); diff != "" {
		t.Errorf("tools/list (-want +got):\n%s", diff)
	}

	var progMu sync.Mutex
	var prog []float64
	args := json.RawMessage(`{"count": 3, "tail": "PE-3"}`)
	ev, res, err := s.CallTool(ctx, "echo", args, CallOptions{Progress: func(done, total float64, msg string) {
		progMu.Lock()
		prog = append(prog, done)
		progMu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Node != "P-2" || ev.Method != mcp.MethodToolsCall || ev.Target != "echo" || ev.Via != "d2d" || ev.Envelope.SessionID != s.ID() {
		t.Errorf("evidence header = %+v", ev)
	}
	if got := res.Content[0].Text; got != "echo from P-2" {
		t.Errorf("result text %q", got)
	}
	if res.Meta["caller"] != "PE-1" {
		t.Errorf("provider saw caller %v, want PE-1", res.Meta["caller"])
	}
	// Evidence verifies offline with a fresh verifier (as a report would).
	if err := signing.NewVerifier(pki.trust, signing.VerifierOptions{}).VerifyEvidence(ev); err != nil {
		t.Errorf("VerifyEvidence: %v", err)
	}
	progMu.Lock()
	// Progress notifications race the reply; all three were sent first on
	// the same stream, so they have arrived.
	if diff := cmp.Diff([]float64{1, 2, 3}, prog); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	progMu.Unlock()

	rev, rr, err := s.ReadResource(ctx, bprov.uri())
	if err != nil {
		t.Fatal(err)
	}
	if rr.Contents[0].ContentID != "v1" || rev.Target != bprov.uri() || string(rev.Arguments) != `{"uri":"`+bprov.uri()+`"}` {
		t.Errorf("resources/read = %+v, evidence args %s", rr, rev.Arguments)
	}
	rl, err := s.ListResources(ctx)
	if err != nil || len(rl) != 1 {
		t.Errorf("resources/list = %v, %v", rl, err)
	}

	updates := make(chan mcp.ResourceUpdatedParams, 4)
	cancel, err := s.Subscribe(ctx, bprov.uri(), func(u mcp.ResourceUpdatedParams) { updates <- u })
	if err != nil {
		t.Fatal(err)
	}
	if !bprov.fire(bprov.uri(), "v2") {
		t.Fatal("provider has no subscription")
	}
	select {
	case u := <-updates:
		if diff := cmp.Diff(mcp.ResourceUpdatedParams{URI: bprov.uri(), ContentID: "v2"}, u); diff != "" {
			t.Errorf("update (-want +got):\n%s", diff)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no notifications/resources/updated")
	}
	cancel()
	waitFor(t, func() bool { return !bprov.fire(bprov.uri(), "v3") })

	prompts, err := s.ListPrompts(ctx)
	if err != nil || len(prompts) != 1 {
		t.Fatalf("prompts/list = %v, %v", prompts, err)
	}
	pr, err := s.GetPrompt(ctx, "diagnose", map[string]string{"iface": "eth1"})
	if err != nil || pr.Messages[0].Content.Text != "check eth1" {
		t.Errorf("prompts/get = %+v, %v", pr, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}

	// Local evidence verifies like remote evidence.
	lev, err := b.Local(ctx, mcp.MethodToolsCall, "echo", args, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.NewVerifier(pki.trust, signing.VerifierOptions{}).VerifyEvidence(lev); err != nil || lev.Via != "local" {
		t.Errorf("local evidence %+v: %v", lev.Envelope.SessionID, err)
	}

	auditMu.Lock()
	var methods []string
	for _, r := range audits {
		if r.Direction != "in" || r.Peer != "PE-1" {
			t.Errorf("audit record %+v", r)
		}
		methods = append(methods, r.Method)
	}
	auditMu.Unlock()
	for _, m := range []string{mcp.MethodInitialize, mcp.MethodToolsCall, mcp.MethodResourcesRead} {
		if !slices.Contains(methods, m) {
			t.Errorf("no audit record for %s in %v", m, methods)
		}
	}

	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := a.Session(ctx, peerOf(b), nil); err == nil {
		t.Error("Session after Close succeeded")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDraftInitialize(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	b, _ := node(t, pki, "PE-3")
	s, err := a.dial(context.Background(), peerOf(b), []string{"ietf-interface-counters", "ietf-srv6-ping"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if diff := cmp.Diff([]string{"ietf-interface-counters"}, s.Granted()); diff != "" {
		t.Errorf("granted (-want +got):\n%s", diff)
	}
	if _, _, err := s.ReadResource(context.Background(), "mcp://PE-3/ietf-interfaces:interfaces/interface=eth1"); err != nil {
		t.Errorf("read after mcp/initialize: %v", err)
	}
}

func TestNotGranted(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	b, bprov := node(t, pki, "P-2")
	ctx := context.Background()
	tests := []struct {
		name      string
		requested []string
		tool      string
	}{
		{"offered but outside policy", []string{"ietf-ping", "secret"}, "secret"},
		{"allowed but not requested", []string{"ietf-interface-counters"}, "echo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := a.dial(ctx, peerOf(b), tc.requested, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			before := bprov.count(tc.tool)
			_, _, err = s.CallTool(ctx, tc.tool, nil, CallOptions{})
			if !errors.Is(err, ErrNotGranted) {
				t.Fatalf("err = %v, want ErrNotGranted", err)
			}
			var me *mcp.Error
			if !errors.As(err, &me) || me.Code != mcp.CodeNotGranted {
				t.Errorf("err = %v, want *mcp.Error code %d", err, mcp.CodeNotGranted)
			}
			if n := bprov.count(tc.tool); n != before {
				t.Errorf("provider reached %d times", n-before)
			}
		})
	}
}

func TestAuthFailures(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	foreign := newPKI(t)
	b, _ := node(t, pki, "P-2")
	past := time.Now().Add(-3 * time.Hour)

	tests := []struct {
		name   string
		client func(t *testing.T) *Endpoint
		peer   func(p Peer) Peer
		want   error
		reason string
	}{
		{
			name: "client from a foreign CA",
			client: func(t *testing.T) *Endpoint {
				cfg := testConfig(t, foreign, foreign.issue(t, "PE-1", signing.IssueOptions{}), nil)
				cfg.Trust = pki.trust // trusts the server, but is not trusted
				return listen(t, cfg)
			},
			want: ErrTLS, reason: "tls: unknown authority",
		},
		{
			name: "server from a foreign CA",
			client: func(t *testing.T) *Endpoint {
				return listen(t, testConfig(t, foreign, foreign.issue(t, "PE-1", signing.IssueOptions{}), nil))
			},
			want: ErrTLS, reason: "tls: unknown authority",
		},
		{
			name: "expired client certificate",
			client: func(t *testing.T) *Endpoint {
				return listen(t, testConfig(t, pki, pki.issue(t, "PE-1", signing.IssueOptions{NotBefore: past, Validity: time.Hour}), nil))
			},
			want: ErrTLS, reason: "tls: certificate expired",
		},
		{
			name: "thumbprint mismatch",
			client: func(t *testing.T) *Endpoint {
				return listen(t, testConfig(t, pki, pki.issue(t, "PE-1", signing.IssueOptions{}), nil))
			},
			peer: func(p Peer) Peer { p.Thumbprint[0] ^= 0xff; return p },
			want: ErrThumbprintMismatch, reason: "thumbprint mismatch",
		},
		{
			name: "wrong node name",
			client: func(t *testing.T) *Endpoint {
				return listen(t, testConfig(t, pki, pki.issue(t, "PE-1", signing.IssueOptions{}), nil))
			},
			peer: func(p Peer) Peer { p.Name = "PE-3"; p.Thumbprint = signing.Thumbprint{}; return p },
			want: ErrTLS, reason: "tls: peer name mismatch",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.client(t)
			p := peerOf(b)
			if tc.peer != nil {
				p = tc.peer(p)
			}
			start := time.Now()
			s, err := a.Session(context.Background(), p, []string{"ietf-ping"})
			if err == nil {
				s.Close()
				t.Fatal("session established")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if got := UntrustedReason(err); got != tc.reason {
				t.Errorf("UntrustedReason = %q, want %q (err %v)", got, tc.reason, err)
			}
			if el := time.Since(start); el > a.cfg.HandshakeTimeout+time.Second {
				t.Errorf("took %v", el)
			}
			a.Close()
		})
	}
}

func TestCancellation(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	b, bprov := node(t, pki, "P-2")
	s, err := a.Session(context.Background(), peerOf(b), []string{"slow"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.CallTool(ctx, "slow", nil, CallOptions{})
		errc <- err
	}()
	select {
	case <-bprov.started:
	case <-time.After(3 * time.Second):
		t.Fatal("tool did not start")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	select {
	case <-bprov.cancelled:
	case <-time.After(3 * time.Second):
		t.Fatal("provider context not cancelled")
	}
	// The session survives a cancelled call.
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("ping after cancel: %v", err)
	}
}

func TestFanOut(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	b, bprov := node(t, pki, "P-2")
	c, _ := node(t, pki, "PE-3")
	silent := silentPeer(t, pki, "P-4", false)
	wrong := peerOf(c)
	wrong.Thumbprint[3] ^= 1

	calls := []Call{
		{Peer: Peer{Name: "PE-1"}, Method: mcp.MethodToolsCall, Target: "echo", Arguments: json.RawMessage(`{"n":1}`)},
		{Peer: peerOf(b), Method: mcp.MethodToolsCall, Target: "echo", Arguments: json.RawMessage(`{"n":2}`), Capabilities: []string{"ietf-ping"}},
		{Peer: wrong, Method: mcp.MethodToolsCall, Target: "echo", Capabilities: []string{"ietf-ping"}},
		{Peer: silent, Method: mcp.MethodToolsCall, Target: "echo", Capabilities: []string{"ietf-ping"}, Timeout: 400 * time.Millisecond},
		{Peer: peerOf(b), Method: mcp.MethodResourcesRead, Target: bprov.uri(), Capabilities: []string{"ietf-interface-counters"}},
		{Peer: peerOf(b), Method: mcp.MethodToolsCall, Target: "secret", Capabilities: []string{"secret"}},
	}
	start := time.Now()
	out := a.FanOut(context.Background(), calls)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("fan-out took %v", el)
	}
	type row struct {
		Node, Untrusted string
		OK, NotGranted  bool
	}
	var got []row
	for i, o := range out {
		if o.Call.Target != calls[i].Target || o.Call.Peer != calls[i].Peer {
			t.Errorf("outcome %d is for %v", i, o.Call)
		}
		r := row{Node: o.Call.Peer.Name, Untrusted: o.Untrusted, OK: o.Err == nil && o.Evidence != nil, NotGranted: errors.Is(o.Err, ErrNotGranted)}
		got = append(got, r)
	}
	want := []row{
		{Node: "PE-1", OK: true},
		{Node: "P-2", OK: true},
		{Node: "PE-3", Untrusted: "thumbprint mismatch"},
		{Node: "P-4", Untrusted: "timeout"},
		{Node: "P-2", OK: true},
		{Node: "P-2", NotGranted: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
		for _, o := range out {
			t.Log(o.Err)
		}
	}
}

// TestResultCertFromSession: a signed result travels without the signer's
// certificate; the caller's evidence carries the one the session's TLS
// handshake verified and checks offline against the CA alone. A result
// signed by another member of the domain is still refused, although the
// certificate put back is the session peer's.
func TestResultCertFromSession(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	a, _ := node(t, pki, "PE-1")
	b, _ := node(t, pki, "P-2")
	ctx := context.Background()
	s, err := a.Session(ctx, peerOf(b), []string{"ietf-ping"})
	if err != nil {
		t.Fatal(err)
	}
	args := json.RawMessage(`{"count":3}`)
	raw, err := s.call(ctx, mcp.MethodToolsCall, mcp.CallToolParams{Name: "echo", Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	var env signing.Envelope
	if err := json.Unmarshal(raw, &wire); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wire.Meta[mcp.SignatureMetaKey], &env); err != nil || len(env.Signature) == 0 {
		t.Fatalf("result carries no envelope (%v): %s", err, raw)
	}
	if len(env.Cert) != 0 {
		t.Errorf("envelope on the wire carries the certificate (%d bytes)", len(env.Cert))
	}

	ev, err := s.verify(raw, mcp.MethodToolsCall, "echo", args)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Envelope.Cert, b.cfg.Identity.CertDER) {
		t.Error("evidence does not carry the callee's certificate")
	}
	if err := signing.NewVerifier(pki.trust, signing.VerifierOptions{}).VerifyEvidence(ev); err != nil {
		t.Errorf("evidence does not verify offline: %v", err)
	}

	// R-7, also of the domain, signs the same answer for P-2's session;
	// P-2 relays it without a certificate.
	other := testConfig(t, pki, pki.issue(t, "R-7", signing.IssueOptions{}), nil).Signer
	h, err := signing.HashArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj, "_meta")
	result, _ := json.Marshal(obj)
	forged, err := other.SignResult(result, signing.Binding{Method: mcp.MethodToolsCall, Target: "echo", ArgsHash: h, SessionID: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	forged.Cert = nil
	fe, _ := json.Marshal(forged)
	obj["_meta"] = json.RawMessage(`{"` + mcp.SignatureMetaKey + `":` + string(fe) + `}`)
	relayed, _ := json.Marshal(obj)
	if _, err := s.verify(relayed, mcp.MethodToolsCall, "echo", args); !errors.Is(err, signing.ErrKeyIDMismatch) {
		t.Errorf("result signed by another member without its certificate: %v, want %v", err, signing.ErrKeyIDMismatch)
	}
}

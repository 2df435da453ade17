package enroll_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/enroll"
	"github.com/d2dmesh/d2d/signing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/quic-go/quic-go.(*Transport).listen"))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(b []byte) (int, error) { w.tb.Log(string(b)); return len(b), nil }

func testLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newAuthority makes a CA in a temporary directory and opens it.
func newAuthority(t testing.TB, cfg enroll.AuthorityConfig) *enroll.Authority {
	t.Helper()
	dir := t.TempDir()
	ca, err := signing.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = testLogger(t)
	a, err := enroll.OpenAuthority(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func serve(t testing.TB, a *enroll.Authority) *enroll.Service {
	t.Helper()
	s, err := enroll.Serve(context.Background(), enroll.ServiceConfig{Authority: a, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func onboard(t testing.TB, s *enroll.Service, node, code string) (*enroll.Onboarded, error) {
	t.Helper()
	key, err := signing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return enroll.Onboard(ctx, s.OnboardAddr(), node, code, key)
}

// TestOnboardOnce: the right code onboards its node once and only once;
// the device ends with its own key, a certificate of the code's role, the
// CA and the revocation list.
func TestOnboardOnce(t *testing.T) {
	a := newAuthority(t, enroll.AuthorityConfig{})
	s := serve(t, a)
	code, err := a.NewCode("PE-1", enroll.CodeOptions{Role: signing.RoleController})
	if err != nil {
		t.Fatal(err)
	}
	got, err := onboard(t, s, "PE-1", code.Code)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity.Name != "PE-1" || got.Identity.Role != signing.RoleController || !got.CA.Equal(a.CA().Cert) || got.Revocations == nil {
		t.Errorf("onboarded %v, CA %v, list %v", got.Identity, got.CA.Subject, got.Revocations)
	}
	if _, err := signing.NewTrust(a.CA().Cert).VerifyCert(got.Identity.CertDER); err != nil {
		t.Errorf("granted certificate: %v", err)
	}
	if _, err := onboard(t, s, "PE-1", code.Code); !errors.Is(err, enroll.ErrRefused) {
		t.Errorf("second use of the code: %v, want ErrRefused", err)
	}
	issued, err := a.IssuedCertificates()
	if err != nil || len(issued) != 1 || issued[0].Via != "onboard" {
		t.Errorf("issued records %+v %v", issued, err)
	}
}

// TestOnboardRefusals: wrong, expired, reused, exhausted and unknown
// codes all fail with the same error, and a code that ran out of
// attempts stays dead even for the right password.
func TestOnboardRefusals(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	a := newAuthority(t, enroll.AuthorityConfig{Now: func() time.Time { return clock() }})
	s := serve(t, a)

	used, _ := a.NewCode("used", enroll.CodeOptions{})
	if _, err := onboard(t, s, "used", used.Code); err != nil {
		t.Fatal(err)
	}
	expired, _ := a.NewCode("expired", enroll.CodeOptions{TTL: time.Minute})
	right, _ := a.NewCode("right", enroll.CodeOptions{})
	other, _ := a.NewCode("other", enroll.CodeOptions{})
	tests := []struct {
		name, node, code string
		advance          time.Duration
	}{
		{name: "wrong code", node: "right", code: other.Code},
		{name: "code of another node", node: "other", code: right.Code},
		{name: "unknown node", node: "nobody", code: right.Code},
		{name: "reused code", node: "used", code: used.Code},
		{name: "expired code", node: "expired", code: expired.Code, advance: 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.advance)
			_, err := onboard(t, s, tc.node, tc.code)
			if err != enroll.ErrRefused { //nolint:errorlint // the very same error, nothing wrapped around it
				t.Errorf("got %v, want exactly ErrRefused", err)
			}
		})
	}
	// "right" took one wrong guess above; two more exhaust it.
	for range enroll.DefaultCodeAttempts - 1 {
		if _, err := onboard(t, s, "right", "AAAA-AAAA-AAAA-AAAA-AAAA"); err != enroll.ErrRefused { //nolint:errorlint
			t.Fatalf("guess: %v", err)
		}
	}
	if _, err := onboard(t, s, "right", right.Code); err != enroll.ErrRefused { //nolint:errorlint
		t.Errorf("right code after %d failed attempts: %v, want ErrRefused", enroll.DefaultCodeAttempts, err)
	}
	// The other codes were not touched by the failures on "right".
	if _, err := onboard(t, s, "other", other.Code); err != nil {
		t.Errorf("other node's code: %v", err)
	}
}

// agent is a collab endpoint with its own identity, onboarded by code,
// and a renewer.
type agent struct {
	id       *signing.Identity
	trust    *signing.Trust
	endpoint *collab.Endpoint
	renewer  *enroll.Renewer
	prov     *echoProvider
}

func newAgent(t *testing.T, a *enroll.Authority, s *enroll.Service, name string, interval time.Duration, serve bool) *agent {
	t.Helper()
	code, err := a.NewCode(name, enroll.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := onboard(t, s, name, code.Code)
	if err != nil {
		t.Fatal(err)
	}
	ag := &agent{id: ob.Identity, trust: signing.NewTrust(ob.CA)}
	if err := ag.trust.SetRevocations(ob.Revocations); err != nil {
		t.Fatal(err)
	}
	nonces, err := signing.OpenNonceSource(filepath.Join(t.TempDir(), "nonce"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nonces.Close() })
	cfg := collab.Config{
		Identity: ag.id, Trust: ag.trust, Signer: signing.NewSigner(ag.id, nonces),
		ListenAddr: "127.0.0.1:0", Logger: testLogger(t),
		HandshakeTimeout: 2 * time.Second, CallTimeout: 3 * time.Second,
	}
	if serve {
		ag.prov = &echoProvider{node: name}
		cfg.Provider = ag.prov
		cfg.Policy = collab.StaticPolicy{Default: []string{"echo"}}
	}
	if ag.endpoint, err = collab.Listen(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.endpoint.Close() })
	ag.renewer, err = enroll.StartRenewer(enroll.RenewerConfig{
		Identity: ag.id, Trust: ag.trust, Endpoint: ag.endpoint, Service: s.Peer(),
		CertFile:           filepath.Join(t.TempDir(), name+".crt"),
		RevocationInterval: interval,
		// Half the lifetime: seconds-long test certificates leave a
		// loaded machine little slack at two thirds.
		RenewAt:       0.5,
		OnRevocations: func(*signing.RevocationList) { ag.endpoint.CloseRevoked() },
		Logger:        testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.renewer.Close() })
	return ag
}

// TestThreeLifetimes: two agents with 5 s certificates renew in place for
// three lifetimes while one calls the other every 20 ms on one session:
// no call fails, the session stays the same, each renewal is used by new
// handshakes.
func TestThreeLifetimes(t *testing.T) {
	const validity = 5 * time.Second
	a := newAuthority(t, enroll.AuthorityConfig{Validity: validity})
	s := serve(t, a)
	callee := newAgent(t, a, s, "P-2", time.Minute, true)
	caller := newAgent(t, a, s, "PE-1", time.Minute, false)
	peer := collab.Peer{Name: "P-2", Addr: callee.endpoint.Addr()}
	sess, err := caller.endpoint.Session(context.Background(), peer, []string{"echo"})
	if err != nil {
		t.Fatal(err)
	}
	first := callee.id.Cert
	deadline := time.Now().Add(3*validity + validity/2)
	calls := 0
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		s2, err := caller.endpoint.Session(ctx, peer, []string{"echo"})
		if err != nil {
			cancel()
			t.Fatalf("session after %d calls: %v", calls, err)
		}
		if s2 != sess {
			t.Fatalf("the session was replaced after %d calls", calls)
		}
		if _, _, err := s2.CallTool(ctx, "echo", nil, collab.CallOptions{}); err != nil {
			cancel()
			t.Fatalf("call %d failed: %v", calls, err)
		}
		cancel()
		calls++
		time.Sleep(20 * time.Millisecond)
	}
	for name, ag := range map[string]*agent{"P-2": callee, "PE-1": caller} {
		st := ag.renewer.Status()
		if st.Renewals < 3 || st.LastError != "" {
			t.Errorf("%s: %d renewals (want ≥ 3), last error %q", name, st.Renewals, st.LastError)
		}
		if !time.Now().Before(ag.id.Current().Cert.NotAfter) {
			t.Errorf("%s: current certificate expired", name)
		}
	}
	if !time.Now().After(first.NotAfter) {
		t.Fatal("the test did not outlive the first certificate")
	}
	// A new handshake presents the newest certificate.
	fresh, err := caller.endpoint.Session(context.Background(), collab.Peer{Name: "P-2", Addr: callee.endpoint.Addr(), Thumbprint: callee.id.Current().Thumbprint()}, []string{"echo"})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Remote().Thumbprint != callee.id.Current().Thumbprint() {
		t.Error("new handshake did not present the renewed certificate")
	}
	t.Logf("%d calls over %v, callee renewed %d times", calls, 3*validity+validity/2, callee.renewer.Status().Renewals)
}

// TestRevokedNodeRefused: once the operator revokes a node, its peers
// refuse it within one distribution interval (its open session ends, a
// new one fails), and evidence it signs afterwards fails report
// verification, while its evidence witnessed before the revocation
// still verifies.
func TestRevokedNodeRefused(t *testing.T) {
	const interval = 300 * time.Millisecond
	a := newAuthority(t, enroll.AuthorityConfig{})
	s := serve(t, a)
	callee := newAgent(t, a, s, "P-2", interval, true)
	revoked := newAgent(t, a, s, "PE-1", interval, false)
	peer := collab.Peer{Name: "P-2", Addr: callee.endpoint.Addr()}
	sess, err := revoked.endpoint.Session(context.Background(), peer, []string{"echo"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sess.CallTool(context.Background(), "echo", nil, collab.CallOptions{}); err != nil {
		t.Fatal(err)
	}
	witnessedAt := time.Now()
	time.Sleep(1100 * time.Millisecond) // revocation times have one-second resolution

	if _, _, err := a.Revoke(enroll.RevokeOptions{Node: "PE-1"}); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	select {
	case <-sess.Context().Done():
	case <-time.After(interval + 2*time.Second):
		t.Fatalf("the revoked node's session is still open %v after the revocation", interval+2*time.Second)
	}
	t.Logf("session closed %v after the revocation (interval %v)", time.Since(revokedAt).Round(time.Millisecond), interval)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := revoked.endpoint.Session(ctx, peer, []string{"echo"}); err == nil {
		t.Fatal("the revoked node opened a new session")
	}
	if got := callee.trust.Revocations(); got == nil || len(got.Revoked) != 1 {
		t.Fatalf("callee's list: %+v", got)
	}
	checkRevokedEvidence(t, callee, revoked, witnessedAt)
}

// BenchmarkOnboard is one whole onboarding over loopback TCP: the
// device's scrypt, SPAKE2+ on both sides, the CA's two durable writes
// and its signature.
func BenchmarkOnboard(b *testing.B) {
	b.ReportAllocs()
	a := newAuthority(b, enroll.AuthorityConfig{})
	s := serve(b, a)
	codes := make([]string, b.N)
	for i := range b.N {
		c, err := a.NewCode(fmt.Sprintf("n%d", i), enroll.CodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		codes[i] = c.Code
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := onboard(b, s, fmt.Sprintf("n%d", i), codes[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRenewKeepsKeyAndRole: renewal is for the key and role of a valid,
// unrevoked certificate; the holder of a revoked key, or of another key,
// gets nothing.
func TestRenewKeepsKeyAndRole(t *testing.T) {
	a := newAuthority(t, enroll.AuthorityConfig{})
	key, _ := signing.GenerateKey()
	csr, _ := key.CertificateRequest("ctl")
	if _, err := a.Sign(csr, "ctl", signing.RoleController, 0); err != nil {
		t.Fatal(err)
	}
	der, err := a.Renew("ctl", csr)
	if err != nil {
		t.Fatal(err)
	}
	id, err := signing.NewIdentity(der, key)
	if err != nil || id.Role != signing.RoleController {
		t.Fatalf("renewed %v %v", id, err)
	}
	other, _ := signing.GenerateKey()
	otherCSR, _ := other.CertificateRequest("ctl")
	if _, err := a.Renew("ctl", otherCSR); !errors.Is(err, enroll.ErrUnknownNode) {
		t.Errorf("renewal with another key: %v", err)
	}
	if _, err := a.Renew("PE-1", csr); err == nil {
		t.Error("renewed a request for ctl as PE-1")
	}
	if _, _, err := a.Revoke(enroll.RevokeOptions{Node: "ctl"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Renew("ctl", csr); !errors.Is(err, enroll.ErrUnknownNode) {
		t.Errorf("renewal of a revoked key: %v", err)
	}
}

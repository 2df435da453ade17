package signing_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

// t0 is the fixed "now" of the tests: an hour after the CA is created
// (CAs are created with the real clock).
var t0 = time.Now().UTC().Add(time.Hour).Truncate(time.Second)

type domain struct {
	ca    *signing.CA
	trust *signing.Trust
	ids   map[string]*signing.Identity
}

func newDomain(t testing.TB, names ...string) *domain {
	t.Helper()
	ca, err := signing.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &domain{ca: ca, trust: signing.NewTrust(ca.Cert).WithClock(func() time.Time { return t0 }), ids: map[string]*signing.Identity{}}
	for _, n := range names {
		id, err := ca.Issue(n, signing.IssueOptions{NotBefore: t0.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		d.ids[n] = id
	}
	return d
}

func (d *domain) signer(t testing.TB, name string) *signing.Signer {
	t.Helper()
	ns, err := signing.OpenNonceSource(filepath.Join(t.TempDir(), name+".nonce"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return signing.NewSigner(d.ids[name], ns).WithClock(func() time.Time { return t0 })
}

func (d *domain) verifier() *signing.Verifier {
	return signing.NewVerifier(d.trust, signing.VerifierOptions{Now: func() time.Time { return t0.Add(time.Second) }})
}

func mustBinding(t testing.TB, method, target, args, session string) signing.Binding {
	t.Helper()
	b, err := signing.NewBinding(method, target, json.RawMessage(args), session)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package signing_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/signing"
)

// TestKeyBornOnDevice is the device side and the CA side of an issue:
// the device makes its key and a request; the CA signs the request; the
// device pairs the certificate with the key it never gave away.
func TestKeyBornOnDevice(t *testing.T) {
	d := newDomain(t)
	key, err := signing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := key.Save(filepath.Join(dir, "PE-1.key")); err != nil {
		t.Fatal(err)
	}
	csr, err := key.CertificateRequest("PE-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(csr, signing.PrivSeedForTest(mustIdentityOf(t, d, key))) {
		t.Fatal("the request carries the private key")
	}
	if _, err := d.ca.SignRequest(csr, "PE-2", signing.IssueOptions{}); err == nil {
		t.Error("the CA signed a request for another name than it was asked to")
	}
	der, err := d.ca.SignRequest(csr, "PE-1", signing.IssueOptions{Role: signing.RoleDevice, NotBefore: t0.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := signing.LoadKey(filepath.Join(dir, "PE-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := signing.NewIdentity(der, loaded)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "PE-1" || id.Role != signing.RoleDevice {
		t.Errorf("identity %v", id)
	}
	if _, err := d.trust.VerifyPeer(id.CertDER, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("device certificate as server: %v", err)
	}
	other, _ := signing.GenerateKey()
	if _, err := signing.NewIdentity(der, other); err == nil {
		t.Error("a certificate paired with another key")
	}
}

func mustIdentityOf(t *testing.T, d *domain, k *signing.Key) *signing.Identity {
	t.Helper()
	csr, _ := k.CertificateRequest("tmp")
	der, err := d.ca.SignRequest(csr, "tmp", signing.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := signing.NewIdentity(der, k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestParseRequestRefuses(t *testing.T) {
	key, _ := signing.GenerateKey()
	good, _ := key.CertificateRequest("PE-1")
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"huge", make([]byte, signing.MaxRequestBytes+1)},
		{"bad signature", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := signing.ParseRequest(tc.in); !errors.Is(err, signing.ErrIdentity) {
				t.Errorf("got %v, want ErrIdentity", err)
			}
		})
	}
	if _, name, err := signing.ParseRequest(good); err != nil || name != "PE-1" {
		t.Errorf("good request: %q %v", name, err)
	}
}

// TestRoleUsages: each role gets exactly its extended key usages, and the
// verifier holds each use to them.
func TestRoleUsages(t *testing.T) {
	d := newDomain(t)
	tests := []struct {
		role           string
		server, client bool
	}{
		{signing.RoleDevice, true, true},
		{signing.RoleController, true, true},
		{signing.RoleOperator, false, true},
		{signing.RoleCA, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			id, err := d.ca.Issue("n-"+tc.role, signing.IssueOptions{Role: tc.role, NotBefore: t0.Add(-time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range id.Cert.ExtKeyUsage {
				if u == x509.ExtKeyUsageAny {
					t.Fatal("certificate carries ExtKeyUsageAny")
				}
			}
			_, serr := d.trust.VerifyPeer(id.CertDER, x509.ExtKeyUsageServerAuth)
			_, cerr := d.trust.VerifyPeer(id.CertDER, x509.ExtKeyUsageClientAuth)
			if (serr == nil) != tc.server || (cerr == nil) != tc.client {
				t.Errorf("as server: %v, as client: %v; want server %v client %v", serr, cerr, tc.server, tc.client)
			}
			for _, err := range []error{serr, cerr} {
				if err != nil && !errors.Is(err, signing.ErrWrongUsage) {
					t.Errorf("refusal %v is not ErrWrongUsage", err)
				}
			}
		})
	}
	if _, err := d.ca.Issue("x", signing.IssueOptions{Role: "root"}); err == nil {
		t.Error("issued an unknown role")
	}
}

func TestRenew(t *testing.T) {
	d := newDomain(t, "PE-1")
	id := d.ids["PE-1"]
	if id.Current() != id {
		t.Fatal("a fresh identity is not its own current one")
	}
	csr, _ := id.Key().CertificateRequest("PE-1")
	der, err := d.ca.SignRequest(csr, "PE-1", signing.IssueOptions{NotBefore: t0, Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	next, err := id.Renew(der)
	if err != nil {
		t.Fatal(err)
	}
	if id.Current() != next || next.Current() != next || next.Thumbprint() == id.Thumbprint() {
		t.Errorf("after renewal: current %v, next %v", id.Current(), next)
	}
	// Going back is refused.
	if _, err := next.Renew(id.CertDER); err == nil {
		t.Error("renewed to an older certificate")
	}
	other, _ := d.ca.Issue("PE-2", signing.IssueOptions{})
	if _, err := id.Renew(other.CertDER); err == nil {
		t.Error("renewed to another node's certificate")
	}
	// A signer follows the renewal.
	s := signing.NewSigner(id, signing.NewMemoryNonceSource(0)).WithClock(func() time.Time { return t0 })
	env, err := s.SignResult(json.RawMessage(`{}`), mustBinding(t, "tools/call", "x", "{}", "s"))
	if err != nil {
		t.Fatal(err)
	}
	if env.KeyID != next.Thumbprint() {
		t.Errorf("signed with %s, want the renewed certificate %s", env.KeyID, next.Thumbprint())
	}
}

func revoke(t *testing.T, d *domain, number uint64, at time.Time, ids ...*signing.Identity) *signing.RevocationList {
	t.Helper()
	var rs []signing.Revocation
	for _, id := range ids {
		rs = append(rs, signing.Revocation{Serial: id.Cert.SerialNumber, RevokedAt: at, Reason: "key-compromise"})
	}
	l, err := d.ca.NewRevocationList(number, rs, t0.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRevocationList(t *testing.T) {
	d := newDomain(t, "PE-1", "P-2")
	pe1 := d.ids["PE-1"]
	at := t0.Add(-10 * time.Minute).Truncate(time.Second)
	l := revoke(t, d, 3, at, pe1)
	got, err := signing.ParseRevocationList(l.PEM())
	if err != nil {
		t.Fatal(err)
	}
	want := []signing.Revocation{{Serial: pe1.Cert.SerialNumber, RevokedAt: at, Since: at, Reason: "key-compromise"}}
	if diff := cmp.Diff(want, got.Revoked, cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if got.Number != 3 {
		t.Errorf("number %d", got.Number)
	}
	if err := d.trust.SetRevocations(got); err != nil {
		t.Fatal(err)
	}
	if _, err := d.trust.VerifyCert(pe1.CertDER); !errors.Is(err, signing.ErrRevoked) {
		t.Errorf("revoked certificate: %v, want ErrRevoked", err)
	}
	if _, err := d.trust.VerifyCert(d.ids["P-2"].CertDER); err != nil {
		t.Errorf("other certificate: %v", err)
	}
	// Copies made before share the list.
	late := d.trust.WithClock(func() time.Time { return t0.Add(time.Hour) })
	if _, err := late.VerifyCert(pe1.CertDER); !errors.Is(err, signing.ErrRevoked) {
		t.Errorf("copy of the trust: %v", err)
	}
	// Before the revocation the certificate was good.
	early := d.trust.WithClock(func() time.Time { return at.Add(-time.Second) })
	if _, err := early.VerifyCert(pe1.CertDER); err != nil {
		t.Errorf("before the revocation: %v", err)
	}
	if err := d.trust.SetRevocations(revoke(t, d, 2, at)); !errors.Is(err, signing.ErrRevocationList) {
		t.Errorf("older version installed: %v", err)
	}
	stranger := newDomain(t)
	if err := d.trust.SetRevocations(revoke(t, stranger, 9, at)); !errors.Is(err, signing.ErrRevocationList) {
		t.Errorf("foreign list installed: %v", err)
	}
	if d.trust.Revocations().Number != 3 {
		t.Errorf("list in force is version %d", d.trust.Revocations().Number)
	}
}

// TestRevokedEvidenceRule: evidence signed with a revoked certificate
// passes only when dated before the revocation and witnessed before it by
// another node.
func TestRevokedEvidenceRule(t *testing.T) {
	d := newDomain(t, "P-2")
	s := d.signer(t, "P-2") // signs at t0
	args := `{"count":5}`
	env, err := s.SignResult(json.RawMessage(testResult), mustBinding(t, "tools/call", "ietf-srv6-ping", args, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	ev := signing.Evidence{Ref: "e1", Node: "P-2", Method: "tools/call", Target: "ietf-srv6-ping",
		Arguments: json.RawMessage(args), Result: json.RawMessage(testResult), Envelope: env}
	revokedAt := t0.Add(time.Hour)
	if err := d.trust.SetRevocations(revoke(t, d, 1, revokedAt, d.ids["P-2"])); err != nil {
		t.Fatal(err)
	}
	v := d.verifier()
	tests := []struct {
		name    string
		w       signing.Witness
		wantErr error
	}{
		{"no witness", signing.Witness{}, signing.ErrRevoked},
		{"witness is the signer", signing.Witness{Name: "P-2", At: t0}, signing.ErrRevoked},
		{"witnessed after the revocation", signing.Witness{Name: "PE-1", At: revokedAt.Add(time.Second)}, signing.ErrRevoked},
		{"witnessed before the revocation", signing.Witness{Name: "PE-1", At: t0.Add(time.Minute)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.VerifyEvidenceWitnessed([]signing.Evidence{ev}, tc.w)[0]
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	// Evidence dated after the revocation fails even with a witness.
	late := s.WithClock(func() time.Time { return revokedAt.Add(time.Minute) })
	env2, _ := late.SignResult(json.RawMessage(testResult), mustBinding(t, "tools/call", "ietf-srv6-ping", args, "s1"))
	ev.Envelope = env2
	if err := v.VerifyEvidenceWitnessed([]signing.Evidence{ev}, signing.Witness{Name: "PE-1", At: t0}); !errors.Is(err[0], signing.ErrRevoked) {
		t.Errorf("evidence after the revocation: %v", err[0])
	}
}

// FuzzParseRevocationList: whatever the parser accepts it accepts in one
// spelling (Raw is the input, byte for byte), parses again to the same
// list, and is consistent (invalid-since never after the revocation).
func FuzzParseRevocationList(f *testing.F) {
	d := newDomain(f, "PE-1", "P-2")
	for i, ids := range [][]*signing.Identity{nil, {d.ids["PE-1"]}, {d.ids["PE-1"], d.ids["P-2"]}} {
		var rs []signing.Revocation
		for _, id := range ids {
			rs = append(rs, signing.Revocation{Serial: id.Cert.SerialNumber, RevokedAt: t0, Since: t0.Add(-time.Hour), Reason: "superseded"})
		}
		l, err := d.ca.NewRevocationList(uint64(i), rs, t0, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(l.Raw)
		f.Add(l.PEM())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := signing.ParseRevocationList(in)
		if err != nil {
			if !errors.Is(err, signing.ErrRevocationList) {
				t.Fatalf("error %v does not wrap ErrRevocationList", err)
			}
			return
		}
		if len(l.Raw) > signing.MaxRevocationListBytes {
			t.Fatalf("accepted %d bytes", len(l.Raw))
		}
		again, err := signing.ParseRevocationList(l.Raw)
		if err != nil {
			t.Fatalf("re-parse of accepted list: %v", err)
		}
		if !bytes.Equal(again.Raw, l.Raw) || again.Number != l.Number || len(again.Revoked) != len(l.Revoked) {
			t.Fatal("re-parse differs")
		}
		for _, r := range l.Revoked {
			if r.Since.After(r.RevokedAt) || r.Serial.Sign() <= 0 {
				t.Fatalf("inconsistent entry %+v", r)
			}
			if got, ok := l.Lookup(r.Serial); !ok || got.Serial.Cmp(r.Serial) != 0 {
				t.Fatalf("entry %x not found by serial", r.Serial)
			}
		}
		// Installing checks the signature; a fresh trust each time.
		tr := signing.NewTrust(d.ca.Cert)
		if err := tr.SetRevocations(l); err == nil && tr.Revocations() != l {
			t.Fatal("installed list is not the one given")
		} else if err != nil && !errors.Is(err, signing.ErrRevocationList) {
			t.Fatalf("install error %v does not wrap ErrRevocationList", err)
		}
	})
}

// FuzzParseRequest: an accepted request names a valid node in CN and its
// only SAN, carries an Ed25519 key and a valid self-signature.
func FuzzParseRequest(f *testing.F) {
	key, _ := signing.GenerateKey()
	good, _ := key.CertificateRequest("PE-1")
	f.Add(good)
	f.Add(good[:40])
	f.Fuzz(func(t *testing.T, in []byte) {
		csr, name, err := signing.ParseRequest(in)
		if err != nil {
			return
		}
		if name == "" || csr.Subject.CommonName != name || len(csr.DNSNames) != 1 || csr.DNSNames[0] != name {
			t.Fatalf("accepted request names %q / %v", csr.Subject.CommonName, csr.DNSNames)
		}
		if csr.CheckSignature() != nil {
			t.Fatal("accepted a request whose signature fails")
		}
	})
}

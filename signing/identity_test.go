package signing_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

func TestIssueAndSaveLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := signing.NewCA("lab CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	ca2, err := signing.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca2.Cert.Equal(ca.Cert) {
		t.Fatal("loaded CA differs")
	}
	id, err := ca2.Issue("PE-1", signing.IssueOptions{Role: "controller", Validity: 2 * time.Hour, Addresses: []netip.Addr{netip.MustParseAddr("2001:db8::1")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "PE-1.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	id2, err := signing.LoadIdentity(filepath.Join(dir, "PE-1.crt"), filepath.Join(dir, "PE-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		Name, Role string
		DNS        []string
		IPs        int
		Validity   time.Duration
		Thumb      signing.Thumbprint
	}{id2.Name, id2.Role, id2.Cert.DNSNames, len(id2.Cert.IPAddresses), id2.Cert.NotAfter.Sub(id2.Cert.NotBefore), id2.Thumbprint()}
	want := got
	want.Name, want.Role, want.DNS, want.IPs, want.Validity, want.Thumb = "PE-1", "controller", []string{"PE-1"}, 1, 2*time.Hour, signing.ThumbprintOf(id.CertDER)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("loaded identity (-want +got):\n%s", d)
	}
	msg := []byte("hello")
	if !signing.VerifyZIP215(id2.PublicKey(), msg, id2.Sign(msg)) {
		t.Error("loaded key does not sign for its certificate")
	}
	peer, err := signing.NewTrust(ca.Cert).VerifyCert(id2.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Name != "PE-1" || peer.Role != "controller" || peer.Thumbprint != id.Thumbprint() {
		t.Errorf("peer = %+v", peer)
	}
	tr, err := signing.LoadTrust(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.VerifyCert(id.CertDER); err != nil {
		t.Error(err)
	}
	tc := id.TLSCertificate()
	if len(tc.Certificate) != 1 || tc.PrivateKey == nil {
		t.Error("TLS certificate incomplete")
	}
}

func TestIssueRejects(t *testing.T) {
	ca, err := signing.NewCA("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, node string
		opt        signing.IssueOptions
	}{
		{"empty-name", "", signing.IssueOptions{}},
		{"slash", "../x", signing.IssueOptions{}},
		{"space", "a b", signing.IssueOptions{}},
		{"role", "PE-1", signing.IssueOptions{Role: "admin"}},
		{"negative", "PE-1", signing.IssueOptions{Validity: -time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.Issue(tc.node, tc.opt); !errors.Is(err, signing.ErrIdentity) {
				t.Errorf("Issue = %v, want ErrIdentity", err)
			}
		})
	}
}

func TestPrivateKeyNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	d := newDomain(t, "PE-1")
	id := d.ids["PE-1"]
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := d.ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, f := range []string{"PE-1.key", "ca.key"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		secrets[f] = string(b)
	}
	tls := id.TLSCertificate()
	_ = tls
	var out strings.Builder
	for _, v := range []any{id, *id, d.ca, *d.ca, struct{ I *signing.Identity }{id}, []*signing.Identity{id}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	s := out.String()
	// The seed is the first 32 bytes of the private key; look for it in
	// every form fmt could produce.
	seed := privSeed(t, id)
	for _, form := range []string{fmt.Sprintf("%x", seed), fmt.Sprint(seed), fmt.Sprintf("%q", seed)} {
		if strings.Contains(s, form) {
			t.Fatalf("private key material printed:\n%s", s)
		}
	}
	for f, pemText := range secrets {
		body := strings.Split(pemText, "\n")[1]
		if strings.Contains(s, body) {
			t.Fatalf("%s contents printed", f)
		}
	}
	if !strings.Contains(s, "PE-1") {
		t.Errorf("identity not described: %s", s)
	}
}

func TestVerifyCertFailures(t *testing.T) {
	d := newDomain(t, "PE-1")
	foreign := newDomain(t, "PE-1")
	expired, err := d.ca.Issue("old", signing.IssueOptions{NotBefore: t0.Add(-48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	future, err := d.ca.Issue("new", signing.IssueOptions{NotBefore: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		der  []byte
		want error
	}{
		{"ok", d.ids["PE-1"].CertDER, nil},
		{"foreign-ca", foreign.ids["PE-1"].CertDER, signing.ErrUnknownAuthority},
		{"expired", expired.CertDER, signing.ErrCertExpired},
		{"not-yet-valid", future.CertDER, signing.ErrCertNotYetValid},
		{"garbage", []byte{0x30, 0x03, 1, 2, 3}, signing.ErrMalformed},
		{"ca-itself", d.ca.Cert.Raw, signing.ErrMalformed}, // no DNS SAN
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.trust.VerifyCert(tc.der)
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyCert = %v, want %v", err, tc.want)
			}
			var ve *signing.VerifyError
			if tc.want != nil && !errors.As(err, &ve) {
				t.Errorf("error %T is not a *VerifyError", err)
			}
		})
	}
}

func privSeed(t *testing.T, id *signing.Identity) []byte {
	t.Helper()
	return signing.PrivSeedForTest(id)
}

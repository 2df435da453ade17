package signing_test

import (
	"errors"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

func tokenDomain(t testing.TB) (*domain, *signing.Identity) {
	t.Helper()
	d := newDomain(t, "PE-1", "P-2")
	ctl, err := d.ca.Issue("ctl", signing.IssueOptions{Role: signing.RoleController, NotBefore: t0.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return d, ctl
}

func TestTokenVerify(t *testing.T) {
	d, ctl := tokenDomain(t)
	holder := d.ids["PE-1"].Thumbprint()
	tok, err := signing.IssueToken(ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: holder,
		Scopes: []string{"acl-list", "resource:urn:x/report/", "acl-list"}, NotBefore: t0, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"acl-list", "resource:urn:x/report/"}, tok.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	forged := *tok
	forged.Scopes = []string{"acl-rule-set"}
	other := d.ids["P-2"]
	devTok := *tok
	devTok.Cert, devTok.KeyID = other.CertDER, other.Thumbprint()
	tests := []struct {
		name   string
		tok    *signing.Token
		holder signing.Thumbprint
		at     time.Time
		want   error
	}{
		{"valid", tok, holder, t0.Add(time.Minute), nil},
		{"expired", tok, holder, t0.Add(11 * time.Minute), signing.ErrTokenExpired},
		{"not yet valid", tok, holder, t0.Add(-time.Hour), signing.ErrTokenNotYetValid},
		{"another channel", tok, other.Thumbprint(), t0.Add(time.Minute), signing.ErrTokenChannel},
		{"scopes changed", &forged, holder, t0.Add(time.Minute), signing.ErrTokenSignature},
		{"issued by a device", &devTok, holder, t0.Add(time.Minute), signing.ErrTokenIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.trust.VerifyToken(tt.tok, tt.holder, tt.at)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyToken = %v, want %v", err, tt.want)
			}
			var te *signing.TokenError
			if err != nil && !errors.As(err, &te) {
				t.Errorf("error %T is not a *TokenError", err)
			}
		})
	}
	if !tok.Allows("acl-list") || tok.Allows("ping") || !tok.AllowsResource("urn:x/report/r1") || tok.AllowsResource("urn:y") {
		t.Error("scope checks wrong")
	}
}

func TestIssueTokenRefuses(t *testing.T) {
	d, ctl := tokenDomain(t)
	holder := d.ids["PE-1"].Thumbprint()
	tests := []struct {
		name   string
		issuer *signing.Identity
		req    signing.TokenRequest
		want   error
	}{
		{"device issuer", d.ids["P-2"], signing.TokenRequest{Subject: "PE-1", Thumbprint: holder, Scopes: []string{"ping"}}, signing.ErrTokenIssuer},
		{"no scopes", ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: holder}, signing.ErrTokenMalformed},
		{"wildcard", ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: holder, Scopes: []string{"*"}}, signing.ErrTokenMalformed},
		{"too long", ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: holder, Scopes: []string{"ping"}, TTL: 48 * time.Hour}, signing.ErrTokenMalformed},
		{"no thumbprint", ctl, signing.TokenRequest{Subject: "PE-1", Scopes: []string{"ping"}}, signing.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := signing.IssueToken(tt.issuer, tt.req); !errors.Is(err, tt.want) {
				t.Fatalf("IssueToken = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTokenRoundTrip(t *testing.T) {
	d, ctl := tokenDomain(t)
	tok, err := signing.IssueToken(ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: d.ids["PE-1"].Thumbprint(), Scopes: []string{"ping"}, NotBefore: t0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := signing.ParseToken(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tok, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := d.trust.VerifyToken(got, d.ids["PE-1"].Thumbprint(), t0); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		if _, err := signing.ParseToken(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", i)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	d, ctl := tokenDomain(f)
	tok, err := signing.IssueToken(ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: d.ids["PE-1"].Thumbprint(), Scopes: []string{"ping", "resource:mcp://x/"}, NotBefore: t0})
	if err != nil {
		f.Fatal(err)
	}
	b, _ := tok.Marshal()
	f.Add(b)
	f.Add([]byte(`{"issuer":"a","subject":"b","scopes":["x"],"signature":""}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		tok, err := signing.ParseToken(in)
		if err != nil {
			return
		}
		out, err := tok.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := signing.ParseToken(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(tok, again); diff != "" {
			t.Fatalf("parse → marshal → parse differs:\n%s", diff)
		}
		_ = d.trust.VerifyToken(tok, d.ids["PE-1"].Thumbprint(), t0)
	})
}

func BenchmarkVerifyToken(b *testing.B) {
	d, ctl := tokenDomain(b)
	holder := d.ids["PE-1"].Thumbprint()
	tok, err := signing.IssueToken(ctl, signing.TokenRequest{Subject: "PE-1", Thumbprint: holder, Scopes: []string{"ping"}, NotBefore: t0})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.trust.VerifyToken(tok, holder, t0); err != nil {
			b.Fatal(err)
		}
	}
}

package signing

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Capability tokens (draft-zm-rtgwg-mcp-troubleshooting-01 §7.2, "least
// privilege"): a controller lets one node use, for a few minutes, a few
// capabilities the callee's static policy does not grant it. A token is
//
//	{
//	  "issuer":     "ctl",                  controller's node name
//	  "subject":    "PE-1",                 holder's node name
//	  "thumbprint": "<64 hex>",             holder's certificate: the mTLS channel
//	  "scopes":     ["acl-list", "resource:urn:…/report/"],
//	  "notBefore":  "2026-…Z",
//	  "notAfter":   "2026-…Z",
//	  "keyId":      "<64 hex>",             issuer's certificate thumbprint
//	  "cert":       "<base64 DER>",          issuer's certificate (not signed; keyId binds it)
//	  "signature":  "<base64, 64 bytes>"
//	}
//
// The signature is ed25519 over the RFC 8785 canonical JSON of every member
// except "cert" and "signature". Binding the token to the holder's
// certificate thumbprint means a stolen token is useless on any other TLS
// channel: the callee compares it with the certificate the peer presented
// in the handshake.

// Token scope forms.
const (
	// ScopeResourcePrefix starts a scope that allows resources/read (and
	// list) of every URI beginning with the rest of the scope.
	ScopeResourcePrefix = "resource:"
	// ScopePrivacy3 lets the holder see privacy level 3 (customer) data
	// unredacted (draft 003 §7.5).
	ScopePrivacy3 = "privacy:3"
)

// Token lifetime bounds.
const (
	// DefaultTokenTTL: long enough for one troubleshooting run with its
	// retries, short enough that a leaked token soon stops mattering.
	DefaultTokenTTL = 10 * time.Minute
	// MaxTokenTTL bounds what IssueToken and VerifyToken accept: a token
	// that lives longer than a device certificate would be a second,
	// weaker credential.
	MaxTokenTTL = 24 * time.Hour
	// maxTokenBytes bounds a token's encoding; a real one is under 1 KiB
	// plus the issuer certificate.
	maxTokenBytes = 16 << 10
	// tokenSkew absorbs clock differences between issuer and verifier.
	tokenSkew = 30 * time.Second
)

// Token errors, reachable with errors.Is through *TokenError.
var (
	ErrTokenMalformed   = errors.New("signing: malformed token")
	ErrTokenExpired     = errors.New("signing: token expired")
	ErrTokenNotYetValid = errors.New("signing: token not yet valid")
	ErrTokenChannel     = errors.New("signing: token presented on another channel")
	ErrTokenIssuer      = errors.New("signing: token issuer is not a domain controller")
	ErrTokenSignature   = errors.New("signing: token signature does not verify")
	ErrTokenScope       = errors.New("signing: capability outside the token's scopes")
)

// TokenError is the error token verification returns.
type TokenError struct {
	Subject string
	Reason  error
	Detail  string
}

func (e *TokenError) Error() string {
	s := e.Reason.Error()
	if e.Subject != "" {
		s += fmt.Sprintf(" (subject %q)", e.Subject)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the reason.
func (e *TokenError) Unwrap() error { return e.Reason }

func tokErr(sub string, reason error, format string, args ...any) *TokenError {
	return &TokenError{Subject: sub, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Token is a capability token.
type Token struct {
	Issuer     string     `json:"issuer"`
	Subject    string     `json:"subject"`
	Thumbprint Thumbprint `json:"thumbprint"`
	Scopes     []string   `json:"scopes"`
	NotBefore  time.Time  `json:"notBefore"`
	NotAfter   time.Time  `json:"notAfter"`
	KeyID      Thumbprint `json:"keyId"`
	Cert       []byte     `json:"cert,omitempty"`
	Signature  []byte     `json:"signature"`
}

// TokenRequest is what IssueToken needs besides the issuer.
type TokenRequest struct {
	// Subject is the holder's node name.
	Subject string
	// Thumbprint is the holder's certificate thumbprint.
	Thumbprint Thumbprint
	// Scopes are capability names, "resource:<uri-prefix>" or "privacy:3".
	Scopes []string
	// TTL is the lifetime. If zero, DefaultTokenTTL; at most MaxTokenTTL.
	TTL time.Duration
	// NotBefore is the start of validity. If zero, now.
	NotBefore time.Time
}

// IssueToken signs a token as issuer, which must hold a certificate of role
// "controller".
func IssueToken(issuer *Identity, req TokenRequest) (*Token, error) {
	if issuer == nil {
		return nil, fmt.Errorf("%w: no issuer", ErrTokenIssuer)
	}
	if issuer.Role != RoleController {
		return nil, tokErr(req.Subject, ErrTokenIssuer, "%s has role %q", issuer.Name, issuer.Role)
	}
	if err := validName(req.Subject); err != nil {
		return nil, tokErr(req.Subject, ErrTokenMalformed, "subject: %v", err)
	}
	if req.Thumbprint.IsZero() {
		return nil, tokErr(req.Subject, ErrTokenMalformed, "no holder thumbprint")
	}
	if len(req.Scopes) == 0 {
		return nil, tokErr(req.Subject, ErrTokenMalformed, "no scopes")
	}
	for _, s := range req.Scopes {
		if err := validScope(s); err != nil {
			return nil, tokErr(req.Subject, ErrTokenMalformed, "%v", err)
		}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return nil, tokErr(req.Subject, ErrTokenMalformed, "lifetime %s outside (0, %s]", ttl, MaxTokenTTL)
	}
	nb := req.NotBefore
	if nb.IsZero() {
		nb = time.Now()
	}
	nb = nb.UTC().Truncate(time.Second)
	t := &Token{
		Issuer: issuer.Name, Subject: req.Subject, Thumbprint: req.Thumbprint,
		Scopes:    slices.Compact(slices.Sorted(slices.Values(req.Scopes))),
		NotBefore: nb, NotAfter: nb.Add(ttl), KeyID: issuer.Thumbprint(), Cert: issuer.CertDER,
	}
	msg, err := t.SignedBytes()
	if err != nil {
		return nil, err
	}
	t.Signature = issuer.Sign(msg)
	return t, nil
}

func validScope(s string) error {
	switch {
	case s == "", strings.TrimSpace(s) != s:
		return fmt.Errorf("bad scope %q", s)
	case s == "*":
		// A wildcard token would be a second root of trust; scopes name
		// what they allow.
		return errors.New(`scope "*" is not allowed in a token`)
	case strings.HasPrefix(s, ScopeResourcePrefix) && len(s) == len(ScopeResourcePrefix):
		return fmt.Errorf("scope %q names no URI prefix", s)
	}
	return nil
}

// SignedBytes returns the bytes the signature covers: the canonical JSON of
// the token without cert and signature.
func (t *Token) SignedBytes() ([]byte, error) {
	b, err := json.Marshal(struct {
		Issuer     string     `json:"issuer"`
		Subject    string     `json:"subject"`
		Thumbprint Thumbprint `json:"thumbprint"`
		Scopes     []string   `json:"scopes"`
		NotBefore  string     `json:"notBefore"`
		NotAfter   string     `json:"notAfter"`
		KeyID      Thumbprint `json:"keyId"`
	}{t.Issuer, t.Subject, t.Thumbprint, t.Scopes,
		t.NotBefore.UTC().Format(time.RFC3339Nano), t.NotAfter.UTC().Format(time.RFC3339Nano), t.KeyID})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	return Canonicalize(b)
}

// Marshal returns the token's JSON encoding.
func (t *Token) Marshal() ([]byte, error) { return json.Marshal(t) }

// ParseToken decodes a token's JSON encoding. It checks the shape only;
// VerifyToken checks the rest.
func ParseToken(b []byte) (*Token, error) {
	if len(b) > maxTokenBytes {
		return nil, fmt.Errorf("%w: %d bytes over the %d byte limit", ErrTokenMalformed, len(b), maxTokenBytes)
	}
	var t Token
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrTokenMalformed)
	}
	switch {
	case t.Issuer == "" || t.Subject == "":
		return nil, fmt.Errorf("%w: issuer and subject are required", ErrTokenMalformed)
	case len(t.Scopes) == 0:
		return nil, fmt.Errorf("%w: no scopes", ErrTokenMalformed)
	case len(t.Signature) != ed25519.SignatureSize:
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrTokenMalformed, len(t.Signature))
	case t.NotBefore.IsZero() || t.NotAfter.IsZero():
		return nil, fmt.Errorf("%w: validity window missing", ErrTokenMalformed)
	}
	for _, s := range t.Scopes {
		if err := validScope(s); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
		}
	}
	return &t, nil
}

// VerifyToken checks a token for use at now by the holder of the
// certificate with thumbprint holder: the issuer's certificate chains to
// the domain CA and has role "controller", names the issuer and matches
// keyId; the signature verifies; now lies within the validity window
// (with 30 s of skew); the window is at most MaxTokenTTL; and holder is the
// thumbprint the token was issued for. Failures are *TokenError.
func (t *Trust) VerifyToken(tok *Token, holder Thumbprint, now time.Time) error {
	if tok == nil {
		return tokErr("", ErrTokenMalformed, "no token")
	}
	sub := tok.Subject
	if len(tok.Signature) != ed25519.SignatureSize {
		return tokErr(sub, ErrTokenMalformed, "signature of %d bytes", len(tok.Signature))
	}
	if len(tok.Cert) == 0 {
		return tokErr(sub, ErrTokenIssuer, "no issuer certificate")
	}
	if !ThumbprintOf(tok.Cert).Equal(tok.KeyID) {
		return tokErr(sub, ErrTokenIssuer, "issuer certificate does not match keyId")
	}
	// The issuer's certificate must be valid when the token is used, not
	// just when it was issued: revoking a controller is letting its
	// short-lived certificate expire.
	p, err := t.verifyCertAt(tok.Cert, now)
	if err != nil {
		return tokErr(sub, ErrTokenIssuer, "%v", err)
	}
	if p.Role != RoleController {
		return tokErr(sub, ErrTokenIssuer, "%s has role %q", p.Name, p.Role)
	}
	if p.Name != tok.Issuer {
		return tokErr(sub, ErrTokenIssuer, "certificate names %q, token says %q", p.Name, tok.Issuer)
	}
	msg, err := tok.SignedBytes()
	if err != nil {
		return tokErr(sub, ErrTokenMalformed, "%v", err)
	}
	if !VerifyZIP215(p.PublicKey, msg, tok.Signature) {
		return tokErr(sub, ErrTokenSignature, "issuer %s", tok.Issuer)
	}
	if tok.NotAfter.Sub(tok.NotBefore) > MaxTokenTTL || !tok.NotAfter.After(tok.NotBefore) {
		return tokErr(sub, ErrTokenMalformed, "validity window %s–%s", tok.NotBefore.Format(time.RFC3339), tok.NotAfter.Format(time.RFC3339))
	}
	if now.Add(tokenSkew).Before(tok.NotBefore) {
		return tokErr(sub, ErrTokenNotYetValid, "valid from %s", tok.NotBefore.Format(time.RFC3339))
	}
	if !now.Add(-tokenSkew).Before(tok.NotAfter) {
		return tokErr(sub, ErrTokenExpired, "expired at %s", tok.NotAfter.Format(time.RFC3339))
	}
	if !tok.Thumbprint.Equal(holder) {
		return tokErr(sub, ErrTokenChannel, "issued for certificate %.16s…, presented by %.16s…", tok.Thumbprint, holder)
	}
	return nil
}

// Allows reports whether the token's scopes name capability exactly.
func (t *Token) Allows(capability string) bool { return slices.Contains(t.Scopes, capability) }

// AllowsResource reports whether a "resource:<prefix>" scope covers uri.
func (t *Token) AllowsResource(uri string) bool {
	for _, s := range t.Scopes {
		if p, ok := strings.CutPrefix(s, ScopeResourcePrefix); ok && strings.HasPrefix(uri, p) {
			return true
		}
	}
	return false
}

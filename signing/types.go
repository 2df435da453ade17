package signing

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Thumbprint is the SHA-256 of a DER certificate. It is the key id of a
// signature envelope and what discovery advertises (docs/ARCHITECTURE.md §3.1).
type Thumbprint [32]byte

// ThumbprintOf returns the thumbprint of a DER-encoded certificate.
func ThumbprintOf(der []byte) Thumbprint { return sha256.Sum256(der) }

// String returns the lower-case hex form.
func (t Thumbprint) String() string { return hex.EncodeToString(t[:]) }

// IsZero reports whether t is unset.
func (t Thumbprint) IsZero() bool { return t == Thumbprint{} }

// Equal compares in constant time.
func (t Thumbprint) Equal(u Thumbprint) bool { return subtle.ConstantTimeCompare(t[:], u[:]) == 1 }

// MarshalText encodes t as hex.
func (t Thumbprint) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (t *Thumbprint) UnmarshalText(b []byte) error {
	if len(b) != 2*len(t) {
		return fmt.Errorf("signing: thumbprint must be %d hex digits, got %d", 2*len(t), len(b))
	}
	_, err := hex.Decode(t[:], b)
	if err != nil {
		return fmt.Errorf("signing: thumbprint: %w", err)
	}
	return nil
}

// AlgEd25519 is the only signature algorithm d2d uses.
const AlgEd25519 = "ed25519"

// Binding ties a signed result to the request that produced it
// (docs/ARCHITECTURE.md §3.3).
type Binding struct {
	// Method is the MCP method: "tools/call" or "resources/read".
	Method string `json:"method"`
	// Target is the tool name or the resource URI.
	Target string `json:"target"`
	// ArgsHash is the SHA-256 of the RFC 8785 canonical arguments
	// (of "{}" when there are none).
	ArgsHash [32]byte `json:"-"`
	// SessionID identifies the MCP session the request travelled on.
	SessionID string `json:"sessionId"`
}

// Envelope is the signature carried in a result's _meta["d2d/signature"].
type Envelope struct {
	Signer    string     `json:"signer"`
	KeyID     Thumbprint `json:"keyId"`
	Alg       string     `json:"alg"`
	Nonce     uint64     `json:"nonce"`
	SessionID string     `json:"sessionId"`
	Timestamp time.Time  `json:"timestamp"`
	Signature []byte     `json:"signature"`
	// Cert is the signer's DER certificate so that a verifier holding only
	// the CA can check the signature offline. It is not signed itself:
	// KeyID binds it.
	Cert []byte `json:"cert,omitempty"`
}

// Evidence is one signed remote (or locally signed) result, in the form
// the report stores verbatim (docs/ARCHITECTURE.md §3.4).
type Evidence struct {
	// Ref is a short reference unique within a report, e.g. "e1".
	Ref       string          `json:"ref"`
	Node      string          `json:"node"`
	Method    string          `json:"method"`
	Target    string          `json:"target"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Result    json.RawMessage `json:"result"`
	Envelope  Envelope        `json:"signature"`
	// Via records the path the evidence took: "local", "d2d" or
	// "controller" (draft 003 §5.3.1 failure handling).
	Via string `json:"via,omitempty"`
}

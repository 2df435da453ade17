package signing

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Signer signs results as one identity, drawing nonces from a crash-safe
// source. It is safe for concurrent use.
type Signer struct {
	id     *Identity
	nonces *NonceSource
	now    func() time.Time
}

// NewSigner returns a signer for id using nonces.
func NewSigner(id *Identity, nonces *NonceSource) *Signer {
	return &Signer{id: id, nonces: nonces, now: time.Now}
}

// WithClock returns a copy of s that timestamps with now().
func (s *Signer) WithClock(now func() time.Time) *Signer {
	c := *s
	c.now = now
	return &c
}

// Identity returns the signing identity: the current one of a renewed
// identity (Identity.Current).
func (s *Signer) Identity() *Identity { return s.id.Current() }

// SignResult signs result as the answer to the request b and returns the
// complete envelope, including the signer's certificate.
func (s *Signer) SignResult(result json.RawMessage, b Binding) (Envelope, error) {
	if s.nonces == nil {
		return Envelope{}, errors.New("signing: signer has no nonce source")
	}
	nonce, err := s.nonces.Next()
	if err != nil {
		return Envelope{}, err
	}
	ts := s.now().UTC()
	id := s.id.Current()
	msg, err := SignedBytes(result, b, id.Name, nonce, ts)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{
		Signer:    id.Name,
		KeyID:     id.Thumbprint(),
		Alg:       AlgEd25519,
		Nonce:     nonce,
		SessionID: b.SessionID,
		Timestamp: ts,
		Signature: id.Sign(msg),
		Cert:      id.CertDER,
	}, nil
}

// SignedBytes returns the bytes an envelope's signature covers
// (docs/ARCHITECTURE.md §3.3): the RFC 8785 canonical JSON of
//
//	{"argsHash":  hex SHA-256 of the canonical arguments,
//	 "method":    "tools/call" | "resources/read",
//	 "nonce":     signer's nonce (a JSON number, < 2^53),
//	 "result":    the result, canonicalized,
//	 "sessionId": MCP session id,
//	 "signer":    node name,
//	 "target":    tool name or resource URI,
//	 "timestamp": RFC 3339 with nanoseconds, UTC}
//
// The member names are ASCII, so the order above is the RFC 8785 order and
// the object is written directly around the canonical result.
func SignedBytes(result json.RawMessage, b Binding, signer string, nonce uint64, ts time.Time) ([]byte, error) {
	if nonce > maxNonce {
		return nil, fmt.Errorf("signing: nonce %d exceeds 2^53-1", nonce)
	}
	for _, f := range [...]struct{ name, v string }{{"method", b.Method}, {"target", b.Target}, {"sessionId", b.SessionID}, {"signer", signer}} {
		if !utf8.ValidString(f.v) {
			return nil, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidJSON, f.name)
		}
	}
	res, err := Canonicalize(result)
	if err != nil {
		return nil, fmt.Errorf("signing: result: %w", err)
	}
	out := make([]byte, 0, len(res)+len(b.Target)+len(b.SessionID)+len(signer)+256)
	out = append(out, `{"argsHash":"`...)
	out = hex.AppendEncode(out, b.ArgsHash[:])
	out = append(out, `","method":`...)
	out = appendJCSString(out, b.Method)
	out = append(out, `,"nonce":`...)
	out = strconv.AppendUint(out, nonce, 10)
	out = append(out, `,"result":`...)
	out = append(out, res...)
	out = append(out, `,"sessionId":`...)
	out = appendJCSString(out, b.SessionID)
	out = append(out, `,"signer":`...)
	out = appendJCSString(out, signer)
	out = append(out, `,"target":`...)
	out = appendJCSString(out, b.Target)
	out = append(out, `,"timestamp":`...)
	out = appendJCSString(out, ts.UTC().Format(time.RFC3339Nano))
	return append(out, '}'), nil
}

// NewBinding builds the binding of a request from its parts, hashing the
// arguments canonically.
func NewBinding(method, target string, args json.RawMessage, sessionID string) (Binding, error) {
	h, err := HashArgs(args)
	if err != nil {
		return Binding{}, err
	}
	return Binding{Method: method, Target: target, ArgsHash: h, SessionID: sessionID}, nil
}

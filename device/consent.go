package device

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrConsent is wrapped by every consent failure.
var ErrConsent = errors.New("device: consent refused")

// Consent is an operator's approval of one mutating tool call
// (draft-zm-rtgwg-mcp-troubleshooting-01 §7.1): the tool and its parameter
// values, the rollback timer (the estimated impact window), the operator's
// identity and role, and a signed timestamp. It travels verbatim, as JSON,
// in ToolRequest.Consent.
type Consent struct {
	Tool            string          `json:"tool"`
	Arguments       json.RawMessage `json:"arguments"`
	Node            string          `json:"node"`
	RollbackSeconds int             `json:"rollbackSeconds"`
	Operator        string          `json:"operator"`
	Role            string          `json:"role,omitempty"`
	Timestamp       time.Time       `json:"timestamp"`
	KeyID           string          `json:"keyId,omitempty"`
	Signature       []byte          `json:"signature,omitempty"`
	// Cert is the signer's DER certificate, so the device can check the
	// signature against the domain CA without having met the signer. It
	// is outside the signed payload: KeyID (its thumbprint) binds it.
	Cert []byte `json:"cert,omitempty"`
}

// Payload returns the bytes a consent signature covers: the consent
// without its signature, as JSON with the fields in declaration order and
// the arguments re-encoded with sorted object keys and no insignificant
// white space, so that signer and verifier agree whatever the formatting
// of the arguments.
func (c Consent) Payload() ([]byte, error) {
	args, err := canonicalJSON(c.Arguments)
	if err != nil {
		return nil, fmt.Errorf("device: consent arguments: %w", err)
	}
	c.Arguments = args
	c.Signature = nil
	c.Cert = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("device: consent: %w", err)
	}
	return b, nil
}

// canonicalJSON re-encodes v with sorted keys; null or empty input
// becomes {}.
func canonicalJSON(v json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(v)) == 0 || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return json.RawMessage("{}"), nil
	}
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return nil, err
	}
	b, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	return b, nil
}

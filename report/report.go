package report

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

// URIPrefix is the MCP resource URI of a report without its id
// (draft 003 §5.3.1 step 5).
const URIPrefix = "urn:ietf:params:xml:ns:yang:ietf-mcp/report/"

// MaxReportSize bounds an encoded report: 8 MiB holds hundreds of evidence
// items with interface tables, and keeps a hostile file from exhausting a
// device's memory.
const MaxReportSize = 8 << 20

// Action outcomes.
const (
	OutcomeApplied    = "applied"     // change made, rollback timer running
	OutcomeConfirmed  = "confirmed"   // operator confirmed; the change stays
	OutcomeRolledBack = "rolled-back" // undone, by timer or operator
	OutcomeRefused    = "refused"     // consent refused or invalid; nothing changed
	OutcomeFailed     = "failed"      // the device could not apply it
)

// Errors. Decoding errors wrap one of the first four; verification errors
// are *VerifyError wrapping one of the rest or a signing error.
var (
	ErrTooLarge     = errors.New("report: larger than 8 MiB")
	ErrTrailingData = errors.New("report: trailing data after the report")
	ErrMalformed    = errors.New("report: malformed")
	ErrNotNormal    = errors.New("report: encoding differs from its decoded content")

	ErrNoSignature    = errors.New("report: no signature")
	ErrBadSignature   = errors.New("report: bad signature")
	ErrSignerMismatch = errors.New("report: signer does not match")
	ErrNoSuchEvidence = errors.New("no such evidence")
	ErrDuplicateRef   = errors.New("duplicate evidence ref")
	ErrInvalid        = errors.New("report: invalid")
)

// Report is a signed fault report (docs/ARCHITECTURE.md §3.4).
type Report struct {
	URI          string             `json:"uri"`
	ID           string             `json:"id"`
	Creator      string             `json:"creator"`
	Created      time.Time          `json:"created"`
	Intent       string             `json:"intent"`
	Plan         []PlanStep         `json:"plan,omitempty"`
	Hypothesis   Hypothesis         `json:"hypothesis"`
	Alternatives []Hypothesis       `json:"alternatives,omitempty"`
	Evidence     []signing.Evidence `json:"evidence"`
	Untrusted    []Untrusted        `json:"untrusted,omitempty"`
	Actions      []Action           `json:"actions,omitempty"`
	// Certificates holds DER certificates by node name for evidence
	// envelopes that carry none.
	Certificates map[string][]byte `json:"certificates,omitempty"`
	// Signatures by node name; the creator's is mandatory.
	Signatures map[string]Signature `json:"signatures,omitempty"`
}

// PlanStep is one call the workflow planned.
type PlanStep struct {
	Node      string          `json:"node"`
	Method    string          `json:"method"` // "tools/call" or "resources/read"
	Target    string          `json:"target"` // tool name or resource URI
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Evidence is the ref of the evidence the step produced, if any.
	Evidence string `json:"evidence,omitempty"`
	// Status is "done", "failed" or "skipped"; empty means done.
	Status string `json:"status,omitempty"`
}

// Hypothesis is a structured fault hypothesis. Only Summary may come from a
// language model; the rest comes from correlation rules.
type Hypothesis struct {
	Summary string `json:"summary"`
	// Location is a node ("PE-1") or a directed link ("PE-1->P-2").
	Location string `json:"location,omitempty"`
	// Suspect is the object at Location, e.g. "egress ACL 2001".
	Suspect string `json:"suspect,omitempty"`
	// Confidence is in [0, 1].
	Confidence   float64  `json:"confidence"`
	EvidenceRefs []string `json:"evidenceRefs,omitempty"`
	// Rule names the correlation rule that produced the hypothesis.
	Rule string `json:"rule,omitempty"`
}

// Untrusted is a node whose results were not used, and why.
type Untrusted struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Action is a consented change and its outcome (draft 003 §7.1).
type Action struct {
	Tool      string          `json:"tool"`
	Node      string          `json:"node"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Consent is the signed consent object verbatim.
	Consent json.RawMessage `json:"consent,omitempty"`
	Outcome string          `json:"outcome"`
	At      time.Time       `json:"at"`
	Detail  string          `json:"detail,omitempty"`
}

// Signature is one node's signature over the report.
type Signature struct {
	KeyID signing.Thumbprint `json:"keyId"`
	Alg   string             `json:"alg"`
	Value []byte             `json:"value"`
	// Cert is the signer's DER certificate.
	Cert []byte `json:"cert,omitempty"`
}

// NewID returns a random report id: 16 lower-case hex digits.
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("report: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id is 4 to 64 lower-case hex digits, the form
// ids take (and what makes them safe as file names).
func ValidID(id string) bool {
	if len(id) < 4 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Decode parses one report strictly (see the package documentation).
func Decode(b []byte) (*Report, error) {
	if len(b) > MaxReportSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, ErrTrailingData
	}
	if err := r.checkShape(); err != nil {
		return nil, err
	}
	in, err := signing.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out, err := r.canonical()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(in, out) {
		return nil, fmt.Errorf("%w: %s", ErrNotNormal, firstDifference(in, out))
	}
	return &r, nil
}

// checkShape checks what the JSON decoder cannot.
func (r *Report) checkShape() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case !ValidID(r.ID):
		return bad("id %q is not 4-64 lower-case hex digits", r.ID)
	case r.URI != URIPrefix+r.ID:
		return bad("uri %q does not match id %q", r.URI, r.ID)
	case r.Creator == "":
		return bad("no creator")
	case r.Created.IsZero():
		return bad("no created time")
	}
	return nil
}

// Encode returns the RFC 8785 canonical encoding of r, the form the store
// keeps and signatures cover.
func Encode(r *Report) ([]byte, error) { return r.canonical() }

func (r *Report) canonical() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("report: encode: %w", err)
	}
	c, err := signing.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("report: encode: %w", err)
	}
	return c, nil
}

// firstDifference names the first top-level member whose canonical form
// differs between two canonical encodings.
func firstDifference(a, b []byte) string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return "not an object"
	}
	keys := slices.Sorted(maps.Keys(ma))
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		va, oka := ma[k]
		vb, okb := mb[k]
		switch {
		case !okb:
			return fmt.Sprintf("member %q does not survive decoding", k)
		case !oka:
			return fmt.Sprintf("member %q missing (null or empty?)", k)
		case !bytes.Equal(va, vb):
			return fmt.Sprintf("member %q is not in normal form", k)
		}
	}
	return "unknown difference"
}

// EvidenceByRef returns the evidence item with the given ref.
func (r *Report) EvidenceByRef(ref string) (signing.Evidence, bool) {
	for _, ev := range r.Evidence {
		if ev.Ref == ref {
			return ev, true
		}
	}
	return signing.Evidence{}, false
}

// Nodes returns every node the report names, creator first, then in order
// of first appearance in the plan, the evidence, the untrusted list and the
// actions.
func (r *Report) Nodes() []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	add(r.Creator)
	for _, s := range r.Plan {
		add(s.Node)
	}
	for _, ev := range r.Evidence {
		add(ev.Node)
	}
	for _, u := range r.Untrusted {
		add(u.Node)
	}
	for _, a := range r.Actions {
		add(a.Node)
	}
	return out
}

// linkEnds splits a "A->B" (or "A→B") location into its ends.
func linkEnds(loc string) (from, to string, ok bool) {
	for _, sep := range []string{"->", "→"} {
		if a, b, found := strings.Cut(loc, sep); found {
			return strings.TrimSpace(a), strings.TrimSpace(b), true
		}
	}
	return "", "", false
}

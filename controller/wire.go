package controller

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/signing"
)

// Tools and capabilities of the controller's wire contract. Every
// capability is named like its tool, as the device tools are.
const (
	// CapReports is the capability guarding a node's report resources
	// (the node serves them; the controller reads them when it pulls).
	CapReports = "ietf-mcp-report"
	// ToolMarkPulled is served by every node: {id, sha256} marks the
	// stored report pulled if its canonical encoding still hashes to
	// sha256, so a version the controller has not read is never marked.
	ToolMarkPulled = "report-mark-pulled"
	// ToolPush is served by the controller: {report} hands it one signed
	// report (draft 003 §5.3.1 step 5, "pushed through the conventional
	// star channel").
	ToolPush = "report-push"
	// ToolPoll is served by the controller: a node that cannot reach a
	// peer asks the controller to run one call there and relay the
	// peer's signed result (draft 003 §5.3.1, Failure Handling).
	ToolPoll = "poll"
)

// DefaultPort is the UDP port of `d2d controller serve`: one above the
// agents' 9514, so a controller can share a host with an agent.
const DefaultPort = collab.DefaultPort + 1

// ViaController is the signing.Evidence.Via value of evidence that
// reached its user through the controller.
const ViaController = "controller"

// MarkPulledArgs are the arguments of ToolMarkPulled.
type MarkPulledArgs struct {
	ID string `json:"id"`
	// SHA256 is the hex SHA-256 of the report's canonical encoding as
	// the controller read and stored it.
	SHA256 string `json:"sha256"`
}

// MarkPulledResult is the structured result of ToolMarkPulled. Marked is
// false when the report changed since it was read (Stale) or is gone.
type MarkPulledResult struct {
	ID     string `json:"id"`
	Marked bool   `json:"marked"`
	Stale  bool   `json:"stale,omitempty"`
	By     string `json:"by,omitempty"`
}

// PushArgs are the arguments of ToolPush.
type PushArgs struct {
	Report json.RawMessage `json:"report"`
}

// PushResult is the structured result of ToolPush.
type PushResult struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome"` // an Outcome* constant
}

// PollArgs are the arguments of ToolPoll: one call the requesting node
// could not make itself.
type PollArgs struct {
	Node      string          `json:"node"`
	Method    string          `json:"method"` // tools/call or resources/read
	Target    string          `json:"target"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Capability to request from the node. If empty, the tool's
	// capability (collab.CapabilityFor).
	Capability string `json:"capability,omitempty"`
	// Addr is where the requester believed the node to be; the
	// controller dials it only when it has no address of its own.
	Addr string `json:"addr,omitempty"`
}

// PollResult is the structured result of ToolPoll: the node's signed
// result verbatim, bound to the controller's session with the node.
type PollResult struct {
	Evidence signing.Evidence `json:"evidence"`
}

// Errors of the package.
var (
	// ErrRefused: a report failed verification or is not acceptable;
	// *RefusedError says which element and why.
	ErrRefused = errors.New("controller: report refused")
	// ErrConflict: a report has the id of a stored one but another
	// creator or creation time.
	ErrConflict = errors.New("controller: conflicting report id")
	// ErrUnknownNode: a poll names a node the controller cannot reach.
	ErrUnknownNode = errors.New("controller: unknown node")
	// ErrRelay: relayed evidence failed the requesting node's checks.
	ErrRelay = errors.New("controller: relayed evidence rejected")
	// ErrMemberSpec: a member given on the command line or in a file is
	// malformed.
	ErrMemberSpec = errors.New("controller: bad member")
	// ErrNotController: the peer named as the controller authenticated
	// with a certificate of another role; nothing is pushed to it or
	// polled through it.
	ErrNotController = errors.New("controller: peer does not hold the controller role")
)

// RefusedError is a report the controller would not store.
type RefusedError struct {
	Node string // the node that served or pushed it
	ID   string
	Err  error // usually a *report.VerifyError naming the element
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("controller: report %s from %s refused: %v", e.ID, e.Node, e.Err)
}

// Unwrap returns ErrRefused and the reason.
func (e *RefusedError) Unwrap() []error { return []error{ErrRefused, e.Err} }

// ContentHash is the hex SHA-256 of a report's canonical encoding, the
// version key of stores and of ToolMarkPulled.
func ContentHash(canonical []byte) string {
	h := sha256.Sum256(canonical)
	return hex.EncodeToString(h[:])
}

// ParseMember parses "NAME@HOST:PORT" or "NAME@HOST:PORT=THUMBPRINT"
// (64 hex digits, as `d2d pki issue` prints). Without a thumbprint the
// domain CA and the name alone authenticate the node.
func ParseMember(s string) (collab.Member, error) {
	s = strings.TrimSpace(s)
	spec, tp, hasTP := strings.Cut(s, "=")
	name, addr, ok := strings.Cut(spec, "@")
	if !ok || name == "" {
		return collab.Member{}, fmt.Errorf("%w %q: want NAME@HOST:PORT[=THUMBPRINT]", ErrMemberSpec, s)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return collab.Member{}, fmt.Errorf("%w %q: %v", ErrMemberSpec, s, err)
	}
	p := collab.Peer{Name: name, Addr: ap}
	if hasTP {
		if err := p.Thumbprint.UnmarshalText([]byte(strings.ToLower(tp))); err != nil {
			return collab.Member{}, fmt.Errorf("%w %q: %v", ErrMemberSpec, s, err)
		}
	}
	return collab.Member{Name: name, Peer: p, Addresses: []string{ap.Addr().String()}}, nil
}

// ParseMembers parses a comma-separated list of ParseMember forms.
func ParseMembers(list string) ([]collab.Member, error) {
	var out []collab.Member
	for f := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		m, err := ParseMember(f)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ReadMembers reads one member per line; blank lines and lines starting
// with '#' are skipped.
func ReadMembers(r io.Reader) ([]collab.Member, error) {
	var out []collab.Member
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m, err := ParseMember(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("controller: members: %w", err)
	}
	return out, nil
}

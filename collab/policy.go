package collab

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/sourcegraph/jsonrpc2"
)

// Security policy of the callee (draft-zm-rtgwg-mcp-troubleshooting-01 §7):
//
//   - Capability tokens (§7.2). A caller may present a controller-issued
//     signing.Token in initialize capabilities.experimental["d2d"].token
//     (for the whole session) or in a request's _meta["d2d/token"] (for
//     that call). The token must verify against the domain CA, name the
//     caller's certificate name as subject and be bound to the
//     certificate the caller presented in this very TLS handshake. The
//     session grant is requested ∩ offered ∩ (Policy(peer) ∪ token
//     scopes); capabilities granted only through the token lapse when it
//     expires. A bad token refuses the request with mcp.CodeUnauthorized.
//   - Per-peer rate limits: a token bucket per peer certificate name,
//     shared by all its sessions (Config.RateLimit, Config.RateBurst);
//     excess requests fail with mcp.CodeRateLimited.
//   - Privacy (§7.5): results are redacted with device.RedactJSON unless
//     the grant holds device.CapPrivacy3, which only an explicit policy
//     entry or a token scope gives.
//   - Signed inventory: tools/list results are signed like tools/call
//     results (binding method "tools/list", empty target, arguments {}),
//     so that a caller can pin what a peer offers (Inventory).
//
// Every refused request produces an AuditRecord with its code.

// ErrUnauthorized: a capability token was refused (mcp.CodeUnauthorized).
var ErrUnauthorized = errors.New("collab: unauthorized")

// ErrRateLimited: the callee's per-peer rate limit refused a request
// (mcp.CodeRateLimited).
var ErrRateLimited = errors.New("collab: rate limited")

// rateLimiter is a token bucket per peer name.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory: peers are authenticated, so the
// set is the domain's size; idle full buckets are dropped beyond it.
const maxBuckets = 4096

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(2*rate))
	}
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from peer's bucket. A nil limiter allows all.
func (l *rateLimiter) allow(peer string) bool {
	if l == nil {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[peer]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[peer] = b
	}
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(l.burst, b.tokens+d*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *rateLimiter) prune(now time.Time) {
	for p, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, p)
		}
	}
}

// sessionToken is a verified token and what it added to a session grant.
type sessionToken struct {
	tok   *signing.Token
	added map[string]bool // capabilities granted only through the token
}

// parseAndVerifyToken checks a presented token for peer.
func (e *Endpoint) verifyToken(raw json.RawMessage, peer signing.Peer) (*signing.Token, error) {
	tok, err := signing.ParseToken(raw)
	if err != nil {
		return nil, unauthorized(err)
	}
	if tok.Subject != peer.Name {
		return nil, mcp.Errorf(mcp.CodeUnauthorized, "capability token is for %q, caller is %q", tok.Subject, peer.Name)
	}
	if err := e.cfg.Trust.VerifyToken(tok, peer.Thumbprint, e.cfg.Now()); err != nil {
		return nil, unauthorized(err)
	}
	return tok, nil
}

func unauthorized(err error) *mcp.Error {
	return mcp.Errorf(mcp.CodeUnauthorized, "capability token refused: %s", strings.TrimPrefix(err.Error(), "signing: "))
}

// tokenGrant returns the capabilities a verified token adds to a session:
// requested ∩ offered ∩ scopes, plus privacy:3 when requested and scoped.
func tokenGrant(tok *signing.Token, requested, offered []string) []string {
	var out []string
	for _, c := range requested {
		if tok.Allows(c) && (slices.Contains(offered, c) || c == device.CapPrivacy3) {
			out = append(out, c)
		}
	}
	return out
}

// allows decides one call: the session grant, the session token's extra
// scopes while it is valid, and a per-call token. uri is the resource URI
// for resources/read ("" for tools), whose "resource:" scopes apply.
func (ss *serverSession) allows(c, uri string, callTok json.RawMessage) error {
	ss.mu.Lock()
	g, st := ss.grant, ss.token
	ss.mu.Unlock()
	if g[c] {
		if st == nil || !st.added[c] {
			return nil
		}
		// Granted through the session token only: it must still be valid.
		if err := ss.e.cfg.Trust.VerifyToken(st.tok, ss.peer.Thumbprint, ss.e.cfg.Now()); err != nil {
			return unauthorized(err)
		}
		return nil
	}
	if st != nil && uri != "" && st.tok.AllowsResource(uri) {
		if err := ss.e.cfg.Trust.VerifyToken(st.tok, ss.peer.Thumbprint, ss.e.cfg.Now()); err != nil {
			return unauthorized(err)
		}
		return nil
	}
	if len(callTok) > 0 {
		tok, err := ss.e.verifyToken(callTok, ss.peer)
		if err != nil {
			return err
		}
		if tok.Allows(c) || (uri != "" && tok.AllowsResource(uri)) {
			return nil
		}
		return mcp.Errorf(mcp.CodeUnauthorized, "capability %q is outside the token's scopes %v and not granted to this session", c, tok.Scopes)
	}
	if st != nil {
		return mcp.Errorf(mcp.CodeUnauthorized, "capability %q is outside the session token's scopes %v and not granted by policy", c, st.tok.Scopes)
	}
	return notGranted(c)
}

// privacy3 reports whether the session or the call may see customer data.
func (ss *serverSession) privacy3(callTok json.RawMessage) bool {
	if ss.allows(device.CapPrivacy3, "", nil) == nil {
		return true
	}
	if len(callTok) == 0 {
		return false
	}
	tok, err := ss.e.verifyToken(callTok, ss.peer)
	return err == nil && tok.Allows(device.CapPrivacy3)
}

// redactResult applies level 3 redaction (draft 003 §7.5) to a tool result
// or resource read, adding the list of redactions to its _meta.
func redactResult(res any) (any, error) {
	switch r := res.(type) {
	case *mcp.CallToolResult:
		return device.RedactToolResult(r)
	case *mcp.ReadResourceResult:
		return device.RedactResource(r)
	}
	return res, nil
}

// auditRefused records a request refused before dispatch.
func (ss *serverSession) auditRefused(method string, err *mcp.Error) {
	if ss.e.cfg.Audit == nil {
		return
	}
	ss.e.cfg.Audit(AuditRecord{Time: time.Now(), Direction: "in", SessionID: ss.sessionID(), Peer: ss.peer.Name,
		Method: method, Code: err.Code, Error: err.Message})
}

// requestTarget extracts the tool name, URI or prompt name of a request
// for audit records of refused requests.
func requestTarget(params *json.RawMessage) string {
	if params == nil {
		return ""
	}
	var p struct {
		Name string `json:"name"`
		URI  string `json:"uri"`
	}
	_ = json.Unmarshal(*params, &p)
	if p.Name != "" {
		return p.Name
	}
	return p.URI
}

// InventoryError is a tools/list that failed the caller's inventory
// checks. The workflow marks the peer untrusted with Reason().
type InventoryError struct {
	Peer string
	// Tool is the tool concerned.
	Tool string
	// Shadows names the other device whose same-named tool differs
	// (tool shadowing, draft-yang-nmrg-mcp-nm-02 §4); empty for a change.
	Shadows string
	Err     error // ErrInventoryChanged or ErrToolShadowed
}

// Inventory errors.
var (
	ErrInventoryChanged = errors.New("collab: tool inventory changed")
	ErrToolShadowed     = errors.New("collab: tool shadows another device's tool")
)

func (e *InventoryError) Error() string {
	if e.Shadows != "" {
		return fmt.Sprintf("collab: %s: tool %q differs from the one %s offers: %v", e.Peer, e.Tool, e.Shadows, e.Err)
	}
	return fmt.Sprintf("collab: %s: tool %q changed since it was pinned: %v", e.Peer, e.Tool, e.Err)
}

// Unwrap returns the sentinel.
func (e *InventoryError) Unwrap() error { return e.Err }

// Reason is the short untrusted reason.
func (e *InventoryError) Reason() string {
	if e.Shadows != "" {
		return "tool shadowing: " + e.Tool
	}
	return "tool inventory changed: " + e.Tool
}

// Inventory pins the tools each peer offers (signed tools/list results).
// Two checks run on every list:
//
//   - change: a tool the peer listed before now has another definition
//     (description, schemas, annotations or _meta) — a swapped tool;
//   - shadowing: a tool with the same name as another device's tool but a
//     different definition. Every d2d device offers the same tool set, so
//     a name collision with a different definition is what a shadowing
//     attack looks like (draft-yang-nmrg-mcp-nm-02 §4).
//
// A tool disappearing is not a change: grants differ between sessions.
// Safe for concurrent use.
type Inventory struct {
	mu     sync.Mutex
	byPeer map[string]map[string]string // peer → tool → definition digest
	first  map[string]inventoryPin      // tool → first definition seen
}

type inventoryPin struct{ peer, digest string }

// NewInventory returns an empty inventory.
func NewInventory() *Inventory {
	return &Inventory{byPeer: map[string]map[string]string{}, first: map[string]inventoryPin{}}
}

// PinTools records peer's tool definitions as trusted, replacing earlier
// pins of those tools. An agent pins its own tools first: every device of
// the domain runs the same tool set, so its own definitions are the
// reference that shadowing is judged against.
func (inv *Inventory) PinTools(peer string, tools []mcp.Tool) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	m := inv.byPeer[peer]
	if m == nil {
		m = map[string]string{}
		inv.byPeer[peer] = m
	}
	for _, t := range tools {
		d, err := device.ToolDigest(t)
		if err != nil {
			return fmt.Errorf("collab: %s: tool %q: %w", peer, t.Name, err)
		}
		m[t.Name] = d
		if f, ok := inv.first[t.Name]; !ok || f.peer == peer {
			inv.first[t.Name] = inventoryPin{peer, d}
		}
	}
	return nil
}

// Check verifies peer's listed tools against the pins and records new
// tools on success. Nothing is recorded when a check fails.
func (inv *Inventory) Check(peer string, tools []mcp.Tool) error {
	digests := make(map[string]string, len(tools))
	for _, t := range tools {
		d, err := device.ToolDigest(t)
		if err != nil {
			return fmt.Errorf("collab: %s: tool %q: %w", peer, t.Name, err)
		}
		if _, dup := digests[t.Name]; dup {
			return &InventoryError{Peer: peer, Tool: t.Name, Shadows: peer, Err: ErrToolShadowed}
		}
		digests[t.Name] = d
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	names := make([]string, 0, len(digests))
	for n := range digests {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := digests[n]
		if old, ok := inv.byPeer[peer][n]; ok && old != d {
			return &InventoryError{Peer: peer, Tool: n, Err: ErrInventoryChanged}
		}
		if f, ok := inv.first[n]; ok && f.digest != d && f.peer != peer {
			return &InventoryError{Peer: peer, Tool: n, Shadows: f.peer, Err: ErrToolShadowed}
		}
	}
	m := inv.byPeer[peer]
	if m == nil {
		m = map[string]string{}
		inv.byPeer[peer] = m
	}
	for n, d := range digests {
		m[n] = d
		if _, ok := inv.first[n]; !ok {
			inv.first[n] = inventoryPin{peer, d}
		}
	}
	return nil
}

// auditRefusedReq records a request refused in the read loop (rate limit,
// concurrency bound).
func (ss *serverSession) auditRefusedReq(req *jsonrpc2.Request, err *mcp.Error) {
	if ss.e.cfg.Audit == nil {
		return
	}
	ss.e.cfg.Audit(AuditRecord{Time: time.Now(), Direction: "in", SessionID: ss.sessionID(), Peer: ss.peer.Name,
		Method: req.Method, Target: requestTarget(req.Params), Code: err.Code, Error: err.Message})
}

// auditInventory records a tools/list the caller refused (tool shadowing
// or a changed inventory): the exchange succeeded, the trust did not.
func (s *Session) auditInventory(err error) {
	if s.e.cfg.Audit == nil {
		return
	}
	r := AuditRecord{Time: time.Now(), Direction: "out", SessionID: s.id, Peer: s.remote.Name,
		Method: mcp.MethodToolsList, Code: mcp.CodeUnauthorized, Error: err.Error()}
	var ie *InventoryError
	if errors.As(err, &ie) {
		r.Target = ie.Tool
	}
	s.e.cfg.Audit(r)
}

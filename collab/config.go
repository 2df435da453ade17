package collab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/signing"
	"net"
)

// DefaultPort is the UDP port of the D2D endpoint (draft 003 §5.3.1 step 1,
// "mcp-d2d-port = 9514").
const DefaultPort = 9514

// ALPN is the TLS application protocol of a D2D session (docs/ARCHITECTURE.md §3.2).
const ALPN = "d2d/1"

// SessionMetaKey is the InitializeResult _meta key carrying the session id
// the callee chose; signed results are bound to it (draft 003 §7.4
// "session-id").
const SessionMetaKey = "d2d/session"

// Config configures an Endpoint. Identity and Trust are required; every
// other field has a working zero value.
type Config struct {
	// Identity is this node's certificate and key, presented in both
	// directions of the mutual TLS handshake. Each handshake and each
	// signed result takes Identity.Current(), so a renewal
	// (signing.Identity.Renew) applies without a restart.
	Identity *signing.Identity
	// Trust holds the domain CA that peers' certificates must chain to.
	Trust *signing.Trust
	// Signer signs served and local results. Required when Provider is set.
	Signer *signing.Signer
	// Verifier checks peers' signed results. If nil, a Verifier over Trust
	// with default options.
	Verifier *signing.Verifier
	// Provider is what this node serves. If nil, the endpoint is a client
	// only and refuses incoming connections.
	Provider device.Provider
	// Policy decides which capabilities each authenticated peer may use.
	// If nil, no neighbour is granted anything: serving is opt-in.
	Policy Policy
	// ListenAddr is the UDP address of the single socket used for both
	// directions. If empty, ":9514".
	ListenAddr string
	// PacketConn, if set, is used instead of opening ListenAddr (for
	// example a socket opened inside a network namespace). The endpoint
	// owns it from then on and closes it on Close.
	PacketConn net.PacketConn
	// MaxMessageBytes bounds one JSON-RPC message (one line). If zero,
	// 1 MiB: a full interface table of a large router fits, a flood does not.
	MaxMessageBytes int
	// MaxSessionsPerPeer bounds the QUIC connections one authenticated peer
	// (by certificate name) may hold to this endpoint. If zero, 8. At the
	// limit, a new connection of that peer replaces the one it has left
	// silent longest with no request in flight (a killed process leaves
	// its connections open until IdleTimeout); only when all are busy is
	// it refused.
	MaxSessionsPerPeer int
	// MaxConcurrentCalls bounds the requests served at once per session;
	// excess requests fail with mcp.CodeRateLimited. If zero, 64.
	MaxConcurrentCalls int
	// MaxStreams bounds the concurrent bidirectional QUIC streams (each
	// one MCP session) a peer may open per connection. If zero, 4.
	MaxStreams int
	// HandshakeTimeout bounds the QUIC/TLS handshake plus initialize. If
	// zero, 5s. A served stream whose initialize has not arrived this long
	// after it opened is closed, and so is a connection none of whose
	// streams initialized this long after its handshake.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection without network activity. If zero,
	// 30s. Keep-alives are sent at a third of it while a session is open.
	IdleTimeout time.Duration
	// CallTimeout is the deadline of a call whose context has none, and
	// the bound on writing one message to a peer. If zero, 10s.
	CallTimeout time.Duration
	// Logger receives debug and warning logs. If nil, logs are discarded.
	Logger *slog.Logger
	// Audit, if set, is called once per request served or sent, after the
	// response (draft 003 §7.4), refused requests included. It must not
	// block.
	Audit func(AuditRecord)

	// RateLimit is the sustained requests per second one peer (by
	// certificate name, over all its sessions) may send; excess requests
	// fail with mcp.CodeRateLimited. If zero, no limit: MaxConcurrentCalls
	// already bounds the load of one session, and the agent sets a limit
	// of its own (package node).
	RateLimit float64
	// RateBurst is the bucket size of RateLimit. If zero, 2×RateLimit.
	RateBurst int
	// Tokens, if set, returns the capability token (signing.Token JSON) to
	// present to a peer in initialize (draft 003 §7.2), nil for none.
	Tokens func(peer string) json.RawMessage
	// Inventory, if set, pins the tools of every peer: each new session
	// lists the peer's tools (signed) and fails with *InventoryError when
	// a tool changed or shadows another device's tool.
	Inventory *Inventory
	// Now is the clock of token checks and rate limits. If nil, time.Now.
	Now func() time.Time

	limiter *rateLimiter
}

// AuditRecord describes one JSON-RPC exchange for the audit trail.
type AuditRecord struct {
	Time      time.Time
	Direction string // "in" (served) or "out" (sent)
	SessionID string
	Peer      string // the other side's certificate name
	Method    string
	Target    string // tool name, resource URI or prompt name
	Code      int64  // 0 on success, else the JSON-RPC error code
	Error     string
	Elapsed   time.Duration
}

func (c *Config) populate() error {
	if c.Identity == nil {
		return errors.New("collab: Config.Identity is required")
	}
	if c.Trust == nil {
		return errors.New("collab: Config.Trust is required")
	}
	if c.Provider != nil && c.Signer == nil {
		return errors.New("collab: Config.Signer is required to serve a Provider")
	}
	if c.Verifier == nil {
		c.Verifier = signing.NewVerifier(c.Trust, signing.VerifierOptions{})
	}
	if c.Policy == nil {
		c.Policy = StaticPolicy{}
	}
	if c.ListenAddr == "" {
		c.ListenAddr = fmt.Sprintf(":%d", DefaultPort)
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.MaxSessionsPerPeer <= 0 {
		c.MaxSessionsPerPeer = 8
	}
	if c.MaxConcurrentCalls <= 0 {
		c.MaxConcurrentCalls = 64
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 4
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Logger = c.Logger.With("component", "collab", "node", c.Identity.Name)
	if c.Now == nil {
		c.Now = time.Now
	}
	c.limiter = newRateLimiter(c.RateLimit, c.RateBurst, c.Now)
	return nil
}

// Policy is the whitelist of neighbour-callable capabilities (docs/ARCHITECTURE.md
// §3.2): the callee grants requested ∩ offered ∩ Allowed(peer).
type Policy interface {
	Allowed(peer signing.Peer) []string
}

// Wildcard in a policy list allows every offered capability.
const Wildcard = "*"

// StaticPolicy is a fixed Policy. A peer gets the ByNode entry for its
// certificate name if there is one, otherwise the ByRole entry for its
// role, otherwise Default. A list may hold Wildcard.
type StaticPolicy struct {
	ByRole  map[string][]string
	ByNode  map[string][]string
	Default []string
}

// Allowed implements Policy.
func (p StaticPolicy) Allowed(peer signing.Peer) []string {
	if l, ok := p.ByNode[peer.Name]; ok {
		return l
	}
	if l, ok := p.ByRole[peer.Role]; ok {
		return l
	}
	return p.Default
}

// grantSet is a negotiated grant; it implements device.Grant.
type grantSet map[string]bool

func (g grantSet) Allows(c string) bool { return g[c] }

func (g grantSet) list() []string {
	l := make([]string, 0, len(g))
	for c := range g {
		l = append(l, c)
	}
	slices.Sort(l)
	return l
}

// negotiate returns requested ∩ offered ∩ allowed.
func negotiate(requested, offered, allowed []string) grantSet {
	all := slices.Contains(allowed, Wildcard)
	g := grantSet{}
	for _, c := range requested {
		if c == Wildcard || !slices.Contains(offered, c) {
			continue
		}
		if all || slices.Contains(allowed, c) {
			g[c] = true
		}
	}
	return g
}

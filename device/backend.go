package device

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// Sentinel errors a Backend returns (wrapped) for bad input. The registry
// maps them to JSON-RPC invalid-params errors.
var (
	ErrUnknownInterface = errors.New("device: unknown interface")
	ErrUnknownSID       = errors.New("device: unknown SID or node")
	ErrUnknownACL       = errors.New("device: unknown ACL or rule")
	ErrUnknownPeer      = errors.New("device: unknown peer")
	ErrUnsupported      = errors.New("device: not supported by this backend")
)

// ErrNoProbeSent is wrapped by a probe that sent nothing (no route to the
// destination or first segment, say). Such a probe measured nothing, so
// the registry turns it into a tool result with IsError set and the
// reason, never into a loss figure: 0 of 0 received is not 0 % loss.
var ErrNoProbeSent = errors.New("no probe sent")

// Progress reports how far a long-running operation has got. total may
// be zero when unknown. It must not block.
type Progress func(done, total float64, message string)

// Backend is what one network element can do, in typed Go. Implementations:
// the simulated devices of package simulate and the real kernel of package
// device/linux. A Backend is safe for concurrent use.
type Backend interface {
	// Node returns the device's node name.
	Node() string
	// Interfaces returns every interface with its state and counters.
	Interfaces(ctx context.Context) ([]Interface, error)
	// SRv6Ping sends Count probes along the segment list and reports loss
	// and round-trip times (draft-zm-rtgwg-mcp-troubleshooting-01 §5.3.1).
	SRv6Ping(ctx context.Context, req SRv6PingRequest, progress Progress) (ProbeResult, error)
	// Ping sends ICMP/ICMPv6 echo requests.
	Ping(ctx context.Context, req PingRequest, progress Progress) (ProbeResult, error)
	// Traceroute discovers the hops towards a destination.
	Traceroute(ctx context.Context, req TracerouteRequest, progress Progress) (TracerouteResult, error)
	// ACLs returns the access lists with their rules and counters.
	ACLs(ctx context.Context) ([]ACL, error)
	// SetACLRule enables or disables one rule of one ACL. It is the only
	// mutating operation; callers reach it through the registry, which
	// demands consent.
	SetACLRule(ctx context.Context, acl, rule string, enabled bool) error
	// BGPNeighbors returns the BGP sessions.
	BGPNeighbors(ctx context.Context) ([]BGPNeighbor, error)
	// BFDSessions returns the BFD sessions.
	BFDSessions(ctx context.Context) ([]BFDSession, error)
}

// Interface is one interface's configuration, state and counters, modelled
// on ietf-interfaces (RFC 8343).
type Interface struct {
	Name        string         `json:"name"`
	Type        string         `json:"type"` // iana-if-type identity, e.g. "iana-if-type:ethernetCsmacd"
	Enabled     bool           `json:"enabled"`
	OperUp      bool           `json:"operUp"`
	PhysAddress string         `json:"physAddress,omitempty"`
	SpeedBPS    uint64         `json:"speed,omitempty"`
	IfIndex     int            `json:"ifIndex,omitempty"`
	Addresses   []string       `json:"addresses,omitempty"` // CIDR notation
	Stats       InterfaceStats `json:"statistics"`
}

// InterfaceStats are the RFC 8343 statistics counters.
type InterfaceStats struct {
	DiscontinuityTime time.Time `json:"discontinuityTime"`
	InOctets          uint64    `json:"inOctets"`
	InUnicastPkts     uint64    `json:"inUnicastPkts"`
	InMulticastPkts   uint64    `json:"inMulticastPkts"`
	InDiscards        uint64    `json:"inDiscards"`
	InErrors          uint64    `json:"inErrors"`
	OutOctets         uint64    `json:"outOctets"`
	OutUnicastPkts    uint64    `json:"outUnicastPkts"`
	OutMulticastPkts  uint64    `json:"outMulticastPkts"`
	OutDiscards       uint64    `json:"outDiscards"`
	OutErrors         uint64    `json:"outErrors"`
}

// SRv6PingRequest asks for Count probes from this node through SIDList.
// SIDList entries and Tail are IPv6 SIDs or node names that the backend
// resolves; the last segment is the tail end.
type SRv6PingRequest struct {
	Head     string        `json:"head,omitempty"` // must be this node when set
	SIDList  []string      `json:"sidList"`
	Tail     string        `json:"tail,omitempty"`
	Count    int           `json:"count,omitempty"`    // if zero, 100
	Interval time.Duration `json:"interval,omitempty"` // if zero, 10ms
	Timeout  time.Duration `json:"timeout,omitempty"`  // per probe; if zero, 1s
}

// PingRequest asks for Count echo requests to Destination (address or node name).
type PingRequest struct {
	Destination string        `json:"destination"`
	Source      string        `json:"source,omitempty"`
	Count       int           `json:"count,omitempty"`    // if zero, 5
	Interval    time.Duration `json:"interval,omitempty"` // if zero, 10ms
	Timeout     time.Duration `json:"timeout,omitempty"`  // per probe; if zero, 1s
}

// Probes returns the request's count, interval and per-probe timeout
// with the documented defaults for zero values.
func (r SRv6PingRequest) Probes() (count int, interval, timeout time.Duration) {
	return probeDefaults(r.Count, r.Interval, r.Timeout, 100)
}

// Probes returns the request's count, interval and per-probe timeout
// with the documented defaults for zero values.
func (r PingRequest) Probes() (count int, interval, timeout time.Duration) {
	return probeDefaults(r.Count, r.Interval, r.Timeout, 5)
}

func probeDefaults(count int, interval, timeout time.Duration, defaultCount int) (int, time.Duration, time.Duration) {
	if count <= 0 {
		count = defaultCount
	}
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	return count, interval, timeout
}

// ProbeResult is the outcome of a ping or an SRv6 ping.
type ProbeResult struct {
	Sent        int     `json:"sent"`
	Received    int     `json:"received"`
	LossPercent float64 `json:"lossPercent"`
	RTTMinMS    float64 `json:"rttMinMs"`
	RTTAvgMS    float64 `json:"rttAvgMs"`
	RTTMaxMS    float64 `json:"rttMaxMs"`
	// Path is the resolved list of segments or addresses probed.
	Path []string `json:"path,omitempty"`
	// Error explains total failure when Received is zero, e.g.
	// "SID fc00:0:3::100 not instantiated on PE-3". A result with Sent
	// zero is not a measurement: backends return an error wrapping
	// ErrNoProbeSent instead.
	Error string `json:"error,omitempty"`
}

// TracerouteRequest asks for the hops towards Destination.
type TracerouteRequest struct {
	Destination string        `json:"destination"`
	MaxHops     int           `json:"maxHops,omitempty"` // if zero, 16
	Timeout     time.Duration `json:"timeout,omitempty"` // per hop; if zero, 1s
}

// TracerouteHop is one hop of a traceroute.
type TracerouteHop struct {
	TTL     int     `json:"ttl"`
	Address string  `json:"address,omitempty"`
	Node    string  `json:"node,omitempty"`
	RTTMS   float64 `json:"rttMs,omitempty"`
	Lost    bool    `json:"lost,omitempty"`
}

// TracerouteResult is the outcome of a traceroute.
type TracerouteResult struct {
	Destination string          `json:"destination"`
	Reached     bool            `json:"reached"`
	Hops        []TracerouteHop `json:"hops"`
}

// ACL is an access list bound to an interface in one direction.
type ACL struct {
	Name      string    `json:"name"` // e.g. "2001"
	Interface string    `json:"interface,omitempty"`
	Direction string    `json:"direction"` // "ingress" or "egress"
	Rules     []ACLRule `json:"rules"`
}

// ACLRule is one rule of an ACL with its counters.
type ACLRule struct {
	ID             string `json:"id"`
	Action         string `json:"action"` // "permit" or "deny"
	Match          string `json:"match,omitempty"`
	Enabled        bool   `json:"enabled"`
	MatchedPackets uint64 `json:"matchedPackets"`
	MatchedBytes   uint64 `json:"matchedBytes"`
}

// BGPNeighbor is one BGP session.
type BGPNeighbor struct {
	Address   string `json:"address"`
	Node      string `json:"node,omitempty"`
	LocalAS   uint32 `json:"localAs"`
	PeerAS    uint32 `json:"peerAs"`
	State     string `json:"state"` // RFC 4271 FSM state, e.g. "Established", "Active", "Idle"
	UptimeS   int64  `json:"uptimeSeconds,omitempty"`
	LastError string `json:"lastError,omitempty"`
}

// BFDSession is one BFD session (RFC 5880 states).
type BFDSession struct {
	Peer        string `json:"peer"`
	Node        string `json:"node,omitempty"`
	Interface   string `json:"interface,omitempty"`
	LocalState  string `json:"localState"`  // "Up", "Down", "Init", "AdminDown"
	RemoteState string `json:"remoteState"` // as last heard from the peer
	Diagnostic  string `json:"diagnostic,omitempty"`
}

// Grant answers whether a negotiated session may use a capability.
type Grant interface {
	Allows(capability string) bool
}

// AllowAll is the Grant of a local caller (the node's own chat shell).
type AllowAll struct{}

// Allows reports true for every capability.
func (AllowAll) Allows(string) bool { return true }

// ToolRequest is one tools/call as the provider sees it.
type ToolRequest struct {
	Name      string
	Arguments json.RawMessage
	// Caller is the authenticated node name of the caller ("" for local).
	Caller string
	// Consent is the signed consent object for a mutating tool, verbatim.
	Consent json.RawMessage
	// Progress, if non-nil, receives progress of long-running tools.
	Progress Progress
}

// Provider is the MCP face of a device: what package collab serves to
// peers. *Registry implements it. Capability checks happen in collab
// before a call reaches the provider; a provider only filters lists.
type Provider interface {
	// Node returns the device's node name.
	Node() string
	// Offered lists every capability the device offers.
	Offered() []string
	// Capability names the capability a request needs: method is an MCP
	// method, target a tool name or resource URI. ok is false for an
	// unknown tool or resource.
	Capability(method, target string) (capability string, ok bool)
	ListTools(g Grant) []mcp.Tool
	CallTool(ctx context.Context, req ToolRequest) (*mcp.CallToolResult, error)
	ListResources(g Grant) []mcp.Resource
	ReadResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error)
	// Subscribe calls updated with the new content-id whenever the
	// resource changes, until cancel is called.
	Subscribe(ctx context.Context, uri string, updated func(contentID string)) (cancel func(), err error)
	ListPrompts(g Grant) []mcp.Prompt
	GetPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error)
}

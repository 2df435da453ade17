package device

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// ErrClosed is returned (wrapping net.ErrClosed) by a closed Registry.
var ErrClosed = fmt.Errorf("device: registry closed: %w", net.ErrClosed)

// RegistryOptions configure a Registry. The zero value works: it refuses
// every mutating call.
type RegistryOptions struct {
	// ConsentVerifier checks a consent's signature, signer and role for
	// one call of tool with args. The registry has already checked that
	// the consent names this tool, node, arguments and rollback timer and
	// is fresh and unused. If nil, every mutating call is refused.
	ConsentVerifier func(c Consent, tool string, args json.RawMessage) error
	// Clock returns the current time for timestamps and consent
	// freshness. If nil, time.Now. Rollback timers always run on the
	// runtime's timers.
	Clock func() time.Time
	// Logger receives change and rollback events. If nil, logs are
	// discarded.
	Logger *slog.Logger
	// PollInterval is how often a subscription reads its resource. If
	// zero, 1s: interface counters of real devices update about that often.
	PollInterval time.Duration
	// ConsentMaxAge bounds how old a consent's timestamp may be, and how
	// far in the future (clock skew). If zero, 5 minutes.
	ConsentMaxAge time.Duration
	// ListTimeout bounds the backend read behind ListResources, which has
	// no context. If zero, 2s.
	ListTimeout time.Duration
}

func (o *RegistryOptions) populate() {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("component", "device")
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.ConsentMaxAge <= 0 {
		o.ConsentMaxAge = 5 * time.Minute
	}
	if o.ListTimeout <= 0 {
		o.ListTimeout = 2 * time.Second
	}
}

// Registry is the MCP face of one device: it implements Provider on top of
// a Backend. It is safe for concurrent use.
type Registry struct {
	b     Backend
	opt   RegistryOptions
	tools map[string]*compiledTool

	mu        sync.Mutex
	closed    bool
	changes   map[string]*change
	order     []string // change ids in creation order
	baselines []*baseline
	used      map[string]time.Time // consumed consents by signature hash → expiry
	sources   []ResourceSource
	subs      map[*subscription]struct{}
	wg        sync.WaitGroup // rollback timers in flight and subscriptions
	closeOnce sync.Once
}

var _ Provider = (*Registry)(nil)

// NewRegistry returns the registry of backend b.
func NewRegistry(b Backend, opt RegistryOptions) *Registry {
	opt.populate()
	return &Registry{
		b:       b,
		opt:     opt,
		tools:   compiledTools(),
		changes: make(map[string]*change),
		used:    make(map[string]time.Time),
		subs:    make(map[*subscription]struct{}),
	}
}

// Node returns the device's node name.
func (r *Registry) Node() string { return r.b.Node() }

// Backend returns the backend the registry serves.
func (r *Registry) Backend() Backend { return r.b }

// Offered lists every capability of the device, sorted: one per tool,
// ietf-interfaces, prompts and those of added resource sources.
func (r *Registry) Offered() []string {
	set := map[string]bool{CapInterfaces: true, CapPrompts: true}
	for _, t := range r.tools {
		set[t.def.capability] = true
	}
	r.mu.Lock()
	for _, s := range r.sources {
		set[s.Capability()] = true
	}
	r.mu.Unlock()
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Capability names the capability that method on target needs.
func (r *Registry) Capability(method, target string) (string, bool) {
	switch method {
	case mcp.MethodToolsCall:
		t, ok := r.tools[target]
		if !ok {
			return "", false
		}
		return t.def.capability, true
	case mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsub:
		if _, ok := r.parseInterfaceURI(target); ok {
			return CapInterfaces, true
		}
		for _, s := range r.sourceList() {
			for _, res := range s.List() {
				if res.URI == target {
					return s.Capability(), true
				}
			}
		}
		return "", false
	case mcp.MethodPromptsGet:
		if _, ok := promptByName(target); ok {
			return CapPrompts, true
		}
		return "", false
	}
	return "", false
}

// ListTools lists the tools g allows, sorted by name.
func (r *Registry) ListTools(g Grant) []mcp.Tool {
	var out []mcp.Tool
	for _, t := range r.tools {
		if g == nil || !g.Allows(t.def.capability) {
			continue
		}
		out = append(out, t.desc)
	}
	slices.SortFunc(out, func(a, b mcp.Tool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// CallTool validates and runs one tool call. Protocol-level failures (bad
// arguments, unknown tool or object, missing consent) are *mcp.Error;
// other backend failures are results with IsError set.
func (r *Registry) CallTool(ctx context.Context, req ToolRequest) (*mcp.CallToolResult, error) {
	t, ok := r.tools[req.Name]
	if !ok {
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown tool %q", req.Name)
	}
	if r.isClosed() {
		return nil, mcp.Errorf(mcp.CodeInternalError, "%v", ErrClosed)
	}
	args, err := validateArgs(t, req.Arguments)
	if err != nil {
		return nil, err
	}
	var consent *Consent
	if t.def.mutating {
		c, err := r.checkConsent(t.def.name, req.Consent, args)
		if err != nil {
			r.opt.Logger.Info("consent refused", "tool", t.def.name, "caller", req.Caller, "err", err)
			return nil, &mcp.Error{Code: mcp.CodeConsentRequired, Message: err.Error()}
		}
		consent = c
	}
	out, summary, err := r.run(ctx, t, req, args, consent)
	if err != nil {
		err = r.mapError(t.def.name, err)
		var te toolError
		if errors.As(err, &te) {
			return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent(te.Error())}, IsError: true}, nil
		}
		return nil, err
	}
	sc, err := json.Marshal(out)
	if err != nil {
		return nil, mcp.Errorf(mcp.CodeInternalError, "tool %s: encoding result: %v", t.def.name, err)
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{mcp.TextContent(summary)},
		StructuredContent: sc,
	}, nil
}

// toolError is a failure of the tool itself (not of the request); it
// becomes a result with IsError set.
type toolError struct{ err error }

func (e toolError) Error() string { return e.err.Error() }

func (r *Registry) mapError(tool string, err error) error {
	var me *mcp.Error
	if errors.As(err, &me) {
		return me
	}
	for _, s := range []error{ErrUnknownInterface, ErrUnknownSID, ErrUnknownACL, ErrUnknownPeer, ErrUnsupported} {
		if errors.Is(err, s) {
			return invalidParams(tool, "", err.Error())
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return mcp.Errorf(mcp.CodeInternalError, "tool %s: %v", tool, err)
	}
	// The request was fine but the device could not carry it out: MCP
	// reports that inside the result, for the model to see.
	return toolError{fmt.Errorf("tool %s: %w", tool, err)}
}

func (r *Registry) run(ctx context.Context, t *compiledTool, req ToolRequest, args json.RawMessage, consent *Consent) (any, string, error) {
	node := r.Node()
	progress := req.Progress
	if progress == nil {
		progress = func(float64, float64, string) {}
	}
	switch t.def.name {
	case ToolSRv6Ping:
		var a struct {
			Head     string   `json:"head"`
			SIDList  []string `json:"sidList"`
			Tail     string   `json:"tail"`
			Count    int      `json:"count"`
			Interval float64  `json:"interval"`
			Timeout  float64  `json:"timeout"`
		}
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, "", invalidParams(t.def.name, "", err.Error())
		}
		if a.Head != "" && a.Head != node {
			return nil, "", invalidParams(t.def.name, "/head", fmt.Sprintf("head %q is not this node %q", a.Head, node))
		}
		res, err := r.b.SRv6Ping(ctx, SRv6PingRequest{
			Head: a.Head, SIDList: a.SIDList, Tail: a.Tail, Count: a.Count,
			Interval: ms(a.Interval), Timeout: ms(a.Timeout),
		}, progress)
		if err := sentSome(node, "srv6-ping", strings.Join(a.SIDList, ","), res, err); err != nil {
			return nil, "", err
		}
		return probeOut{node, res}, probeSummary(node, "srv6-ping", strings.Join(res.Path, ","), res), nil
	case ToolPing:
		var a struct {
			Destination, Source string
			Count               int
			Interval, Timeout   float64
		}
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, "", invalidParams(t.def.name, "", err.Error())
		}
		res, err := r.b.Ping(ctx, PingRequest{Destination: a.Destination, Source: a.Source, Count: a.Count,
			Interval: ms(a.Interval), Timeout: ms(a.Timeout)}, progress)
		if err := sentSome(node, "ping", a.Destination, res, err); err != nil {
			return nil, "", err
		}
		return probeOut{node, res}, probeSummary(node, "ping", a.Destination, res), nil
	case ToolTraceroute:
		var a struct {
			Destination string
			MaxHops     int
			Timeout     float64
		}
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, "", invalidParams(t.def.name, "", err.Error())
		}
		res, err := r.b.Traceroute(ctx, TracerouteRequest{Destination: a.Destination, MaxHops: a.MaxHops, Timeout: ms(a.Timeout)}, progress)
		if err != nil {
			return nil, "", err
		}
		if res.Hops == nil {
			res.Hops = []TracerouteHop{}
		}
		state := "not reached"
		if res.Reached {
			state = "reached"
		}
		return struct {
			Node string `json:"node"`
			TracerouteResult
		}{node, res}, fmt.Sprintf("traceroute from %s to %s: %s in %d hops", node, a.Destination, state, len(res.Hops)), nil
	case ToolInterfaceCounters:
		var a struct{ Interface string }
		_ = json.Unmarshal(args, &a)
		return r.interfaceCounters(ctx, a.Interface)
	case ToolACLList, ToolACLCounters:
		var a struct{ ACL string }
		_ = json.Unmarshal(args, &a)
		return r.aclTool(ctx, a.ACL, t.def.name == ToolACLCounters)
	case ToolBGPNeighbors:
		var a struct{ Neighbor string }
		_ = json.Unmarshal(args, &a)
		ns, err := r.b.BGPNeighbors(ctx)
		if err != nil {
			return nil, "", err
		}
		if a.Neighbor != "" {
			ns = slices.DeleteFunc(ns, func(n BGPNeighbor) bool { return n.Address != a.Neighbor && n.Node != a.Neighbor })
			if len(ns) == 0 {
				return nil, "", fmt.Errorf("device: BGP neighbor %q: %w", a.Neighbor, ErrUnknownPeer)
			}
		}
		if ns == nil {
			ns = []BGPNeighbor{}
		}
		up := 0
		for _, n := range ns {
			if n.State == "Established" {
				up++
			}
		}
		return struct {
			Node      string        `json:"node"`
			Neighbors []BGPNeighbor `json:"neighbors"`
		}{node, ns}, fmt.Sprintf("%s: %d BGP neighbors, %d established", node, len(ns), up), nil
	case ToolBFDSessions:
		var a struct{ Peer string }
		_ = json.Unmarshal(args, &a)
		ss, err := r.b.BFDSessions(ctx)
		if err != nil {
			return nil, "", err
		}
		if a.Peer != "" {
			ss = slices.DeleteFunc(ss, func(s BFDSession) bool { return s.Peer != a.Peer && s.Node != a.Peer })
			if len(ss) == 0 {
				return nil, "", fmt.Errorf("device: BFD peer %q: %w", a.Peer, ErrUnknownPeer)
			}
		}
		if ss == nil {
			ss = []BFDSession{}
		}
		up := 0
		for _, s := range ss {
			if s.LocalState == "Up" {
				up++
			}
		}
		return struct {
			Node     string       `json:"node"`
			Sessions []BFDSession `json:"sessions"`
		}{node, ss}, fmt.Sprintf("%s: %d BFD sessions, %d up", node, len(ss), up), nil
	case ToolClearCounters:
		var a struct{ Interface, ACL string }
		_ = json.Unmarshal(args, &a)
		return r.clearCounters(ctx, a.Interface, a.ACL)
	case ToolRestoreCounters:
		var a struct{ Undo string }
		_ = json.Unmarshal(args, &a)
		return r.restoreCounters(a.Undo)
	case ToolACLRuleSet:
		var a aclRuleSetArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, "", invalidParams(t.def.name, "", err.Error())
		}
		return r.aclRuleSet(ctx, req.Caller, a, consent)
	case ToolChangeConfirm:
		var a struct{ Change string }
		_ = json.Unmarshal(args, &a)
		return r.confirm(req.Caller, a.Change)
	case ToolChangeRollback:
		var a struct{ Change string }
		_ = json.Unmarshal(args, &a)
		return r.rollbackNow(req.Caller, a.Change)
	}
	return nil, "", mcp.Errorf(mcp.CodeInternalError, "tool %s has no implementation", t.def.name)
}

type probeOut struct {
	Node string `json:"node"`
	ProbeResult
}

// sentSome is a probe's error, with a probe that sent nothing made one:
// whatever a backend says of it, it is no loss figure.
func sentSome(node, what, target string, res ProbeResult, err error) error {
	if err != nil || res.Sent > 0 {
		return err
	}
	reason := cmp.Or(res.Error, "the backend gave no reason")
	return fmt.Errorf("%s from %s to %s: %w: %s", what, node, target, ErrNoProbeSent, reason)
}

func probeSummary(node, what, target string, res ProbeResult) string {
	s := fmt.Sprintf("%s from %s to %s: %d/%d received, %.1f%% loss", what, node, target, res.Received, res.Sent, res.LossPercent)
	if res.Received > 0 {
		s += fmt.Sprintf(", rtt min/avg/max %.3f/%.3f/%.3f ms", res.RTTMinMS, res.RTTAvgMS, res.RTTMaxMS)
	}
	if res.Error != "" {
		s += ": " + res.Error
	}
	return s
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// Close rolls back every pending change, removes every counter baseline,
// stops every subscription and waits for the registry's goroutines. The
// second call returns ErrClosed.
func (r *Registry) Close() error {
	err := ErrClosed
	r.closeOnce.Do(func() {
		err = nil
		r.mu.Lock()
		r.closed = true
		var pending []*change
		for _, id := range r.order {
			if c := r.changes[id]; c.state == StatePending {
				pending = append(pending, c)
			}
		}
		subs := make([]*subscription, 0, len(r.subs))
		for s := range r.subs {
			subs = append(subs, s)
		}
		r.baselines = nil
		r.mu.Unlock()
		for _, s := range subs {
			s.stop()
		}
		// Newest first, so that stacked changes of one rule end at the
		// oldest previous state.
		for i := len(pending) - 1; i >= 0; i-- {
			if e := r.rollback(pending[i], "registry closed"); e != nil && err == nil {
				err = e
			}
		}
		r.wg.Wait()
	})
	return err
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func newID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

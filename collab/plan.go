package collab

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// Tool names the planner uses; each is also the capability a peer must
// grant, except ToolInterfaceCounters (see CapabilityFor).
const (
	ToolSRv6Ping          = "ietf-srv6-ping"
	ToolPing              = "ping"
	ToolTraceroute        = "traceroute"
	ToolInterfaceCounters = "interface-counters"
	ToolACLCounters       = "acl-counters"
	ToolBGPNeighbors      = "bgp-neighbors"
	ToolBFDSessions       = "bfd-sessions"
	ToolClearCounters     = "clear-counters"
	ToolRestoreCounters   = "restore-counters"
	ToolACLRuleSet        = "acl-rule-set"

	// CapabilityInterfaces is the capability of the interfaces resource.
	CapabilityInterfaces = "ietf-interfaces"
)

// InterfacesURI is the RFC 7951 ietf-interfaces resource of node.
func InterfacesURI(node string) string { return "mcp://" + node + "/ietf-interfaces:interfaces" }

// CapabilityFor names the capability a tool needs on the callee.
func CapabilityFor(tool string) string {
	if tool == ToolInterfaceCounters {
		return "ietf-interface-counters"
	}
	return tool
}

// DefaultProbeCount is the number of probes per ping: 100, as in the
// draft's example (draft 003 §5.3.1 step 3), resolves loss to 1 %.
const DefaultProbeCount = 100

// PlanOptions tune BuildPlan. The zero value works.
type PlanOptions struct {
	// Count is the number of probes per ping or SRv6 ping. If zero,
	// DefaultProbeCount.
	Count int
	// Addresses maps an address (BGP neighbour, loopback, SID) to the
	// node that owns it, to resolve a BGP neighbour given by address.
	Addresses map[string]string
}

// Step is one call of a plan.
type Step struct {
	// ID is unique within the plan and stable for the same inputs.
	ID string
	// Phase orders steps: every step of phase n finishes before phase
	// n+1 starts; steps within a phase run in parallel.
	Phase int
	// Node runs the step.
	Node string
	// Method is mcp.MethodToolsCall or mcp.MethodResourcesRead.
	Method string
	// Target is the tool name or resource URI.
	Target string
	// Arguments of the tool call; nil for a resource read.
	Arguments json.RawMessage
	// Capability the callee must grant for the step.
	Capability string
	// Purpose says in one line why the step is there (for progress output).
	Purpose string
	// Undo marks a step that creates temporary state: its result carries
	// {"undo": id}, and the workflow must call UndoStep's step (tool
	// restore-counters with that id on the same node) when it finishes,
	// whatever the outcome.
	Undo bool
	// Local is true when Node is the planning node: the step runs against
	// the local provider, without a network call.
	Local bool
}

// Plan is the calls that serve an intent.
type Plan struct {
	Intent Intent
	Steps  []Step
	// Nodes involved, in path order for path intents.
	Nodes []string
	// Local is the planning node.
	Local string
	// Addresses maps addresses to node names (PlanOptions.Addresses), for
	// correlation to match session entries to nodes.
	Addresses map[string]string
	// Notes explain choices the planner made, e.g. a BGP neighbour
	// address that no member owns.
	Notes []string
}

// Phases returns the steps grouped by phase, in phase order.
func (p Plan) Phases() [][]Step {
	var out [][]Step
	for _, s := range p.Steps {
		for len(out) <= s.Phase {
			out = append(out, nil)
		}
		out[s.Phase] = append(out[s.Phase], s)
	}
	return slices.DeleteFunc(out, func(ss []Step) bool { return len(ss) == 0 })
}

// Step returns the step with the given id.
func (p Plan) Step(id string) (Step, bool) {
	i := slices.IndexFunc(p.Steps, func(s Step) bool { return s.ID == id })
	if i < 0 {
		return Step{}, false
	}
	return p.Steps[i], true
}

// ErrNotMember is wrapped by BuildPlan when an intent names a node that is
// not a member of the collaboration domain.
var ErrNotMember = errors.New("collab: not a member of the collaboration domain")

// ErrNoPlan is wrapped by BuildPlan for intents that need no calls
// (show-domain, list-reports, show-report: the shell answers them itself).
var ErrNoPlan = errors.New("collab: intent needs no troubleshooting plan")

// BuildPlan turns an intent into calls on the domain's nodes. local is the
// planning node and members the domain (local is always a member). An
// empty Head or Node in the intent means local.
func BuildPlan(in Intent, local string, members []string, opts PlanOptions) (Plan, error) {
	if local == "" {
		return Plan{}, errors.New("collab: plan: no local node")
	}
	if opts.Count <= 0 {
		opts.Count = DefaultProbeCount
	}
	known := append([]string{local}, members...)
	b := &planner{p: Plan{Intent: in, Local: local, Addresses: opts.Addresses}, opts: opts}
	check := func(nodes ...string) error {
		for _, n := range nodes {
			if !slices.Contains(known, n) {
				return fmt.Errorf("%w: %s (members: %s)", ErrNotMember, n, strings.Join(known, ", "))
			}
		}
		return nil
	}
	switch in.Kind {
	case PathLoss, InterfaceErrors, Reachability:
		path := in.Path()
		if in.Head == "" {
			path = append([]string{local}, path...)
		}
		if err := check(path...); err != nil {
			return Plan{}, err
		}
		if len(path) < 2 || slices.Contains(path[1:], path[0]) {
			return Plan{}, fmt.Errorf("collab: plan: path %s needs two distinct nodes", strings.Join(path, " -> "))
		}
		b.p.Nodes = path
		switch in.Kind {
		case PathLoss:
			b.pathLoss(path)
		case InterfaceErrors:
			b.interfaceErrors(path)
		default:
			if len(path) != 2 {
				return Plan{}, fmt.Errorf("%w: reachability takes two nodes", ErrInvalidIntent)
			}
			b.reachability(path[0], path[1])
		}
	case BGPNeighborDown:
		node := in.Node
		if node == "" {
			node = local
		}
		if err := check(node); err != nil {
			return Plan{}, err
		}
		peer := in.Neighbor
		if slices.Contains(known, peer) {
			// A node name.
		} else if n, ok := opts.Addresses[peer]; ok && slices.Contains(known, n) {
			peer = n
		} else {
			b.p.Notes = append(b.p.Notes, fmt.Sprintf("neighbour %s is not the address of a domain member; only %s's side is checked", in.Neighbor, node))
			peer = ""
		}
		if peer == node {
			return Plan{}, fmt.Errorf("%w: %s cannot be its own BGP neighbour", ErrInvalidIntent, node)
		}
		b.p.Nodes = []string{node}
		if peer != "" {
			b.p.Nodes = append(b.p.Nodes, peer)
		}
		b.bgp(node, peer, in.Neighbor)
	case ShowDomain, ListReports, ShowReport:
		return Plan{}, fmt.Errorf("%w: %s", ErrNoPlan, in.Kind)
	default:
		return Plan{}, fmt.Errorf("%w: kind %s", ErrInvalidIntent, in.Kind)
	}
	for _, s := range b.p.Steps {
		if s.Local {
			b.p.Notes = append(b.p.Notes, fmt.Sprintf("%s runs locally on %s", s.ID, local))
		}
	}
	return b.p, nil
}

type planner struct {
	p    Plan
	opts PlanOptions
}

func (b *planner) tool(phase int, node, tool string, args any, purpose string) {
	raw, err := json.Marshal(args)
	if err != nil {
		// Arguments are built here from strings and ints only.
		panic(fmt.Sprintf("collab: plan arguments: %v", err))
	}
	b.add(Step{Phase: phase, Node: node, Method: mcp.MethodToolsCall, Target: tool, Arguments: raw,
		Capability: CapabilityFor(tool), Purpose: purpose, Undo: tool == ToolClearCounters})
}

func (b *planner) add(s Step) {
	s.ID = fmt.Sprintf("%d/%s/%s", s.Phase, s.Node, s.Target)
	if s.Method == mcp.MethodResourcesRead {
		s.ID = fmt.Sprintf("%d/%s/interfaces", s.Phase, s.Node)
	}
	base := s.ID
	for n := 2; slices.ContainsFunc(b.p.Steps, func(o Step) bool { return o.ID == s.ID }); n++ {
		s.ID = fmt.Sprintf("%s#%d", base, n)
	}
	s.Local = s.Node == b.p.Local
	b.p.Steps = append(b.p.Steps, s)
}

type empty struct{}

type srv6PingArgs struct {
	Head    string   `json:"head,omitempty"`
	SIDList []string `json:"sidList"`
	Tail    string   `json:"tail,omitempty"`
	Count   int      `json:"count,omitempty"`
}

type pingArgs struct {
	Destination string `json:"destination"`
	Count       int    `json:"count,omitempty"`
}

type destArgs struct {
	Destination string `json:"destination"`
}

type peerArgs struct {
	Peer string `json:"peer,omitempty"`
}

type neighborArgs struct {
	Neighbor string `json:"neighbor,omitempty"`
}

// pathLoss is the draft's §5.3.1 plan: a counter baseline on every node
// that sends, an SRv6 ping towards the tail from every node but the tail
// (the difference between neighbours localises the loss), then the
// counters that explain it.
func (b *planner) pathLoss(path []string) {
	tail := path[len(path)-1]
	senders := path[:len(path)-1]
	for _, n := range senders {
		b.tool(0, n, ToolClearCounters, empty{}, "baseline interface and ACL counters on "+n)
	}
	for i, n := range senders {
		b.tool(1, n, ToolSRv6Ping, srv6PingArgs{Head: n, SIDList: slices.Clone(path[i+1:]), Tail: tail, Count: b.opts.Count},
			fmt.Sprintf("SRv6 ping %s", strings.Join(path[i:], " -> ")))
	}
	for _, n := range senders {
		b.tool(2, n, ToolACLCounters, empty{}, "ACL counters on "+n+" since the baseline")
		b.tool(2, n, ToolInterfaceCounters, empty{}, "interface counters on "+n+" since the baseline")
		b.tool(2, n, ToolBFDSessions, empty{}, "BFD sessions on "+n)
	}
	b.readInterfaces(2, tail)
}

func (b *planner) readInterfaces(phase int, node string) {
	b.add(Step{Phase: phase, Node: node, Method: mcp.MethodResourcesRead, Target: InterfacesURI(node),
		Capability: CapabilityInterfaces, Purpose: "interface state and statistics of " + node})
}

// interfaceErrors pings every hop of the path (so that errors have traffic
// to show up in) between a counter baseline and the counter read.
func (b *planner) interfaceErrors(path []string) {
	for _, n := range path {
		b.tool(0, n, ToolClearCounters, empty{}, "baseline interface counters on "+n)
	}
	for i := 0; i+1 < len(path); i++ {
		b.tool(1, path[i], ToolPing, pingArgs{Destination: path[i+1], Count: b.opts.Count},
			fmt.Sprintf("ping %s -> %s", path[i], path[i+1]))
	}
	for _, n := range path {
		b.tool(2, n, ToolInterfaceCounters, empty{}, "interface counters on "+n+" since the baseline")
	}
}

// reachability probes both directions (a one-way fault shows as loss in
// one only), traces both ways, and reads the counters of both ends.
func (b *planner) reachability(a, z string) {
	for _, n := range []string{a, z} {
		b.tool(0, n, ToolClearCounters, empty{}, "baseline interface and ACL counters on "+n)
	}
	b.tool(1, a, ToolPing, pingArgs{Destination: z, Count: b.opts.Count}, "ping "+a+" -> "+z)
	b.tool(1, z, ToolPing, pingArgs{Destination: a, Count: b.opts.Count}, "ping "+z+" -> "+a)
	b.tool(1, a, ToolTraceroute, destArgs{Destination: z}, "traceroute "+a+" -> "+z)
	b.tool(1, z, ToolTraceroute, destArgs{Destination: a}, "traceroute "+z+" -> "+a)
	for _, n := range []string{a, z} {
		b.tool(2, n, ToolInterfaceCounters, empty{}, "interface counters on "+n+" since the baseline")
		b.tool(2, n, ToolACLCounters, empty{}, "ACL counters on "+n+" since the baseline")
	}
}

// bgp reads the session from both ends (a one-sided session is only
// visible by comparing them), BFD, the ACLs that may filter TCP/179 (draft
// 003 §4.4.2) and the interfaces; then pings the neighbour.
func (b *planner) bgp(node, peer, neighbor string) {
	for _, n := range []string{node, peer} {
		if n == "" {
			continue
		}
		b.tool(0, n, ToolBGPNeighbors, empty{}, "BGP sessions on "+n)
		b.tool(0, n, ToolBFDSessions, empty{}, "BFD sessions on "+n)
		b.tool(0, n, ToolInterfaceCounters, empty{}, "interface state and counters on "+n)
		b.tool(0, n, ToolACLCounters, empty{}, "ACL counters on "+n)
	}
	b.tool(1, node, ToolPing, pingArgs{Destination: neighbor, Count: min(b.opts.Count, 10)},
		"ping BGP neighbour "+neighbor+" from "+node)
}

// UndoStep returns the step that removes the temporary state a step with
// Undo set created, given that step's result (a tools/call result or its
// structured content).
func UndoStep(s Step, result json.RawMessage) (Step, error) {
	if !s.Undo {
		return Step{}, fmt.Errorf("collab: step %s created no temporary state", s.ID)
	}
	var v struct {
		Undo string `json:"undo"`
	}
	body, err := unwrapResult(result)
	if err != nil {
		return Step{}, fmt.Errorf("collab: undo of %s: %w", s.ID, err)
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Undo == "" {
		return Step{}, fmt.Errorf("collab: undo of %s: result carries no undo id", s.ID)
	}
	args, _ := json.Marshal(map[string]string{"undo": v.Undo})
	return Step{ID: s.ID + "/undo", Phase: s.Phase, Node: s.Node, Method: mcp.MethodToolsCall, Target: ToolRestoreCounters,
		Arguments: args, Capability: CapabilityFor(ToolRestoreCounters), Purpose: "remove the counter baseline on " + s.Node, Local: s.Local}, nil
}

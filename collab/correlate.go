package collab

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// LossThreshold is the loss, in percent, above which a probe counts as
// lossy: 0.5 % lies below one lost probe of the default 100 and above the
// noise of a healthy path.
const LossThreshold = 0.5

// Rule names, recorded in report.Hypothesis.Rule.
const (
	RuleLossSegment     = "loss-localisation"
	RuleMissingSID      = "missing-sid"
	RuleLinkDown        = "link-down"
	RuleACLDrop         = "acl-drop"
	RuleInterfaceErrors = "interface-errors"
	RuleOneSidedSession = "one-sided-session"
	RuleSessionDown     = "session-down"
	RuleNoFault         = "no-fault-found"
	RuleInconclusive    = "inconclusive"
)

// Observation is the outcome of one step.
type Observation struct {
	Step Step
	// Result is the step's result as the callee returned it: an MCP
	// tools/call or resources/read result, or the tool's structured
	// content alone.
	Result json.RawMessage
	// Ref is the evidence reference of the result in the report; if
	// empty, the step id stands in.
	Ref string
	// Err is set when the call failed.
	Err string
	// Untrusted is set (with the reason) when the node was not trusted;
	// Result is then ignored.
	Untrusted string
}

func (o Observation) ref() string {
	if o.Ref != "" {
		return o.Ref
	}
	return o.Step.ID
}

// rule is one correlation rule: it reads the digested observations and
// returns its hypotheses.
type rule struct {
	name  string
	apply func(*facts) []report.Hypothesis
}

// rules run in this order; the order also breaks confidence ties, so the
// more specific explanations come first.
var rules = []rule{
	{RuleACLDrop, ruleACLDrop},
	{RuleMissingSID, ruleMissingSID},
	{RuleLinkDown, ruleLinkDown},
	{RuleOneSidedSession, ruleSessions},
	{RuleInterfaceErrors, ruleInterfaceErrors},
	{RuleLossSegment, ruleLossSegment},
}

// Correlate turns a plan's observations into fault hypotheses, most
// confident first. It always returns at least one: when no rule fires, a
// "no fault found" hypothesis listing what was checked, or an
// "inconclusive" one naming the untrusted nodes. Every field but the
// summary sentence is decided here, by rules; the summary comes from a
// template.
func Correlate(p Plan, obs []Observation) []report.Hypothesis {
	f := digest(p, obs)
	var hs []report.Hypothesis
	order := map[string]int{}
	for i, r := range rules {
		order[r.name] = i
		for _, h := range r.apply(f) {
			h.Rule = r.name
			if !slices.ContainsFunc(hs, func(o report.Hypothesis) bool {
				return o.Location == h.Location && o.Suspect == h.Suspect
			}) {
				hs = append(hs, h)
			}
		}
	}
	if len(hs) == 0 {
		hs = append(hs, f.fallback())
	}
	if len(f.untrusted) > 0 {
		note := "untrusted: " + f.untrustedList()
		for i := range hs {
			if hs[i].Rule == RuleInconclusive {
				continue
			}
			// An untrusted node's data is missing: whatever it would have
			// shown could change the picture.
			hs[i].Confidence = round2(hs[i].Confidence * 0.75)
			hs[i].Summary += " (" + note + ")"
		}
	}
	slices.SortStableFunc(hs, func(a, b report.Hypothesis) int {
		if c := cmp.Compare(b.Confidence, a.Confidence); c != 0 {
			return c
		}
		return cmp.Compare(order[a.Rule], order[b.Rule])
	})
	return hs
}

func round2(x float64) float64 { return float64(int(x*100+0.5)) / 100 }

// probe is one ping or SRv6 ping result.
type probe struct {
	node, to string // sender; where it probes towards
	res      device.ProbeResult
	failed   string // call or tool failure text, when no result
	// unsent marks a failed probe that could not leave its node (no
	// route, say): missing data for every loss rule, but a sign that the
	// node has no way towards its target.
	unsent bool
	ref    string
}

// lossy and total say nothing of a failed probe: a call that failed
// measured nothing (only ruleMissingSID reads its error).
func (p probe) lossy() bool { return p.failed == "" && p.res.LossPercent > LossThreshold }
func (p probe) total() bool {
	return p.failed == "" && p.res.Received == 0 && (p.res.Sent > 0 || p.res.Error != "")
}
func (p probe) loss() float64 {
	if p.failed != "" {
		return 100
	}
	return p.res.LossPercent
}
func (p probe) errText() string { return cmp.Or(p.failed, p.res.Error) }

type nodeData[T any] struct {
	v   T
	ref string
}

// facts are the observations digested for the rules.
type facts struct {
	plan      Plan
	path      []string
	untrusted map[string]string
	probes    []probe // in plan order
	ifaces    map[string]nodeData[[]device.Interface]
	baseline  map[string]bool // counters are deltas since a baseline
	acls      map[string]nodeData[[]device.ACL]
	bgp       map[string]nodeData[[]device.BGPNeighbor]
	bfd       map[string]nodeData[[]device.BFDSession]
	okRefs    []string
	failed    []string
}

func digest(p Plan, obs []Observation) *facts {
	f := &facts{plan: p, path: p.Nodes, untrusted: map[string]string{},
		ifaces: map[string]nodeData[[]device.Interface]{}, baseline: map[string]bool{},
		acls: map[string]nodeData[[]device.ACL]{}, bgp: map[string]nodeData[[]device.BGPNeighbor]{},
		bfd: map[string]nodeData[[]device.BFDSession]{}}
	for _, o := range obs {
		s := o.Step
		if o.Untrusted != "" {
			if _, ok := f.untrusted[s.Node]; !ok {
				f.untrusted[s.Node] = o.Untrusted
			}
			continue
		}
		var body []byte
		err := errors.New(o.Err)
		if o.Err == "" {
			body, err = unwrapResult(o.Result)
		}
		if s.Target == ToolSRv6Ping || s.Target == ToolPing {
			// A probe whose call failed has no evidence to cite: its
			// ref stays empty rather than naming the plan step.
			pr := probe{node: s.Node, to: probeTarget(s), ref: o.Ref}
			if err != nil {
				pr.failed = err.Error()
			} else if json.Unmarshal(body, &pr.res) != nil {
				pr.failed = "unreadable probe result"
			} else if pr.res.Sent == 0 {
				// 0 of 0 is no measurement, whatever its loss field says.
				pr.failed = cmp.Or(pr.res.Error, device.ErrNoProbeSent.Error())
				pr.unsent = true
			}
			pr.unsent = pr.unsent || strings.Contains(pr.failed, device.ErrNoProbeSent.Error())
			f.probes = append(f.probes, pr)
			continue
		}
		if err != nil {
			f.failed = append(f.failed, fmt.Sprintf("%s (%v)", s.ID, err))
			continue
		}
		ok := true
		switch {
		case s.Method == mcp.MethodResourcesRead || s.Target == ToolInterfaceCounters:
			ifs, err := decodeInterfaces(body)
			ok = err == nil
			if ok {
				f.ifaces[s.Node] = nodeData[[]device.Interface]{ifs, o.ref()}
			}
		case s.Target == ToolACLCounters:
			var v []device.ACL
			ok = decodeList(body, "acls", &v) == nil
			if ok {
				f.acls[s.Node] = nodeData[[]device.ACL]{v, o.ref()}
			}
		case s.Target == ToolBGPNeighbors:
			var v []device.BGPNeighbor
			ok = decodeList(body, "neighbors", &v) == nil
			if ok {
				f.bgp[s.Node] = nodeData[[]device.BGPNeighbor]{v, o.ref()}
			}
		case s.Target == ToolBFDSessions:
			var v []device.BFDSession
			ok = decodeList(body, "sessions", &v) == nil
			if ok {
				f.bfd[s.Node] = nodeData[[]device.BFDSession]{v, o.ref()}
			}
		case s.Target == ToolClearCounters:
			f.baseline[s.Node] = true
		}
		if !ok {
			f.failed = append(f.failed, s.ID+" (unreadable result)")
			continue
		}
		f.okRefs = append(f.okRefs, o.ref())
	}
	return f
}

func probeTarget(s Step) string {
	var a struct {
		SIDList     []string `json:"sidList"`
		Tail        string   `json:"tail"`
		Destination string   `json:"destination"`
	}
	_ = json.Unmarshal(s.Arguments, &a)
	if a.Tail != "" {
		return a.Tail
	}
	if len(a.SIDList) > 0 {
		return a.SIDList[len(a.SIDList)-1]
	}
	return a.Destination
}

func (f *facts) untrustedList() string {
	var parts []string
	for _, n := range f.path {
		if r, ok := f.untrusted[n]; ok {
			parts = append(parts, n+" ("+r+")")
		}
	}
	for n, r := range f.untrusted {
		if !slices.Contains(f.path, n) {
			parts = append(parts, n+" ("+r+")")
		}
	}
	slices.Sort(parts[len(f.pathUntrusted()):])
	return strings.Join(parts, ", ")
}

func (f *facts) pathUntrusted() []string {
	var out []string
	for _, n := range f.path {
		if _, ok := f.untrusted[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func (f *facts) idx(node string) int { return slices.Index(f.path, node) }

// segment is a stretch of the path that the probes place a fault in:
// the loss is seen from path[from] and not from path[to] (or to is the
// tail). Nodes strictly between were not probed (untrusted or failed).
type segment struct {
	from, to  int
	up, down  *probe // the probes either side; down is nil at the tail
	total     bool
	lossDelta float64
}

// segments localises loss along the path (draft 003 §5.3.1 step 4):
// probes towards the tail from successive nodes, the first lossy one
// followed by a clean one bounds the fault. For hop-by-hop pings each
// lossy hop is its own segment.
func (f *facts) segments() []segment {
	var segs []segment
	n := len(f.path)
	if n < 2 {
		return nil
	}
	tail := f.path[n-1]
	switch f.plan.Intent.Kind {
	case PathLoss:
		// The last probe from each path node towards the tail.
		byIdx := map[int]*probe{}
		for i := range f.probes {
			p := &f.probes[i]
			if j := f.idx(p.node); j >= 0 && j < n-1 && p.failed == "" && (p.to == tail || p.to == "") {
				byIdx[j] = p
			}
		}
		var known []int
		for i := 0; i < n-1; i++ {
			if byIdx[i] != nil {
				known = append(known, i)
			}
		}
		for k, i := range known {
			up := byIdx[i]
			if !up.lossy() {
				continue
			}
			if k+1 < len(known) {
				down := byIdx[known[k+1]]
				if !down.lossy() {
					segs = append(segs, segment{from: i, to: known[k+1], up: up, down: down, total: up.total(), lossDelta: up.loss() - down.loss()})
				}
				continue
			}
			segs = append(segs, segment{from: i, to: n - 1, up: up, total: up.total(), lossDelta: up.loss()})
		}
	default:
		// Hop pings, reachability and BGP pings: a lossy probe from a to b
		// bounds the fault between them.
		for i := range f.probes {
			p := &f.probes[i]
			a, b := f.idx(p.node), f.idx(p.to)
			if a < 0 || b < 0 || !p.lossy() {
				continue
			}
			if slices.ContainsFunc(segs, func(s segment) bool { return s.from == min(a, b) && s.to == max(a, b) }) {
				continue
			}
			segs = append(segs, segment{from: min(a, b), to: max(a, b), up: p, total: p.total(), lossDelta: p.loss()})
		}
	}
	return segs
}

func (f *facts) link(s segment) string { return f.path[s.from] + "->" + f.path[s.to] }

func (f *facts) segRefs(s segment) []string {
	refs := []string{s.up.ref}
	if s.down != nil {
		refs = append(refs, s.down.ref)
	}
	return refs
}

func pct(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) + " %" }

// ruleLossSegment states where the probes put the fault.
func ruleLossSegment(f *facts) []report.Hypothesis {
	var hs []report.Hypothesis
	for _, s := range f.segments() {
		a, b := f.path[s.from], f.path[s.to]
		h := report.Hypothesis{Location: f.link(s), EvidenceRefs: f.segRefs(s)}
		switch {
		case f.plan.Intent.Kind == PathLoss && s.down != nil:
			h.Summary = fmt.Sprintf("loss %s seen from %s but %s from %s: fault between %s and %s (link %s or %s egress)",
				pct(s.up.loss()), a, pct(s.down.loss()), b, a, b, f.link(s), a)
			h.Suspect = "link " + f.link(s) + " or " + a + " egress"
		case f.plan.Intent.Kind == PathLoss:
			h.Summary = fmt.Sprintf("loss %s seen from %s, the last probing node before %s: fault on link %s or at %s",
				pct(s.up.loss()), a, b, f.link(s), b)
			h.Suspect = "link " + f.link(s) + " or " + b + " ingress"
		default:
			h.Summary = fmt.Sprintf("loss %s on probes from %s to %s: fault between %s and %s", pct(s.up.loss()), s.up.node, s.up.to, a, b)
			h.Suspect = "path " + a + "->" + b
		}
		h.Confidence = 0.6
		if s.to-s.from > 1 {
			h.Confidence = 0.45
			h.Summary += fmt.Sprintf("; %s not probed", strings.Join(f.path[s.from+1:s.to], ", "))
		}
		hs = append(hs, h)
	}
	return hs
}

var sidRE = regexp.MustCompile(`(?i)\bSID\s+(\S+)`)

// sidIn returns the SID an error message names: the first word after
// "SID" that is an IPv6 address, else the first that holds a digit (a
// node-name SID such as "PE-3"), else "".
func sidIn(text string) string {
	var fallback string
	for _, m := range sidRE.FindAllStringSubmatch(text, -1) {
		w := strings.TrimRight(m[1], ".,;:)")
		if a, err := netip.ParseAddr(w); err == nil && a.Is6() {
			return w
		}
		if fallback == "" && strings.ContainsAny(w, "0123456789") {
			fallback = w
		}
	}
	return fallback
}

// ruleMissingSID: a probe that lost everything and whose error names a SID.
func ruleMissingSID(f *facts) []report.Hypothesis {
	var hs []report.Hypothesis
	for _, p := range f.probes {
		if !p.total() && p.failed == "" {
			continue
		}
		sid := sidIn(p.errText())
		if sid == "" {
			continue
		}
		node := f.nodeNamedIn(p.errText(), p.node)
		if node == "" {
			node = p.to
		}
		i := slices.IndexFunc(hs, func(h report.Hypothesis) bool { return h.Location == node && h.Suspect == "SID "+sid })
		if i >= 0 {
			hs[i].EvidenceRefs = appendRef(hs[i].EvidenceRefs, p.ref)
			continue
		}
		hs = append(hs, report.Hypothesis{
			Summary:      fmt.Sprintf("missing SID %s on %s: probes from %s fail with %q", sid, node, p.node, p.errText()),
			Location:     node,
			Suspect:      "SID " + sid,
			Confidence:   0.85,
			EvidenceRefs: appendRef(nil, p.ref),
		})
	}
	return hs
}

// nodeNamedIn finds a plan node named as a whole word in text, other than
// except.
func (f *facts) nodeNamedIn(text, except string) string {
	words := strings.FieldsFunc(text, func(r rune) bool {
		return r == ' ' || r == '"' || r == '\'' || r == ',' || r == ';' || r == '(' || r == ')'
	})
	for _, w := range words {
		w = strings.TrimRight(w, ".:")
		for _, n := range f.path {
			if n != except && strings.EqualFold(w, n) {
				return n
			}
		}
	}
	return ""
}

// facing returns node's interfaces that face peer: by the peer's name in
// the interface name, by a shared subnet, or, failing both, every
// non-loopback interface (exact reports whether the match was specific).
func (f *facts) facing(node, peer string) (ifs []device.Interface, exact bool) {
	mine := f.ifaces[node].v
	for _, it := range mine {
		if strings.Contains(strings.ToLower(it.Name), strings.ToLower(peer)) {
			ifs = append(ifs, it)
		}
	}
	if len(ifs) > 0 {
		return ifs, true
	}
	for _, it := range mine {
		for _, other := range f.ifaces[peer].v {
			if sharesSubnet(it.Addresses, other.Addresses) {
				ifs = append(ifs, it)
			}
		}
	}
	if len(ifs) > 0 {
		return ifs, true
	}
	for _, it := range mine {
		if !isLoopback(it) {
			ifs = append(ifs, it)
		}
	}
	return ifs, false
}

func isLoopback(it device.Interface) bool {
	n := strings.ToLower(it.Name)
	return n == "lo" || strings.HasPrefix(n, "loopback") || strings.HasSuffix(it.Type, "softwareLoopback")
}

func sharesSubnet(a, b []string) bool {
	for _, x := range a {
		px, err := netip.ParsePrefix(x)
		if err != nil || px.Addr().IsLinkLocalUnicast() {
			continue
		}
		for _, y := range b {
			py, err := netip.ParsePrefix(y)
			if err == nil && px.Masked() == py.Masked() {
				return true
			}
		}
	}
	return false
}

// ruleLinkDown: total loss across a segment and an interface on either
// end of it operationally down.
func ruleLinkDown(f *facts) []report.Hypothesis {
	var hs []report.Hypothesis
	add := func(a, b string, refs []string) {
		h, ok := f.linkDown(a, b, refs)
		if !ok {
			return
		}
		if i := slices.IndexFunc(hs, func(o report.Hypothesis) bool { return o.Location == h.Location }); i >= 0 {
			for _, r := range h.EvidenceRefs {
				hs[i].EvidenceRefs = appendRef(hs[i].EvidenceRefs, r)
			}
			return
		}
		hs = append(hs, h)
	}
	for _, s := range f.segments() {
		if !s.total {
			continue
		}
		for i := s.from; i < s.to; i++ {
			add(f.path[i], f.path[i+1], f.segRefs(s))
		}
	}
	// A probe that could not leave its node measured no loss, but says
	// the node has no route on: look at its link towards the next node
	// of the path in the probe's direction.
	for _, p := range f.probes {
		a, b := f.idx(p.node), f.idx(p.to)
		if !p.unsent || a < 0 || b < 0 || a == b {
			continue
		}
		next := a + 1
		if b < a {
			next = a - 1
		}
		add(f.path[a], f.path[next], appendRef(nil, p.ref))
	}
	return hs
}

func (f *facts) linkDown(a, b string, refs []string) (report.Hypothesis, bool) {
	var downs []string
	exactAll := true
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		ifs, exact := f.facing(pair[0], pair[1])
		for _, it := range ifs {
			if !it.OperUp {
				downs = append(downs, pair[0]+" "+it.Name)
				exactAll = exactAll && exact
				refs = appendRef(refs, f.ifaces[pair[0]].ref)
			}
		}
	}
	if len(downs) == 0 {
		return report.Hypothesis{}, false
	}
	conf := 0.85
	if !exactAll {
		conf = 0.7
	}
	for _, n := range []string{a, b} {
		for _, s := range f.bfd[n].v {
			if f.sameNode(s.Node, s.Peer, other(n, a, b)) && s.LocalState != "Up" {
				refs = appendRef(refs, f.bfd[n].ref)
				conf = min(conf+0.05, 0.9)
			}
		}
	}
	return report.Hypothesis{
		Summary:      fmt.Sprintf("link %s-%s down: %s oper-down and no probe gets through", a, b, strings.Join(downs, ", ")),
		Location:     a + "->" + b,
		Suspect:      "interface " + strings.Join(downs, ", "),
		Confidence:   conf,
		EvidenceRefs: refs,
	}, true
}

func other(n, a, b string) string {
	if n == a {
		return b
	}
	return a
}

func appendRef(refs []string, r string) []string {
	if r == "" || slices.Contains(refs, r) {
		return refs
	}
	return append(refs, r)
}

// sameNode reports whether a session entry (its node name and address)
// points at node.
func (f *facts) sameNode(name, addr, node string) bool {
	if name != "" {
		return name == node
	}
	if addr == node || f.plan.Addresses[addr] == node {
		return true
	}
	return f.plan.Intent.Kind == BGPNeighborDown && addr == f.plan.Intent.Neighbor && len(f.path) > 1 && f.path[1] == node
}

// ruleACLDrop: within a suspect segment, a deny rule whose counter rose
// since the baseline on an egress ACL of the upstream node (or an ingress
// ACL of the downstream one). For a BGP intent, a deny rule matching
// TCP/179 that dropped packets is suspect without any probe loss.
func ruleACLDrop(f *facts) []report.Hypothesis {
	var hs []report.Hypothesis
	for _, s := range f.segments() {
		for i := s.from; i <= s.to; i++ {
			node := f.path[i]
			d := f.acls[node]
			for _, acl := range d.v {
				var conf float64
				var towards string
				switch {
				case acl.Direction == "egress" && i < s.to:
					towards, conf = "towards "+f.path[i+1], 0.9
				case acl.Direction == "ingress" && i > s.from:
					towards, conf = "from "+f.path[i-1], 0.85
				default:
					continue
				}
				if i != s.from && i != s.to {
					conf -= 0.1
				}
				for _, r := range acl.Rules {
					if r.Action != "deny" || r.MatchedPackets == 0 {
						continue
					}
					hs = append(hs, report.Hypothesis{
						Summary: fmt.Sprintf("%s %s ACL %s drops %s %s (rule %s matched %d packets since the baseline)",
							node, acl.Direction, acl.Name, pct(s.lossDelta), towards, r.ID, r.MatchedPackets),
						Location:     node,
						Suspect:      fmt.Sprintf("%s ACL %s rule %s", acl.Direction, acl.Name, r.ID),
						Confidence:   conf,
						EvidenceRefs: appendRef(f.segRefs(s), d.ref),
					})
				}
			}
		}
	}
	if f.plan.Intent.Kind == BGPNeighborDown {
		for _, node := range f.path {
			d := f.acls[node]
			for _, acl := range d.v {
				for _, r := range acl.Rules {
					m := strings.ToLower(r.Match)
					if r.Action != "deny" || r.MatchedPackets == 0 || !(strings.Contains(m, "179") || strings.Contains(m, "bgp")) {
						continue
					}
					hs = append(hs, report.Hypothesis{
						Summary: fmt.Sprintf("%s %s ACL %s drops BGP (rule %s, %q, matched %d packets)",
							node, acl.Direction, acl.Name, r.ID, r.Match, r.MatchedPackets),
						Location:     node,
						Suspect:      fmt.Sprintf("%s ACL %s rule %s", acl.Direction, acl.Name, r.ID),
						Confidence:   0.85,
						EvidenceRefs: []string{d.ref},
					})
				}
			}
		}
	}
	return hs
}

// ruleInterfaceErrors: errors or discards on either side of a link. Inside
// a suspect segment any non-zero counter counts; elsewhere only counters
// relative to the plan's baseline (so old errors are not news).
func ruleInterfaceErrors(f *facts) []report.Hypothesis {
	var hs []report.Hypothesis
	segs := f.segments()
	for i := 0; i+1 < len(f.path); i++ {
		a, b := f.path[i], f.path[i+1]
		inSeg := slices.ContainsFunc(segs, func(s segment) bool { return s.from <= i && i < s.to })
		var refs []string
		if j := slices.IndexFunc(segs, func(s segment) bool { return s.from <= i && i < s.to }); j >= 0 {
			refs = f.segRefs(segs[j])
		}
		var found []string
		delta := true
		check := func(node, peer string, out bool) {
			if !inSeg && !f.baseline[node] {
				return
			}
			ifs, _ := f.facing(node, peer)
			for _, it := range ifs {
				st := it.Stats
				var n uint64
				var what string
				if out {
					n, what = st.OutErrors+st.OutDiscards, "out-errors/discards"
				} else {
					n, what = st.InErrors+st.InDiscards, "in-errors/discards"
				}
				if n == 0 {
					continue
				}
				found = append(found, fmt.Sprintf("%s %s %s %d", node, it.Name, what, n))
				refs = appendRef(refs, f.ifaces[node].ref)
				delta = delta && f.baseline[node]
			}
		}
		check(a, b, true)
		check(b, a, false)
		if len(found) == 0 {
			continue
		}
		conf := 0.6
		if inSeg {
			conf = 0.75
		}
		if !delta {
			conf -= 0.2
		}
		hs = append(hs, report.Hypothesis{
			Summary:      fmt.Sprintf("interface errors on link %s->%s: %s", a, b, strings.Join(found, "; ")),
			Location:     a + "->" + b,
			Suspect:      "link " + a + "->" + b + " (" + found[0] + ")",
			Confidence:   conf,
			EvidenceRefs: refs,
		})
	}
	return hs
}

// ruleSessions compares both ends of BGP and BFD sessions between plan
// nodes: one end down while the other is up (or has no session) is a
// one-sided session; both down with a link down is the link.
func ruleSessions(f *facts) []report.Hypothesis {
	var hs []report.Hypothesis
	type ends struct{ state, ref string }
	bgpEnd := func(a, b string) (ends, bool, bool) {
		d, ok := f.bgp[a]
		if !ok {
			return ends{}, false, false
		}
		for _, n := range d.v {
			if f.sameNode(n.Node, n.Address, b) || (a == f.path[0] && n.Address == f.plan.Intent.Neighbor) {
				st := n.State
				if n.LastError != "" {
					st += " (" + n.LastError + ")"
				}
				return ends{st, d.ref}, n.State == "Established", true
			}
		}
		return ends{"no session", d.ref}, false, true
	}
	bfdEnd := func(a, b string) (ends, bool, bool) {
		d, ok := f.bfd[a]
		if !ok {
			return ends{}, false, false
		}
		for _, s := range d.v {
			if f.sameNode(s.Node, s.Peer, b) {
				st := s.LocalState
				if s.Diagnostic != "" {
					st += " (" + s.Diagnostic + ")"
				}
				return ends{st, d.ref}, s.LocalState == "Up", true
			}
		}
		return ends{"no session", d.ref}, false, true
	}
	for _, proto := range []struct {
		name string
		end  func(a, b string) (ends, bool, bool)
	}{{"BGP", bgpEnd}, {"BFD", bfdEnd}} {
		for i := 0; i < len(f.path); i++ {
			for j := i + 1; j < len(f.path); j++ {
				a, b := f.path[i], f.path[j]
				ea, upA, okA := proto.end(a, b)
				eb, upB, okB := proto.end(b, a)
				absentA, absentB := ea.state == "no session", eb.state == "no session"
				if (absentA && absentB) || (upA && upB) {
					continue
				}
				switch {
				case okA && okB && !upA && !absentA && (upB || absentB):
					hs = append(hs, oneSided(proto.name, a, b, ea.state, eb.state, ea.ref, eb.ref))
				case okA && okB && !upB && !absentB && (upA || absentA):
					hs = append(hs, oneSided(proto.name, b, a, eb.state, ea.state, eb.ref, ea.ref))
				case okA && okB && !upA && !upB:
					if h, ok := f.linkDown(a, b, []string{ea.ref, eb.ref}); ok && j == i+1 {
						hs = append(hs, h)
						continue
					}
					hs = append(hs, report.Hypothesis{
						Summary:      fmt.Sprintf("%s session %s-%s down on both ends: %s shows %s, %s shows %s", proto.name, a, b, a, ea.state, b, eb.state),
						Location:     a + "->" + b,
						Suspect:      proto.name + " session " + a + "-" + b,
						Confidence:   0.5,
						EvidenceRefs: []string{ea.ref, eb.ref},
					})
				case okA && !okB && !upA && !absentA && f.plan.Intent.Kind == BGPNeighborDown && proto.name == "BGP":
					hs = append(hs, report.Hypothesis{
						Summary:      fmt.Sprintf("BGP session on %s towards %s is %s; %s's side was not read", a, b, ea.state, b),
						Location:     a,
						Suspect:      "BGP neighbor " + b,
						Confidence:   0.4,
						EvidenceRefs: []string{ea.ref},
					})
				}
			}
		}
	}
	// A neighbour address no member owns: only the local side is known.
	if f.plan.Intent.Kind == BGPNeighborDown && len(f.path) == 1 {
		a := f.path[0]
		for _, n := range f.bgp[a].v {
			if n.Address == f.plan.Intent.Neighbor && n.State != "Established" {
				hs = append(hs, report.Hypothesis{
					Summary:      fmt.Sprintf("BGP neighbor %s on %s is %s; the neighbour is not a domain member, so its side was not read", n.Address, a, cmp.Or(n.State, "unknown")),
					Location:     a,
					Suspect:      "BGP neighbor " + n.Address,
					Confidence:   0.4,
					EvidenceRefs: []string{f.bgp[a].ref},
				})
			}
		}
	}
	return hs
}

func oneSided(proto, down, up, downState, upState, downRef, upRef string) report.Hypothesis {
	return report.Hypothesis{
		Summary:      fmt.Sprintf("one-sided %s session on %s towards %s: %s shows %s, %s shows %s", proto, down, up, down, downState, up, upState),
		Location:     down,
		Suspect:      proto + " session towards " + up,
		Confidence:   0.8,
		EvidenceRefs: []string{downRef, upRef},
	}
}

// fallback is the hypothesis when no rule fired.
func (f *facts) fallback() report.Hypothesis {
	var checked []string
	for _, p := range f.probes {
		if p.failed == "" {
			checked = append(checked, fmt.Sprintf("loss %s %s->%s", pct(p.res.LossPercent), p.node, p.to))
		}
	}
	for _, kind := range []struct {
		what  string
		nodes func() []string
	}{
		{"interfaces", func() []string { return keys(f.ifaces) }},
		{"ACLs", func() []string { return keys(f.acls) }},
		{"BGP", func() []string { return keys(f.bgp) }},
		{"BFD", func() []string { return keys(f.bfd) }},
	} {
		if ns := kind.nodes(); len(ns) > 0 {
			checked = append(checked, kind.what+" on "+strings.Join(f.inPathOrder(ns), ", "))
		}
	}
	refs := slices.Clone(f.okRefs)
	for _, p := range f.probes {
		if p.failed == "" {
			refs = appendRef(refs, p.ref)
		}
	}
	// A probe that failed leaves part of the path unmeasured: saying "no
	// fault" then would be a guess.
	var probeFailed []string
	for _, p := range f.probes {
		if p.failed != "" {
			probeFailed = append(probeFailed, fmt.Sprintf("probe %s->%s (%s)", p.node, p.to, p.failed))
		}
	}
	if len(f.untrusted) > 0 || len(checked) == 0 || len(probeFailed) > 0 {
		why := "no results"
		switch {
		case len(f.untrusted) > 0:
			why = f.untrustedList() + " untrusted"
		case len(probeFailed) > 0:
			why = strings.Join(probeFailed, ", ") + " failed"
		}
		s := "inconclusive: " + why
		if len(checked) > 0 {
			s += "; no fault in what was checked: " + strings.Join(checked, "; ")
		}
		if len(f.failed) > 0 {
			s += "; failed: " + strings.Join(f.failed, ", ")
		}
		return report.Hypothesis{Summary: s, Confidence: 0.2, EvidenceRefs: refs, Rule: RuleInconclusive}
	}
	s := "no fault found: " + strings.Join(checked, "; ")
	conf := 0.7
	if len(f.failed) > 0 {
		s += "; failed: " + strings.Join(f.failed, ", ")
		conf = 0.5
	}
	return report.Hypothesis{Summary: s, Confidence: conf, EvidenceRefs: refs, Rule: RuleNoFault}
}

func keys[T any](m map[string]nodeData[T]) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func (f *facts) inPathOrder(ns []string) []string {
	slices.SortFunc(ns, func(a, b string) int {
		ia, ib := f.idx(a), f.idx(b)
		if ia < 0 {
			ia = len(f.path)
		}
		if ib < 0 {
			ib = len(f.path)
		}
		return cmp.Or(cmp.Compare(ia, ib), cmp.Compare(a, b))
	})
	return ns
}

// unwrapResult returns the data of a step result: the structured content
// of a tools/call result (or its text when that is JSON), the text of a
// resources/read result, or the body itself when it is neither. A tool
// result with isError set is an error carrying its text.
func unwrapResult(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return nil, errors.New("collab: empty result")
	}
	var env struct {
		Content           []mcp.Content          `json:"content"`
		StructuredContent json.RawMessage        `json:"structuredContent"`
		IsError           bool                   `json:"isError"`
		Contents          []mcp.ResourceContents `json:"contents"`
	}
	if json.Unmarshal(raw, &env) != nil {
		return raw, nil
	}
	text := ""
	if len(env.Content) > 0 {
		text = env.Content[0].Text
	}
	switch {
	case env.IsError:
		return nil, fmt.Errorf("collab: tool error: %s", cmp.Or(text, "no detail"))
	case len(env.StructuredContent) > 0 && string(env.StructuredContent) != "null":
		return env.StructuredContent, nil
	case len(env.Content) > 0 && json.Valid([]byte(text)):
		return []byte(text), nil
	case len(env.Content) > 0:
		return nil, errors.New("collab: tool result has no structured content")
	case len(env.Contents) > 0:
		return []byte(env.Contents[0].Text), nil
	}
	return raw, nil
}

// decodeList reads a JSON array, or an object holding it under key (the
// tools' structured content: {"node": …, key: [...]}).
func decodeList[T any](body []byte, key string, out *[]T) error {
	if err := json.Unmarshal(body, out); err == nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return fmt.Errorf("collab: %s: %w", key, err)
	}
	v, ok := obj[key]
	if !ok {
		return fmt.Errorf("collab: no %q in result", key)
	}
	return json.Unmarshal(v, out)
}

// decodeInterfaces reads []device.Interface, the interface-counters tool's
// {"interfaces": [...]}, or RFC 7951 ietf-interfaces JSON (RFC 8343; 64-bit
// counters are strings per RFC 7951 §6.1).
func decodeInterfaces(body []byte) ([]device.Interface, error) {
	var y struct {
		Interfaces *struct {
			Interface []struct {
				Name       string         `json:"name"`
				Type       string         `json:"type"`
				Enabled    *bool          `json:"enabled"`
				OperStatus string         `json:"oper-status"`
				Statistics map[string]any `json:"statistics"`
				IPv4       *yangIPAddrs   `json:"ietf-ip:ipv4"`
				IPv6       *yangIPAddrs   `json:"ietf-ip:ipv6"`
			} `json:"interface"`
		} `json:"ietf-interfaces:interfaces"`
	}
	if json.Unmarshal(body, &y) == nil && y.Interfaces != nil {
		var out []device.Interface
		for _, it := range y.Interfaces.Interface {
			d := device.Interface{Name: it.Name, Type: it.Type, Enabled: it.Enabled == nil || *it.Enabled, OperUp: it.OperStatus == "up"}
			c := func(k string) uint64 {
				switch v := it.Statistics[k].(type) {
				case string:
					n, _ := strconv.ParseUint(v, 10, 64)
					return n
				case float64:
					return uint64(v)
				}
				return 0
			}
			d.Stats = device.InterfaceStats{InOctets: c("in-octets"), InUnicastPkts: c("in-unicast-pkts"),
				InDiscards: c("in-discards"), InErrors: c("in-errors"), OutOctets: c("out-octets"),
				OutUnicastPkts: c("out-unicast-pkts"), OutDiscards: c("out-discards"), OutErrors: c("out-errors")}
			for _, ips := range []*yangIPAddrs{it.IPv4, it.IPv6} {
				if ips == nil {
					continue
				}
				for _, a := range ips.Address {
					d.Addresses = append(d.Addresses, fmt.Sprintf("%s/%d", a.IP, a.PrefixLength))
				}
			}
			out = append(out, d)
		}
		return out, nil
	}
	var out []device.Interface
	if err := decodeList(body, "interfaces", &out); err != nil {
		return nil, err
	}
	return out, nil
}

type yangIPAddrs struct {
	Address []struct {
		IP           string `json:"ip"`
		PrefixLength int    `json:"prefix-length"`
	} `json:"address"`
}

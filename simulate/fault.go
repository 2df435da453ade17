package simulate

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrInvalidFault is wrapped by every error of ParseFault and Inject.
var ErrInvalidFault = errors.New("simulate: invalid fault")

// Fault is one injectable fault. String returns its command-line form,
// which ParseFault reads back.
type Fault interface {
	String() string
	apply(n *Network) (undo func(), err error)
}

// ACLDrop arms a deny rule that drops a fraction Rate of the packets
// leaving Node through an interface, counted in the rule's counters and
// in the interface's out-discards. The interface is Interface, else the
// one towards the node Towards, else the one ACL is bound to. ACL is the
// ACL to use; if empty, the egress ACL on the interface, else a new ACL
// "fault-<interface>". Rule is the rule to arm; if empty, the ACL's first
// deny rule, else a new rule "fault" placed first.
type ACLDrop struct {
	Node, ACL, Rule, Interface, Towards string
	Rate                                float64
}

// LinkLoss drops a fraction Rate of the packets crossing the link from
// node From to node To, in that direction only.
type LinkLoss struct {
	From, To string
	Rate     float64
}

// LinkDown takes the link between nodes A and B down; routing goes
// around it where it can.
type LinkDown struct{ A, B string }

// MissingSID removes SID (if empty, the node's End SID) from Node, so
// that SRv6 probes through it are dropped there.
type MissingSID struct{ Node, SID string }

// SessionDown brings one side of a session down: Node shows its session
// with Peer as down while Peer keeps what it last heard. Protocol is
// "bgp" or "bfd".
type SessionDown struct{ Node, Peer, Protocol string }

func rate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

// String returns "acl-drop:NODE:ACL:TOWARDS:RATE[:RULE]" where TOWARDS is
// a node name or "if=INTERFACE".
func (f ACLDrop) String() string {
	towards := f.Towards
	if f.Interface != "" {
		towards = "if=" + f.Interface
	}
	s := "acl-drop:" + f.Node + ":" + f.ACL + ":" + towards + ":" + rate(f.Rate)
	if f.Rule != "" {
		s += ":" + f.Rule
	}
	return s
}

// String returns "link-loss:FROM:TO:RATE".
func (f LinkLoss) String() string { return "link-loss:" + f.From + ":" + f.To + ":" + rate(f.Rate) }

// String returns "link-down:A:B".
func (f LinkDown) String() string { return "link-down:" + f.A + ":" + f.B }

// String returns "missing-sid:NODE[:SID]".
func (f MissingSID) String() string {
	if f.SID == "" {
		return "missing-sid:" + f.Node
	}
	return "missing-sid:" + f.Node + ":" + f.SID
}

// String returns "session-down:NODE:PEER:PROTOCOL".
func (f SessionDown) String() string {
	return "session-down:" + f.Node + ":" + f.Peer + ":" + f.Protocol
}

// ParseFault reads the command-line form of a fault:
//
//	acl-drop:NODE:ACL:TOWARDS:RATE[:RULE]   TOWARDS: neighbour node, "if=IFNAME" or empty; ACL may be empty
//	link-loss:FROM:TO:RATE                  one direction
//	link-down:A:B
//	missing-sid:NODE[:SID]                  SID: an IPv6 address (its colons are part of it)
//	session-down:NODE:PEER:bgp|bfd          one-sided
//
// RATE is a fraction in (0,1] or a percentage such as "3%". Node names
// must be non-empty and contain no colon.
func ParseFault(s string) (Fault, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidFault, s, fmt.Sprintf(format, args...))
	}
	kind, rest, _ := strings.Cut(strings.TrimSpace(s), ":")
	f := strings.Split(rest, ":")
	names := func(xs ...string) error {
		for _, x := range xs {
			if !validName(x) {
				return bad("%q is not a valid name", x)
			}
		}
		return nil
	}
	switch kind {
	case "acl-drop":
		if len(f) != 4 && len(f) != 5 {
			return nil, bad("want acl-drop:NODE:ACL:TOWARDS:RATE[:RULE]")
		}
		d := ACLDrop{Node: f[0], ACL: f[1]}
		if ifn, ok := strings.CutPrefix(f[2], "if="); ok {
			d.Interface = ifn
			if err := names(ifn); err != nil {
				return nil, err
			}
		} else if d.Towards = f[2]; d.Towards != "" {
			if err := names(d.Towards); err != nil {
				return nil, err
			}
		}
		if err := names(d.Node); err != nil {
			return nil, err
		}
		if d.ACL != "" && strings.ContainsAny(d.ACL, " \t\r\n") {
			return nil, bad("ACL name %q has white space", d.ACL)
		}
		if d.Interface == "" && d.Towards == "" && d.ACL == "" {
			return nil, bad("name an ACL, a neighbour or an interface")
		}
		r, err := parseRate(f[3])
		if err != nil {
			return nil, bad("%v", err)
		}
		d.Rate = r
		if len(f) == 5 {
			if f[4] == "" || strings.ContainsAny(f[4], " \t\r\n") {
				return nil, bad("rule %q is empty or has white space", f[4])
			}
			d.Rule = f[4]
		}
		return d, nil
	case "link-loss":
		if len(f) != 3 {
			return nil, bad("want link-loss:FROM:TO:RATE")
		}
		if err := names(f[0], f[1]); err != nil {
			return nil, err
		}
		r, err := parseRate(f[2])
		if err != nil {
			return nil, bad("%v", err)
		}
		return LinkLoss{From: f[0], To: f[1], Rate: r}, nil
	case "link-down":
		if len(f) != 2 {
			return nil, bad("want link-down:A:B")
		}
		if err := names(f[0], f[1]); err != nil {
			return nil, err
		}
		return LinkDown{A: f[0], B: f[1]}, nil
	case "missing-sid":
		nodeName, sid, hasSID := strings.Cut(rest, ":")
		if err := names(nodeName); err != nil {
			return nil, err
		}
		m := MissingSID{Node: nodeName}
		if hasSID {
			a, err := netip.ParseAddr(sid)
			if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() {
				return nil, bad("SID %q is not an IPv6 address", sid)
			}
			m.SID = a.String()
		}
		return m, nil
	case "session-down":
		if len(f) != 3 {
			return nil, bad("want session-down:NODE:PEER:bgp|bfd")
		}
		if err := names(f[0], f[1]); err != nil {
			return nil, err
		}
		if f[2] != "bgp" && f[2] != "bfd" {
			return nil, bad("protocol %q is neither bgp nor bfd", f[2])
		}
		return SessionDown{Node: f[0], Peer: f[1], Protocol: f[2]}, nil
	}
	return nil, bad("unknown kind %q (acl-drop, link-loss, link-down, missing-sid, session-down)", kind)
}

func parseRate(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q is not a number", s)
	}
	if pct {
		v /= 100
	}
	if !(v > 0 && v <= 1) {
		return 0, fmt.Errorf("rate %q is not in (0,1]", s)
	}
	return v, nil
}

// Inject applies f and returns the function that undoes it; undo may be
// called more than once. Faults stack: undo them in reverse order.
func (n *Network) Inject(f Fault) (undo func(), err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	u, err := f.apply(n)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			u()
		})
	}, nil
}

func (n *Network) node(name string) (*node, error) {
	nd, ok := n.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w: %w %q", ErrInvalidFault, ErrUnknownNode, name)
	}
	return nd, nil
}

// linkBetween returns the first link joining a and b and the direction
// from a to b.
func (n *Network) linkBetween(a, b *node) (*link, int, error) {
	for _, l := range n.links {
		for dir := range 2 {
			if l.ends[dir] == a && l.ends[1-dir] == b {
				return l, dir, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("%w: no link between %s and %s", ErrInvalidFault, a.name, b.name)
}

func (f ACLDrop) apply(n *Network) (func(), error) {
	if !(f.Rate > 0 && f.Rate <= 1) {
		return nil, fmt.Errorf("%w: %s: rate not in (0,1]", ErrInvalidFault, f)
	}
	nd, err := n.node(f.Node)
	if err != nil {
		return nil, err
	}
	var ifc *iface
	switch {
	case f.Interface != "":
		if ifc = nd.iface(f.Interface); ifc == nil {
			return nil, fmt.Errorf("%w: %s has no interface %q", ErrInvalidFault, nd.name, f.Interface)
		}
	case f.Towards != "":
		p, err := n.node(f.Towards)
		if err != nil {
			return nil, err
		}
		if ifc = nd.ifaceTowards(p); ifc == nil {
			return nil, fmt.Errorf("%w: no link from %s to %s", ErrInvalidFault, nd.name, p.name)
		}
	}
	var undos []func()
	a := (*acl)(nil)
	if f.ACL != "" {
		a = nd.aclByName(f.ACL)
	} else if ifc != nil {
		for _, x := range nd.acls {
			if x.ifname == ifc.name && x.dir == "egress" {
				a = x
				break
			}
		}
	}
	switch {
	case a == nil && ifc == nil:
		return nil, fmt.Errorf("%w: %s has no ACL %q and no interface was named", ErrInvalidFault, nd.name, f.ACL)
	case a == nil:
		name := f.ACL
		if name == "" {
			name = "fault-" + ifc.name
		}
		a = &acl{name: name, ifname: ifc.name, dir: "egress"}
		nd.acls = append(nd.acls, a)
		undos = append(undos, func() {
			for i, x := range nd.acls {
				if x == a {
					nd.acls = append(nd.acls[:i:i], nd.acls[i+1:]...)
					break
				}
			}
		})
	case ifc != nil && (a.ifname != ifc.name || a.dir != "egress"):
		return nil, fmt.Errorf("%w: ACL %s on %s is bound to %s %s, not egress of %s", ErrInvalidFault, a.name, nd.name, a.dir, a.ifname, ifc.name)
	case a.dir != "egress":
		return nil, fmt.Errorf("%w: ACL %s on %s is not an egress ACL", ErrInvalidFault, a.name, nd.name)
	}
	var r *rule
	for _, x := range a.rules {
		if (f.Rule != "" && x.id == f.Rule) || (f.Rule == "" && x.action == "deny") {
			r = x
			break
		}
	}
	if r == nil {
		id := f.Rule
		if id == "" {
			id = "fault"
		}
		r = &rule{id: id, action: "deny", match: "injected fault"}
		a.rules = append([]*rule{r}, a.rules...)
		undos = append(undos, func() {
			for i, x := range a.rules {
				if x == r {
					a.rules = append(a.rules[:i:i], a.rules[i+1:]...)
					break
				}
			}
		})
	} else {
		old := *r
		undos = append(undos, func() { r.action, r.enabled, r.rate = old.action, old.enabled, old.rate })
	}
	r.action, r.enabled, r.rate, r.phase = "deny", true, f.Rate, nd.rng.Float64()
	return func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
	}, nil
}

func (f LinkLoss) apply(n *Network) (func(), error) {
	if !(f.Rate > 0 && f.Rate <= 1) {
		return nil, fmt.Errorf("%w: %s: rate not in (0,1]", ErrInvalidFault, f)
	}
	a, err := n.node(f.From)
	if err != nil {
		return nil, err
	}
	b, err := n.node(f.To)
	if err != nil {
		return nil, err
	}
	l, dir, err := n.linkBetween(a, b)
	if err != nil {
		return nil, err
	}
	old := l.loss[dir]
	l.loss[dir] = f.Rate
	return func() { l.loss[dir] = old }, nil
}

func (f LinkDown) apply(n *Network) (func(), error) {
	a, err := n.node(f.A)
	if err != nil {
		return nil, err
	}
	b, err := n.node(f.B)
	if err != nil {
		return nil, err
	}
	l, _, err := n.linkBetween(a, b)
	if err != nil {
		return nil, err
	}
	l.down++
	n.version++
	return func() { l.down--; n.version++ }, nil
}

func (f MissingSID) apply(n *Network) (func(), error) {
	nd, err := n.node(f.Node)
	if err != nil {
		return nil, err
	}
	var sid netip.Addr
	if f.SID == "" {
		if len(nd.sids) == 0 {
			return nil, fmt.Errorf("%w: %s has no SID", ErrInvalidFault, nd.name)
		}
		sid = nd.sids[0]
	} else {
		a, err := netip.ParseAddr(f.SID)
		if err != nil || !slices.Contains(nd.sids, a) {
			return nil, fmt.Errorf("%w: %s has no SID %q", ErrInvalidFault, nd.name, f.SID)
		}
		sid = a
	}
	nd.missing[sid]++
	return func() {
		if nd.missing[sid]--; nd.missing[sid] <= 0 {
			delete(nd.missing, sid)
		}
	}, nil
}

func (f SessionDown) apply(n *Network) (func(), error) {
	nd, err := n.node(f.Node)
	if err != nil {
		return nil, err
	}
	found := false
	switch f.Protocol {
	case "bgp":
		found = nd.configuresBGP(f.Peer)
	case "bfd":
		for _, s := range nd.bfd {
			found = found || s.Peer == f.Peer
		}
	default:
		return nil, fmt.Errorf("%w: protocol %q is neither bgp nor bfd", ErrInvalidFault, f.Protocol)
	}
	if !found {
		return nil, fmt.Errorf("%w: %s has no %s session with %q", ErrInvalidFault, nd.name, f.Protocol, f.Peer)
	}
	k := sessKey{f.Peer, f.Protocol}
	nd.down[k]++
	return func() {
		if nd.down[k]--; nd.down[k] <= 0 {
			delete(nd.down, k)
		}
	}, nil
}

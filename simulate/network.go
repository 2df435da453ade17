package simulate

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
)

// ErrUnknownNode is returned for a node name the network does not have.
var ErrUnknownNode = errors.New("simulate: unknown node")

// Network is a simulated network built from a Topology. All of its state
// (counters, faults, random streams) sits behind one mutex, so its
// devices are safe for concurrent use.
type Network struct {
	mu       sync.Mutex
	name     string
	nodes    map[string]*node
	order    []*node
	links    []*link
	epoch    time.Time
	realtime bool
	version  uint64 // incremented whenever link state changes
}

type node struct {
	name     string
	as       uint32
	loopback netip.Addr
	locator  netip.Prefix
	sids     []netip.Addr
	missing  map[netip.Addr]int // SIDs removed by MissingSID faults
	ifs      []*iface
	acls     []*acl
	bgp      []BGPSpec
	bfd      []BFDSpec
	down     map[sessKey]int // SessionDown faults
	rng      *rand.Rand
}

type sessKey struct{ peer, proto string }

type iface struct {
	name    string
	typ     string
	addr    netip.Prefix
	mac     string
	speed   uint64
	enabled bool
	link    *link
	side    int // 0: A end of link, 1: B end
	stats   device.InterfaceStats
}

type link struct {
	ends    [2]*node
	ifs     [2]*iface
	latency float64
	metric  int
	loss    [2]float64 // [0]: A→B, [1]: B→A
	down    int        // LinkDown faults, plus one if the spec says down
}

type acl struct {
	name, ifname, dir string
	rules             []*rule
}

type rule struct {
	id, action, match string
	enabled           bool
	// rate is the fraction of packets the rule matches. An ACL matches
	// flows, not dice rolls, so a rule with rate r matches exactly every
	// 1/r-th packet on average (error diffusion from a seeded phase)
	// rather than each packet with probability r: a 3 % rule drops 3 of
	// 100 probes, as a rule matching 3 % of the flow hashes would.
	rate        float64
	phase       float64
	pkts, bytes uint64
}

// NewNetwork builds the network of topo. seed fixes every random
// decision: two networks with the same topology and seed that see the
// same calls in the same order per device give the same results.
func NewNetwork(topo Topology, seed int64) (*Network, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	n := &Network{name: topo.Name, nodes: map[string]*node{}, epoch: time.Now().UTC().Truncate(time.Second)}
	for _, ns := range topo.Nodes {
		nd := &node{name: ns.Name, as: ns.AS, bgp: ns.BGP, bfd: ns.BFD,
			missing: map[netip.Addr]int{}, down: map[sessKey]int{}}
		if nd.as == 0 {
			nd.as = 65000
		}
		h := fnv.New64a()
		h.Write([]byte(ns.Name))
		nd.rng = rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
		if ns.Locator != "" {
			nd.locator = netip.MustParsePrefix(ns.Locator).Masked()
		}
		for _, s := range ns.SIDs {
			nd.sids = append(nd.sids, netip.MustParseAddr(s))
		}
		if len(nd.sids) == 0 && nd.locator.IsValid() {
			nd.sids = []netip.Addr{nd.locator.Addr().Next()}
		}
		switch {
		case ns.Loopback != "":
			nd.loopback = netip.MustParseAddr(ns.Loopback)
		case len(nd.sids) > 0:
			nd.loopback = nd.sids[0]
		}
		for _, is := range ns.Interfaces {
			nd.addIface(is)
		}
		n.nodes[nd.name] = nd
		n.order = append(n.order, nd)
	}
	for _, ls := range topo.Links {
		l := &link{latency: ls.LatencyMS, metric: ls.Metric, loss: [2]float64{ls.LossAtoB, ls.LossBtoA}}
		if l.latency == 0 {
			l.latency = 1
		}
		if l.metric == 0 {
			l.metric = 10
		}
		if ls.Down {
			l.down = 1
		}
		for side, ep := range []string{ls.A, ls.B} {
			nn, ifn, _ := Endpoint(ep)
			nd := n.nodes[nn]
			ifc := nd.iface(ifn)
			if ifc == nil {
				ifc = nd.addIface(InterfaceSpec{Name: ifn})
			}
			ifc.link, ifc.side = l, side
			l.ends[side], l.ifs[side] = nd, ifc
		}
		n.links = append(n.links, l)
	}
	for _, nd := range n.order {
		if nd.iface("lo") == nil {
			lo := nd.addIface(InterfaceSpec{Name: "lo"})
			lo.typ, lo.mac, lo.speed = "iana-if-type:softwareLoopback", "", 0
			if nd.loopback.IsValid() {
				lo.addr = netip.PrefixFrom(nd.loopback, nd.loopback.BitLen())
			}
		}
	}
	for _, ns := range topo.Nodes {
		nd := n.nodes[ns.Name]
		for _, as := range ns.ACLs {
			a := &acl{name: as.Name, ifname: as.Interface, dir: as.Direction}
			if a.dir == "" {
				a.dir = "egress"
			}
			for _, rs := range as.Rules {
				r := &rule{id: rs.ID, action: rs.Action, match: rs.Match, enabled: !rs.Disabled, rate: rs.Rate}
				if r.rate == 0 {
					r.rate = 1
				}
				a.rules = append(a.rules, r)
			}
			nd.acls = append(nd.acls, a)
		}
	}
	for _, ifc := range n.allIfaces() {
		ifc.stats.DiscontinuityTime = n.epoch
	}
	return n, nil
}

func (nd *node) addIface(is InterfaceSpec) *iface {
	ifc := &iface{name: is.Name, typ: "iana-if-type:ethernetCsmacd", mac: is.MAC, speed: is.SpeedMbps * 1_000_000, enabled: !is.Disabled}
	if is.Address != "" {
		ifc.addr = netip.MustParsePrefix(is.Address)
	}
	if ifc.speed == 0 {
		ifc.speed = 10_000_000_000
	}
	if ifc.mac == "" {
		h := fnv.New64a()
		h.Write([]byte(nd.name + ":" + is.Name))
		s := h.Sum64()
		// 0x02: locally administered, unicast.
		ifc.mac = fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(s>>32), byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
	}
	nd.ifs = append(nd.ifs, ifc)
	return ifc
}

func (nd *node) iface(name string) *iface {
	for _, i := range nd.ifs {
		if i.name == name {
			return i
		}
	}
	return nil
}

func (nd *node) aclByName(name string) *acl {
	for _, a := range nd.acls {
		if a.name == name {
			return a
		}
	}
	return nil
}

func (n *Network) allIfaces() []*iface {
	var out []*iface
	for _, nd := range n.order {
		out = append(out, nd.ifs...)
	}
	return out
}

// Name returns the topology's name.
func (n *Network) Name() string { return n.name }

// Nodes returns the node names in topology order.
func (n *Network) Nodes() []string {
	out := make([]string, len(n.order))
	for i, nd := range n.order {
		out[i] = nd.name
	}
	return out
}

// Device returns the backend of node name.
func (n *Network) Device(name string) (device.Backend, error) {
	nd, ok := n.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	return &Device{net: n, node: nd}, nil
}

// SetRealtime makes probes take wall-clock time: each probe waits its
// interval. By default probes take none, which keeps tests fast; RTTs are
// computed from link latencies either way.
func (n *Network) SetRealtime(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.realtime = on
}

func (l *link) up() bool {
	return l.down == 0 && l.ifs[0].enabled && l.ifs[1].enabled
}

// hop is one link crossing from ends[dir] to ends[1-dir].
type hop struct {
	l   *link
	dir int
}

func (h hop) from() *node      { return h.l.ends[h.dir] }
func (h hop) to() *node        { return h.l.ends[1-h.dir] }
func (h hop) out() *iface      { return h.l.ifs[h.dir] }
func (h hop) in() *iface       { return h.l.ifs[1-h.dir] }
func (h hop) loss() float64    { return h.l.loss[h.dir] }
func (h hop) latency() float64 { return h.l.latency }

// route returns the shortest path by IGP metric over the links that are
// up (the IGP has converged around down links), ties broken by topology
// order. ok is false when dst is unreachable; a path to src itself is
// empty.
func (n *Network) route(src, dst *node) (path []hop, ok bool) {
	if src == dst {
		return nil, true
	}
	const inf = int(^uint(0) >> 1)
	dist := map[*node]int{src: 0}
	prev := map[*node]hop{}
	done := map[*node]bool{}
	for {
		var u *node
		best := inf
		for _, nd := range n.order {
			if d, seen := dist[nd]; seen && !done[nd] && d < best {
				u, best = nd, d
			}
		}
		if u == nil {
			return nil, false
		}
		if u == dst {
			break
		}
		done[u] = true
		for _, l := range n.links {
			if !l.up() {
				continue
			}
			for dir := range 2 {
				if l.ends[dir] != u {
					continue
				}
				v := l.ends[1-dir]
				if d, seen := dist[v]; !seen || best+l.metric < d {
					dist[v] = best + l.metric
					prev[v] = hop{l, dir}
				}
			}
		}
	}
	for cur := dst; cur != src; {
		h := prev[cur]
		path = append(path, h)
		cur = h.from()
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, true
}

// filter runs a packet through the ACLs of ifc in direction dir and
// reports whether it passes; matches are counted.
func (nd *node) filter(ifc *iface, dir string, size int, rng *rand.Rand) bool {
	for _, a := range nd.acls {
		if a.ifname != ifc.name || a.dir != dir {
			continue
		}
		for _, r := range a.rules {
			if !r.enabled {
				continue
			}
			if r.rate < 1 {
				r.phase += r.rate
				if r.phase < 1 {
					continue
				}
				r.phase--
			}
			r.pkts++
			r.bytes += uint64(size)
			if r.action == "deny" {
				return false
			}
			break
		}
	}
	return true
}

// cross sends one packet over h, drawing from rng, and reports whether it
// arrived; every counter on the way moves.
func cross(h hop, size int, rng *rand.Rand) (ok bool, why string) {
	out, in := h.out(), h.in()
	if !h.from().filter(out, "egress", size, rng) {
		out.stats.OutDiscards++
		return false, fmt.Sprintf("dropped by an egress ACL on %s %s", h.from().name, out.name)
	}
	out.stats.OutOctets += uint64(size)
	out.stats.OutUnicastPkts++
	if p := h.loss(); p > 0 && rng.Float64() < p {
		return false, fmt.Sprintf("lost on the link %s→%s", h.from().name, h.to().name)
	}
	if !h.to().filter(in, "ingress", size, rng) {
		in.stats.InDiscards++
		return false, fmt.Sprintf("dropped by an ingress ACL on %s %s", h.to().name, in.name)
	}
	in.stats.InOctets += uint64(size)
	in.stats.InUnicastPkts++
	return true, ""
}

// travel sends one packet along path; rtt accumulates one-way latency with
// up to 5 % jitter.
func travel(path []hop, size int, rng *rand.Rand, rtt *float64) (last *iface, ok bool, why string) {
	for _, h := range path {
		if ok, why := cross(h, size, rng); !ok {
			return nil, false, why
		}
		*rtt += h.latency() * (1 + 0.05*rng.Float64())
		last = h.in()
	}
	return last, true, ""
}

// resolve maps a node name, loopback, interface address or SID to a node
// and, for SRv6, the SID to process there.
func (n *Network) resolve(s string) (nd *node, sid netip.Addr, ok bool) {
	if x, found := n.nodes[s]; found {
		if len(x.sids) > 0 {
			sid = x.sids[0]
		}
		return x, sid, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, netip.Addr{}, false
	}
	a = a.WithZone("")
	for _, x := range n.order {
		for _, y := range x.sids {
			if y == a {
				return x, a, true
			}
		}
	}
	for _, x := range n.order {
		if x.locator.IsValid() && x.locator.Contains(a) {
			return x, a, true
		}
	}
	for _, x := range n.order {
		if x.loopback == a {
			return x, netip.Addr{}, true
		}
		for _, i := range x.ifs {
			if i.addr.IsValid() && i.addr.Addr() == a {
				return x, netip.Addr{}, true
			}
		}
	}
	return nil, netip.Addr{}, false
}

// sidActive reports whether sid is an End SID instantiated on nd.
func (nd *node) sidActive(sid netip.Addr) bool {
	if nd.missing[sid] > 0 {
		return false
	}
	for _, s := range nd.sids {
		if s == sid {
			return true
		}
	}
	return false
}

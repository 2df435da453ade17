package simulate

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/d2dmesh/d2d/device"
)

// Device is one simulated node; it implements device.Backend.
type Device struct {
	net  *Network
	node *node
}

var _ device.Backend = (*Device)(nil)

// Probe sizes in bytes: an ICMPv6 echo with 56 bytes of data in IPv6 is
// 104; an SRv6 probe adds an SRH of 8 bytes plus 16 per segment.
const (
	pingSize   = 104
	srhFixed   = 8
	srhSegment = 16
	// hopProcessingMS is the forwarding delay per node.
	hopProcessingMS = 0.02
)

// Node returns the node name.
func (d *Device) Node() string { return d.node.name }

// Interfaces returns every interface, "lo" included.
func (d *Device) Interfaces(ctx context.Context) ([]device.Interface, error) {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	out := make([]device.Interface, 0, len(d.node.ifs))
	for i, ifc := range d.node.ifs {
		di := device.Interface{
			Name: ifc.name, Type: ifc.typ, Enabled: ifc.enabled,
			OperUp:      ifc.enabled && (ifc.link == nil || ifc.link.up()),
			PhysAddress: ifc.mac, SpeedBPS: ifc.speed, IfIndex: i + 1, Stats: ifc.stats,
		}
		if ifc.addr.IsValid() {
			di.Addresses = []string{ifc.addr.String()}
		}
		out = append(out, di)
	}
	return out, nil
}

type segment struct {
	node *node
	sid  netip.Addr
	text string
}

func (d *Device) segments(req device.SRv6PingRequest) ([]segment, error) {
	if req.Head != "" && req.Head != d.node.name {
		if h, _, ok := d.net.resolve(req.Head); !ok || h != d.node {
			return nil, fmt.Errorf("simulate: head %q is not node %s: %w", req.Head, d.node.name, device.ErrUnknownSID)
		}
	}
	var segs []segment
	add := func(s string) error {
		nd, sid, ok := d.net.resolve(s)
		if !ok {
			return fmt.Errorf("simulate: segment %q: %w", s, device.ErrUnknownSID)
		}
		if !sid.IsValid() {
			return fmt.Errorf("simulate: segment %q: node %s has no SID: %w", s, nd.name, device.ErrUnknownSID)
		}
		segs = append(segs, segment{nd, sid, sid.String()})
		return nil
	}
	for _, s := range req.SIDList {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	if req.Tail != "" {
		tn, _, ok := d.net.resolve(req.Tail)
		if !ok {
			return nil, fmt.Errorf("simulate: tail %q: %w", req.Tail, device.ErrUnknownSID)
		}
		if len(segs) == 0 || segs[len(segs)-1].node != tn {
			if err := add(req.Tail); err != nil {
				return nil, err
			}
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("simulate: empty segment list: %w", device.ErrUnknownSID)
	}
	return segs, nil
}

// SRv6Ping sends probes from this node through the segment list: to each
// segment's node along the IGP shortest path, where the SID must be
// instantiated, then back from the last segment to this node by plain
// IPv6 routing.
func (d *Device) SRv6Ping(ctx context.Context, req device.SRv6PingRequest, progress device.Progress) (device.ProbeResult, error) {
	d.net.mu.Lock()
	segs, err := d.segments(req)
	d.net.mu.Unlock()
	if err != nil {
		return device.ProbeResult{}, err
	}
	count, interval, _ := req.Probes()
	size := pingSize + srhFixed + srhSegment*len(segs)
	path := make([]string, len(segs))
	for i, s := range segs {
		path[i] = s.text
	}
	res, err := d.probe(ctx, count, interval, progress, "srv6-ping", func(routes *routeCache, rtt *float64) (bool, string) {
		cur := d.node
		rng := d.node.rng
		for _, s := range segs {
			p, ok := routes.get(cur, s.node)
			if !ok {
				return false, fmt.Sprintf("no route from %s to %s", cur.name, s.node.name)
			}
			last, ok, why := travel(p, size, rng, rtt)
			if !ok {
				return false, why
			}
			*rtt += hopProcessingMS * float64(len(p))
			cur = s.node
			if !cur.sidActive(s.sid) {
				if last != nil {
					last.stats.InDiscards++
				}
				return false, fmt.Sprintf("SID %s not instantiated on %s", s.sid, cur.name)
			}
		}
		back, ok := routes.get(cur, d.node)
		if !ok {
			return false, fmt.Sprintf("no route from %s back to %s", cur.name, d.node.name)
		}
		_, ok, why := travel(back, pingSize, rng, rtt)
		return ok, why
	})
	res.Path = path
	return res, err
}

// Ping sends echo requests to a node name or address.
func (d *Device) Ping(ctx context.Context, req device.PingRequest, progress device.Progress) (device.ProbeResult, error) {
	d.net.mu.Lock()
	dst, _, ok := d.net.resolve(req.Destination)
	srcOK := req.Source == "" || d.ownsAddress(req.Source)
	d.net.mu.Unlock()
	if !ok {
		return device.ProbeResult{}, fmt.Errorf("simulate: destination %q: %w", req.Destination, device.ErrUnknownSID)
	}
	if !srcOK {
		return device.ProbeResult{}, fmt.Errorf("simulate: source %q is not on %s: %w", req.Source, d.node.name, device.ErrUnknownInterface)
	}
	count, interval, _ := req.Probes()
	res, err := d.probe(ctx, count, interval, progress, "ping", func(routes *routeCache, rtt *float64) (bool, string) {
		there, ok := routes.get(d.node, dst)
		if !ok {
			return false, fmt.Sprintf("no route from %s to %s", d.node.name, dst.name)
		}
		if _, ok, why := travel(there, pingSize, d.node.rng, rtt); !ok {
			return false, why
		}
		back, ok := routes.get(dst, d.node)
		if !ok {
			return false, fmt.Sprintf("no route from %s back to %s", dst.name, d.node.name)
		}
		_, ok, why := travel(back, pingSize, d.node.rng, rtt)
		return ok, why
	})
	res.Path = []string{req.Destination}
	return res, err
}

func (d *Device) ownsAddress(s string) bool {
	if d.node.iface(s) != nil {
		return true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	if a == d.node.loopback {
		return true
	}
	for _, i := range d.node.ifs {
		if i.addr.IsValid() && i.addr.Addr() == a {
			return true
		}
	}
	return false
}

// routeCache memoises shortest paths during one call; it starts over
// when the network's link state changes (Network.version).
type routeCache struct {
	n       *Network
	version uint64
	m       map[[2]*node]route
}

type route struct {
	path []hop
	ok   bool
}

func (c *routeCache) get(a, b *node) ([]hop, bool) {
	if c.m == nil || c.version != c.n.version {
		c.m, c.version = map[[2]*node]route{}, c.n.version
	}
	k := [2]*node{a, b}
	r, seen := c.m[k]
	if !seen {
		r.path, r.ok = c.n.route(a, b)
		c.m[k] = r
	}
	return r.path, r.ok
}

// probe runs count probes, each under the network lock so that faults and
// counters are consistent within a probe.
func (d *Device) probe(ctx context.Context, count int, interval time.Duration, progress device.Progress, what string,
	one func(routes *routeCache, rtt *float64) (bool, string)) (device.ProbeResult, error) {
	res := device.ProbeResult{RTTMinMS: math.Inf(1)}
	var sum float64
	var why string
	step := max(1, count/20)
	routes := &routeCache{n: d.net}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return device.ProbeResult{}, fmt.Errorf("simulate: %s: %w", what, err)
		}
		d.net.mu.Lock()
		var rtt float64
		ok, reason := one(routes, &rtt)
		realtime := d.net.realtime
		d.net.mu.Unlock()
		res.Sent++
		if ok {
			res.Received++
			rtt = math.Round(rtt*1000) / 1000
			sum += rtt
			res.RTTMinMS = min(res.RTTMinMS, rtt)
			res.RTTMaxMS = max(res.RTTMaxMS, rtt)
		} else if why == "" {
			why = reason
		}
		if progress != nil && ((i+1)%step == 0 || i+1 == count) {
			progress(float64(i+1), float64(count), fmt.Sprintf("%s: %d/%d probes, %d received", what, i+1, count, res.Received))
		}
		if realtime && i+1 < count {
			t := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return device.ProbeResult{}, fmt.Errorf("simulate: %s: %w", what, ctx.Err())
			case <-t.C:
			}
		}
	}
	if res.Received > 0 {
		res.RTTAvgMS = math.Round(sum/float64(res.Received)*1000) / 1000
	} else {
		res.RTTMinMS = 0
		res.Error = why
	}
	res.LossPercent = math.Round(float64(res.Sent-res.Received)/float64(res.Sent)*100*100) / 100
	return res, nil
}

// Traceroute probes each hop of the IGP shortest path once.
func (d *Device) Traceroute(ctx context.Context, req device.TracerouteRequest, progress device.Progress) (device.TracerouteResult, error) {
	maxHops := req.MaxHops
	if maxHops <= 0 {
		maxHops = 16
	}
	res := device.TracerouteResult{Destination: req.Destination, Hops: []device.TracerouteHop{}}
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	dst, _, ok := d.net.resolve(req.Destination)
	if !ok {
		return res, fmt.Errorf("simulate: destination %q: %w", req.Destination, device.ErrUnknownSID)
	}
	if dst == d.node {
		res.Reached = true
		res.Hops = append(res.Hops, device.TracerouteHop{TTL: 1, Node: dst.name, Address: addrOf(dst, nil)})
		return res, nil
	}
	path, ok := d.net.route(d.node, dst)
	if !ok {
		res.Hops = append(res.Hops, device.TracerouteHop{TTL: 1, Lost: true})
		return res, nil
	}
	rng := d.node.rng
	for ttl := 1; ttl <= len(path) && ttl <= maxHops; ttl++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("simulate: traceroute: %w", err)
		}
		var rtt float64
		last, ok, _ := travel(path[:ttl], pingSize, rng, &rtt)
		hopNode := path[ttl-1].to()
		if ok {
			back, routed := d.net.route(hopNode, d.node)
			if routed {
				_, ok, _ = travel(back, pingSize, rng, &rtt)
			} else {
				ok = false
			}
		}
		h := device.TracerouteHop{TTL: ttl}
		if ok {
			h.Node, h.Address, h.RTTMS = hopNode.name, addrOf(hopNode, last), math.Round(rtt*1000)/1000
		} else {
			h.Lost = true
		}
		res.Hops = append(res.Hops, h)
		if progress != nil {
			progress(float64(ttl), float64(len(path)), fmt.Sprintf("traceroute: hop %d", ttl))
		}
		if ttl == len(path) {
			res.Reached = ok
		}
	}
	return res, nil
}

// addrOf is the address a node answers from: the interface the probe
// came in on, else the loopback.
func addrOf(nd *node, in *iface) string {
	if in != nil && in.addr.IsValid() {
		return in.addr.Addr().String()
	}
	if nd.loopback.IsValid() {
		return nd.loopback.String()
	}
	return ""
}

// ACLs returns the ACLs with their counters.
func (d *Device) ACLs(ctx context.Context) ([]device.ACL, error) {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	out := make([]device.ACL, 0, len(d.node.acls))
	for _, a := range d.node.acls {
		da := device.ACL{Name: a.name, Interface: a.ifname, Direction: a.dir, Rules: make([]device.ACLRule, 0, len(a.rules))}
		for _, r := range a.rules {
			da.Rules = append(da.Rules, device.ACLRule{ID: r.id, Action: r.action, Match: r.match, Enabled: r.enabled,
				MatchedPackets: r.pkts, MatchedBytes: r.bytes})
		}
		out = append(out, da)
	}
	return out, nil
}

// SetACLRule enables or disables one rule.
func (d *Device) SetACLRule(ctx context.Context, aclName, ruleID string, enabled bool) error {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	r := d.node.rule(aclName, ruleID)
	if r == nil {
		return fmt.Errorf("simulate: %s ACL %q rule %q: %w", d.node.name, aclName, ruleID, device.ErrUnknownACL)
	}
	r.enabled = enabled
	return nil
}

func (nd *node) rule(aclName, ruleID string) *rule {
	if a := nd.aclByName(aclName); a != nil {
		for _, r := range a.rules {
			if r.id == ruleID {
				return r
			}
		}
	}
	return nil
}

// peerUp reports whether the session's transport works: a route each way.
func (d *Device) peerUp(p *node) bool {
	_, there := d.net.route(d.node, p)
	_, back := d.net.route(p, d.node)
	return there && back
}

// BGPNeighbors derives each session's state from reachability and
// SessionDown faults. A fault is one-sided: the faulted node shows Idle
// while its peer still shows Established, what it last heard.
func (d *Device) BGPNeighbors(ctx context.Context) ([]device.BGPNeighbor, error) {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	out := make([]device.BGPNeighbor, 0, len(d.node.bgp))
	for _, s := range d.node.bgp {
		p := d.net.nodes[s.Peer]
		nb := device.BGPNeighbor{Address: s.Address, Node: p.name, LocalAS: d.node.as, PeerAS: s.PeerAS, State: "Established"}
		if nb.Address == "" && p.loopback.IsValid() {
			nb.Address = p.loopback.String()
		}
		if nb.PeerAS == 0 {
			nb.PeerAS = p.as
		}
		switch {
		case d.node.down[sessKey{p.name, "bgp"}] > 0:
			nb.State, nb.LastError = "Idle", "Cease: administrative shutdown"
		case d.net.nodes[p.name].down[sessKey{d.node.name, "bgp"}] > 0:
			// The peer went down on its own; this side has not yet noticed.
		case !p.configuresBGP(d.node.name):
			nb.State, nb.LastError = "Active", "peer has no session configured for this node"
		case !d.peerUp(p):
			nb.State, nb.LastError = "Active", "Hold Timer Expired"
		}
		out = append(out, nb)
	}
	return out, nil
}

func (nd *node) configuresBGP(peer string) bool {
	for _, s := range nd.bgp {
		if s.Peer == peer {
			return true
		}
	}
	return false
}

// BFDSessions derives each session's state from the link towards the
// peer and SessionDown faults (one-sided, like BGP).
func (d *Device) BFDSessions(ctx context.Context) ([]device.BFDSession, error) {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	out := make([]device.BFDSession, 0, len(d.node.bfd))
	for _, s := range d.node.bfd {
		p := d.net.nodes[s.Peer]
		ifc := d.node.iface(s.Interface)
		if s.Interface == "" {
			ifc = d.node.ifaceTowards(p)
		}
		bs := device.BFDSession{Peer: p.name, Node: p.name, LocalState: "Up", RemoteState: "Up"}
		if ifc != nil {
			bs.Interface = ifc.name
			if ifc.link != nil {
				if pi := ifc.link.ifs[1-ifc.side]; pi.addr.IsValid() {
					bs.Peer = pi.addr.Addr().String()
				}
			}
		}
		linked := ifc != nil && ifc.link != nil && ifc.link.ends[1-ifc.side] == p
		switch {
		case d.node.down[sessKey{p.name, "bfd"}] > 0:
			bs.LocalState, bs.Diagnostic = "Down", "Control Detection Time Expired"
		case p.down[sessKey{d.node.name, "bfd"}] > 0:
			// One-sided: this side still has the peer's last Up.
		case !linked || !ifc.link.up():
			bs.LocalState, bs.RemoteState, bs.Diagnostic = "Down", "Down", "Control Detection Time Expired"
		}
		out = append(out, bs)
	}
	return out, nil
}

func (nd *node) ifaceTowards(p *node) *iface {
	for _, i := range nd.ifs {
		if i.link != nil && i.link.ends[1-i.side] == p {
			return i
		}
	}
	return nil
}

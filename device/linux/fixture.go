package linux

import (
	"errors"
	"fmt"
)

// PathLab is a linear SRv6 test topology — nodes[0] — nodes[1] — … — as
// data: the links to create and, per node, the commands (one string per
// command, fields separated by single spaces, as internal/netns.Script and
// containerlab exec lines take them) that configure addresses, routes and
// SIDs once the links exist. The privileged tests, the contract suite and
// the lab runner build the headline scenario's PE-1 — P-2 — PE-3 from it.
//
// Node i (1-based position) gets
//
//	fc00:0:i::1/128 and 10.255.0.i/32 on lo   the node's address (Names)
//	fc00:0:i::e                               seg6local End SID (EndSIDs)
//	fc00:0:i::d6                              seg6local End.DT6 SID, table local (DecapSIDs)
//	unreachable fc00:0:i::/48                 so a missing SID is answered, not looped
//
// and link k (between nodes k and k+1) is 2001:db8:0:k::/64 and
// 10.0.k.0/24 with host parts 1 and 2. A node's interface towards its
// left neighbour is eth1, towards its right neighbour eth2 (eth1 on the
// first node). Every address of Names also acts as an End SID and as the
// decapsulating tail SID, through the kernel's own SRH processing of
// local addresses (net.ipv6.conf.*.seg6_enabled=1).
type PathLab struct {
	Nodes     []string
	Names     map[string]string // node → IPv6 address, for Config.Names
	Names4    map[string]string // node → IPv4 address of lo
	EndSIDs   map[string]string // node → End SID
	DecapSIDs map[string]string // node → End.DT6 SID
	Links     []PathLink
	Commands  map[string][]string
}

// PathLink is one point-to-point link of a PathLab.
type PathLink struct {
	A, AIf, AAddr string // AAddr: A's IPv6 address on the link, no prefix length
	B, BIf, BAddr string
}

// SRv6TriangleScript is SRv6PathScript for the headline scenario's three
// nodes, e.g. ("PE-1", "P-2", "PE-3").
func SRv6TriangleScript(head, transit, tail string) (*PathLab, error) {
	return SRv6PathScript(head, transit, tail)
}

// SRv6PathScript describes a linear SRv6 path through 2 to 250 nodes with
// distinct names.
func SRv6PathScript(nodes ...string) (*PathLab, error) {
	n := len(nodes)
	if n < 2 || n > 250 {
		return nil, errors.New("linux: an SRv6 path needs 2 to 250 nodes")
	}
	p := &PathLab{
		Nodes: nodes, Names: map[string]string{}, Names4: map[string]string{},
		EndSIDs: map[string]string{}, DecapSIDs: map[string]string{}, Commands: map[string][]string{},
	}
	for i, name := range nodes {
		if _, dup := p.Names[name]; dup || name == "" {
			return nil, fmt.Errorf("linux: node name %q empty or repeated", name)
		}
		p.Names[name] = fmt.Sprintf("fc00:0:%d::1", i+1)
		p.Names4[name] = fmt.Sprintf("10.255.0.%d", i+1)
		p.EndSIDs[name] = fmt.Sprintf("fc00:0:%d::e", i+1)
		p.DecapSIDs[name] = fmt.Sprintf("fc00:0:%d::d6", i+1)
	}
	// ifs[i] lists node i's (interface, own v6, own v4) per link side:
	// left then right neighbour; nh6/nh4 the neighbour's addresses.
	type side struct{ ifname, nh6, nh4 string }
	left, right := make([]*side, n), make([]*side, n)
	for k := 1; k < n; k++ { // link k joins nodes k-1 and k (0-based)
		a, b := k-1, k
		aIf := "eth2"
		if a == 0 {
			aIf = "eth1"
		}
		p.Links = append(p.Links, PathLink{
			A: nodes[a], AIf: aIf, AAddr: fmt.Sprintf("2001:db8:0:%d::1", k),
			B: nodes[b], BIf: "eth1", BAddr: fmt.Sprintf("2001:db8:0:%d::2", k),
		})
		right[a] = &side{aIf, fmt.Sprintf("2001:db8:0:%d::2", k), fmt.Sprintf("10.0.%d.2", k)}
		left[b] = &side{"eth1", fmt.Sprintf("2001:db8:0:%d::1", k), fmt.Sprintf("10.0.%d.1", k)}
	}
	for i, name := range nodes {
		id := i + 1
		cmds := []string{
			"sysctl -qw net.ipv6.conf.all.forwarding=1",
			"sysctl -qw net.ipv4.ip_forward=1",
			"sysctl -qw net.ipv6.conf.all.seg6_enabled=1",
		}
		var first string
		for k, s := range []*side{left[i], right[i]} {
			if s == nil {
				continue
			}
			if first == "" {
				first = s.ifname
			}
			link := i + k // left link of node i is link i, right link is link i+1
			host := 2 - k // left side: we are B (host 2); right side: we are A (host 1)
			cmds = append(cmds,
				"sysctl -qw net.ipv6.conf."+s.ifname+".seg6_enabled=1",
				fmt.Sprintf("ip -6 addr add 2001:db8:0:%d::%d/64 dev %s nodad", link, host, s.ifname),
				fmt.Sprintf("ip addr add 10.0.%d.%d/24 dev %s", link, host, s.ifname),
			)
		}
		cmds = append(cmds,
			fmt.Sprintf("ip -6 addr add fc00:0:%d::1/128 dev lo", id),
			fmt.Sprintf("ip addr add 10.255.0.%d/32 dev lo", id),
			fmt.Sprintf("ip -6 route add unreachable fc00:0:%d::/48", id),
			fmt.Sprintf("ip -6 route add fc00:0:%d::e/128 encap seg6local action End dev %s", id, first),
			fmt.Sprintf("ip -6 route add fc00:0:%d::d6/128 encap seg6local action End.DT6 table local dev %s", id, first),
		)
		for j := range nodes {
			if j == i {
				continue
			}
			s := right[i]
			if j < i {
				s = left[i]
			}
			cmds = append(cmds,
				fmt.Sprintf("ip -6 route add fc00:0:%d::/48 via %s", j+1, s.nh6),
				fmt.Sprintf("ip route add 10.255.0.%d/32 via %s", j+1, s.nh4),
			)
		}
		for k := 1; k < n; k++ { // links not attached to node i
			if k == i || k == i+1 {
				continue
			}
			s := right[i]
			if k < i {
				s = left[i]
			}
			cmds = append(cmds,
				fmt.Sprintf("ip -6 route add 2001:db8:0:%d::/64 via %s", k, s.nh6),
				fmt.Sprintf("ip route add 10.0.%d.0/24 via %s", k, s.nh4),
			)
		}
		p.Commands[name] = cmds
	}
	return p, nil
}

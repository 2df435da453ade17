package simulate

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidTopology is wrapped by every topology validation error.
var ErrInvalidTopology = errors.New("simulate: invalid topology")

// Topology is the data of a simulated network. The zero values of the
// optional fields take the defaults their docs name when NewNetwork
// builds the network; ParseTopology leaves them as written.
type Topology struct {
	Name  string     `json:"name,omitempty" yaml:"name,omitempty"`
	Nodes []NodeSpec `json:"nodes" yaml:"nodes"`
	Links []LinkSpec `json:"links,omitempty" yaml:"links,omitempty"`
}

// NodeSpec is one network element.
type NodeSpec struct {
	// Name is the node name; no colons (they separate the fields of
	// link endpoints and faults) and no white space.
	Name string `json:"name" yaml:"name"`
	// Loopback is the node's IPv6 address (ping and BGP target). If
	// empty, the first SID.
	Loopback string `json:"loopback,omitempty" yaml:"loopback,omitempty"`
	// Locator is the SRv6 locator prefix, e.g. fc00:0:1::/48. Addresses
	// inside it resolve to this node.
	Locator string `json:"locator,omitempty" yaml:"locator,omitempty"`
	// SIDs are the instantiated End SIDs; the first is the node's End
	// SID, used when a segment list names the node. If empty and a
	// locator is set, the locator's address ::1.
	SIDs []string `json:"sids,omitempty" yaml:"sids,omitempty"`
	// AS is the node's BGP autonomous system. If zero, 65000.
	AS uint32 `json:"as,omitempty" yaml:"as,omitempty"`
	// Interfaces are declared interfaces; those named only by links are
	// added with defaults, and "lo" is added as the loopback interface.
	Interfaces []InterfaceSpec `json:"interfaces,omitempty" yaml:"interfaces,omitempty"`
	ACLs       []ACLSpec       `json:"acls,omitempty" yaml:"acls,omitempty"`
	BGP        []BGPSpec       `json:"bgp,omitempty" yaml:"bgp,omitempty"`
	BFD        []BFDSpec       `json:"bfd,omitempty" yaml:"bfd,omitempty"`
}

// InterfaceSpec is one interface of a node.
type InterfaceSpec struct {
	Name string `json:"name" yaml:"name"`
	// Address is an IPv6 or IPv4 prefix in CIDR notation, e.g.
	// 2001:db8:12::1/64.
	Address string `json:"address,omitempty" yaml:"address,omitempty"`
	// MAC is the physical address. If empty, one derived from the node
	// and interface names (locally administered).
	MAC string `json:"mac,omitempty" yaml:"mac,omitempty"`
	// SpeedMbps is the nominal speed. If zero, 10000.
	SpeedMbps uint64 `json:"speedMbps,omitempty" yaml:"speedMbps,omitempty"`
	// Disabled makes the interface administratively down.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// ACLSpec is an access list bound to one interface.
type ACLSpec struct {
	Name      string `json:"name" yaml:"name"`
	Interface string `json:"interface" yaml:"interface"`
	// Direction is "egress" or "ingress". If empty, egress.
	Direction string     `json:"direction,omitempty" yaml:"direction,omitempty"`
	Rules     []RuleSpec `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// RuleSpec is one ACL rule. Rules are evaluated in order; the first
// enabled rule that matches decides; a packet no rule matches passes.
type RuleSpec struct {
	ID string `json:"id" yaml:"id"`
	// Action is "permit" or "deny".
	Action string `json:"action" yaml:"action"`
	// Match describes the rule for people; the simulation does not parse it.
	Match string `json:"match,omitempty" yaml:"match,omitempty"`
	// Rate is the fraction of packets the rule matches, in [0,1]. If
	// zero, every packet: the model of a match on packet fields that a
	// fraction of the traffic has.
	Rate     float64 `json:"rate,omitempty" yaml:"rate,omitempty"`
	Disabled bool    `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// BGPSpec is one BGP session, configured on the node that lists it.
type BGPSpec struct {
	// Peer is the neighbour's node name.
	Peer string `json:"peer" yaml:"peer"`
	// Address is the neighbour's address. If empty, its loopback.
	Address string `json:"address,omitempty" yaml:"address,omitempty"`
	// PeerAS is the neighbour's AS. If zero, the peer node's AS.
	PeerAS uint32 `json:"peerAs,omitempty" yaml:"peerAs,omitempty"`
}

// BFDSpec is one single-hop BFD session.
type BFDSpec struct {
	// Peer is the neighbour's node name.
	Peer string `json:"peer" yaml:"peer"`
	// Interface is the local interface. If empty, the first one linked
	// to Peer.
	Interface string `json:"interface,omitempty" yaml:"interface,omitempty"`
}

// LinkSpec is a point-to-point link between two interfaces.
type LinkSpec struct {
	// A and B are endpoints "node:interface".
	A string `json:"a" yaml:"a"`
	B string `json:"b" yaml:"b"`
	// LatencyMS is the one-way latency. If zero, 1 ms.
	LatencyMS float64 `json:"latencyMs,omitempty" yaml:"latencyMs,omitempty"`
	// Metric is the IGP cost used for shortest paths. If zero, 10.
	Metric int `json:"metric,omitempty" yaml:"metric,omitempty"`
	// LossAtoB and LossBtoA are per-direction loss probabilities in [0,1].
	LossAtoB float64 `json:"lossAtoB,omitempty" yaml:"lossAtoB,omitempty"`
	LossBtoA float64 `json:"lossBtoA,omitempty" yaml:"lossBtoA,omitempty"`
	// Down makes the link down from the start.
	Down bool `json:"down,omitempty" yaml:"down,omitempty"`
}

// LoadTopology reads a topology file in YAML or JSON.
func LoadTopology(path string) (Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Topology{}, fmt.Errorf("simulate: %w", err)
	}
	t, err := ParseTopology(b)
	if err != nil {
		return Topology{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTopology decodes a topology in YAML or JSON (JSON is YAML) and
// validates it. Unknown fields are errors, so that a typo does not pass
// silently.
func ParseTopology(b []byte) (Topology, error) {
	var t Topology
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&t); err != nil {
		return Topology{}, fmt.Errorf("%w: %v", ErrInvalidTopology, err)
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// Endpoint splits a link endpoint "node:interface".
func Endpoint(s string) (node, iface string, err error) {
	node, iface, ok := strings.Cut(s, ":")
	if !ok || node == "" || iface == "" || strings.Contains(iface, ":") {
		return "", "", fmt.Errorf("%w: endpoint %q is not node:interface", ErrInvalidTopology, s)
	}
	return node, iface, nil
}

func validName(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsAny(s, ": \t\r\n/") && strings.ToValidUTF8(s, "") == s
}

func probability(p float64) bool { return p >= 0 && p <= 1 }

// Validate checks names, references and ranges.
func (t Topology) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidTopology, fmt.Sprintf(format, args...))
	}
	if len(t.Nodes) == 0 {
		return bad("no nodes")
	}
	ifaces := map[string]map[string]bool{}
	for _, n := range t.Nodes {
		if !validName(n.Name) {
			return bad("node name %q: empty, too long, or contains ':', '/' or white space", n.Name)
		}
		if ifaces[n.Name] != nil {
			return bad("duplicate node %q", n.Name)
		}
		m := map[string]bool{}
		ifaces[n.Name] = m
		for _, i := range n.Interfaces {
			if !validName(i.Name) || m[i.Name] {
				return bad("node %s: interface name %q empty, invalid or duplicate", n.Name, i.Name)
			}
			m[i.Name] = true
			if i.Address != "" {
				if _, err := netip.ParsePrefix(i.Address); err != nil {
					return bad("node %s interface %s: address: %v", n.Name, i.Name, err)
				}
			}
		}
		var loc netip.Prefix
		if n.Locator != "" {
			p, err := netip.ParsePrefix(n.Locator)
			if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
				return bad("node %s: locator %q is not an IPv6 prefix", n.Name, n.Locator)
			}
			loc = p
		}
		for _, s := range n.SIDs {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() {
				return bad("node %s: SID %q is not an IPv6 address", n.Name, s)
			}
			if loc.IsValid() && !loc.Contains(a) {
				return bad("node %s: SID %s is outside locator %s", n.Name, s, loc)
			}
		}
		if n.Loopback != "" {
			if a, err := netip.ParseAddr(n.Loopback); err != nil || a.Zone() != "" {
				return bad("node %s: loopback %q is not an address", n.Name, n.Loopback)
			}
		}
	}
	used := map[string]bool{}
	for i, l := range t.Links {
		for _, ep := range []string{l.A, l.B} {
			n, ifn, err := Endpoint(ep)
			if err != nil {
				return fmt.Errorf("link %d: %w", i, err)
			}
			if ifaces[n] == nil {
				return bad("link %d: unknown node %q", i, n)
			}
			if !validName(ifn) {
				return bad("link %d: interface name %q invalid", i, ifn)
			}
			if used[ep] {
				return bad("link %d: endpoint %s is on another link", i, ep)
			}
			used[ep] = true
			ifaces[n][ifn] = true
		}
		if l.A == l.B {
			return bad("link %d joins %s to itself", i, l.A)
		}
		if !probability(l.LossAtoB) || !probability(l.LossBtoA) {
			return bad("link %d: loss must be in [0,1]", i)
		}
		if !(l.LatencyMS >= 0) || math.IsInf(l.LatencyMS, 0) || l.Metric < 0 {
			return bad("link %d: latency and metric must be finite and not negative", i)
		}
	}
	for _, n := range t.Nodes {
		ifaces[n.Name]["lo"] = true
		acls := map[string]bool{}
		for _, a := range n.ACLs {
			if a.Name == "" || strings.ContainsAny(a.Name, ": \t\r\n") || acls[a.Name] {
				return bad("node %s: ACL name %q empty, invalid or duplicate", n.Name, a.Name)
			}
			acls[a.Name] = true
			if !ifaces[n.Name][a.Interface] {
				return bad("node %s ACL %s: unknown interface %q", n.Name, a.Name, a.Interface)
			}
			if a.Direction != "" && a.Direction != "egress" && a.Direction != "ingress" {
				return bad("node %s ACL %s: direction %q is neither egress nor ingress", n.Name, a.Name, a.Direction)
			}
			ids := map[string]bool{}
			for _, r := range a.Rules {
				if r.ID == "" || strings.ContainsAny(r.ID, ": \t\r\n") || ids[r.ID] {
					return bad("node %s ACL %s: rule id %q empty, invalid or duplicate", n.Name, a.Name, r.ID)
				}
				ids[r.ID] = true
				if r.Action != "permit" && r.Action != "deny" {
					return bad("node %s ACL %s rule %s: action %q is neither permit nor deny", n.Name, a.Name, r.ID, r.Action)
				}
				if !probability(r.Rate) {
					return bad("node %s ACL %s rule %s: rate must be in [0,1]", n.Name, a.Name, r.ID)
				}
			}
		}
		for _, s := range n.BGP {
			if ifaces[s.Peer] == nil || s.Peer == n.Name {
				return bad("node %s: BGP peer %q is not another node", n.Name, s.Peer)
			}
			if s.Address != "" {
				if _, err := netip.ParseAddr(s.Address); err != nil {
					return bad("node %s: BGP peer address %q: %v", n.Name, s.Address, err)
				}
			}
		}
		for _, s := range n.BFD {
			if ifaces[s.Peer] == nil || s.Peer == n.Name {
				return bad("node %s: BFD peer %q is not another node", n.Name, s.Peer)
			}
			if s.Interface != "" && !ifaces[n.Name][s.Interface] {
				return bad("node %s: BFD interface %q unknown", n.Name, s.Interface)
			}
		}
	}
	return nil
}

// Triangle returns the headline topology of docs/ARCHITECTURE.md §1 as data: PE-1,
// P-2 and PE-3 joined in a triangle, SRv6 locators fc00:0:N::/48 with
// End SIDs fc00:0:N::1, iBGP between the PEs, BFD on every link, and ACL
// 2001 on PE-1's egress towards P-2 with a disabled deny rule 10 (the
// slot that the ACLDrop fault arms) before permit-all rule 20.
func Triangle() Topology {
	node := func(name string, n int, ifs ...InterfaceSpec) NodeSpec {
		return NodeSpec{
			Name: name, Loopback: fmt.Sprintf("2001:db8::%d", n),
			Locator: fmt.Sprintf("fc00:0:%d::/48", n), SIDs: []string{fmt.Sprintf("fc00:0:%d::1", n)},
			AS: 65000, Interfaces: ifs,
		}
	}
	pe1 := node("PE-1", 1,
		InterfaceSpec{Name: "eth1", Address: "2001:db8:12::1/64"},
		InterfaceSpec{Name: "eth2", Address: "2001:db8:13::1/64"})
	p2 := node("P-2", 2,
		InterfaceSpec{Name: "eth1", Address: "2001:db8:12::2/64"},
		InterfaceSpec{Name: "eth2", Address: "2001:db8:23::2/64"})
	pe3 := node("PE-3", 3,
		InterfaceSpec{Name: "eth1", Address: "2001:db8:23::3/64"},
		InterfaceSpec{Name: "eth2", Address: "2001:db8:13::3/64"})
	pe1.ACLs = []ACLSpec{{Name: "2001", Interface: "eth1", Direction: "egress", Rules: []RuleSpec{
		{ID: "10", Action: "deny", Match: "ipv6 any any (reserved deny slot)", Disabled: true},
		{ID: "20", Action: "permit", Match: "ipv6 any any"},
	}}}
	pe1.BGP = []BGPSpec{{Peer: "PE-3"}}
	pe3.BGP = []BGPSpec{{Peer: "PE-1"}}
	pe1.BFD = []BFDSpec{{Peer: "P-2", Interface: "eth1"}, {Peer: "PE-3", Interface: "eth2"}}
	p2.BFD = []BFDSpec{{Peer: "PE-1", Interface: "eth1"}, {Peer: "PE-3", Interface: "eth2"}}
	pe3.BFD = []BFDSpec{{Peer: "P-2", Interface: "eth1"}, {Peer: "PE-1", Interface: "eth2"}}
	return Topology{
		Name:  "triangle",
		Nodes: []NodeSpec{pe1, p2, pe3},
		Links: []LinkSpec{
			{A: "PE-1:eth1", B: "P-2:eth1", LatencyMS: 1},
			{A: "P-2:eth2", B: "PE-3:eth1", LatencyMS: 1},
			{A: "PE-1:eth2", B: "PE-3:eth2", LatencyMS: 2},
		},
	}
}

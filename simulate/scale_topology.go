package simulate

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Topology generators for the scale harness. Every generated node gets
// what the headline topology has: an IPv6 loopback 2001:db8::<i>, an SRv6
// locator fc00:0:<i>::/48 with End SID fc00:0:<i>::1, one interface per
// link (eth1, eth2, … in link order) with an address from the link's /64
// 2001:db8:1:<k>::/64 (::1 on the A side, ::2 on the B side), and a BFD
// session on every link. <i> and <k> are hexadecimal, 1-based; node
// indexes and link indexes up to 65535 fit.

// genBuilder accumulates a generated topology.
type genBuilder struct {
	t     Topology
	index map[string]int
	adj   map[[2]int]bool
}

func newGen(name string, names []string) *genBuilder {
	g := &genBuilder{t: Topology{Name: name}, index: map[string]int{}, adj: map[[2]int]bool{}}
	for i, n := range names {
		g.index[n] = i
		g.t.Nodes = append(g.t.Nodes, NodeSpec{
			Name:     n,
			Loopback: fmt.Sprintf("2001:db8::%x", i+1),
			Locator:  fmt.Sprintf("fc00:0:%x::/48", i+1),
			SIDs:     []string{fmt.Sprintf("fc00:0:%x::1", i+1)},
			AS:       65000,
		})
	}
	return g
}

// link joins nodes i and j unless they are the same or already joined.
func (g *genBuilder) link(i, j int) bool {
	if i == j {
		return false
	}
	key := [2]int{min(i, j), max(i, j)}
	if g.adj[key] {
		return false
	}
	g.adj[key] = true
	k := len(g.t.Links) + 1
	a, b := &g.t.Nodes[i], &g.t.Nodes[j]
	ia := fmt.Sprintf("eth%d", len(a.Interfaces)+1)
	ib := fmt.Sprintf("eth%d", len(b.Interfaces)+1)
	a.Interfaces = append(a.Interfaces, InterfaceSpec{Name: ia, Address: fmt.Sprintf("2001:db8:1:%x::1/64", k)})
	b.Interfaces = append(b.Interfaces, InterfaceSpec{Name: ib, Address: fmt.Sprintf("2001:db8:1:%x::2/64", k)})
	a.BFD = append(a.BFD, BFDSpec{Peer: b.Name, Interface: ia})
	b.BFD = append(b.BFD, BFDSpec{Peer: a.Name, Interface: ib})
	g.t.Links = append(g.t.Links, LinkSpec{A: a.Name + ":" + ia, B: b.Name + ":" + ib, LatencyMS: 1})
	return true
}

// seqNames returns prefix1 … prefixN, zero-padded to the width of n so
// that names sort in index order.
func seqNames(prefix string, n int) []string {
	w := len(fmt.Sprint(n))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%0*d", prefix, w, i+1)
	}
	return out
}

// LineTopology returns n nodes R1 … Rn in a chain: the longest paths for
// a given size, n-1 hops end to end.
func LineTopology(n int) Topology {
	g := newGen(fmt.Sprintf("line-%d", n), seqNames("R", n))
	for i := 0; i+1 < n; i++ {
		g.link(i, i+1)
	}
	return g.t
}

// RingTopology returns n nodes R1 … Rn in a ring (a line for n < 3).
func RingTopology(n int) Topology {
	g := newGen(fmt.Sprintf("ring-%d", n), seqNames("R", n))
	for i := 0; i+1 < n; i++ {
		g.link(i, i+1)
	}
	if n >= 3 {
		g.link(n-1, 0)
	}
	return g.t
}

// LeafSpineTopology returns a two-tier Clos fabric: every leaf (leaf1 …)
// linked to every spine (spine1 …). Any two leaves are two hops apart.
func LeafSpineTopology(spines, leaves int) Topology {
	names := append(seqNames("spine", spines), seqNames("leaf", leaves)...)
	g := newGen(fmt.Sprintf("leaf-spine-%dx%d", spines, leaves), names)
	for l := range leaves {
		for s := range spines {
			g.link(spines+l, s)
		}
	}
	return g.t
}

// RandomTopology returns a connected random graph of n nodes R1 … Rn
// with about n·degree/2 links: a random spanning tree (each node joins a
// random earlier one) plus random extra links. The same seed gives the
// same topology.
func RandomTopology(n, degree int, seed uint64) Topology {
	g := newGen(fmt.Sprintf("random-%d-d%d-s%d", n, degree, seed), seqNames("R", n))
	rng := rand.New(rand.NewPCG(seed, 0x746f706f))
	for i := 1; i < n; i++ {
		g.link(i, rng.IntN(i))
	}
	want := n * degree / 2
	maxLinks := n * (n - 1) / 2
	want = min(want, maxLinks)
	for tries := 0; len(g.t.Links) < want && tries < 20*want; tries++ {
		g.link(rng.IntN(n), rng.IntN(n))
	}
	return g.t
}

// HopPath returns a shortest path (by hop count, ties broken by node
// order) of exactly hops hops starting at from, as node names from the
// head to the tail, or nil if no node is that far. Generated topologies
// have equal metrics, so this is the path the IGP takes.
func HopPath(t Topology, from string, hops int) []string {
	idx := map[string]int{}
	for i, n := range t.Nodes {
		idx[n.Name] = i
	}
	start, ok := idx[from]
	if !ok || hops < 0 {
		return nil
	}
	adj := make([][]int, len(t.Nodes))
	for _, l := range t.Links {
		a, _, errA := Endpoint(l.A)
		b, _, errB := Endpoint(l.B)
		if errA != nil || errB != nil || l.Down {
			continue
		}
		adj[idx[a]] = append(adj[idx[a]], idx[b])
		adj[idx[b]] = append(adj[idx[b]], idx[a])
	}
	for _, x := range adj {
		slices.Sort(x)
	}
	dist := make([]int, len(t.Nodes))
	prev := make([]int, len(t.Nodes))
	for i := range dist {
		dist[i], prev[i] = -1, -1
	}
	dist[start] = 0
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if dist[u] == hops {
			var path []string
			for v := u; v != -1; v = prev[v] {
				path = append(path, t.Nodes[v].Name)
			}
			slices.Reverse(path)
			return path
		}
		for _, v := range adj[u] {
			if dist[v] < 0 {
				dist[v], prev[v] = dist[u]+1, u
				queue = append(queue, v)
			}
		}
	}
	return nil
}

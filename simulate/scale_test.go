package simulate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/simulate"
)

func TestGeneratorsValid(t *testing.T) {
	tests := []struct {
		name         string
		topo         simulate.Topology
		nodes, links int
	}{
		{"line", simulate.LineTopology(10), 10, 9},
		{"ring", simulate.RingTopology(10), 10, 10},
		{"ring of two is a line", simulate.RingTopology(2), 2, 1},
		{"leaf-spine", simulate.LeafSpineTopology(4, 16), 20, 64},
		{"random", simulate.RandomTopology(200, 4, 7), 200, 400},
		{"random dense small", simulate.RandomTopology(5, 10, 1), 5, 10},
		{"one node", simulate.LineTopology(1), 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.topo.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(tc.topo.Nodes) != tc.nodes || len(tc.topo.Links) != tc.links {
				t.Errorf("%d nodes and %d links, want %d and %d", len(tc.topo.Nodes), len(tc.topo.Links), tc.nodes, tc.links)
			}
			// Every node must be usable as an SRv6 segment and reachable:
			// the simulated network must accept the topology as it is.
			if _, err := simulate.NewNetwork(tc.topo, 1); err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.topo.Nodes {
				if len(n.SIDs) == 0 || n.Locator == "" || n.Loopback == "" {
					t.Errorf("node %s lacks SID, locator or loopback", n.Name)
				}
			}
			if len(tc.topo.Nodes) > 1 {
				// Connected: every node is reachable from the first.
				far := 0
				for h := 1; simulate.HopPath(tc.topo, tc.topo.Nodes[0].Name, h) != nil; h++ {
					far = h
				}
				if far == 0 {
					t.Errorf("first node reaches nobody")
				}
			}
		})
	}
}

func TestRandomTopologyDeterministic(t *testing.T) {
	a := simulate.RandomTopology(100, 3, 42)
	b := simulate.RandomTopology(100, 3, 42)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different topologies (-first +second):\n%s", diff)
	}
	c := simulate.RandomTopology(100, 3, 43)
	if cmp.Equal(a.Links, c.Links) {
		t.Errorf("seeds 42 and 43 gave the same links")
	}
}

func TestHopPath(t *testing.T) {
	tests := []struct {
		name string
		topo simulate.Topology
		from string
		hops int
		want []string
	}{
		{"line", simulate.LineTopology(10), "R01", 3, []string{"R01", "R02", "R03", "R04"}},
		{"ring goes the short way", simulate.RingTopology(10), "R01", 2, []string{"R01", "R02", "R03"}},
		{"too far", simulate.LineTopology(3), "R1", 5, nil},
		{"leaf to leaf", simulate.LeafSpineTopology(2, 3), "leaf1", 2, []string{"leaf1", "spine1", "leaf2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, simulate.HopPath(tc.topo, tc.from, tc.hops)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// fiveHops returns the first 5-hop shortest path of topo.
func fiveHops(t *testing.T, topo simulate.Topology) []string {
	t.Helper()
	for _, n := range topo.Nodes {
		if p := simulate.HopPath(topo, n.Name, 5); p != nil {
			return p
		}
	}
	t.Fatalf("%s has no 5-hop shortest path", topo.Name)
	return nil
}

// pathIntent is the path-loss intent along path.
func pathIntent(path []string) string {
	return fmt.Sprintf("verify packet loss on the SRv6 path from %s to %s via %s",
		path[0], path[len(path)-1], strings.Join(path[1:len(path)-1], ", "))
}

// TestScaleSmall runs the harness end to end on a 20-node random domain
// over the in-memory transport: D2D and the polling controller localise
// the same fault on a 5-hop path and must agree on where it is.
func TestScaleSmall(t *testing.T) {
	topo := simulate.RandomTopology(20, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Topology: topo, Seed: 1, Discovery: "static", Transport: simulate.TransportMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	path := fiveHops(t, topo)
	inject(t, d, fmt.Sprintf("link-loss:%s:%s:10%%", path[2], path[3]))
	intent := pathIntent(path)

	dd, err := d.Localise(ctx, path[0], intent)
	if err != nil {
		t.Fatal(err)
	}
	got := []*simulate.Localisation{dd}
	for _, builtin := range []bool{false, true} {
		p, err := d.NewPoller(ctx, simulate.PollerConfig{Builtin: builtin, Impairment: simulate.Impairment{Delay: 5 * time.Millisecond, Loss: 0.02}})
		if err != nil {
			t.Fatal(err)
		}
		pc, err := p.Localise(ctx, path[0], intent)
		if cerr := p.Close(); cerr != nil {
			t.Errorf("closing the poller: %v", cerr)
		}
		if err != nil {
			t.Fatalf("controller (builtin %v): %v", builtin, err)
		}
		if pc.Calls < dd.Calls {
			t.Errorf("controller (builtin %v) made %d calls, D2D %d: the plans should match", builtin, pc.Calls, dd.Calls)
		}
		got = append(got, pc)
	}
	for _, r := range got {
		h := r.Report.Hypothesis
		if h.Rule != "loss-localisation" || !strings.Contains(h.Location, path[2]) {
			t.Errorf("%s: hypothesis %s at %q, want loss-localisation at %s→%s", r.Report.Creator, h.Rule, h.Location, path[2], path[3])
		}
	}
}

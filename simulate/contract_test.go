package simulate_test

import (
	"testing"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/device/devicetest"
	"github.com/d2dmesh/d2d/simulate"
)

func backends(t testing.TB, n *simulate.Network, names ...string) []device.Backend {
	t.Helper()
	var out []device.Backend
	for _, name := range names {
		b, err := n.Device(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestContractTriangle(t *testing.T) {
	n, err := simulate.NewNetwork(simulate.Triangle(), 1)
	if err != nil {
		t.Fatal(err)
	}
	b := backends(t, n, "PE-1", "P-2", "PE-3")
	devicetest.Run(t, devicetest.Fixture{
		Head: b[0], Mid: b[1], Tail: b[2], ACL: "2001", Rule: "10",
		InjectACLDrop: func(t testing.TB, rate float64) func() {
			undo, err := n.Inject(simulate.ACLDrop{Node: "PE-1", ACL: "2001", Towards: "P-2", Rate: rate})
			if err != nil {
				t.Fatal(err)
			}
			return undo
		},
	})
}

// TestContractOtherNames runs the suite on a plain line whose nodes have
// unrelated names and SIDs given as addresses, and whose drop rule the
// fault creates: nothing may depend on the headline's names.
func TestContractOtherNames(t *testing.T) {
	topo, err := simulate.ParseTopology([]byte(`
name: line
nodes:
  - {name: alpha, locator: "fd00:a::/48", sids: ["fd00:a::10"]}
  - {name: beta,  locator: "fd00:b::/48"}
  - {name: gamma, locator: "fd00:c::/48", sids: ["fd00:c::10"]}
links:
  - {a: "alpha:ge0", b: "beta:ge0", latencyMs: 0.5}
  - {a: "beta:ge1", b: "gamma:ge0", latencyMs: 0.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := simulate.NewNetwork(topo, 42)
	if err != nil {
		t.Fatal(err)
	}
	b := backends(t, n, "alpha", "beta", "gamma")
	devicetest.Run(t, devicetest.Fixture{
		Head: b[0], Mid: b[1], Tail: b[2], MidSegment: "fd00:b::1", TailSegment: "fd00:c::10",
		ACL: "out", Rule: "drop", Interface: "ge0",
		InjectACLDrop: func(t testing.TB, rate float64) func() {
			undo, err := n.Inject(simulate.ACLDrop{Node: "alpha", ACL: "out", Rule: "drop", Interface: "ge0", Rate: rate})
			if err != nil {
				t.Fatal(err)
			}
			return undo
		},
	})
}

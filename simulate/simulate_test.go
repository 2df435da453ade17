package simulate_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/simulate"
)

func srv6(t testing.TB, b device.Backend, count int, segs ...string) device.ProbeResult {
	t.Helper()
	res, err := b.SRv6Ping(context.Background(), device.SRv6PingRequest{SIDList: segs, Count: count}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func ping(t testing.TB, b device.Backend, dst string, count int) device.ProbeResult {
	t.Helper()
	res, err := b.Ping(context.Background(), device.PingRequest{Destination: dst, Count: count}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func network(t testing.TB, seed int64) (*simulate.Network, map[string]device.Backend) {
	t.Helper()
	n, err := simulate.NewNetwork(simulate.Triangle(), seed)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]device.Backend{}
	for _, name := range n.Nodes() {
		m[name], _ = n.Device(name)
	}
	return n, m
}

func stats(t testing.TB, b device.Backend, ifname string) device.Interface {
	t.Helper()
	ifs, _ := b.Interfaces(context.Background())
	for _, i := range ifs {
		if i.Name == ifname {
			return i
		}
	}
	t.Fatalf("%s: no interface %s", b.Node(), ifname)
	return device.Interface{}
}

func bgpState(t testing.TB, b device.Backend, peer string) string {
	ns, _ := b.BGPNeighbors(context.Background())
	for _, x := range ns {
		if x.Node == peer {
			return x.State
		}
	}
	t.Fatalf("%s: no BGP neighbour %s", b.Node(), peer)
	return ""
}

func bfdState(t testing.TB, b device.Backend, peer string) string {
	ss, _ := b.BFDSessions(context.Background())
	for _, x := range ss {
		if x.Node == peer {
			return x.LocalState + "/" + x.RemoteState
		}
	}
	t.Fatalf("%s: no BFD session with %s", b.Node(), peer)
	return ""
}

// TestFaultPlacement checks where each kind of fault shows, and that its
// undo removes it.
func TestFaultPlacement(t *testing.T) {
	const probes = 1000
	tests := []struct {
		fault string
		check func(t *testing.T, n *simulate.Network, d map[string]device.Backend)
	}{
		{"acl-drop:PE-1:2001:P-2:0.05", func(t *testing.T, n *simulate.Network, d map[string]device.Backend) {
			head := srv6(t, d["PE-1"], probes, "P-2", "PE-3")
			mid := srv6(t, d["P-2"], probes, "PE-3")
			if head.LossPercent < 3 || head.LossPercent > 7 || mid.LossPercent != 0 {
				t.Errorf("loss head %.2f%% mid %.2f%%, want ~5%% and 0", head.LossPercent, mid.LossPercent)
			}
			if got := stats(t, d["PE-1"], "eth1").Stats.OutDiscards; got != uint64(head.Sent-head.Received) {
				t.Errorf("PE-1 eth1 out-discards %d, want %d", got, head.Sent-head.Received)
			}
			if direct := ping(t, d["PE-1"], "PE-3", probes); direct.LossPercent != 0 {
				t.Errorf("direct PE-1→PE-3 (not through the ACL) lost %.2f%%", direct.LossPercent)
			}
		}},
		{"link-loss:P-2:PE-3:0.1", func(t *testing.T, n *simulate.Network, d map[string]device.Backend) {
			head := srv6(t, d["PE-1"], probes, "P-2", "PE-3")
			mid := srv6(t, d["P-2"], probes, "PE-3")
			back := srv6(t, d["PE-3"], probes, "P-2", "PE-1") // P-2→PE-3 is never crossed
			if head.LossPercent < 6 || mid.LossPercent < 6 || back.LossPercent != 0 {
				t.Errorf("loss head %.2f%% mid %.2f%% reverse %.2f%%; want ~10, ~10, 0", head.LossPercent, mid.LossPercent, back.LossPercent)
			}
			if got := stats(t, d["P-2"], "eth2").Stats.OutDiscards; got != 0 {
				t.Errorf("link loss counted as discards (%d)", got)
			}
		}},
		{"link-down:P-2:PE-3", func(t *testing.T, n *simulate.Network, d map[string]device.Backend) {
			if stats(t, d["P-2"], "eth2").OperUp || stats(t, d["PE-3"], "eth1").OperUp || !stats(t, d["P-2"], "eth1").OperUp {
				t.Errorf("oper status wrong around the down link")
			}
			if a, b := bfdState(t, d["P-2"], "PE-3"), bfdState(t, d["PE-3"], "P-2"); a != "Down/Down" || b != "Down/Down" {
				t.Errorf("BFD over the down link: %s, %s", a, b)
			}
			tr, err := d["P-2"].Traceroute(context.Background(), device.TracerouteRequest{Destination: "PE-3"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var hops []string
			for _, h := range tr.Hops {
				hops = append(hops, h.Node)
			}
			if d := cmp.Diff([]string{"PE-1", "PE-3"}, hops); d != "" || !tr.Reached {
				t.Errorf("traceroute around the down link (-want +got):\n%s", d)
			}
			if r := srv6(t, d["PE-1"], 10, "P-2", "PE-3"); r.Received != 10 || r.RTTMinMS < 4 {
				t.Errorf("srv6 ping rerouted around the link: %+v, want all received over the longer path", r)
			}
		}},
		{"missing-sid:PE-3", func(t *testing.T, n *simulate.Network, d map[string]device.Backend) {
			r := srv6(t, d["PE-1"], 10, "P-2", "PE-3")
			if r.Received != 0 || r.Error != "SID fc00:0:3::1 not instantiated on PE-3" {
				t.Errorf("srv6 ping to the missing SID: %+v", r)
			}
			if r := srv6(t, d["PE-1"], 10, "P-2"); r.Received != 10 {
				t.Errorf("srv6 ping to P-2 affected: %+v", r)
			}
			if p := ping(t, d["PE-1"], "PE-3", 10); p.Received != 10 {
				t.Errorf("plain ping to PE-3 affected: %+v", p)
			}
			if got := stats(t, d["PE-3"], "eth1").Stats.InDiscards; got != 10 {
				t.Errorf("PE-3 eth1 in-discards %d, want 10", got)
			}
		}},
		{"session-down:PE-1:PE-3:bgp", func(t *testing.T, n *simulate.Network, d map[string]device.Backend) {
			if a, b := bgpState(t, d["PE-1"], "PE-3"), bgpState(t, d["PE-3"], "PE-1"); a != "Idle" || b != "Established" {
				t.Errorf("BGP one-sided: PE-1 %s, PE-3 %s; want Idle, Established", a, b)
			}
			if a := bfdState(t, d["PE-1"], "PE-3"); a != "Up/Up" {
				t.Errorf("BFD affected by a BGP fault: %s", a)
			}
		}},
		{"session-down:P-2:PE-3:bfd", func(t *testing.T, n *simulate.Network, d map[string]device.Backend) {
			if a, b := bfdState(t, d["P-2"], "PE-3"), bfdState(t, d["PE-3"], "P-2"); a != "Down/Up" || b != "Up/Up" {
				t.Errorf("BFD one-sided: P-2 %s, PE-3 %s; want Down/Up, Up/Up", a, b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			n, d := network(t, 3)
			f, err := simulate.ParseFault(tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			undo, err := n.Inject(f)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, n, d)
			undo()
			undo()
			// After the undo the network is healthy again.
			if r := srv6(t, d["PE-1"], 200, "P-2", "PE-3"); r.LossPercent != 0 {
				t.Errorf("after undo: loss %.2f%% (%s)", r.LossPercent, r.Error)
			}
			for _, x := range []string{"PE-1", "PE-3"} {
				other := map[string]string{"PE-1": "PE-3", "PE-3": "PE-1"}[x]
				if s := bgpState(t, d[x], other); s != "Established" {
					t.Errorf("after undo: %s BGP %s", x, s)
				}
			}
			if s := bfdState(t, d["P-2"], "PE-3"); s != "Up/Up" {
				t.Errorf("after undo: BFD %s", s)
			}
			acls, _ := d["PE-1"].ACLs(context.Background())
			if acls[0].Rules[0].Enabled {
				t.Errorf("after undo: the deny slot is still enabled")
			}
		})
	}
}

func TestInjectErrors(t *testing.T) {
	n, _ := network(t, 1)
	for _, f := range []simulate.Fault{
		simulate.LinkDown{A: "PE-1", B: "nowhere"},
		simulate.LinkLoss{From: "PE-1", To: "PE-1", Rate: 0.1},
		simulate.LinkLoss{From: "PE-1", To: "P-2", Rate: 1.5},
		simulate.MissingSID{Node: "PE-3", SID: "fc00:0:1::1"},
		simulate.SessionDown{Node: "P-2", Peer: "PE-1", Protocol: "bgp"},
		simulate.SessionDown{Node: "PE-1", Peer: "PE-3", Protocol: "ospf"},
		simulate.ACLDrop{Node: "PE-1", ACL: "2001", Interface: "eth2", Rate: 0.1},
		simulate.ACLDrop{Node: "PE-1", ACL: "9999", Rate: 0.1},
	} {
		if _, err := n.Inject(f); !errors.Is(err, simulate.ErrInvalidFault) {
			t.Errorf("Inject(%v) = %v, want ErrInvalidFault", f, err)
		}
	}
}

func TestACLDropCreatesAndRemovesRule(t *testing.T) {
	n, d := network(t, 1)
	undo, err := n.Inject(simulate.ACLDrop{Node: "P-2", Towards: "PE-3", Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r := srv6(t, d["P-2"], 5, "PE-3"); r.Received != 0 || !strings.Contains(r.Error, "egress ACL on P-2 eth2") {
		t.Errorf("with a 100%% drop: %+v", r)
	}
	acls, _ := d["P-2"].ACLs(context.Background())
	if len(acls) != 1 || acls[0].Name != "fault-eth2" || acls[0].Rules[0].MatchedPackets != 5 {
		t.Errorf("ACLs = %+v", acls)
	}
	undo()
	if acls, _ := d["P-2"].ACLs(context.Background()); len(acls) != 0 {
		t.Errorf("after undo ACLs = %+v", acls)
	}
}

func TestDeterminism(t *testing.T) {
	run := func(seed int64) []device.ProbeResult {
		n, d := network(t, seed)
		if _, err := n.Inject(simulate.ACLDrop{Node: "PE-1", ACL: "2001", Towards: "P-2", Rate: 0.2}); err != nil {
			t.Fatal(err)
		}
		var out []device.ProbeResult
		for range 3 {
			out = append(out, srv6(t, d["PE-1"], 100, "P-2", "PE-3"))
			ping(t, d["P-2"], "PE-3", 7) // another device's calls do not disturb PE-1's stream
		}
		return out
	}
	a, b, c := run(5), run(5), run(6)
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("same seed, different results (-first +second):\n%s", d)
	}
	if cmp.Equal(a, c) {
		t.Errorf("seeds 5 and 6 gave identical results %+v", a)
	}
}

func TestParseTopologyErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"empty", `{}`, "no nodes"},
		{"unknown field", `{nodes: [{name: a, colour: red}]}`, "colour"},
		{"colon in name", `{nodes: [{name: "a:b"}]}`, "node name"},
		{"duplicate node", `{nodes: [{name: a}, {name: a}]}`, "duplicate node"},
		{"link to unknown node", `{nodes: [{name: a}], links: [{a: "a:e0", b: "z:e0"}]}`, "unknown node"},
		{"endpoint twice", `{nodes: [{name: a}, {name: b}, {name: c}], links: [{a: "a:e0", b: "b:e0"}, {a: "a:e0", b: "c:e0"}]}`, "another link"},
		{"loss out of range", `{nodes: [{name: a}, {name: b}], links: [{a: "a:e0", b: "b:e0", lossAtoB: 2}]}`, "loss"},
		{"SID outside locator", `{nodes: [{name: a, locator: "fc00:1::/48", sids: ["fc00:2::1"]}]}`, "outside locator"},
		{"bad ACL interface", `{nodes: [{name: a, acls: [{name: x, interface: e9}]}]}`, "unknown interface"},
		{"bad action", `{nodes: [{name: a, acls: [{name: x, interface: lo, rules: [{id: "1", action: drop}]}]}]}`, "action"},
		{"BGP to itself", `{nodes: [{name: a, bgp: [{peer: a}]}]}`, "BGP peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := simulate.ParseTopology([]byte(tt.doc))
			if !errors.Is(err, simulate.ErrInvalidTopology) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalidTopology mentioning %q", err, tt.want)
			}
		})
	}
}

func TestTopologyRoundTrip(t *testing.T) {
	tri := simulate.Triangle()
	y, err := yaml.Marshal(tri)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(tri)
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, y, 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := simulate.LoadTopology(path)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := simulate.ParseTopology(j)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(tri, fromFile); d != "" {
		t.Errorf("YAML round trip (-want +got):\n%s", d)
	}
	if d := cmp.Diff(tri, fromJSON); d != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", d)
	}
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		in   string
		want simulate.Fault
		err  bool
	}{
		{in: "acl-drop:PE-1:2001:P-2:0.03", want: simulate.ACLDrop{Node: "PE-1", ACL: "2001", Towards: "P-2", Rate: 0.03}},
		{in: "acl-drop:r1::if=ge-0/0/1:3%:77", err: true}, // '/' is not allowed in names
		{in: "acl-drop:r1::if=ge0:3%:77", want: simulate.ACLDrop{Node: "r1", Interface: "ge0", Rate: 0.03, Rule: "77"}},
		{in: "link-loss:P-2:PE-3:0.05", want: simulate.LinkLoss{From: "P-2", To: "PE-3", Rate: 0.05}},
		{in: "link-down:P-2:PE-3", want: simulate.LinkDown{A: "P-2", B: "PE-3"}},
		{in: "missing-sid:PE-3", want: simulate.MissingSID{Node: "PE-3"}},
		{in: "missing-sid:PE-3:FC00:0:3:0::100", want: simulate.MissingSID{Node: "PE-3", SID: "fc00:0:3::100"}},
		{in: "session-down:PE-1:P-2:bgp", want: simulate.SessionDown{Node: "PE-1", Peer: "P-2", Protocol: "bgp"}},
		{in: "session-down:PE-1:P-2:isis", err: true},
		{in: "link-loss:P-2:PE-3:0", err: true},
		{in: "link-loss:P-2:PE-3:1.5", err: true},
		{in: "link-loss:P-2:PE-3:NaN", err: true},
		{in: "link-down:P-2", err: true},
		{in: "acl-drop:PE-1:::0.1", err: true},
		{in: "missing-sid:PE-3:10.0.0.1", err: true},
		{in: "meteor-strike:PE-1", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := simulate.ParseFault(tt.in)
			if tt.err {
				if !errors.Is(err, simulate.ErrInvalidFault) {
					t.Errorf("ParseFault = %v, %v; want ErrInvalidFault", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			again, err := simulate.ParseFault(got.String())
			if err != nil || !cmp.Equal(got, again) {
				t.Errorf("String() %q does not parse back: %v %v", got.String(), again, err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	_, d := network(t, 1)
	ctx := context.Background()
	if _, err := d["PE-1"].SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"fd99::1"}}, nil); !errors.Is(err, device.ErrUnknownSID) {
		t.Errorf("unknown SID: %v", err)
	}
	if _, err := d["PE-1"].SRv6Ping(ctx, device.SRv6PingRequest{Head: "P-2", Tail: "PE-3"}, nil); !errors.Is(err, device.ErrUnknownSID) {
		t.Errorf("foreign head: %v", err)
	}
	if _, err := d["PE-1"].Ping(ctx, device.PingRequest{Destination: "PE-3", Source: "eth9"}, nil); !errors.Is(err, device.ErrUnknownInterface) {
		t.Errorf("foreign source: %v", err)
	}
	if err := d["PE-1"].SetACLRule(ctx, "2001", "99", false); !errors.Is(err, device.ErrUnknownACL) {
		t.Errorf("unknown rule: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d["PE-1"].Ping(cctx, device.PingRequest{Destination: "PE-3"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ping: %v", err)
	}
}

func TestTailOnlyAndAddresses(t *testing.T) {
	_, d := network(t, 1)
	// The draft's call on the mid-point names only the tail.
	r, err := d["P-2"].SRv6Ping(context.Background(), device.SRv6PingRequest{Tail: "PE-3", Count: 3}, nil)
	if err != nil || r.Received != 3 || !cmp.Equal(r.Path, []string{"fc00:0:3::1"}) {
		t.Errorf("tail only: %+v %v", r, err)
	}
	if p := ping(t, d["PE-1"], "2001:db8:23::3", 2); p.Received != 2 {
		t.Errorf("ping to an interface address: %+v", p)
	}
}

func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"acl-drop:PE-1:2001:P-2:0.03", "acl-drop:a::if=e0:3%:r", "link-loss:P-2:PE-3:0.05",
		"link-down:P-2:PE-3", "missing-sid:PE-3", "missing-sid:x:fc00::1", "session-down:PE-1:P-2:bgp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, err := simulate.ParseFault(s)
		if err != nil {
			return
		}
		y, err := simulate.ParseFault(x.String())
		if err != nil || !cmp.Equal(x, y) {
			t.Fatalf("%q → %#v → %q → %#v, %v", s, x, x.String(), y, err)
		}
	})
}

func FuzzParseTopology(f *testing.F) {
	y, _ := yaml.Marshal(simulate.Triangle())
	f.Add(y)
	f.Add([]byte(`{"nodes":[{"name":"a","locator":"fc00::/48"},{"name":"b"}],"links":[{"a":"a:e0","b":"b:e0","lossAtoB":0.5}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		topo, err := simulate.ParseTopology(b)
		if err != nil {
			return
		}
		out, err := yaml.Marshal(topo)
		if err != nil {
			t.Fatal(err)
		}
		again, err := simulate.ParseTopology(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !cmp.Equal(topo, again, cmpopts.EquateEmpty()) {
			t.Fatalf("round trip differs:\n%s", cmp.Diff(topo, again, cmpopts.EquateEmpty()))
		}
		if len(topo.Nodes) <= 64 && len(topo.Links) <= 64 {
			if _, err := simulate.NewNetwork(topo, 1); err != nil {
				t.Fatalf("NewNetwork of a valid topology: %v", err)
			}
		}
	})
}

func BenchmarkSRv6Ping(b *testing.B) {
	n, d := network(b, 1)
	if _, err := n.Inject(simulate.ACLDrop{Node: "PE-1", ACL: "2001", Towards: "P-2", Rate: 0.03}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		srv6(b, d["PE-1"], 100, "P-2", "PE-3")
	}
}

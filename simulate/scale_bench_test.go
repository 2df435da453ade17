package simulate_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/simulate"
)

// The scale benchmarks run whole domains of real agents (QUIC, TLS 1.3,
// signed JSON-RPC) over the in-memory transport; simulated probes take no
// wall time. They report their figures as custom metrics; BENCHMARKS.md
// explains each one.

// scaleTopology is the topology of an n-node scale run: a random graph of
// mean degree 3 (seed 1), or for small n, where such a graph is too
// dense to have 5-hop shortest paths, a ring.
func scaleTopology(n int) simulate.Topology {
	if n < 50 {
		return simulate.RingTopology(n)
	}
	return simulate.RandomTopology(n, 3, 1)
}

// startScale starts an n-node in-memory domain with static membership
// (membership convergence is measured on its own) and returns it with the
// time start-up took.
func startScale(b *testing.B, topo simulate.Topology) (*simulate.Domain, time.Duration) {
	return startScaleOn(b, topo, simulate.TransportMemory)
}

func startScaleOn(b *testing.B, topo simulate.Topology, transport string) (*simulate.Domain, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Topology: topo, Seed: 1, Discovery: "static", Transport: transport})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	return d, time.Since(start)
}

// paths returns up to k 5-hop shortest paths with distinct heads.
func paths(b *testing.B, topo simulate.Topology, k int) [][]string {
	b.Helper()
	var out [][]string
	for _, n := range topo.Nodes {
		if p := simulate.HopPath(topo, n.Name, 5); p != nil {
			out = append(out, p)
			if len(out) == k {
				break
			}
		}
	}
	if len(out) == 0 {
		b.Fatalf("%s has no 5-hop path", topo.Name)
	}
	return out
}

// faultOn injects 10 % loss on the middle hop of path and returns the undo.
func faultOn(b *testing.B, d *simulate.Domain, path []string) func() {
	b.Helper()
	f, err := simulate.ParseFault(fmt.Sprintf("link-loss:%s:%s:10%%", path[2], path[3]))
	if err != nil {
		b.Fatal(err)
	}
	undo, err := d.Network.Inject(f)
	if err != nil {
		b.Fatal(err)
	}
	return undo
}

func checkLocated(b *testing.B, l *simulate.Localisation, path []string) {
	b.Helper()
	if h := l.Report.Hypothesis; h.Rule != "loss-localisation" {
		b.Fatalf("%s: hypothesis %s at %s, want loss-localisation between %s and %s", l.Report.Creator, h.Rule, h.Location, path[2], path[3])
	}
}

// BenchmarkScaleTimeToReport measures the time from an intent typed on a
// node to a verified report, in domains of 10, 100 and 1000 agents, for a
// loss fault on a 5-hop path (6 agents work, all exist). s/report-cold is
// the first run on the head node, which opens its D2D sessions; ns/op and
// s/report are later runs that reuse them; s/startup is how long the
// domain took to start (not part of any other figure).
func BenchmarkScaleTimeToReport(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchTimeToReport(b, n, simulate.TransportMemory) })
	}
}

// BenchmarkScaleTimeToReportLoopback is BenchmarkScaleTimeToReport over
// real loopback QUIC sockets, one per agent, for the sizes where a
// socket per agent is still reasonable.
func BenchmarkScaleTimeToReportLoopback(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchTimeToReport(b, n, simulate.TransportLoopback) })
	}
}

func benchTimeToReport(b *testing.B, n int, transport string) {
	topo := scaleTopology(n)
	d, startup := startScaleOn(b, topo, transport)
	path := paths(b, topo, 1)[0]
	defer faultOn(b, d, path)()
	ctx := context.Background()
	intent := pathIntent(path)
	cold, err := d.Localise(ctx, path[0], intent)
	if err != nil {
		b.Fatal(err)
	}
	checkLocated(b, cold, path)
	b.ReportAllocs()
	var warm time.Duration
	for b.Loop() {
		l, err := d.Localise(ctx, path[0], intent)
		if err != nil {
			b.Fatal(err)
		}
		warm += l.Elapsed
	}
	b.ReportMetric(cold.Elapsed.Seconds(), "s/report-cold")
	b.ReportMetric(warm.Seconds()/float64(b.N), "s/report")
	b.ReportMetric(startup.Seconds(), "s/startup")
}

// Controller path impairments of BenchmarkD2DVersusController: a healthy
// controller link adds nothing to the devices' own paths; an impaired
// one adds 50 ms one way (a distant or congested management network) and
// drops 5 % of datagrams in each direction.
var controllerPaths = []struct {
	name string
	imp  simulate.Impairment
}{
	{"healthy", simulate.Impairment{}},
	{"impaired", simulate.Impairment{Delay: 50 * time.Millisecond, Loss: 0.05}},
}

// BenchmarkD2DVersusController localises the same fault twice per round
// in a 100-agent domain: by D2D from the path's head node, and by a
// polling controller that runs the same plan but calls every device,
// the head included, over its own path. Each round uses another head and
// a new controller, so both start without sessions (cold, as in an
// incident). It reports the medians over the rounds and their ratio
// (d2d/controller; below 1 D2D is faster).
func BenchmarkD2DVersusController(b *testing.B) {
	for _, cp := range controllerPaths {
		b.Run(cp.name, func(b *testing.B) { benchVersus(b, 100, simulate.TransportMemory, cp.imp) })
	}
}

// BenchmarkD2DVersusControllerLoopback is BenchmarkD2DVersusController in
// a 30-agent domain over real loopback QUIC sockets; the controller's
// socket is wrapped to delay and drop its datagrams.
func BenchmarkD2DVersusControllerLoopback(b *testing.B) {
	for _, cp := range controllerPaths {
		b.Run(cp.name, func(b *testing.B) { benchVersus(b, 30, simulate.TransportLoopback, cp.imp) })
	}
}

func benchVersus(b *testing.B, n int, transport string, imp simulate.Impairment) {
	const rounds = 5
	topo := scaleTopology(n)
	d, _ := startScaleOn(b, topo, transport)
	ps := paths(b, topo, rounds*4)
	ctx := context.Background()
	b.ReportAllocs()
	var dd, cc []float64
	round := 0
	for b.Loop() {
		for range rounds {
			path := ps[round%len(ps)]
			round++
			undo := faultOn(b, d, path)
			l, err := d.Localise(ctx, path[0], pathIntent(path))
			if err != nil {
				b.Fatal(err)
			}
			checkLocated(b, l, path)
			p, err := d.NewPoller(ctx, simulate.PollerConfig{Impairment: imp})
			if err != nil {
				b.Fatal(err)
			}
			c, err := p.Localise(ctx, path[0], pathIntent(path))
			_ = p.Close()
			if err != nil {
				b.Fatal(err)
			}
			checkLocated(b, c, path)
			undo()
			dd = append(dd, l.Elapsed.Seconds())
			cc = append(cc, c.Elapsed.Seconds())
		}
	}
	md, mc := median(dd), median(cc)
	b.ReportMetric(md, "s/d2d")
	b.ReportMetric(mc, "s/controller")
	b.ReportMetric(md/mc, "d2d/controller")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

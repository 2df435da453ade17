package simulate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
	"github.com/d2dmesh/d2d/simulate"
)

// lineTopology is n routers in a line, r1 … rn, with SRv6 SIDs and an
// egress ACL on r1 towards r2.
func lineTopology(n int) simulate.Topology {
	t := simulate.Topology{Name: fmt.Sprintf("line%d", n)}
	for i := 1; i <= n; i++ {
		nd := simulate.NodeSpec{
			Name:     fmt.Sprintf("r%d", i),
			Loopback: fmt.Sprintf("2001:db8:ffff::%x", i),
			Locator:  fmt.Sprintf("fc00:%x::/32", i),
			SIDs:     []string{fmt.Sprintf("fc00:%x::1", i)},
			AS:       64512,
		}
		if i > 1 {
			nd.Interfaces = append(nd.Interfaces, simulate.InterfaceSpec{Name: "eth1", Address: fmt.Sprintf("2001:db8:%x::2/64", i-1)})
		}
		if i < n {
			nd.Interfaces = append(nd.Interfaces, simulate.InterfaceSpec{Name: "eth2", Address: fmt.Sprintf("2001:db8:%x::1/64", i)})
			t.Links = append(t.Links, simulate.LinkSpec{A: fmt.Sprintf("r%d:eth2", i), B: fmt.Sprintf("r%d:eth1", i+1), LatencyMS: 1})
		}
		if i == 1 {
			nd.ACLs = []simulate.ACLSpec{{Name: "2001", Interface: "eth2", Direction: "egress", Rules: []simulate.RuleSpec{
				{ID: "10", Action: "deny", Disabled: true}, {ID: "20", Action: "permit"}}}}
		}
		t.Nodes = append(t.Nodes, nd)
	}
	return t
}

// BenchmarkIntentToReport measures what the agent adds between the intent
// and a verified, signed, stored report: parsing, planning, sessions,
// signed calls over loopback QUIC, verification, correlation, signing and
// the crash-safe store. Simulated probes take no wall time, so the figure
// excludes probe send time. The 30-node case runs the intent along the
// first 16 routers of a 30-router line: 16 is the most segments the
// ietf-srv6-ping tool takes (an SRH of 16 SIDs is already beyond what
// most hardware imposes), so 16 agents probe and report in one run.
func BenchmarkIntentToReport(b *testing.B) {
	for _, n := range []int{3, 30} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			topo, intent, fault := simulate.Triangle(), headlineIntent, simulate.HeadlineFault
			from := "PE-1"
			if n != 3 {
				topo = lineTopology(n)
				var via []string
				const pathLen = 16
				for i := 2; i < pathLen; i++ {
					via = append(via, fmt.Sprintf("r%d", i))
				}
				intent = fmt.Sprintf("verify packet loss on the SRv6 path from r1 to r%d via %s", pathLen, strings.Join(via, ", "))
				fault, from = "acl-drop:r1:2001:r2:3%", "r1"
			}
			ctx := context.Background()
			d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Topology: topo, Seed: 1, Discovery: "static"})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			f, _ := simulate.ParseFault(fault)
			if _, err := d.Network.Inject(f); err != nil {
				b.Fatal(err)
			}
			wf := d.Agent(from).Workflow()
			trust := signing.NewTrust(d.CA.Cert)
			// The first run opens the sessions; later runs reuse them, as a
			// long-running agent does.
			if _, err := wf.Run(ctx, intent, nil); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				res, err := wf.Run(ctx, intent, nil)
				if err != nil {
					b.Fatal(err)
				}
				if res.Report.Hypothesis.Rule != "acl-drop" || !res.Stored {
					b.Fatalf("hypothesis %+v stored %v", res.Report.Hypothesis, res.Stored)
				}
				if err := report.VerifyArchived(res.Report, trust); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/report")
		})
	}
}

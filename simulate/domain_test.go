package simulate_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
	"github.com/d2dmesh/d2d/simulate"
)

func startDomain(t *testing.T, cfg simulate.DomainConfig) *simulate.Domain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := simulate.StartDomain(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing the domain: %v", err)
		}
	})
	if err := d.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func inject(t *testing.T, d *simulate.Domain, fault string) {
	t.Helper()
	f, err := simulate.ParseFault(fault)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Network.Inject(f); err != nil {
		t.Fatal(err)
	}
}

// runIntent types the intent on node from and checks the report verifies
// offline against the domain CA.
func runIntent(t *testing.T, d *simulate.Domain, from, intent string, events func(collab.Event)) *collab.RunResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := d.Agent(from).Workflow().Run(ctx, intent, events)
	if err != nil {
		t.Fatalf("%s> %s: %v", from, intent, err)
	}
	if res.Report == nil {
		t.Fatalf("%s> %s: no report", from, intent)
	}
	if err := report.VerifyArchived(res.Report, signing.NewTrust(d.CA.Cert)); err != nil {
		t.Fatalf("report does not verify: %v", err)
	}
	if !res.Stored {
		t.Errorf("report not stored on %s", from)
	}
	return res
}

const headlineIntent = "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"

// TestFaultPlacements runs the same machinery for every fault kind of the
// simulator and checks the hypothesis names the right place.
func TestFaultPlacements(t *testing.T) {
	tests := []struct {
		name, fault, from, intent string
		rule, location, suspect   string
	}{
		{"acl drop at the head", "acl-drop:PE-1:2001:P-2:3%", "PE-1", headlineIntent, "acl-drop", "PE-1", "2001"},
		{"loss on the second hop", "link-loss:P-2:PE-3:5%", "PE-1", headlineIntent, "loss-localisation", "P-2", ""},
		{"missing SID at the tail", "missing-sid:PE-3", "PE-1", headlineIntent, "missing-sid", "PE-3", "fc00:0:3::1"},
		{"one-sided BGP session", "session-down:PE-1:PE-3:bgp", "PE-1", "why is BGP neighbor PE-3 down", "one-sided-session", "PE-1", "bgp"},
		{"intent typed on another node", "acl-drop:PE-1:2001:P-2:3%", "PE-3", headlineIntent, "acl-drop", "PE-1", "2001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDomain(t, simulate.DomainConfig{Seed: 7})
			inject(t, d, tt.fault)
			res := runIntent(t, d, tt.from, tt.intent, nil)
			h := res.Report.Hypothesis
			if h.Rule != tt.rule || !strings.Contains(h.Location, tt.location) || !strings.Contains(strings.ToLower(h.Suspect), strings.ToLower(tt.suspect)) {
				t.Errorf("hypothesis = %+v\nwant rule %q, location containing %q, suspect containing %q", h, tt.rule, tt.location, tt.suspect)
			}
			if len(res.Report.Untrusted) != 0 {
				t.Errorf("untrusted = %v, want none", res.Report.Untrusted)
			}
		})
	}
}

func TestHealthyNetworkHasNoFault(t *testing.T) {
	d := startDomain(t, simulate.DomainConfig{Seed: 3})
	res := runIntent(t, d, "PE-1", headlineIntent, nil)
	if h := res.Report.Hypothesis; h.Rule != "no-fault-found" {
		t.Errorf("hypothesis on a healthy network = %+v, want no-fault-found", h)
	}
	if res.Mitigation != nil {
		t.Errorf("mitigation proposed on a healthy network: %+v", res.Mitigation)
	}
}

func TestLinkDown(t *testing.T) {
	// A line has no detour, so a down link leaves the tail unreachable.
	topo, err := simulate.LoadTopology("testdata/metro5.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Without agg-e, metro5 is a line: no detour around core-c–edge-d.
	topo.Nodes = slices.DeleteFunc(topo.Nodes, func(n simulate.NodeSpec) bool { return n.Name == "agg-e" })
	topo.Links = slices.DeleteFunc(topo.Links, func(l simulate.LinkSpec) bool {
		return strings.HasPrefix(l.A, "agg-e:") || strings.HasPrefix(l.B, "agg-e:")
	})
	for i := range topo.Nodes {
		topo.Nodes[i].BFD = slices.DeleteFunc(topo.Nodes[i].BFD, func(b simulate.BFDSpec) bool { return b.Peer == "agg-e" })
	}
	d := startDomain(t, simulate.DomainConfig{Topology: topo, Seed: 1})
	inject(t, d, "link-down:core-c:edge-d")
	res := runIntent(t, d, "edge-a", "verify packet loss on the SRv6 path from edge-a to edge-d via core-b, core-c", nil)
	h := res.Report.Hypothesis
	if h.Rule != "link-down" || !strings.Contains(h.Location, "core-c") || !strings.Contains(h.Location, "edge-d") {
		t.Errorf("hypothesis = %+v, want link-down between core-c and edge-d", h)
	}
}

// TestFiveNodeTopology runs a topology from a file, with other names and
// faults elsewhere, through the same code.
func TestFiveNodeTopology(t *testing.T) {
	topo, err := simulate.LoadTopology("testdata/metro5.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const intent = "verify packet loss on the SRv6 path from edge-a to edge-d via core-b, core-c"
	tests := []struct {
		fault, rule, location string
	}{
		{"acl-drop:core-c:4010:edge-d:4%", "acl-drop", "core-c"},
		{"link-loss:core-b:core-c:6%", "loss-localisation", "core-b->core-c"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			d := startDomain(t, simulate.DomainConfig{Topology: topo, Seed: 11})
			inject(t, d, tt.fault)
			res := runIntent(t, d, "edge-a", intent, nil)
			if h := res.Report.Hypothesis; h.Rule != tt.rule || h.Location != tt.location {
				t.Errorf("hypothesis = %+v, want rule %s at %s", h, tt.rule, tt.location)
			}
			if got := res.Report.Nodes(); len(got) != 4 {
				t.Errorf("evidence from %v, want the four path nodes", got)
			}
		})
	}
}

// TestNodeKilledMidWorkflow stops the tail while the probes run: the
// workflow still finishes with what it has, names the node untrusted, and
// the report says so and verifies.
func TestNodeKilledMidWorkflow(t *testing.T) {
	d := startDomain(t, simulate.DomainConfig{Seed: 5, CallTimeout: 2 * time.Second})
	inject(t, d, "acl-drop:PE-1:2001:P-2:3%")
	var once sync.Once
	killed := make(chan struct{})
	res := runIntent(t, d, "PE-1", headlineIntent, func(e collab.Event) {
		if e.Kind == "step" && strings.Contains(e.Message, "SRv6 ping") {
			once.Do(func() {
				go func() {
					defer close(killed)
					if err := d.Stop("PE-3"); err != nil {
						t.Errorf("stopping PE-3: %v", err)
					}
				}()
				<-killed
			})
		}
	})
	var names []string
	for _, u := range res.Report.Untrusted {
		names = append(names, u.Node)
		if u.Reason == "" {
			t.Errorf("untrusted %s without a reason", u.Node)
		}
	}
	if !slices.Contains(names, "PE-3") {
		t.Fatalf("untrusted = %+v, want PE-3", res.Report.Untrusted)
	}
	if h := res.Report.Hypothesis; h.Rule != "acl-drop" {
		t.Errorf("hypothesis = %+v: the head's and mid-point's evidence should still find the ACL", h)
	}
	// The counter baselines of the nodes still alive were undone.
	for _, n := range []string{"PE-1", "P-2"} {
		if b := d.Agent(n).Registry().Baselines(); len(b) != 0 {
			t.Errorf("%s keeps counter baselines %v after the workflow", n, b)
		}
	}
}

func aclRuleEnabled(t *testing.T, d *simulate.Domain, node, acl, rule string) bool {
	t.Helper()
	dev, err := d.Network.Device(node)
	if err != nil {
		t.Fatal(err)
	}
	acls, err := dev.ACLs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acls {
		for _, r := range a.Rules {
			if a.Name == acl && r.ID == rule {
				return r.Enabled
			}
		}
	}
	t.Fatalf("%s has no ACL %s rule %s", node, acl, rule)
	return false
}

func TestMitigationConsent(t *testing.T) {
	ctx := context.Background()
	d := startDomain(t, simulate.DomainConfig{Seed: 9, RollbackSeconds: 1})
	inject(t, d, "acl-drop:PE-1:2001:P-2:3%")
	wf := d.Agent("PE-1").Workflow()

	t.Run("never runs without consent", func(t *testing.T) {
		res := runIntent(t, d, "PE-1", headlineIntent, nil)
		if res.Mitigation == nil {
			t.Fatal("no mitigation proposed for an ACL drop")
		}
		// A call that skips the consent object is refused by the device.
		_, err := d.Agent("PE-1").Workflow().Call(ctx, "PE-1", res.Mitigation.Tool, res.Mitigation.Arguments, nil)
		if err == nil {
			t.Fatal("mutating call without consent succeeded")
		}
		if !aclRuleEnabled(t, d, "PE-1", "2001", "10") {
			t.Fatal("the rule changed although the call was refused")
		}
		if n := len(d.Agent("PE-1").Registry().PendingChanges()); n != 0 {
			t.Errorf("%d pending changes after a refused call", n)
		}
	})

	t.Run("unconfirmed change rolls back", func(t *testing.T) {
		res := runIntent(t, d, "PE-1", headlineIntent, nil)
		out, err := wf.Mitigate(ctx, res.Report.ID, collab.Approval{Operator: "alice", Role: "operator", RollbackSeconds: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out.Outcome != report.OutcomeApplied || out.LossAfter == nil || *out.LossAfter != 0 || out.LossBefore == nil || *out.LossBefore == 0 {
			t.Fatalf("mitigation outcome %+v: want applied, loss gone after", out)
		}
		if aclRuleEnabled(t, d, "PE-1", "2001", "10") {
			t.Fatal("deny rule still enabled after the consented change")
		}
		deadline := time.Now().Add(10 * time.Second)
		for !aclRuleEnabled(t, d, "PE-1", "2001", "10") {
			if time.Now().After(deadline) {
				t.Fatal("unconfirmed change not rolled back after its timer")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The report records the consent and, eventually, the rollback.
		for {
			r, err := d.Agent("PE-1").Store().Get(res.Report.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Actions) == 1 && r.Actions[0].Outcome == report.OutcomeRolledBack {
				if len(r.Actions[0].Consent) == 0 {
					t.Error("action without its consent object")
				}
				if err := report.VerifyArchived(r, signing.NewTrust(d.CA.Cert)); err != nil {
					t.Errorf("updated report does not verify: %v", err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("report actions = %+v, want one rolled-back action", r.Actions)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("confirmed change stays", func(t *testing.T) {
		res := runIntent(t, d, "PE-1", headlineIntent, nil)
		out, err := wf.Mitigate(ctx, res.Report.ID, collab.Approval{Operator: "alice", Role: "operator", RollbackSeconds: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wf.Confirm(ctx, out.Change, collab.Approval{Operator: "alice", Role: "operator"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if aclRuleEnabled(t, d, "PE-1", "2001", "10") {
			t.Error("confirmed change rolled back")
		}
	})
}

package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

func pull(t *testing.T, c *controller.Controller) *controller.PullResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Pull(ctx, nil, controller.PullOptions{})
}

func nodeResult(t *testing.T, res *controller.PullResult, name string) controller.NodeResult {
	t.Helper()
	for _, n := range res.Nodes {
		if n.Node == name {
			return n
		}
	}
	t.Fatalf("no result for %s", name)
	return controller.NodeResult{}
}

// checkStore asserts the controller holds exactly want (ids), once each,
// every one verifying offline against the CA.
func checkStore(t *testing.T, m *mesh, s *controller.Store, want []string) {
	t.Helper()
	var got []string
	for _, e := range s.List() {
		got = append(got, e.ID)
		r, err := s.Get(e.ID)
		if err != nil {
			t.Fatalf("get %s: %v", e.ID, err)
		}
		if err := report.VerifyArchived(r, m.trust); err != nil {
			t.Errorf("stored report %s does not verify: %v", e.ID, err)
		}
		if e.Versions != 1 {
			t.Errorf("report %s has %d versions, want 1", e.ID, e.Versions)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored reports (-want +got):\n%s", diff)
	}
}

// TestPullThreeNodesOneOffline pulls from three real agents while one is
// down, then again once it is back: every report arrives once, verified,
// and is marked pulled on its node; the second pull skips what the
// first stored.
func TestPullThreeNodesOneOffline(t *testing.T) {
	m := newMesh(t, "")
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	var want []string
	res := m.run("PE-1", headline)
	want = append(want, res.Report.ID)
	want = append(want, m.synthetic("P-2", 2)...)
	want = append(want, m.synthetic("PE-3", 3)...)
	m.stop("PE-3")

	c := m.newController(t.TempDir(), false, "")
	first := pull(t, c)
	if n := nodeResult(t, first, "PE-3"); n.Err == nil {
		t.Errorf("pull from the offline PE-3 succeeded: %+v", n)
	}
	for _, name := range []string{"PE-1", "P-2"} {
		n := nodeResult(t, first, name)
		if n.Err != nil || len(n.Refused) > 0 || len(n.Failed) > 0 || n.Marked != n.Listed {
			t.Errorf("%s: %+v", name, n)
		}
	}
	checkStore(t, m, c.Store(), want[:3])
	for _, e := range m.agent("PE-1").Store().List() {
		if !e.Pulled || e.PulledBy != "ctl" {
			t.Errorf("PE-1 report %s: pulled %v by %q, want by ctl", e.ID, e.Pulled, e.PulledBy)
		}
	}

	// PE-3 comes back on another port, with its reports.
	m.start("PE-3")
	for _, mb := range m.ctlMembers() {
		c.SetMember(mb)
	}
	second := pull(t, c)
	if err := second.Err(); err != nil {
		t.Fatalf("second pull: %v", err)
	}
	if n := nodeResult(t, second, "PE-3"); n.Outcomes[controller.OutcomeNew] != 3 || n.Marked != 3 {
		t.Errorf("PE-3 after coming back: %+v", n)
	}
	if n := nodeResult(t, second, "PE-1"); n.Skipped != 1 || n.Outcomes[controller.OutcomeNew] != 0 {
		t.Errorf("PE-1 re-pulled what it had: %+v", n)
	}
	checkStore(t, m, c.Store(), want)

	// The pull's own evidence (the node's signed resources/read) is kept.
	rcs, err := c.Store().Receipts(res.Report.ID, mustHash(t, c, res.Report.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 1 || rcs[0].Via != "pull" || rcs[0].From != "PE-1" || rcs[0].Evidence == nil || rcs[0].Evidence.Envelope.Signer != "PE-1" {
		t.Errorf("receipts = %+v", rcs)
	}
}

func mustHash(t *testing.T, c *controller.Controller, id string) string {
	t.Helper()
	b, err := c.Store().Raw(id)
	if err != nil {
		t.Fatal(err)
	}
	return controller.ContentHash(b)
}

// TestPullRefusesTampered has PE-1 serve a report whose P-2 evidence was
// altered after the fact (and re-signed by PE-1, so the node's own store
// accepts it), and a report file damaged on disk. Neither is stored nor
// marked pulled; the first is refused naming the evidence item.
func TestPullRefusesTampered(t *testing.T) {
	m := newMesh(t, "")
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	good := m.run("PE-1", headline).Report
	a := m.agent("PE-1")

	// A hostile PE-1 rewrites P-2's SRv6 ping result to show loss.
	forged, err := report.Decode(mustEncode(t, good))
	if err != nil {
		t.Fatal(err)
	}
	forged.ID = report.NewID()
	forged.URI = report.URIPrefix + forged.ID
	idx := slices.IndexFunc(forged.Evidence, func(ev signing.Evidence) bool {
		return ev.Node == "P-2" && ev.Target == "ietf-srv6-ping"
	})
	if idx < 0 {
		t.Fatal("no P-2 SRv6 ping evidence")
	}
	forged.Evidence[idx].Result = json.RawMessage(strings.Replace(string(forged.Evidence[idx].Result), `"lossPercent":0`, `"lossPercent":40`, 1))
	if string(forged.Evidence[idx].Result) == string(good.Evidence[idx].Result) {
		t.Fatalf("nothing to tamper in %s", good.Evidence[idx].Result)
	}
	delete(forged.Signatures, "PE-1")
	if err := forged.Sign(a.Identity()); err != nil {
		t.Fatal(err)
	}
	if err := a.Store().Put(forged); err != nil {
		t.Fatal(err)
	}

	// A third report damaged on disk behind the store's back.
	damaged := m.synthetic("PE-1", 1)[0]
	file := filepath.Join(m.dir, "PE-1", "reports", damaged+".json")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), "synthetic 0", "synthetic 9", 1)), 0o640); err != nil {
		t.Fatal(err)
	}

	ctlDir := t.TempDir()
	c := m.newController(ctlDir, false, "")
	res := pull(t, c)
	n := nodeResult(t, res, "PE-1")
	if len(n.Refused) != 1 {
		t.Fatalf("refused = %v, want the forged report", n.Refused)
	}
	ref := n.Refused[0]
	var ve *report.VerifyError
	if ref.ID != forged.ID || !errors.Is(ref, controller.ErrRefused) || !errors.Is(ref, signing.ErrBadSignature) || !errors.As(ref, &ve) {
		t.Fatalf("refusal = %v", ref)
	}
	if wantElem := "evidence[" + strconv.Itoa(idx) + "] (P-2 tools/call ietf-srv6-ping)"; ve.Element != wantElem {
		t.Errorf("refusal names %q, want %q", ve.Element, wantElem)
	}
	if len(n.Failed) != 1 || !strings.Contains(n.Failed[0].Error(), damaged) {
		t.Errorf("failed = %v, want the damaged report %s", n.Failed, damaged)
	}
	checkStore(t, m, c.Store(), []string{good.ID})
	for _, e := range a.Store().List() {
		if e.ID == forged.ID && e.Pulled {
			t.Errorf("forged report marked pulled on the node")
		}
	}
	kept, _ := filepath.Glob(filepath.Join(ctlDir, "refused", "PE-1-"+forged.ID+"-*.json"))
	if len(kept) != 1 {
		t.Errorf("refused report not kept for inspection: %v", kept)
	}
}

func mustEncode(t *testing.T, r *report.Report) []byte {
	t.Helper()
	b, err := report.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMarkPulledStale: the node refuses to mark a report whose content is
// not what the controller says it stored (a version it has not read).
func TestMarkPulledStale(t *testing.T) {
	m := newMesh(t, "")
	id := m.synthetic("PE-1", 1)[0]
	c := m.newController(t.TempDir(), false, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var peer collab.Peer
	for _, mb := range m.ctlMembers() {
		if mb.Name == "PE-1" {
			peer = mb.Peer
		}
	}
	s, err := c.Endpoint().Session(ctx, peer, []string{controller.ToolMarkPulled})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sha    string
		want   controller.MarkPulledResult
		pulled bool
	}{
		{"other content", strings.Repeat("0", 64), controller.MarkPulledResult{ID: id, Stale: true}, false},
		{"content read", hashOf(t, m, "PE-1", id), controller.MarkPulledResult{ID: id, Marked: true, By: "ctl"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, _ := json.Marshal(controller.MarkPulledArgs{ID: id, SHA256: tt.sha})
			_, res, err := s.CallTool(ctx, controller.ToolMarkPulled, args, collab.CallOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got controller.MarkPulledResult
			if err := json.Unmarshal(res.StructuredContent, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if e := entry(t, m, "PE-1", id); e.Pulled != tt.pulled {
				t.Errorf("pulled = %v, want %v", e.Pulled, tt.pulled)
			}
		})
	}
	// The controller role is granted the tool by the node's default policy.
	if g := s.Granted(); !slices.Contains(g, controller.ToolMarkPulled) {
		t.Errorf("controller granted %v", g)
	}
	// A device is not: a neighbour must not be able to make a node's
	// reports look pulled (and so eligible for deletion).
	devID, err := m.ca.Issue("P-2", signing.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := collab.Listen(ctx, collab.Config{Identity: devID, Trust: m.trust, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ds, err := ep.Session(ctx, peer, []string{controller.ToolMarkPulled, controller.CapReports})
	if err != nil {
		t.Fatal(err)
	}
	if g := ds.Granted(); slices.Contains(g, controller.ToolMarkPulled) {
		t.Errorf("a device peer was granted %v", g)
	}
}

func hashOf(t *testing.T, m *mesh, node, id string) string {
	t.Helper()
	b, err := m.agent(node).Store().Raw(id)
	if err != nil {
		t.Fatal(err)
	}
	return controller.ContentHash(b)
}

// BenchmarkPullReport measures one pull of one real headline report
// (eleven evidence items from three nodes): list, signed read, decode,
// batch verification, store (a duplicate after the first round) and the
// signed mark, over loopback QUIC.
func BenchmarkPullReport(b *testing.B) {
	m := newMesh(b, "")
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	m.run("PE-1", headline)
	c := m.newController(b.TempDir(), false, "")
	pe1 := m.ctlMembers()[1:2]
	if pe1[0].Name != "PE-1" {
		b.Fatalf("members %v", pe1)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res := c.Pull(ctx, pe1, controller.PullOptions{All: true})
		if err := res.Err(); err != nil || res.Nodes[0].Marked != 1 {
			b.Fatal(err, res.Nodes[0])
		}
	}
}

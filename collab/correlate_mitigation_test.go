package collab_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/collab"
)

func TestProposeMitigation(t *testing.T) {
	p, err := collab.BuildPlan(collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}, "PE-1", []string{"P-2", "PE-3"}, collab.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc := scenario{results: map[string]string{
		"PE-1/ietf-srv6-ping": probeJSON("PE-1", 3.2, ""),
		"PE-1/acl-counters":   aclDrop("PE-1", "2001", "egress", 32),
	}}
	obs := sc.observe(p)
	hs := collab.Correlate(p, obs)
	m, ok := collab.ProposeMitigation(hs[0], p, obs)
	if !ok {
		t.Fatalf("no mitigation for %+v", hs[0])
	}
	var args map[string]any
	if err := json.Unmarshal(m.Arguments, &args); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"acl": "2001", "rule": "10", "enabled": false, "rollbackSeconds": float64(300)}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("arguments (-want +got):\n%s", diff)
	}
	if m.Node != "PE-1" || m.Tool != "acl-rule-set" || m.Reason == "" {
		t.Errorf("mitigation %+v", m)
	}
	v := m.Verify
	if v.Node != "PE-1" || v.Target != "ietf-srv6-ping" || v.Method != "tools/call" || v.ID == "1/PE-1/ietf-srv6-ping" {
		t.Errorf("verify step %+v", v)
	}
	if diff := cmp.Diff(string(p.Steps[2].Arguments), string(v.Arguments)); diff != "" {
		t.Errorf("verify arguments (-want +got):\n%s", diff)
	}

	// The ACL hypothesis of an injected or stale suspect gets nothing.
	h := hs[0]
	h.Suspect = "egress ACL 9999 rule 10"
	if _, ok := collab.ProposeMitigation(h, p, obs); ok {
		t.Error("mitigation proposed for an ACL that was never observed")
	}
	// Other rules get no mitigation.
	for _, r := range []string{"link-down", "missing-sid", "one-sided-session", "loss-localisation", "no-fault-found"} {
		h := hs[0]
		h.Rule = r
		if m, ok := collab.ProposeMitigation(h, p, obs); ok || m != nil {
			t.Errorf("rule %s: mitigation %+v proposed", r, m)
		}
	}
}

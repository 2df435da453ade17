package report_test

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// fixture is a domain CA with identities for the headline scenario's
// nodes, each with a result signer.
type fixture struct {
	ca      *signing.CA
	trust   *signing.Trust
	ids     map[string]*signing.Identity
	signers map[string]*signing.Signer
	now     time.Time
}

func newFixture(t testing.TB, now time.Time, nodes ...string) *fixture {
	t.Helper()
	ca, err := signing.NewCA("d2d test CA", 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: ca, trust: signing.NewTrust(ca.Cert), ids: map[string]*signing.Identity{},
		signers: map[string]*signing.Signer{}, now: now}
	dir := t.TempDir()
	for _, n := range nodes {
		id, err := ca.Issue(n, signing.IssueOptions{Validity: 24 * time.Hour, NotBefore: now.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ns, err := signing.OpenNonceSource(filepath.Join(dir, n+".nonce"), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		f.ids[n] = id
		f.signers[n] = signing.NewSigner(id, ns).WithClock(func() time.Time { return now })
	}
	return f
}

func (f *fixture) writeCA(t testing.TB, path string) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Cert.Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// evidence makes one signed evidence item.
func (f *fixture) evidence(t testing.TB, node, via, method, target, args, result string) signing.Evidence {
	t.Helper()
	h, err := signing.HashArgs(json.RawMessage(args))
	if err != nil {
		t.Fatal(err)
	}
	env, err := f.signers[node].SignResult(json.RawMessage(result), signing.Binding{
		Method: method, Target: target, ArgsHash: h, SessionID: "sess-" + node,
	})
	if err != nil {
		t.Fatal(err)
	}
	return signing.Evidence{Node: node, Method: method, Target: target, Arguments: json.RawMessage(args),
		Result: json.RawMessage(result), Envelope: env, Via: via}
}

// sample builds and signs the headline scenario's report
// (docs/ARCHITECTURE.md §1): loss seen from PE-1 but not from P-2, ACL 2001 drops.
func (f *fixture) sample(t testing.TB, id string) *report.Report {
	t.Helper()
	ping := `{"content":[{"type":"text","text":"100 sent, 97 received, 3.2% loss"}],` +
		`"structuredContent":{"sent":100,"received":97,"lossPercent":3.2,"rttMinMs":0.21,"rttAvgMs":0.34,"rttMaxMs":0.9,"path":["fc00:0:2::1","fc00:0:3::100"]}}`
	ping2 := `{"content":[{"type":"text","text":"100 sent, 100 received, 0% loss"}],` +
		`"structuredContent":{"sent":100,"received":100,"lossPercent":0,"rttMinMs":0.2,"rttAvgMs":0.3,"rttMaxMs":0.5,"path":["fc00:0:3::100"]}}`
	ifstats := `{"contents":[{"uri":"urn:ietf:params:xml:ns:yang:ietf-interfaces/interfaces/interface=eth1/statistics","mimeType":"application/yang-data+json",` +
		`"text":"{\"ietf-interfaces:statistics\":{\"in-unicast-pkts\":\"9700\",\"in-errors\":\"0\",\"in-discards\":\"0\",\"out-discards\":\"0\"}}"}]}`
	acl := `{"content":[{"type":"text","text":"ACL 2001 egress eth1"}],` +
		`"structuredContent":{"name":"2001","interface":"eth1","direction":"egress","rules":[{"id":"10","action":"deny","match":"dscp 46","enabled":true,"matchedPackets":312,"matchedBytes":39936},{"id":"20","action":"permit","enabled":true,"matchedPackets":9700,"matchedBytes":1241600}]}}`
	evs := []signing.Evidence{
		f.evidence(t, "PE-1", "local", "tools/call", "ietf-srv6-ping", `{"head":"PE-1","sidList":["P-2","PE-3"],"count":100}`, ping),
		f.evidence(t, "P-2", "d2d", "tools/call", "ietf-srv6-ping", `{"sidList":["PE-3"],"count":100}`, ping2),
		f.evidence(t, "PE-3", "d2d", "resources/read", "urn:ietf:params:xml:ns:yang:ietf-interfaces/interfaces/interface=eth1/statistics", `{}`, ifstats),
		f.evidence(t, "PE-1", "local", "tools/call", "ietf-acl-counters", `{"acl":"2001"}`, acl),
	}
	r, err := report.Assemble(report.Assembly{
		ID:      id,
		Creator: "PE-1",
		Created: f.now,
		Intent:  "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2",
		Plan: []report.PlanStep{
			{Node: "PE-1", Method: "tools/call", Target: "ietf-srv6-ping", Evidence: "e1"},
			{Node: "P-2", Method: "tools/call", Target: "ietf-srv6-ping", Evidence: "e2"},
			{Node: "PE-3", Method: "resources/read", Target: "urn:ietf:params:xml:ns:yang:ietf-interfaces/interfaces/interface=eth1/statistics", Evidence: "e3"},
			{Node: "PE-1", Method: "tools/call", Target: "ietf-acl-counters", Evidence: "e4"},
			{Node: "P-9", Method: "tools/call", Target: "ietf-srv6-ping", Status: "failed"},
		},
		Hypothesis: report.Hypothesis{
			Summary:      "Loss 3.2 % seen only from PE-1; P-2 to PE-3 is clean; PE-1 egress ACL 2001 rule 10 is dropping packets.",
			Location:     "PE-1",
			Suspect:      "egress ACL 2001",
			Confidence:   0.9,
			EvidenceRefs: []string{"e1", "e2", "e4"},
			Rule:         "loss-asymmetry",
		},
		Alternatives: []report.Hypothesis{{
			Summary: "Errors on the PE-1 to P-2 link.", Location: "PE-1->P-2", Suspect: "link",
			Confidence: 0.1, EvidenceRefs: []string{"e1", "e3"}, Rule: "loss-asymmetry",
		}},
		Evidence:  evs,
		Untrusted: []report.Untrusted{{Node: "P-9", Reason: "tools/call timed out after 5s"}},
		Actions: []report.Action{{
			Tool: "ietf-acl-rule-disable", Node: "PE-1", Arguments: json.RawMessage(`{"acl":"2001","rule":"10"}`),
			Consent: json.RawMessage(`{"tool":"ietf-acl-rule-disable","operator":"alice","role":"operator","rollbackTimer":"300s"}`),
			Outcome: report.OutcomeRolledBack, At: f.now.Add(2 * time.Minute), Detail: "rollback timer expired without confirmation",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(f.ids["PE-1"]); err != nil {
		t.Fatal(err)
	}
	return r
}

// small builds a minimal signed report with two evidence items.
func (f *fixture) small(t testing.TB, id string) *report.Report {
	t.Helper()
	r, err := report.Assemble(report.Assembly{
		ID: id, Creator: "PE-1", Created: f.now, Intent: "ping PE-3",
		Hypothesis: report.Hypothesis{Summary: "ok", Location: "PE-3", Confidence: 1, EvidenceRefs: []string{"e1", "e2"}},
		Evidence: []signing.Evidence{
			f.evidence(t, "PE-1", "local", "tools/call", "ping", `{"destination":"PE-3"}`, `{"structuredContent":{"sent":5,"received":5,"lossPercent":0}}`),
			f.evidence(t, "P-2", "d2d", "tools/call", "ping", `{}`, `{"structuredContent":{"sent":5,"received":4,"lossPercent":20}}`),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(f.ids["PE-1"]); err != nil {
		t.Fatal(err)
	}
	return r
}

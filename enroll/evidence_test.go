package enroll_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// checkRevokedEvidence builds two reports by the unrevoked creator with
// evidence signed by the revoked node: one dated and witnessed before
// the revocation (verifies), one signed after it (refused).
func checkRevokedEvidence(t *testing.T, creator, revoked *agent, before time.Time) {
	t.Helper()
	signer := signing.NewSigner(revoked.id, signing.NewMemoryNonceSource(1))
	evidence := func(at time.Time) signing.Evidence {
		b, _ := signing.NewBinding("tools/call", "ietf-ping", json.RawMessage(`{}`), "s1")
		res := json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`)
		env, err := signer.WithClock(func() time.Time { return at }).SignResult(res, b)
		if err != nil {
			t.Fatal(err)
		}
		return signing.Evidence{Node: revoked.id.Name, Method: "tools/call", Target: "ietf-ping", Arguments: json.RawMessage(`{}`), Result: res, Envelope: env, Via: "d2d"}
	}
	build := func(ev signing.Evidence, created time.Time) *report.Report {
		r, err := report.Assemble(report.Assembly{Creator: creator.id.Name, Created: created, Intent: "check",
			Hypothesis: report.Hypothesis{Summary: "s", Confidence: 0.5}, Evidence: []signing.Evidence{ev}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Sign(creator.id); err != nil {
			t.Fatal(err)
		}
		return r
	}
	old := build(evidence(before), before.Add(time.Millisecond))
	if err := report.VerifyArchived(old, creator.trust); err != nil {
		t.Errorf("evidence witnessed before the revocation: %v", err)
	}
	now := time.Now()
	late := build(evidence(now), now)
	err := report.VerifyArchived(late, creator.trust)
	if !errors.Is(err, signing.ErrRevoked) {
		t.Errorf("evidence signed after the revocation: %v, want ErrRevoked", err)
	}
	// Backdated by the key's new holder, and put in a report it signs
	// itself: refused too, no other node vouches for the date.
	self, err := report.Assemble(report.Assembly{Creator: revoked.id.Name, Created: before, Intent: "check",
		Hypothesis: report.Hypothesis{Summary: "s", Confidence: 0.5}, Evidence: []signing.Evidence{evidence(before)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Sign(revoked.id); err != nil {
		t.Fatal(err)
	}
	if err := report.VerifyArchived(self, creator.trust); !errors.Is(err, signing.ErrRevoked) {
		t.Errorf("backdated evidence in the revoked node's own report: %v, want ErrRevoked", err)
	}
}

package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// writeReportWithEvidence writes a report by creator holding one piece of
// evidence signed now by signer.
func writeReportWithEvidence(t *testing.T, file string, creator, signer *signing.Identity) {
	t.Helper()
	b, _ := signing.NewBinding("tools/call", "ping", json.RawMessage(`{}`), "s1")
	res := json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`)
	env, err := signing.NewSigner(signer, signing.NewMemoryNonceSource(1)).SignResult(res, b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Assemble(report.Assembly{Creator: creator.Name, Created: time.Now(), Intent: "check",
		Hypothesis: report.Hypothesis{Summary: "s", Confidence: 0.5},
		Evidence:   []signing.Evidence{{Node: signer.Name, Method: "tools/call", Target: "ping", Arguments: json.RawMessage(`{}`), Result: res, Envelope: env}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(creator); err != nil {
		t.Fatal(err)
	}
	enc, err := report.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, enc, 0o644); err != nil {
		t.Fatal(err)
	}
}

package signing_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

// TestVerifyResultsAgreesWithVerifyResult runs the same checks through
// VerifyResult one at a time and through VerifyResults at once, on fresh
// verifiers, and wants the same peers and errors: valid results from
// several signers, an altered result, another request's binding, a
// session mismatch, clock skew, and a replay inside the batch.
func TestVerifyResultsAgreesWithVerifyResult(t *testing.T) {
	names := []string{"P-1", "P-2", "P-3"}
	d := newDomain(t, names...)
	signers := map[string]*signing.Signer{}
	for _, n := range names {
		signers[n] = d.signer(t, n)
	}
	var checks []signing.ResultCheck
	for i := range 40 {
		name := names[i%len(names)]
		b := mustBinding(t, "tools/call", "ietf-srv6-ping", fmt.Sprintf(`{"count":%d}`, i), "sess-"+name)
		env, err := signers[name].SignResult(json.RawMessage(testResult), b)
		if err != nil {
			t.Fatal(err)
		}
		c := signing.ResultCheck{Result: json.RawMessage(testResult), Want: b, Envelope: env}
		switch i {
		case 5: // altered result
			c.Result = json.RawMessage(`{"content":[]}`)
		case 9: // another request's arguments
			c.Want = mustBinding(t, "tools/call", "ietf-srv6-ping", `{"count":999}`, "sess-"+name)
		case 13: // another session
			c.Want.SessionID = "sess-other"
		case 17: // clock skew
			c.Envelope.Timestamp = c.Envelope.Timestamp.Add(time.Hour)
		case 21: // a replay of an earlier valid result
			checks = append(checks, checks[18])
		}
		checks = append(checks, c)
	}
	type verdict = struct{ Peer, Err string }
	one := d.verifier()
	var want []verdict
	for _, c := range checks {
		p, err := one.VerifyResult(c.Result, c.Want, c.Envelope)
		want = append(want, toVerdict(p, err))
	}
	peers, errs := d.verifier().VerifyResults(checks)
	var got []verdict
	for i := range checks {
		got = append(got, toVerdict(peers[i], errs[i]))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("VerifyResult vs VerifyResults (-one +batch):\n%s", diff)
	}
	bad := 0
	for _, v := range got {
		if v.Err != "" {
			bad++
		}
	}
	if bad != 5 {
		t.Errorf("%d results rejected, want 5: %+v", bad, got)
	}
}

func toVerdict(p *signing.Peer, err error) struct{ Peer, Err string } {
	var v struct{ Peer, Err string }
	if p != nil {
		v.Peer = p.Name
	}
	if err != nil {
		v.Err = err.Error()
	}
	return v
}

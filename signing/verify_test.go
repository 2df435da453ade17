package signing_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

const testResult = `{"content":[{"type":"text","text":"5 packets transmitted, 5 received"}],"structuredContent":{"loss":0.0,"rttMs":[1.2,1.1,1.3]}}`

func TestSignVerifyRoundTrip(t *testing.T) {
	d := newDomain(t, "P-2")
	s := d.signer(t, "P-2")
	b := mustBinding(t, "tools/call", "ietf-srv6-ping", `{"dst":"2001:db8::3","count":5}`, "sess-1")
	env, err := s.SignResult(json.RawMessage(testResult), b)
	if err != nil {
		t.Fatal(err)
	}
	if env.Signer != "P-2" || env.Alg != "ed25519" || env.KeyID != d.ids["P-2"].Thumbprint() || env.SessionID != "sess-1" || env.Nonce != 1 {
		t.Errorf("envelope = %+v", env)
	}
	// Through JSON, as it travels in _meta.
	wire, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var got signing.Envelope
	if err := json.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	// The result may be re-serialized on the way (whitespace, key order).
	reordered := `{ "structuredContent": {"rttMs":[1.2,1.1,1.3],"loss":0}, "content":[{"text":"5 packets transmitted, 5 received","type":"text"}] }`
	v := d.verifier()
	peer, err := v.VerifyResult(json.RawMessage(reordered), b, got)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Name != "P-2" || peer.Thumbprint != env.KeyID {
		t.Errorf("peer = %+v", peer)
	}
	// Offline, as evidence in a report.
	ev := signing.Evidence{Ref: "e1", Node: "P-2", Method: "tools/call", Target: "ietf-srv6-ping",
		Arguments: json.RawMessage(`{"count":5,"dst":"2001:db8::3"}`), Result: json.RawMessage(testResult), Envelope: got}
	if err := v.VerifyEvidence(ev); err != nil {
		t.Fatal(err)
	}
	if errs := v.VerifyEvidenceBatch([]signing.Evidence{ev, ev}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
}

// TestTamperEveryByte flips every byte of the result and of every envelope
// field and checks that each change is rejected with a named reason.
func TestTamperEveryByte(t *testing.T) {
	d := newDomain(t, "P-2")
	s := d.signer(t, "P-2")
	b := mustBinding(t, "tools/call", "ietf-srv6-ping", `{"count":5}`, "sess-1")
	env, err := s.SignResult(json.RawMessage(testResult), b)
	if err != nil {
		t.Fatal(err)
	}
	v := d.verifier()
	reasons := map[string]int{}
	check := func(what string, result []byte, e signing.Envelope) {
		t.Helper()
		_, err := v.VerifyResult(result, b, e)
		var ve *signing.VerifyError
		if !errors.As(err, &ve) {
			if err == nil {
				// A flipped byte can leave the JSON meaning unchanged
				// (e.g. whitespace); only then may it verify, and never
				// twice, as the nonce is recorded.
				t.Errorf("%s: tampered input verified", what)
			} else {
				t.Errorf("%s: error %v is not a *VerifyError", what, err)
			}
			return
		}
		reasons[ve.Reason.Error()]++
	}
	for i := range len(testResult) {
		r := []byte(testResult)
		r[i] ^= 0x01
		check(fmt.Sprintf("result[%d]", i), r, env)
	}
	for i := range env.Signature {
		e := env
		e.Signature = append([]byte(nil), env.Signature...)
		e.Signature[i] ^= 0x80
		check(fmt.Sprintf("signature[%d]", i), []byte(testResult), e)
	}
	for i := range env.KeyID {
		e := env
		e.KeyID[i] ^= 1
		check(fmt.Sprintf("keyId[%d]", i), []byte(testResult), e)
	}
	for i := range len(env.Cert) {
		e := env
		e.Cert = append([]byte(nil), env.Cert...)
		e.Cert[i] ^= 1
		check(fmt.Sprintf("cert[%d]", i), []byte(testResult), e)
	}
	for i := range len(env.Signer) {
		e := env
		bs := []byte(env.Signer)
		bs[i] ^= 1
		e.Signer = string(bs)
		check(fmt.Sprintf("signer[%d]", i), []byte(testResult), e)
	}
	for i := range len(env.SessionID) {
		e := env
		bs := []byte(env.SessionID)
		bs[i] ^= 1
		e.SessionID = string(bs)
		check(fmt.Sprintf("sessionId[%d]", i), []byte(testResult), e)
	}
	for _, delta := range []uint64{1, 2, 1 << 20} {
		e := env
		e.Nonce += delta
		check(fmt.Sprintf("nonce+%d", delta), []byte(testResult), e)
	}
	for _, dt := range []time.Duration{time.Nanosecond, time.Second, -time.Millisecond} {
		e := env
		e.Timestamp = env.Timestamp.Add(dt)
		check(fmt.Sprintf("timestamp%+v", dt), []byte(testResult), e)
	}
	e := env
	e.Alg = "Ed25519"
	check("alg", []byte(testResult), e)
	t.Logf("reasons: %v", reasons)
	// The untouched envelope still verifies after all that.
	if _, err := v.VerifyResult(json.RawMessage(testResult), b, env); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyResultFailures(t *testing.T) {
	d := newDomain(t, "P-2", "PE-3")
	foreign := newDomain(t, "P-2")
	b := mustBinding(t, "tools/call", "ietf-srv6-ping", `{"count":5}`, "sess-1")
	res := json.RawMessage(testResult)
	sign := func(dom *domain, name string, at time.Time, bind signing.Binding) signing.Envelope {
		t.Helper()
		env, err := dom.signer(t, name).WithClock(func() time.Time { return at }).SignResult(res, bind)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	expiredID, err := d.ca.Issue("old", signing.IssueOptions{NotBefore: t0.Add(-25 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	futureID, err := d.ca.Issue("new", signing.IssueOptions{NotBefore: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	withID := func(id *signing.Identity) signing.Envelope {
		env, err := signing.NewSigner(id, signing.NewMemoryNonceSource(0)).WithClock(func() time.Time { return t0 }).SignResult(res, b)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	good := sign(d, "P-2", t0, b)
	swapped := good
	other := sign(d, "PE-3", t0, b)
	swapped.Cert, swapped.KeyID = other.Cert, other.KeyID

	tests := []struct {
		name string
		want signing.Binding
		env  signing.Envelope
		err  error
	}{
		{"other-session", mustBinding(t, "tools/call", "ietf-srv6-ping", `{"count":5}`, "sess-2"), good, signing.ErrBindingMismatch},
		{"other-target", mustBinding(t, "tools/call", "ietf-ping", `{"count":5}`, "sess-1"), good, signing.ErrBadSignature},
		{"other-args", mustBinding(t, "tools/call", "ietf-srv6-ping", `{"count":6}`, "sess-1"), good, signing.ErrBadSignature},
		{"other-method", mustBinding(t, "resources/read", "ietf-srv6-ping", `{"count":5}`, "sess-1"), good, signing.ErrBadSignature},
		{"foreign-ca", b, sign(foreign, "P-2", t0, b), signing.ErrUnknownAuthority},
		{"expired", b, withID(expiredID), signing.ErrCertExpired},
		{"not-yet-valid", b, withID(futureID), signing.ErrCertNotYetValid},
		{"cert-of-other-node", b, swapped, signing.ErrSignerMismatch},
		{"keyid", b, func() signing.Envelope { e := good; e.KeyID = other.KeyID; return e }(), signing.ErrKeyIDMismatch},
		{"alg", b, func() signing.Envelope { e := good; e.Alg = "rsa"; return e }(), signing.ErrBadAlgorithm},
		{"short-sig", b, func() signing.Envelope { e := good; e.Signature = e.Signature[:63]; return e }(), signing.ErrMalformed},
		{"no-cert", b, func() signing.Envelope { e := good; e.Cert = nil; return e }(), signing.ErrMalformed},
		{"skew-future", b, sign(d, "P-2", t0.Add(10*time.Minute), b), signing.ErrClockSkew},
		{"skew-past", b, sign(d, "P-2", t0.Add(-10*time.Minute), b), signing.ErrClockSkew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.verifier().VerifyResult(res, tc.want, tc.env)
			if !errors.Is(err, tc.err) {
				t.Fatalf("VerifyResult = %v, want %v", err, tc.err)
			}
			var ve *signing.VerifyError
			if !errors.As(err, &ve) || ve.Reason != tc.err {
				t.Fatalf("error %#v is not a *VerifyError with reason %v", err, tc.err)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	d := newDomain(t, "P-2", "PE-3")
	s := d.signer(t, "P-2")
	s3 := d.signer(t, "PE-3")
	v := signing.NewVerifier(d.trust, signing.VerifierOptions{ReplayWindow: 64, Now: func() time.Time { return t0 }})
	b := mustBinding(t, "tools/call", "x", "", "s")
	res := json.RawMessage(`{"ok":true}`)
	var envs []signing.Envelope
	for range 200 {
		e, err := s.SignResult(res, b)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	verify := func(e signing.Envelope) error { _, err := v.VerifyResult(res, b, e); return err }
	// Out of order within the window is fine.
	for _, i := range []int{5, 3, 4, 0, 1, 2} {
		if err := verify(envs[i]); err != nil {
			t.Fatalf("nonce %d: %v", envs[i].Nonce, err)
		}
	}
	if err := verify(envs[3]); !errors.Is(err, signing.ErrReplay) {
		t.Fatalf("replay = %v, want ErrReplay", err)
	}
	// Another signer's nonces are independent.
	e3, _ := s3.SignResult(res, b)
	if err := verify(e3); err != nil {
		t.Fatal(err)
	}
	// Jump ahead: 100 is fine, then 10 is older than the 64-wide window.
	if err := verify(envs[100]); err != nil {
		t.Fatal(err)
	}
	err := verify(envs[10])
	if !errors.Is(err, signing.ErrReplay) || !strings.Contains(err.Error(), "older than the replay window") {
		t.Fatalf("old nonce = %v", err)
	}
	// Within the window, unseen: accepted once.
	if err := verify(envs[60]); err != nil {
		t.Fatal(err)
	}
	if err := verify(envs[60]); !errors.Is(err, signing.ErrReplay) {
		t.Fatal(err)
	}
	// A failed verification does not consume the nonce.
	bad := envs[101]
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[0] ^= 1
	if err := verify(bad); !errors.Is(err, signing.ErrBadSignature) {
		t.Fatal(err)
	}
	if err := verify(envs[101]); err != nil {
		t.Fatal(err)
	}
	// Offline verification keeps no replay state.
	ev := signing.Evidence{Ref: "e1", Node: "P-2", Method: "tools/call", Target: "x", Result: res, Envelope: envs[101]}
	for range 2 {
		if err := v.VerifyEvidence(ev); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyEvidence(t *testing.T) {
	d := newDomain(t, "P-2", "PE-3")
	foreign := newDomain(t, "P-2")
	res := json.RawMessage(testResult)
	args := json.RawMessage(`{"count":5}`)
	b := mustBinding(t, "tools/call", "ietf-srv6-ping", string(args), "sess-1")
	mk := func(dom *domain, node string, at time.Time) signing.Evidence {
		env, err := dom.signer(t, node).WithClock(func() time.Time { return at }).SignResult(res, b)
		if err != nil {
			t.Fatal(err)
		}
		return signing.Evidence{Ref: "e1", Node: node, Method: "tools/call", Target: "ietf-srv6-ping", Arguments: args, Result: res, Envelope: env}
	}
	good := mk(d, "P-2", t0)
	// A verifier much later: offline checks use the envelope's timestamp.
	late := signing.NewVerifier(d.trust.WithClock(func() time.Time { return t0.Add(30 * 24 * time.Hour) }), signing.VerifierOptions{Now: func() time.Time { return t0.Add(30 * 24 * time.Hour) }})
	tests := []struct {
		name string
		ev   signing.Evidence
		err  error
	}{
		{"ok", good, nil},
		{"node", func() signing.Evidence { e := good; e.Node = "PE-3"; return e }(), signing.ErrSignerMismatch},
		{"target", func() signing.Evidence { e := good; e.Target = "ietf-ping"; return e }(), signing.ErrBadSignature},
		{"args", func() signing.Evidence { e := good; e.Arguments = json.RawMessage(`{"count":50}`); return e }(), signing.ErrBadSignature},
		{"no-args", func() signing.Evidence { e := good; e.Arguments = nil; return e }(), signing.ErrBadSignature},
		{"result", func() signing.Evidence { e := good; e.Result = json.RawMessage(`{}`); return e }(), signing.ErrBadSignature},
		{"bad-json", func() signing.Evidence { e := good; e.Result = json.RawMessage(`{`); return e }(), signing.ErrMalformed},
		{"signed-after-expiry", mk(d, "P-2", t0.Add(48*time.Hour)), signing.ErrCertExpired},
		{"signed-before-validity", mk(d, "P-2", t0.Add(-2*time.Hour)), signing.ErrCertNotYetValid},
		{"foreign", mk(foreign, "P-2", t0), signing.ErrUnknownAuthority},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := late.VerifyEvidence(tc.ev)
			if !errors.Is(err, tc.err) {
				t.Fatalf("VerifyEvidence = %v, want %v", err, tc.err)
			}
		})
	}
	t.Run("batch", func(t *testing.T) {
		var evs []signing.Evidence
		var want []string
		for _, tc := range tests {
			evs = append(evs, tc.ev)
			if tc.err == nil {
				want = append(want, "")
			} else {
				want = append(want, tc.err.Error())
			}
		}
		for range 20 { // enough good ones to take the batch path
			evs = append(evs, good)
			want = append(want, "")
		}
		var got []string
		for _, err := range late.VerifyEvidenceBatch(evs) {
			if err == nil {
				got = append(got, "")
			} else {
				got = append(got, err.(*signing.VerifyError).Reason.Error())
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("batch results (-want +got):\n%s", diff)
		}
	})
}

func FuzzEnvelopeDecode(f *testing.F) {
	d := newDomain(f, "P-2")
	s := signing.NewSigner(d.ids["P-2"], signing.NewMemoryNonceSource(0)).WithClock(func() time.Time { return t0 })
	b := mustBinding(f, "tools/call", "ietf-srv6-ping", `{"count":5}`, "sess-1")
	env, err := s.SignResult(json.RawMessage(testResult), b)
	if err != nil {
		f.Fatal(err)
	}
	ev := signing.Evidence{Ref: "e1", Node: "P-2", Method: "tools/call", Target: "ietf-srv6-ping",
		Arguments: json.RawMessage(`{"count":5}`), Result: json.RawMessage(testResult), Envelope: env, Via: "d2d"}
	golden, _ := json.Marshal(ev)
	f.Add(golden)
	envJSON, _ := json.Marshal(env)
	f.Add(envJSON)
	f.Add([]byte(`{"signature":{"alg":"ed25519","keyId":"00","nonce":1e300}}`))
	v := signing.NewVerifier(d.trust, signing.VerifierOptions{Now: func() time.Time { return t0 }})
	f.Fuzz(func(t *testing.T, in []byte) {
		var e signing.Envelope
		if json.Unmarshal(in, &e) == nil {
			out, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("marshal decoded envelope: %v", err)
			}
			var e2 signing.Envelope
			if err := json.Unmarshal(out, &e2); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if diff := cmp.Diff(e, e2, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Fatalf("round trip (-first +second):\n%s", diff)
			}
			_, _ = v.VerifyResult(json.RawMessage(testResult), b, e)
		}
		var x signing.Evidence
		if json.Unmarshal(in, &x) == nil {
			err := v.VerifyEvidence(x)
			if err != nil {
				var ve *signing.VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("VerifyEvidence error %T %v is not a *VerifyError", err, err)
				}
			} else if string(in) != string(golden) {
				// Only semantically equal evidence may verify.
				if x.Node != "P-2" || x.Envelope.Nonce != env.Nonce {
					t.Fatalf("forged evidence verified: %s", in)
				}
			}
		}
	})
}

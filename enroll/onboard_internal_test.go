package enroll

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/spake2plus"
	"github.com/d2dmesh/d2d/signing"
)

func newTestAuthority(t *testing.T, now func() time.Time) *Authority {
	t.Helper()
	dir := t.TempDir()
	ca, err := signing.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	a, err := OpenAuthority(dir, AuthorityConfig{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// probe runs the device side up to the CA's challenge and hangs up, as a
// guesser who learns it failed does. It returns the challenge frame and
// the prover's verdict on it.
func probe(t *testing.T, a *Authority, node, code string) ([]byte, error) {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer s.Close()
		_, _ = a.onboard(s, 5*time.Second)
	}()
	defer func() { c.Close(); <-done }()
	sec, err := deriveSecret(code, node)
	if err != nil {
		t.Fatal(err)
	}
	p, shareP, err := spake2plus.NewProver(spakeContext(node), sec, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := hello{Version: protocolVersion, Node: node, Share: shareP}
	hb, _ := h.AppendBinary(nil)
	if _, err := c.Write(appendFrame(nil, typeHello, hb)); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := readFrame(bufio.NewReader(c), typeChallenge)
	if err != nil {
		t.Fatal(err)
	}
	frame := appendFrame(nil, typ, payload)
	var ch challenge
	if err := ch.UnmarshalBinary(payload); err != nil {
		return frame, err
	}
	_, _, err = p.Finish(ch.Share, ch.Confirm)
	return frame, err
}

// TestRefusalTeachesNothing states and tests what a failed attempt
// reveals. Property: whether the code is wrong, expired, used, out of
// attempts, or the node has no code at all, the CA's answer has the same
// type and length (a challenge: a valid curve point and a 32-byte MAC,
// computed with the same two scalar multiplications over the node's
// record or over a dummy record), and the device's only verdict is that
// the CA's confirmation does not verify (spake2plus.ErrConfirmation), the
// same in every case. The reason exists only in the CA's log. An online
// guess costs one of the code's attempts, counted on disk before the
// challenge is sent, so hanging up after the challenge does not save it;
// an offline dictionary attack on a recorded run is impossible because
// the code enters the transcript only through SPAKE2+ (RFC 9383 §6).
func TestRefusalTeachesNothing(t *testing.T) {
	now := time.Now()
	a := newTestAuthority(t, func() time.Time { return now })
	mk := func(node string, opt CodeOptions) string {
		c, err := a.NewCode(node, opt)
		if err != nil {
			t.Fatal(err)
		}
		return c.Code
	}
	good := mk("good", CodeOptions{})
	mk("wrong", CodeOptions{})
	expired := mk("expired", CodeOptions{TTL: time.Second})
	exhausted := mk("exhausted", CodeOptions{Attempts: 1})
	used := mk("used", CodeOptions{})
	if _, err := probe(t, a, "exhausted", "2222-2222-2222-2222-2222"); !errors.Is(err, spake2plus.ErrConfirmation) {
		t.Fatal(err)
	}
	key, _ := signing.GenerateKey()
	csr, _ := key.CertificateRequest("used")
	if _, err := a.redeem("used", csr); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second) // "expired" is past its TTL

	frames := map[string][]byte{}
	for _, tc := range []struct{ name, node, code string }{
		{"wrong code", "wrong", good},
		{"expired code", "expired", expired},
		{"out of attempts", "exhausted", exhausted},
		{"used code", "used", used},
		{"no code for the node", "nobody", good},
	} {
		frame, err := probe(t, a, tc.node, tc.code)
		if !errors.Is(err, spake2plus.ErrConfirmation) {
			t.Errorf("%s: device verdict %v, want ErrConfirmation", tc.name, err)
		}
		frames[tc.name] = frame
	}
	var want int
	for name, f := range frames {
		if want == 0 {
			want = len(f)
		}
		if len(f) != want || f[0] != typeChallenge || len(f) != frameHeader+maxChallenge {
			t.Errorf("%s: answer of type %d, %d bytes; want a %d-byte challenge like the others", name, f[0], len(f), frameHeader+maxChallenge)
		}
	}
	// The right code still works after a wrong guess at another node, and
	// the failed guess at "wrong" was counted on disk.
	frame, err := probe(t, a, "good", good)
	if err != nil || len(frame) != want {
		t.Errorf("right code: %v (%d bytes)", err, len(frame))
	}
	b, err := os.ReadFile(filepath.Join(a.dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st authorityState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Codes {
		if c.Node == "wrong" && c.Attempts != 1 {
			t.Errorf("the hung-up guess at %q counted %d attempts on disk, want 1", c.Node, c.Attempts)
		}
		if bytes.Contains(b, []byte(normalizeCode(good))) {
			t.Error("the state file holds a code in clear")
		}
	}
}

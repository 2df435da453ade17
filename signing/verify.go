package signing

import (
	"crypto/ed25519"
	"encoding/json"
	"sync"
	"time"
)

// VerifierOptions configures a Verifier. The zero value works.
type VerifierOptions struct {
	// ReplayWindow is how many recent nonces per signer are remembered;
	// a nonce this far or further below the highest seen is rejected as
	// a replay. If zero, 4096: well above the results one session can
	// have in flight, and 512 bytes per signer.
	ReplayWindow int
	// MaxSkew is how far a live envelope's timestamp may be from the
	// verifier's clock. If zero, 5m: device clocks are NTP-disciplined
	// but the fault being diagnosed may be the path to the NTP server.
	MaxSkew time.Duration
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

func (o *VerifierOptions) populate() {
	if o.ReplayWindow <= 0 {
		o.ReplayWindow = 4096
	}
	o.ReplayWindow = (o.ReplayWindow + 63) &^ 63
	if o.MaxSkew == 0 {
		o.MaxSkew = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Verifier checks signed results. VerifyResult keeps per-signer replay
// state; it is safe for concurrent use.
type Verifier struct {
	trust *Trust
	opt   VerifierOptions

	mu      sync.Mutex
	signers map[string]*replayState
}

// NewVerifier returns a verifier trusting t.
func NewVerifier(t *Trust, opt VerifierOptions) *Verifier {
	opt.populate()
	return &Verifier{trust: t, opt: opt, signers: make(map[string]*replayState)}
}

// VerifyResult checks a live result against the request the caller sent
// (want) and returns the verified signer. In order: algorithm and
// envelope shape, key id = certificate thumbprint, certificate chain and
// validity now, signer = certificate name, session binding, timestamp
// within MaxSkew, the signature over SignedBytes(result, want, …), and
// finally the nonce against the signer's replay window, which then
// records it. A signature made for another method, target or arguments
// fails as ErrBadSignature: the envelope does not repeat them, so the
// verifier cannot tell that from an altered result.
func (v *Verifier) VerifyResult(result json.RawMessage, want Binding, env Envelope) (*Peer, error) {
	now := v.opt.Now()
	peer, err := v.checkEnvelope(env, now)
	if err != nil {
		return nil, err
	}
	if env.SessionID != want.SessionID {
		return nil, verr(env.Signer, ErrBindingMismatch, "envelope session %q, request session %q", env.SessionID, want.SessionID)
	}
	if d := env.Timestamp.Sub(now); d > v.opt.MaxSkew || -d > v.opt.MaxSkew {
		return nil, verr(env.Signer, ErrClockSkew, "timestamp %s is %v from local clock (max %v)", env.Timestamp.UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond), v.opt.MaxSkew)
	}
	msg, err := SignedBytes(result, want, env.Signer, env.Nonce, env.Timestamp)
	if err != nil {
		return nil, verr(env.Signer, ErrMalformed, "%v", err)
	}
	if !VerifyZIP215(peer.PublicKey, msg, env.Signature) {
		return nil, verr(env.Signer, ErrBadSignature, "signature does not cover this result for %s %q in session %q", want.Method, want.Target, want.SessionID)
	}
	if err := v.checkReplay(env.Signer, env.Nonce); err != nil {
		return nil, err
	}
	return peer, nil
}

// checkEnvelope does the checks shared by the online and offline paths,
// with certificate validity at at.
func (v *Verifier) checkEnvelope(env Envelope, at time.Time) (*Peer, error) {
	if env.Alg != AlgEd25519 {
		return nil, verr(env.Signer, ErrBadAlgorithm, "alg %q, want %q", env.Alg, AlgEd25519)
	}
	if len(env.Signature) != ed25519.SignatureSize {
		return nil, verr(env.Signer, ErrMalformed, "signature is %d bytes, want %d", len(env.Signature), ed25519.SignatureSize)
	}
	if len(env.Cert) == 0 {
		return nil, verr(env.Signer, ErrMalformed, "envelope carries no certificate")
	}
	if env.Timestamp.IsZero() {
		return nil, verr(env.Signer, ErrMalformed, "envelope has no timestamp")
	}
	if env.Nonce > maxNonce {
		return nil, verr(env.Signer, ErrMalformed, "nonce %d exceeds 2^53-1", env.Nonce)
	}
	if tp := ThumbprintOf(env.Cert); !tp.Equal(env.KeyID) {
		return nil, verr(env.Signer, ErrKeyIDMismatch, "keyId %s, certificate thumbprint %s", env.KeyID, tp)
	}
	peer, err := v.trust.verifyCertAt(env.Cert, at)
	if err != nil {
		if ve, ok := err.(*VerifyError); ok && ve.Signer == "" {
			ve.Signer = env.Signer
		}
		return nil, err
	}
	if peer.Name != env.Signer {
		return nil, verr(env.Signer, ErrSignerMismatch, "envelope signer %q, certificate name %q", env.Signer, peer.Name)
	}
	return peer, nil
}

// VerifyEvidence checks one stored result offline: the envelope, the
// certificate chain at the envelope's timestamp, signer = certificate
// name = ev.Node, and the signature over the binding rebuilt from ev's
// method, target, arguments and the envelope's session. No replay state
// is kept or consulted.
func (v *Verifier) VerifyEvidence(ev Evidence) error {
	msg, peer, err := v.prepareEvidence(ev, Witness{})
	if err != nil {
		return err
	}
	if !VerifyZIP215(peer.PublicKey, msg, ev.Envelope.Signature) {
		return verr(ev.Envelope.Signer, ErrBadSignature, "evidence %s: signature does not cover its result", ev.Ref)
	}
	return nil
}

// Witness is a party other than the signer that vouches, with its own
// signature, that evidence existed at At: for evidence in a report, the
// report's creator and its creation time, since the creator verified
// the evidence live when it gathered it (clock skew at most
// VerifierOptions.MaxSkew).
type Witness struct {
	Name string
	At   time.Time
}

// prepareEvidence does every check but the signature and returns the
// signed bytes. A certificate revoked since S passes only for evidence
// dated before S that w, another node, witnessed before S: the holder of
// a stolen key can date a signature as it likes, so the signer's own
// timestamp proves nothing once its key is in doubt.
func (v *Verifier) prepareEvidence(ev Evidence, w Witness) ([]byte, *Peer, error) {
	env := ev.Envelope
	peer, err := v.checkEnvelope(env, env.Timestamp)
	if err != nil {
		return nil, nil, err
	}
	if r, revoked := v.trust.Revoked(peer.Cert); revoked {
		if w.At.IsZero() || w.Name == "" || w.Name == env.Signer || !w.At.Before(r.Since) {
			return nil, nil, verr(env.Signer, ErrRevoked, "evidence %s is signed %s by a certificate revoked since %s and no other node witnessed it before then",
				ev.Ref, env.Timestamp.UTC().Format(time.RFC3339), r.Since.UTC().Format(time.RFC3339))
		}
	}
	if env.Signer != ev.Node {
		return nil, nil, verr(env.Signer, ErrSignerMismatch, "evidence %s is from node %q, signed by %q", ev.Ref, ev.Node, env.Signer)
	}
	h, err := HashArgs(ev.Arguments)
	if err != nil {
		return nil, nil, verr(env.Signer, ErrMalformed, "evidence %s arguments: %v", ev.Ref, err)
	}
	b := Binding{Method: ev.Method, Target: ev.Target, ArgsHash: h, SessionID: env.SessionID}
	msg, err := SignedBytes(ev.Result, b, env.Signer, env.Nonce, env.Timestamp)
	if err != nil {
		return nil, nil, verr(env.Signer, ErrMalformed, "evidence %s: %v", ev.Ref, err)
	}
	return msg, peer, nil
}

// VerifyEvidenceBatch verifies many evidences at once; the result has one
// entry per input, nil when valid. Signatures go through VerifyBatch.
// Evidence signed with a revoked certificate is refused whatever its
// date; see VerifyEvidenceWitnessed.
func (v *Verifier) VerifyEvidenceBatch(evs []Evidence) []error {
	return v.VerifyEvidenceWitnessed(evs, Witness{})
}

// VerifyEvidenceWitnessed is VerifyEvidenceBatch for evidence that w
// vouches for: evidence signed with a certificate revoked since S is
// accepted when it is dated before S, w is not its signer and w.At is
// before S. The caller must verify w's own signature (report.Verify
// checks the creator's).
func (v *Verifier) VerifyEvidenceWitnessed(evs []Evidence, w Witness) []error {
	errs := make([]error, len(evs))
	items := make([]BatchItem, 0, len(evs))
	idx := make([]int, 0, len(evs))
	for i, ev := range evs {
		msg, peer, err := v.prepareEvidence(ev, w)
		if err != nil {
			errs[i] = err
			continue
		}
		items = append(items, BatchItem{PublicKey: peer.PublicKey, Message: msg, Signature: ev.Envelope.Signature})
		idx = append(idx, i)
	}
	for _, b := range VerifyBatch(items) {
		ev := evs[idx[b]]
		errs[idx[b]] = verr(ev.Envelope.Signer, ErrBadSignature, "evidence %s: signature does not cover its result", ev.Ref)
	}
	return errs
}

// replayState is a sliding window over one signer's nonces, as in IPsec
// anti-replay (RFC 4303 §3.4.3): the highest nonce seen and a bitmap of
// the window below it, indexed by nonce modulo the window size.
type replayState struct {
	max  uint64
	bits []uint64
}

func (v *Verifier) checkReplay(signer string, n uint64) error {
	w := uint64(v.opt.ReplayWindow)
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.signers[signer]
	if st == nil {
		st = &replayState{bits: make([]uint64, w/64)}
		v.signers[signer] = st
		st.max = n
		st.set(n, w)
		return nil
	}
	switch {
	case n > st.max:
		if n-st.max >= w {
			clear(st.bits)
		} else {
			for m := st.max + 1; m < n; m++ {
				st.clearBit(m, w)
			}
		}
		st.max = n
		st.set(n, w)
		return nil
	case st.max-n >= w:
		return verr(signer, ErrReplay, "nonce %d is older than the replay window (highest seen %d, window %d)", n, st.max, w)
	case st.isSet(n, w):
		return verr(signer, ErrReplay, "nonce %d already seen", n)
	default:
		st.set(n, w)
		return nil
	}
}

func (s *replayState) set(n, w uint64)      { i := n % w; s.bits[i/64] |= 1 << (i % 64) }
func (s *replayState) clearBit(n, w uint64) { i := n % w; s.bits[i/64] &^= 1 << (i % 64) }
func (s *replayState) isSet(n, w uint64) bool {
	i := n % w
	return s.bits[i/64]&(1<<(i%64)) != 0
}

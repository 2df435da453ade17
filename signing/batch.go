package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"hash"
	"sync"
	"time"

	"filippo.io/edwards25519"
)

// BatchItem is one signature to check in a batch.
type BatchItem struct {
	PublicKey          ed25519.PublicKey
	Message, Signature []byte
}

// VerifyZIP215 verifies an ed25519 signature under the ZIP-215 rules
// (see the package documentation): A and R may be non-canonical encodings
// of curve points, S must be below the group order L, and the check is the
// cofactored equation [8](S·B − R − k·A) = 0 with k = SHA-512(R‖A‖M)
// computed over the encodings as received.
func VerifyZIP215(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	A, ok := decodeKey(pub)
	if !ok {
		return false
	}
	R, err := new(edwards25519.Point).SetBytes(sig[:32])
	if err != nil {
		return false
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	k := challenge(sig[:32], pub, msg)
	k.Negate(k)
	// S·B − k·A − R, times the cofactor.
	P := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, A, s)
	P.Subtract(P, R)
	P.MultByCofactor(P)
	return P.Equal(identity) == 1
}

var identity = edwards25519.NewIdentityPoint()

// challenge is k = SHA-512(R ‖ A ‖ M) mod L (RFC 8032 §5.1.7 step 2),
// over the encodings exactly as received.
func challenge(R, A, msg []byte) *edwards25519.Scalar {
	return challengeWith(new(edwards25519.Scalar), sha512.New(), R, A, msg)
}

// challengeWith is challenge into k with a caller's hash, which a batch
// reuses rather than allocate both per signature.
func challengeWith(k *edwards25519.Scalar, h hash.Hash, R, A, msg []byte) *edwards25519.Scalar {
	h.Reset()
	h.Write(R)
	h.Write(A)
	h.Write(msg)
	var d [64]byte
	_, _ = k.SetUniformBytes(h.Sum(d[:0])) // 64 bytes: cannot fail
	return k
}

// keyCache keeps decompressed public keys: decompression costs a field
// exponentiation, and a domain has few signers that sign a lot.
var keyCache = struct {
	sync.Mutex
	m map[[32]byte]*edwards25519.Point
}{m: make(map[[32]byte]*edwards25519.Point)}

// keyCacheMax bounds the cache; a full cache starts over.
const keyCacheMax = 4096

// decodeKey decompresses a public key (accepting non-canonical encodings,
// as ZIP-215 requires), through the cache. The returned point must not be
// modified.
func decodeKey(pub []byte) (*edwards25519.Point, bool) {
	var k [32]byte
	copy(k[:], pub)
	keyCache.Lock()
	p, ok := keyCache.m[k]
	keyCache.Unlock()
	if ok {
		return p, true
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, false
	}
	keyCache.Lock()
	if len(keyCache.m) >= keyCacheMax {
		clear(keyCache.m)
	}
	keyCache.m[k] = p
	keyCache.Unlock()
	return p, true
}

// VerifyBatch checks all items at once and returns nil when every
// signature is valid under VerifyZIP215's rules. Otherwise it returns the
// indices of the invalid items, found by checking one by one.
//
// The batch equation (random 128-bit z_i) is
//
//	[8]( Σ z_i·R_i + Σ_A (Σ_{i: A_i=A} z_i·k_i)·A − (Σ z_i·S_i)·B ) = 0
//
// the negation of the sum of the single equations weighted by z_i.
//
// Items that share a public key share one term, so a batch from a few
// signers costs about one short (128-bit) scalar multiplication per
// signature.
func VerifyBatch(items []BatchItem) (bad []int) {
	if len(items) == 0 {
		return nil
	}
	if len(items) == 1 || !batchOK(items) {
		for i, it := range items {
			if !VerifyZIP215(it.PublicKey, it.Message, it.Signature) {
				bad = append(bad, i)
			}
		}
	}
	return bad
}

// batchOK evaluates the batch equation; false means at least one item is
// invalid (or malformed), to be found one by one.
func batchOK(items []BatchItem) bool {
	n := len(items)
	zbytes := make([]byte, 16*n)
	if _, err := rand.Read(zbytes); err != nil {
		return false
	}
	// Points: B, R_1..R_n, then one per distinct key.
	points := make([]*edwards25519.Point, 1, 1+n+8)
	scalars := make([]*edwards25519.Scalar, 1, 1+n+8)
	points[0] = edwards25519.NewGeneratorPoint()
	sumS := edwards25519.NewScalar()
	scalars[0] = sumS
	rs := make([]edwards25519.Point, n)
	zs := make([]edwards25519.Scalar, n)
	keyIndex := make(map[[32]byte]int)
	var keyScalars []*edwards25519.Scalar
	var keyPoints []*edwards25519.Point
	var zb [32]byte
	s, k := new(edwards25519.Scalar), new(edwards25519.Scalar)
	h := sha512.New()
	for i, it := range items {
		if len(it.PublicKey) != ed25519.PublicKeySize || len(it.Signature) != ed25519.SignatureSize {
			return false
		}
		if _, err := rs[i].SetBytes(it.Signature[:32]); err != nil {
			return false
		}
		if _, err := s.SetCanonicalBytes(it.Signature[32:]); err != nil {
			return false
		}
		copy(zb[:16], zbytes[16*i:])
		z := &zs[i]
		if _, err := z.SetCanonicalBytes(zb[:]); err != nil {
			return false
		}
		// Σ z_i·S_i
		sumS.MultiplyAdd(z, s, sumS)
		challengeWith(k, h, it.Signature[:32], it.PublicKey, it.Message)
		var key [32]byte
		copy(key[:], it.PublicKey)
		j, ok := keyIndex[key]
		if !ok {
			A, ok := decodeKey(it.PublicKey)
			if !ok {
				return false
			}
			j = len(keyPoints)
			keyIndex[key] = j
			keyPoints = append(keyPoints, A)
			keyScalars = append(keyScalars, edwards25519.NewScalar())
		}
		// Σ z_i·k_i per key
		keyScalars[j].MultiplyAdd(z, k, keyScalars[j])
		// +z_i for R_i: the equation is negated as a whole so that these
		// scalars stay 128 bits long, halving their additions in the
		// multi-scalar multiplication.
		points = append(points, &rs[i])
		scalars = append(scalars, z)
	}
	sumS.Negate(sumS)
	for j := range keyPoints {
		points = append(points, keyPoints[j])
		scalars = append(scalars, keyScalars[j])
	}
	P := multiScalarMult(scalars, points)
	P.MultByCofactor(P)
	return P.Equal(identity) == 1
}

// ResultCheck is one live result for Verifier.VerifyResults: the
// arguments of one VerifyResult call.
type ResultCheck struct {
	Result   json.RawMessage
	Want     Binding
	Envelope Envelope
}

// VerifyResults does what len(checks) calls of VerifyResult in slice
// order would do, with the same peers and errors (replay state included),
// but checks the signatures together with VerifyBatch. A caller that
// receives many results at once, such as a fan-out, pays a fraction of
// the one-by-one signature cost (BenchmarkVerifyBatch).
func (v *Verifier) VerifyResults(checks []ResultCheck) ([]*Peer, []error) {
	peers := make([]*Peer, len(checks))
	errs := make([]error, len(checks))
	items := make([]BatchItem, 0, len(checks))
	idx := make([]int, 0, len(checks))
	now := v.opt.Now()
	for i, c := range checks {
		msg, peer, err := v.prepareResult(c, now)
		if err != nil {
			errs[i] = err
			continue
		}
		peers[i] = peer
		items = append(items, BatchItem{PublicKey: peer.PublicKey, Message: msg, Signature: c.Envelope.Signature})
		idx = append(idx, i)
	}
	for _, b := range VerifyBatch(items) {
		c := checks[idx[b]]
		peers[idx[b]] = nil
		errs[idx[b]] = verr(c.Envelope.Signer, ErrBadSignature, "signature does not cover this result for %s %q in session %q", c.Want.Method, c.Want.Target, c.Want.SessionID)
	}
	// Nonces are recorded only for valid signatures, in slice order, as
	// VerifyResult does one call at a time.
	for i, c := range checks {
		if peers[i] == nil {
			continue
		}
		if err := v.checkReplay(c.Envelope.Signer, c.Envelope.Nonce); err != nil {
			peers[i], errs[i] = nil, err
		}
	}
	return peers, errs
}

// prepareResult is VerifyResult up to the signature: every check before
// it, in the same order, and the signed bytes. It must stay in step with
// VerifyResult (TestVerifyResultsAgreesWithVerifyResult compares them).
func (v *Verifier) prepareResult(c ResultCheck, now time.Time) ([]byte, *Peer, error) {
	env := c.Envelope
	peer, err := v.checkEnvelope(env, now)
	if err != nil {
		return nil, nil, err
	}
	if env.SessionID != c.Want.SessionID {
		return nil, nil, verr(env.Signer, ErrBindingMismatch, "envelope session %q, request session %q", env.SessionID, c.Want.SessionID)
	}
	if d := env.Timestamp.Sub(now); d > v.opt.MaxSkew || -d > v.opt.MaxSkew {
		return nil, nil, verr(env.Signer, ErrClockSkew, "timestamp %s is %v from local clock (max %v)", env.Timestamp.UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond), v.opt.MaxSkew)
	}
	msg, err := SignedBytes(c.Result, c.Want, env.Signer, env.Nonce, env.Timestamp)
	if err != nil {
		return nil, nil, verr(env.Signer, ErrMalformed, "%v", err)
	}
	return msg, peer, nil
}

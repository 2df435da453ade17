package spake2plus

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"

	"filippo.io/nistec"
)

// Sizes of the protocol's values for P256-SHA256-HKDF-SHA256-HMAC-SHA256.
const (
	// ShareSize is a SEC1 uncompressed P-256 point.
	ShareSize = 65
	// ConfirmSize is an HMAC-SHA256 tag.
	ConfirmSize = 32
	// KeySize is K_shared.
	KeySize = 32
	// PBKDFSize is the registration input: w0s ‖ w1s, each ceil(log2 p)+64
	// bits, so that reduction mod p has a bias below 2^-64 (RFC 9383 §3.2).
	PBKDFSize = 80
	// ScalarSize is an encoded scalar (w0, w1, x, y).
	ScalarSize = 32
)

// Errors. Every failure of a run is one of these.
var (
	// ErrInvalidShare: a share is not a 65-byte uncompressed point on the
	// curve, or is the identity.
	ErrInvalidShare = errors.New("spake2plus: invalid share")
	// ErrConfirmation: the peer's confirmation MAC does not verify, so it
	// did not derive the same keys: a wrong password or a tampered run.
	ErrConfirmation = errors.New("spake2plus: key confirmation failed")
	// ErrInvalidSecret: registration input of the wrong size, or a w0 or
	// w1 that reduces to zero.
	ErrInvalidSecret = errors.New("spake2plus: invalid registration secret")
)

// The points M and N for P-256 (RFC 9383 §4), compressed SEC1.
var (
	mBytes, _ = hex.DecodeString("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")
	nBytes, _ = hex.DecodeString("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49")
	pointM    = mustPoint(mBytes)
	pointN    = mustPoint(nBytes)
	// order is p, the order of the P-256 group.
	order, _ = new(big.Int).SetString("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
)

func mustPoint(b []byte) *nistec.P256Point {
	p, err := nistec.NewP256Point().SetBytes(b)
	if err != nil {
		panic("spake2plus: bad constant point: " + err.Error())
	}
	return p
}

// Context is what both sides bind into the transcript besides the
// password: the application's context string and the two identities
// (RFC 9383 §3.3). Both sides must use the same values.
type Context struct {
	Context    []byte
	IDProver   []byte
	IDVerifier []byte
}

// scalar is a value mod p, big-endian in 32 bytes.
type scalar [ScalarSize]byte

func reduce(b []byte) scalar {
	n := new(big.Int).SetBytes(b)
	n.Mod(n, order)
	var s scalar
	n.FillBytes(s[:])
	return s
}

func (s *scalar) isZero() bool { return *s == scalar{} }

// Secret is the prover's registration secret (w0, w1). It formats as a
// redaction marker.
type Secret struct{ w0, w1 scalar }

// NewSecret reduces a PBKDF output of PBKDFSize bytes to (w0, w1)
// (RFC 9383 §3.2).
func NewSecret(pbkdfOutput []byte) (*Secret, error) {
	if len(pbkdfOutput) != PBKDFSize {
		return nil, fmt.Errorf("%w: PBKDF output of %d bytes, want %d", ErrInvalidSecret, len(pbkdfOutput), PBKDFSize)
	}
	s := &Secret{w0: reduce(pbkdfOutput[:PBKDFSize/2]), w1: reduce(pbkdfOutput[PBKDFSize/2:])}
	if s.w0.isZero() || s.w1.isZero() {
		return nil, fmt.Errorf("%w: w0 or w1 is zero", ErrInvalidSecret)
	}
	return s, nil
}

func (*Secret) String() string { return "[REDACTED spake2plus secret]" }

// Record returns what the verifier stores: w0 and L = w1·P.
func (s *Secret) Record() Record {
	L, err := nistec.NewP256Point().ScalarBaseMult(s.w1[:])
	if err != nil {
		panic("spake2plus: " + err.Error()) // 32-byte scalar: cannot fail
	}
	var r Record
	r.W0 = s.w0
	copy(r.L[:], L.Bytes())
	return r
}

// Record is the verifier's registration record: w0 and L = w1·P. It does
// not let its holder run the protocol as the prover (RFC 9383 §1).
type Record struct {
	W0 [ScalarSize]byte
	L  [ShareSize]byte
}

func (Record) String() string { return "[REDACTED spake2plus record]" }

// Valid checks that w0 is a non-zero scalar below p and L a point.
func (r *Record) Valid() error {
	w := new(big.Int).SetBytes(r.W0[:])
	if w.Sign() == 0 || w.Cmp(order) >= 0 {
		return fmt.Errorf("%w: w0 out of range", ErrInvalidSecret)
	}
	if _, err := decodeShare(r.L[:]); err != nil {
		return fmt.Errorf("%w: L: %v", ErrInvalidSecret, err)
	}
	return nil
}

// decodeShare accepts exactly a 65-byte uncompressed point on the curve
// other than the identity.
func decodeShare(b []byte) (*nistec.P256Point, error) {
	if len(b) != ShareSize || b[0] != 4 {
		return nil, fmt.Errorf("%w: want %d bytes starting 0x04, got %d", ErrInvalidShare, ShareSize, len(b))
	}
	p, err := nistec.NewP256Point().SetBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidShare, err)
	}
	if p.IsInfinity() == 1 {
		return nil, fmt.Errorf("%w: identity", ErrInvalidShare)
	}
	return p, nil
}

func randomScalar(rand io.Reader) (scalar, error) {
	// 40 bytes reduced mod p: bias below 2^-64, as for w0 and w1.
	var b [PBKDFSize / 2]byte
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return scalar{}, fmt.Errorf("spake2plus: random: %w", err)
		}
		if s := reduce(b[:]); !s.isZero() {
			return s, nil
		}
	}
}

// mulAdd returns a·P + b·Q.
func mulAdd(a scalar, b scalar, q *nistec.P256Point) *nistec.P256Point {
	aP, _ := nistec.NewP256Point().ScalarBaseMult(a[:])
	bQ, _ := nistec.NewP256Point().ScalarMult(q, b[:])
	return aP.Add(aP, bQ)
}

// unmask returns share − w·base.
func unmask(share *nistec.P256Point, w scalar, base *nistec.P256Point) *nistec.P256Point {
	wB, _ := nistec.NewP256Point().ScalarMult(base, w[:])
	wB.Negate(wB)
	return wB.Add(share, wB)
}

// keys is the key schedule of one run (RFC 9383 §3.4).
type keys struct {
	tt                   []byte
	main                 [32]byte
	confirmP, confirmV   []byte
	shared               []byte
	shareP, shareV, z, v []byte
}

func schedule(c Context, shareP, shareV []byte, Z, V *nistec.P256Point, w0 scalar) (*keys, error) {
	k := &keys{shareP: shareP, shareV: shareV, z: Z.Bytes(), v: V.Bytes()}
	M, N := pointM.Bytes(), pointN.Bytes()
	for _, part := range [][]byte{c.Context, c.IDProver, c.IDVerifier, M, N, shareP, shareV, k.z, k.v, w0[:]} {
		k.tt = binary.LittleEndian.AppendUint64(k.tt, uint64(len(part)))
		k.tt = append(k.tt, part...)
	}
	k.main = sha256.Sum256(k.tt)
	ck, err := hkdf.Key(sha256.New, k.main[:], nil, "ConfirmationKeys", 64)
	if err != nil {
		return nil, err
	}
	k.confirmP, k.confirmV = ck[:32], ck[32:]
	if k.shared, err = hkdf.Key(sha256.New, k.main[:], nil, "SharedKey", KeySize); err != nil {
		return nil, err
	}
	return k, nil
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// Prover is the side that knows the password, between sending shareP and
// receiving the verifier's answer. Use it once.
type Prover struct {
	c      Context
	s      *Secret
	x      scalar
	shareP []byte
	done   bool
}

// NewProver starts a run: it picks x and returns the prover with shareP
// = x·P + w0·M to send.
func NewProver(c Context, s *Secret, rand io.Reader) (*Prover, []byte, error) {
	x, err := randomScalar(rand)
	if err != nil {
		return nil, nil, err
	}
	p := newProver(c, s, x)
	return p, p.shareP, nil
}

func newProver(c Context, s *Secret, x scalar) *Prover {
	return &Prover{c: c, s: s, x: x, shareP: mulAdd(x, s.w0, pointM).Bytes()}
}

// Finish takes the verifier's shareV and confirmV, checks confirmV and
// returns confirmP to send and K_shared. Any failure is ErrInvalidShare
// or ErrConfirmation.
func (p *Prover) Finish(shareV, confirmV []byte) (confirmP, shared []byte, err error) {
	if p.done {
		return nil, nil, errors.New("spake2plus: prover used twice")
	}
	p.done = true
	Y, err := decodeShare(shareV)
	if err != nil {
		return nil, nil, err
	}
	Yu := unmask(Y, p.s.w0, pointN)
	Z, _ := nistec.NewP256Point().ScalarMult(Yu, p.x[:])
	V, _ := nistec.NewP256Point().ScalarMult(Yu, p.s.w1[:])
	k, err := schedule(p.c, p.shareP, shareV, Z, V, p.s.w0)
	if err != nil {
		return nil, nil, err
	}
	if !hmac.Equal(mac(k.confirmV, p.shareP), confirmV) {
		return nil, nil, ErrConfirmation
	}
	return mac(k.confirmP, shareV), k.shared, nil
}

// Verifier is the side that holds the registration record, between
// sending shareV and confirmV and receiving confirmP. Use it once.
type Verifier struct {
	k    *keys
	done bool
}

// NewVerifier answers a prover's shareP: it picks y and returns the
// verifier with shareV = y·P + w0·N and confirmV to send.
func NewVerifier(c Context, r Record, shareP []byte, rand io.Reader) (*Verifier, []byte, []byte, error) {
	y, err := randomScalar(rand)
	if err != nil {
		return nil, nil, nil, err
	}
	return newVerifier(c, r, shareP, y)
}

func newVerifier(c Context, r Record, shareP []byte, y scalar) (*Verifier, []byte, []byte, error) {
	if err := r.Valid(); err != nil {
		return nil, nil, nil, err
	}
	X, err := decodeShare(shareP)
	if err != nil {
		return nil, nil, nil, err
	}
	L, _ := decodeShare(r.L[:])
	w0 := scalar(r.W0)
	shareV := mulAdd(y, w0, pointN).Bytes()
	Z, _ := nistec.NewP256Point().ScalarMult(unmask(X, w0, pointM), y[:])
	V, _ := nistec.NewP256Point().ScalarMult(L, y[:])
	k, err := schedule(c, shareP, shareV, Z, V, w0)
	if err != nil {
		return nil, nil, nil, err
	}
	return &Verifier{k: k}, shareV, mac(k.confirmV, shareP), nil
}

// Finish checks the prover's confirmP and returns K_shared.
func (v *Verifier) Finish(confirmP []byte) ([]byte, error) {
	if v.done {
		return nil, errors.New("spake2plus: verifier used twice")
	}
	v.done = true
	if !hmac.Equal(mac(v.k.confirmP, v.k.shareV), confirmP) {
		return nil, ErrConfirmation
	}
	return v.k.shared, nil
}

package signing

import (
	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// Multi-scalar multiplication Σ s_i·P_i for the batch equation.
//
// Two methods, chosen by the number of points:
//
//   - Few points: edwards25519's VarTimeMultiScalarMult (interleaved,
//     one digit table per point, one shared chain of 256 doublings). Per
//     point it costs a table of 8 additions plus one addition per nonzero
//     digit, ~43 for a full-length scalar.
//
//   - Many points: the bucket method (Pippenger). Scalars are cut into
//     8-bit windows recoded as signed digits in [-128, 127]. For each
//     window every point is added to (or subtracted from) the bucket of
//     its digit's magnitude, and the 128 buckets are summed with weights
//     1..128 by a running sum (256 additions). Per point that is one
//     addition per nonzero window: 32 for a full-length scalar, 16 for
//     the 128-bit z_i of the batch equation, against ~51 and ~29 for the
//     interleaved method, plus 256 additions per window shared by all
//     points.
//
// With half the scalars 128 bits long, as in VerifyBatch, the bucket
// method needs about 24 + 8192/N additions per point against about
// 40 + 256/N, and its additions are cheaper (7 field multiplications, see
// extPoint), so it wins from about 200 points on (BenchmarkMultiScalarMult:
// at 129 points the interleaved method is still ahead, at 257 the bucket
// method is; at 2049 it takes under half the time). A batch of 96
// signatures from distinct signers has 193 points.
const msmBucketMin = 192

// msmWindows is the number of 8-bit windows: scalars are reduced modulo
// L < 2^253, so the top digit, even after a carry, stays below 2^5.
const msmWindows = 32

// msmBuckets is the number of buckets per window: digit magnitudes 1..128.
const msmBuckets = 128

// multiScalarMult returns Σ scalars[i]·points[i]. It runs in variable
// time, which is fine for verification: every input is public.
func multiScalarMult(scalars []*edwards25519.Scalar, points []*edwards25519.Point) *edwards25519.Point {
	if len(points) < msmBucketMin {
		return new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	}
	return bucketMultiScalarMult(scalars, points)
}

// signedDigits recodes a canonical scalar (32 bytes, little-endian, below
// 2^253) as 32 digits d_w in [-128, 127] with s = Σ d_w·2^(8w).
func signedDigits(d *[msmWindows]int8, s *edwards25519.Scalar) {
	b := s.Bytes()
	carry := 0
	for w := range msmWindows {
		v := int(b[w]) + carry
		carry = 0
		if v >= 128 {
			v -= 256
			carry = 1
		}
		d[w] = int8(v)
	}
	// s < 2^253 leaves b[31] + carry ≤ 0x20 < 128: no carry out.
}

// The bucket method does its own point arithmetic on edwards25519's
// public field elements: its additions are "mixed", a bucket (extended
// coordinates, RFC 8032 §5.1.4) plus an input point kept in affine form
// as (y+x, y−x, 2d·x·y). That takes 7 field multiplications, where
// Point.Add, which must first bring its second operand into that form
// and multiply by its Z, takes 9; the field multiplications are nearly
// all of the cost.

// extPoint is a point in extended coordinates (X:Y:Z:T), x = X/Z,
// y = Y/Z, x·y = T/Z.
type extPoint struct{ X, Y, Z, T field.Element }

// affPoint is an input point in affine form, ready for mixed addition.
type affPoint struct{ YplusX, YminusX, T2d field.Element }

// curveD2 is 2d, with d = −121665/121666 the curve constant (RFC 8032
// §5.1).
var curveD2 = func() *field.Element {
	var num, den field.Element
	num.Negate(feFromUint(121665))
	den.Invert(feFromUint(121666))
	num.Multiply(&num, &den)
	return num.Add(&num, &num)
}()

var (
	feOne  = new(field.Element).One()
	feFour = feFromUint(4)
)

func feFromUint(v uint64) *field.Element {
	var b [32]byte
	for i := 0; v != 0; i, v = i+1, v>>8 {
		b[i] = byte(v)
	}
	e, _ := new(field.Element).SetBytes(b[:])
	return e
}

func (v *extPoint) setIdentity() {
	v.X.Zero()
	v.Y.One()
	v.Z.One()
	v.T.Zero()
}

// fromP1xP1 completes an addition: (X', Y', Z', T') is the "completed"
// point with x = X'/Z', y = Y'/T'.
func (v *extPoint) fromP1xP1(x, y, z, t *field.Element) {
	v.X.Multiply(x, t)
	v.Y.Multiply(y, z)
	v.Z.Multiply(z, t)
	v.T.Multiply(x, y)
}

// addAffine sets v = p + q (sub: p − q). The unified formula of Hisil,
// Wong, Carter and Dawson ("Twisted Edwards curves revisited", 2008,
// §3.1, a = −1) is complete on edwards25519, so p = ±q and the identity
// need no special case.
func (v *extPoint) addAffine(p *extPoint, q *affPoint, sub bool) {
	var ypx, ymx, pp, mm, tt, z2 field.Element
	ypx.Add(&p.Y, &p.X)
	ymx.Subtract(&p.Y, &p.X)
	if sub { // −(x, y) = (−x, y): y+x and y−x swap, 2d·x·y changes sign
		pp.Multiply(&ypx, &q.YminusX)
		mm.Multiply(&ymx, &q.YplusX)
		tt.Multiply(&p.T, &q.T2d)
		tt.Negate(&tt)
	} else {
		pp.Multiply(&ypx, &q.YplusX)
		mm.Multiply(&ymx, &q.YminusX)
		tt.Multiply(&p.T, &q.T2d)
	}
	z2.Add(&p.Z, &p.Z)
	var x, y, z, t field.Element
	x.Subtract(&pp, &mm)
	y.Add(&pp, &mm)
	z.Add(&z2, &tt)
	t.Subtract(&z2, &tt)
	v.fromP1xP1(&x, &y, &z, &t)
}

// add sets v = p + q, both in extended coordinates (the same formula
// with q's Z and T kept).
func (v *extPoint) add(p, q *extPoint) {
	var a, b, pp, mm, tt, zz field.Element
	a.Add(&p.Y, &p.X)
	b.Add(&q.Y, &q.X)
	pp.Multiply(&a, &b)
	a.Subtract(&p.Y, &p.X)
	b.Subtract(&q.Y, &q.X)
	mm.Multiply(&a, &b)
	tt.Multiply(&p.T, &q.T)
	tt.Multiply(&tt, curveD2)
	zz.Multiply(&p.Z, &q.Z)
	zz.Add(&zz, &zz)
	var x, y, z, t field.Element
	x.Subtract(&pp, &mm)
	y.Add(&pp, &mm)
	z.Add(&zz, &tt)
	t.Subtract(&zz, &tt)
	v.fromP1xP1(&x, &y, &z, &t)
}

// setAffine sets v = q (neg: −q), for a bucket's first point. From
// y+x and y−x it gets 2x and 2y, so Z = 4 keeps clear of halving.
func (v *extPoint) setAffine(q *affPoint, neg bool) {
	a, b := &q.YplusX, &q.YminusX
	if neg {
		a, b = b, a
	}
	var x2, y2 field.Element
	x2.Subtract(a, b)
	y2.Add(a, b)
	v.T.Multiply(&x2, &y2) // 4xy
	v.X.Add(&x2, &x2)
	v.Y.Add(&y2, &y2)
	v.Z.Set(feFour)
}

// toAffine converts points to affine form. Decompressed points (all of
// VerifyBatch's) already have Z = 1; others share one inversion
// (Montgomery's trick: 3 multiplications per point).
func toAffine(out []affPoint, points []*edwards25519.Point) {
	xs := make([][4]field.Element, len(points))
	var prod field.Element
	prod.One()
	prefix := make([]field.Element, len(points)) // Z_0·…·Z_{i−1} over Z ≠ 1
	for i, p := range points {
		X, Y, Z, T := p.ExtendedCoordinates()
		xs[i] = [4]field.Element{*X, *Y, *Z, *T}
		prefix[i].Set(&prod)
		if Z.Equal(feOne) != 1 {
			prod.Multiply(&prod, Z)
		}
	}
	var inv field.Element
	inv.Invert(&prod) // 1/(Π Z_i)
	for i := len(points) - 1; i >= 0; i-- {
		c := &xs[i]
		x, y := &c[0], &c[1]
		if c[2].Equal(feOne) != 1 {
			var zinv field.Element
			zinv.Multiply(&inv, &prefix[i]) // 1/Z_i
			inv.Multiply(&inv, &c[2])       // 1/(Z_0·…·Z_{i−1})
			x.Multiply(x, &zinv)
			y.Multiply(y, &zinv)
			c[3].Multiply(x, y)
		}
		out[i].YplusX.Add(y, x)
		out[i].YminusX.Subtract(y, x)
		out[i].T2d.Multiply(&c[3], curveD2)
	}
}

// bucketMultiScalarMult is the bucket method described above.
func bucketMultiScalarMult(scalars []*edwards25519.Scalar, points []*edwards25519.Point) *edwards25519.Point {
	n := len(points)
	digits := make([][msmWindows]int8, n)
	top := 0 // highest window with a nonzero digit in any scalar
	for i, s := range scalars {
		signedDigits(&digits[i], s)
		for w := msmWindows - 1; w > top; w-- {
			if digits[i][w] != 0 {
				top = w
				break
			}
		}
	}
	aff := make([]affPoint, n)
	toAffine(aff, points)

	var buckets [msmBuckets]extPoint
	var filled [msmBuckets]bool
	var acc, run, sum extPoint
	acc.setIdentity()
	for w := top; w >= 0; w-- {
		// acc ← 2^8·acc; 256 doublings in all, whatever n, so a plain
		// addition does.
		if w != top {
			for range 8 {
				acc.add(&acc, &acc)
			}
		}
		clear(filled[:])
		for i := range aff {
			d := int(digits[i][w])
			if d == 0 {
				continue
			}
			j := d - 1
			if d < 0 {
				j = -d - 1
			}
			if b := &buckets[j]; filled[j] {
				b.addAffine(b, &aff[i], d < 0)
			} else {
				b.setAffine(&aff[i], d < 0)
				filled[j] = true
			}
		}
		// Σ j·bucket_j = Σ_j (Σ_{k ≥ j} bucket_k): run is the inner sum,
		// walked from the top bucket down, and sum adds it up once per
		// step.
		started := false
		for j := msmBuckets - 1; j >= 0; j-- {
			if filled[j] {
				if started {
					run.add(&run, &buckets[j])
				} else {
					run = buckets[j]
					sum = buckets[j] // the first step adds run once
					started = true
					continue
				}
			}
			if started {
				sum.add(&sum, &run)
			}
		}
		if started {
			acc.add(&acc, &sum)
		}
	}
	p, err := new(edwards25519.Point).SetExtendedCoordinates(&acc.X, &acc.Y, &acc.Z, &acc.T)
	if err != nil {
		// Unreachable: the formulas are complete and stay on the curve.
		panic("signing: multi-scalar multiplication left the curve")
	}
	return p
}

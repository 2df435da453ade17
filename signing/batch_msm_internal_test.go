package signing

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/d2dmesh/d2d/internal/testenv"
)

// randomScalar returns a scalar of about bits bits drawn from r, or an
// edge value: 0, 1, L−1, and byte patterns that make every signed digit
// −128 or −1 (the carries of the recoding).
func randomScalar(t testing.TB, r *rand.Rand, bits int) *edwards25519.Scalar {
	t.Helper()
	var b [64]byte
	switch r.IntN(16) {
	case 0:
		return edwards25519.NewScalar()
	case 1:
		b[0] = 1
	case 2:
		return edwards25519.NewScalar().Subtract(edwards25519.NewScalar(), mustScalar(t, 1))
	case 3:
		for i := range bits / 8 {
			b[i] = 0x80
		}
	case 4:
		for i := range bits / 8 {
			b[i] = 0xff
		}
	default:
		for i := range bits / 8 {
			b[i] = byte(r.Uint32())
		}
	}
	s, err := edwards25519.NewScalar().SetUniformBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustScalar(t testing.TB, v byte) *edwards25519.Scalar {
	t.Helper()
	var b [32]byte
	b[0] = v
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomPoint returns a random multiple of B, sometimes the identity, a
// repeat of an earlier point or its negation, or a point of small order.
func randomPoint(t testing.TB, r *rand.Rand, earlier []*edwards25519.Point) *edwards25519.Point {
	t.Helper()
	switch r.IntN(12) {
	case 0:
		return edwards25519.NewIdentityPoint()
	case 1:
		if len(earlier) > 0 {
			return new(edwards25519.Point).Set(earlier[r.IntN(len(earlier))])
		}
	case 2:
		if len(earlier) > 0 {
			return new(edwards25519.Point).Negate(earlier[r.IntN(len(earlier))])
		}
	case 3:
		// A point of order 8 plus a multiple of B: not in the prime-order
		// subgroup, as ZIP-215 lets R and A be.
		t8, err := new(edwards25519.Point).SetBytes([]byte{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a})
		if err != nil {
			t.Fatal(err)
		}
		p := new(edwards25519.Point).ScalarBaseMult(randomScalar(t, r, 256))
		return p.Add(p, t8)
	}
	return new(edwards25519.Point).ScalarBaseMult(randomScalar(t, r, 256))
}

// TestMultiScalarMult checks the bucket method, and the dispatch around
// it, against edwards25519's VarTimeMultiScalarMult on random inputs with
// full-length and 128-bit scalars, as the batch equation has.
func TestMultiScalarMult(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 17, 64, msmBucketMin - 1, msmBucketMin, 700} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			for round := range 3 {
				var scalars []*edwards25519.Scalar
				var points []*edwards25519.Point
				for i := range n {
					bits := 256
					if i%2 == 1 && round != 1 {
						bits = 128
					}
					scalars = append(scalars, randomScalar(t, r, bits))
					points = append(points, randomPoint(t, r, points))
				}
				want := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
				if got := bucketMultiScalarMult(scalars, points); got.Equal(want) != 1 {
					t.Fatalf("round %d: bucket method differs from VarTimeMultiScalarMult", round)
				}
				if got := multiScalarMult(scalars, points); got.Equal(want) != 1 {
					t.Fatalf("round %d: multiScalarMult differs from VarTimeMultiScalarMult", round)
				}
			}
		})
	}
}

// TestMultiScalarMultZero: no points, and only zero scalars, give the
// identity.
func TestMultiScalarMultZero(t *testing.T) {
	id := edwards25519.NewIdentityPoint()
	if bucketMultiScalarMult(nil, nil).Equal(id) != 1 {
		t.Error("empty sum is not the identity")
	}
	var scalars []*edwards25519.Scalar
	var points []*edwards25519.Point
	for range 3 {
		scalars = append(scalars, edwards25519.NewScalar())
		points = append(points, edwards25519.NewGeneratorPoint())
	}
	if bucketMultiScalarMult(scalars, points).Equal(id) != 1 {
		t.Error("zero scalars do not give the identity")
	}
}

// TestSignedDigits checks the recoding: digits in [-128, 127] that add up
// to the scalar.
func TestSignedDigits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	two8 := mustScalar(t, 0) // 2^8 as a scalar
	{
		var b [32]byte
		b[1] = 1
		var err error
		if two8, err = edwards25519.NewScalar().SetCanonicalBytes(b[:]); err != nil {
			t.Fatal(err)
		}
	}
	for range 1000 {
		s := randomScalar(t, r, 256)
		var d [msmWindows]int8
		signedDigits(&d, s)
		// Horner from the top digit: Σ d_w·2^(8w).
		got := edwards25519.NewScalar()
		for w := msmWindows - 1; w >= 0; w-- {
			got.Multiply(got, two8)
			v := mustScalar(t, byte(abs(int(d[w]))))
			if d[w] < 0 {
				got.Subtract(got, v)
			} else {
				got.Add(got, v)
			}
		}
		if got.Equal(s) != 1 {
			t.Fatalf("digits %v do not add up to %x", d, s.Bytes())
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// BenchmarkMultiScalarMult compares the two methods per point, with half
// the scalars 128 bits long as in VerifyBatch; msmBucketMin comes from
// here.
func BenchmarkMultiScalarMult(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{65, 129, 257, 385, 513, 1025, 2049} {
		var scalars []*edwards25519.Scalar
		var points []*edwards25519.Point
		for i := range n {
			bits := 256
			if i%2 == 1 {
				bits = 128
			}
			var buf [64]byte
			for j := range bits / 8 {
				buf[j] = byte(r.Uint32())
			}
			s, _ := edwards25519.NewScalar().SetUniformBytes(buf[:])
			scalars = append(scalars, s)
			points = append(points, new(edwards25519.Point).ScalarBaseMult(s))
		}
		for _, m := range []struct {
			name string
			f    func([]*edwards25519.Scalar, []*edwards25519.Point) *edwards25519.Point
		}{
			{"straus", func(s []*edwards25519.Scalar, p []*edwards25519.Point) *edwards25519.Point {
				return new(edwards25519.Point).VarTimeMultiScalarMult(s, p)
			}},
			{"bucket", bucketMultiScalarMult},
		} {
			b.Run(fmt.Sprintf("%s/%d", m.name, n), func(b *testing.B) {
				b.ReportAllocs()
				cpu := testenv.ProcessCPU()
				for b.Loop() {
					m.f(scalars, points)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/point")
				b.ReportMetric(float64((testenv.ProcessCPU()-cpu).Nanoseconds())/float64(b.N*n), "cpu-ns/point")
			})
		}
	}
}

package signing_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/edwards25519"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/d2dmesh/d2d/signing"
	"github.com/google/go-cmp/cmp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8032 §7.1 test vectors.
func TestRFC8032Vectors(t *testing.T) {
	abc := sha512.Sum512([]byte("abc"))
	tests := []struct {
		name, seed, pub, msg, sig string
	}{
		{"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
			"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
			"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
			"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
			"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
		{"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
			"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
			"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
		{"TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
			"278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", rfc8032Test1024Msg,
			"0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"},
		{"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
			"ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf", hex.EncodeToString(abc[:]),
			"dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
	}
	var items []signing.BatchItem
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			priv := ed25519.NewKeyFromSeed(unhex(t, tc.seed))
			pub, msg, sig := unhex(t, tc.pub), unhex(t, tc.msg), unhex(t, tc.sig)
			if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
				t.Fatal("public key differs from the RFC")
			}
			if !bytes.Equal(ed25519.Sign(priv, msg), sig) {
				t.Fatal("signature differs from the RFC")
			}
			if !signing.VerifyZIP215(pub, msg, sig) {
				t.Fatal("VerifyZIP215 rejects the RFC vector")
			}
			bad := slices.Clone(sig)
			bad[10] ^= 1
			if signing.VerifyZIP215(pub, msg, bad) {
				t.Fatal("VerifyZIP215 accepts a corrupted vector")
			}
			items = append(items, signing.BatchItem{PublicKey: pub, Message: msg, Signature: sig})
		})
	}
	if bad := signing.VerifyBatch(items); bad != nil {
		t.Fatalf("batch of RFC vectors: bad %v", bad)
	}
	items[3].Message = []byte("x")
	if bad := signing.VerifyBatch(items); !slices.Equal(bad, []int{3}) {
		t.Fatalf("batch with item 3 broken: bad %v", bad)
	}
}

// zip215Encodings constructs, from their definition, the 14 encodings the
// ZIP-215 test vectors are built from: every 32-byte string that decodes
// to a point of small order (the 8 torsion points' canonical encodings,
// plus the non-canonical ones: x = 0 with the sign bit set, and y ≥ p).
func zip215Encodings(t testing.TB) [][]byte {
	t.Helper()
	// A point of order 8 (its y is a root of the order-8 division polynomial).
	t8, err := new(edwards25519.Point).SetBytes(unhex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
	if err != nil {
		t.Fatal(err)
	}
	id := edwards25519.NewIdentityPoint()
	if new(edwards25519.Point).MultByCofactor(t8).Equal(id) != 1 {
		t.Fatal("not a torsion point")
	}
	// p = 2^255 - 19, little-endian.
	p := unhex(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	addP := func(y []byte) ([]byte, bool) { // y + p if it fits in 255 bits
		out := make([]byte, 32)
		carry := 0
		for i := range 32 {
			s := int(y[i]) + int(p[i]) + carry
			out[i], carry = byte(s), s>>8
		}
		return out, carry == 0 && out[31]&0x80 == 0
	}
	seen := map[string]bool{}
	var encs [][]byte
	add := func(e []byte) {
		P, err := new(edwards25519.Point).SetBytes(e)
		if err != nil || new(edwards25519.Point).MultByCofactor(P).Equal(id) != 1 || seen[string(e)] {
			return
		}
		seen[string(e)] = true
		encs = append(encs, e)
	}
	P := edwards25519.NewIdentityPoint()
	for range 8 {
		c := P.Bytes()
		for _, sign := range []byte{0, 0x80} {
			e := slices.Clone(c)
			e[31] = e[31]&0x7f | sign
			add(e)
			y := slices.Clone(c)
			y[31] &= 0x7f
			if yp, ok := addP(y); ok {
				yp[31] |= sign
				add(yp)
			}
		}
		P.Add(P, t8)
	}
	return encs
}

// TestZIP215SmallOrder: all 196 (A, R) combinations of the 14 small-order
// encodings with S = 0 and message "Zcash" are valid under ZIP-215, single
// and batch alike; cofactorless crypto/ed25519 rejects some of them.
func TestZIP215SmallOrder(t *testing.T) {
	encs := zip215Encodings(t)
	if len(encs) != 14 {
		t.Fatalf("constructed %d small-order encodings, want 14", len(encs))
	}
	var items []signing.BatchItem
	stdRejects := 0
	for _, A := range encs {
		for _, R := range encs {
			sig := append(slices.Clone(R), make([]byte, 32)...)
			msg := []byte("Zcash")
			if !signing.VerifyZIP215(A, msg, sig) {
				t.Errorf("VerifyZIP215 rejects A=%x R=%x", A, R)
			}
			if !ed25519.Verify(A, msg, sig) {
				stdRejects++
			}
			if bad := signing.VerifyBatch([]signing.BatchItem{{A, msg, sig}, {A, msg, sig}}); bad != nil {
				t.Errorf("VerifyBatch rejects A=%x R=%x", A, R)
			}
			items = append(items, signing.BatchItem{PublicKey: A, Message: msg, Signature: sig})
		}
	}
	if len(items) != 196 {
		t.Fatalf("%d vectors", len(items))
	}
	if bad := signing.VerifyBatch(items); bad != nil {
		t.Errorf("batch of all 196 rejects %v", bad)
	}
	t.Logf("crypto/ed25519 (cofactorless, canonical-only) rejects %d of 196", stdRejects)
	if stdRejects == 0 {
		t.Error("expected the cofactorless verifier to reject some vectors")
	}
	// S ≥ L is rejected by both paths (ZIP-215 keeps RFC 8032's S check).
	L := unhex(t, "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	for _, s := range [][]byte{L, unhex(t, "eed3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"), bytes.Repeat([]byte{0xff}, 32)} {
		sig := append(slices.Clone(encs[0]), s...)
		if signing.VerifyZIP215(encs[0], []byte("Zcash"), sig) {
			t.Errorf("S=%x accepted", s)
		}
		if bad := signing.VerifyBatch([]signing.BatchItem{items[0], {encs[0], []byte("Zcash"), sig}}); !slices.Equal(bad, []int{1}) {
			t.Errorf("batch with S=%x: bad %v", s, bad)
		}
	}
	// An R that is not small order breaks the S = 0 equation.
	B := edwards25519.NewGeneratorPoint().Bytes()
	sig := append(B, make([]byte, 32)...)
	if signing.VerifyZIP215(encs[0], []byte("Zcash"), sig) {
		t.Error("R = B with S = 0 accepted")
	}
	// Encodings that are not points at all are rejected.
	notPoint := unhex(t, "0200000000000000000000000000000000000000000000000000000000000000")
	if _, err := new(edwards25519.Point).SetBytes(notPoint); err == nil {
		t.Skip("test encoding unexpectedly on the curve")
	}
	if signing.VerifyZIP215(notPoint, []byte("Zcash"), append(slices.Clone(encs[0]), make([]byte, 32)...)) {
		t.Error("A not on the curve accepted")
	}
}

type testKey struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func genKeys(t testing.TB, n int) []testKey {
	t.Helper()
	r := rand.NewChaCha8([32]byte{1})
	keys := make([]testKey, n)
	for i := range keys {
		var seed [32]byte
		_, _ = r.Read(seed[:])
		priv := ed25519.NewKeyFromSeed(seed[:])
		keys[i] = testKey{priv.Public().(ed25519.PublicKey), priv}
	}
	return keys
}

func genItems(t testing.TB, n, signers int) []signing.BatchItem {
	t.Helper()
	keys := genKeys(t, signers)
	items := make([]signing.BatchItem, n)
	for i := range items {
		k := keys[i%signers]
		msg := fmt.Appendf(nil, `{"result":%d,"signer":"node-%d"}`, i, i%signers)
		items[i] = signing.BatchItem{PublicKey: k.pub, Message: msg, Signature: ed25519.Sign(k.priv, msg)}
	}
	return items
}

// TestBatchAgreesWithSingle corrupts random subsets of batches and checks
// that VerifyBatch names exactly the items VerifyZIP215 (and
// crypto/ed25519, for these honestly generated keys) rejects.
func TestBatchAgreesWithSingle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ n, signers int }{{1, 1}, {2, 2}, {16, 3}, {64, 64}, {100, 7}, {256, 256}} {
		t.Run(fmt.Sprintf("n=%d/signers=%d", tc.n, tc.signers), func(t *testing.T) {
			if bad := signing.VerifyBatch(genItems(t, tc.n, tc.signers)); bad != nil {
				t.Fatalf("valid batch: bad %v", bad)
			}
			for round := range 5 {
				items := genItems(t, tc.n, tc.signers)
				var want []int
				for i := range items {
					if r.IntN(10) != 0 {
						continue
					}
					switch r.IntN(3) {
					case 0:
						items[i].Message = append(slices.Clone(items[i].Message), '!')
					case 1:
						items[i].Signature = slices.Clone(items[i].Signature)
						items[i].Signature[r.IntN(64)] ^= 1 << r.IntN(8)
					case 2:
						items[i].PublicKey = genKeys(t, 2)[1].pub
					}
					want = append(want, i)
				}
				var single []int
				for i, it := range items {
					ok := signing.VerifyZIP215(it.PublicKey, it.Message, it.Signature)
					if ok != ed25519.Verify(it.PublicKey, it.Message, it.Signature) {
						t.Fatalf("item %d: ZIP-215 and crypto/ed25519 disagree on an honest key", i)
					}
					if !ok {
						single = append(single, i)
					}
				}
				bad := signing.VerifyBatch(items)
				if diff := cmp.Diff(single, bad); diff != "" {
					t.Fatalf("round %d: batch vs single (-single +batch):\n%s", round, diff)
				}
				// A flipped bit can occasionally leave S ≥ L or an
				// undecodable R: still invalid. No corruption is valid.
				if diff := cmp.Diff(want, bad); diff != "" {
					t.Fatalf("round %d: (-corrupted +rejected):\n%s", round, diff)
				}
			}
		})
	}
}

// Benchmarks. Messages are ~150 bytes, the size of a small signed result.

func benchItems(b *testing.B, n, signers int) []signing.BatchItem {
	items := genItems(b, n, signers)
	pad := bytes.Repeat([]byte("x"), 120)
	keys := genKeys(b, signers)
	for i := range items {
		k := keys[i%signers]
		items[i].Message = append(items[i].Message, pad...)
		items[i].Signature = ed25519.Sign(k.priv, items[i].Message)
	}
	return items
}

func BenchmarkSign(b *testing.B) {
	d := newDomain(b, "P-2")
	s := signing.NewSigner(d.ids["P-2"], signing.NewMemoryNonceSource(0))
	bind := mustBinding(b, "tools/call", "ietf-srv6-ping", `{"count":5}`, "sess-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.SignResult([]byte(testResult), bind); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyResult(b *testing.B) {
	d := newDomain(b, "P-2")
	s := signing.NewSigner(d.ids["P-2"], signing.NewMemoryNonceSource(0))
	bind := mustBinding(b, "tools/call", "ietf-srv6-ping", `{"count":5}`, "sess-1")
	var envs []signing.Envelope
	for range 4096 {
		e, _ := s.WithClock(func() time.Time { return t0 }).SignResult([]byte(testResult), bind)
		envs = append(envs, e)
	}
	b.ReportAllocs()
	i := 0
	var v *signing.Verifier
	for b.Loop() {
		if i%len(envs) == 0 {
			v = signing.NewVerifier(d.trust, signing.VerifierOptions{Now: func() time.Time { return t0 }})
		}
		if _, err := v.VerifyResult([]byte(testResult), bind, envs[i%len(envs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkVerify(b *testing.B) {
	it := benchItems(b, 1, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(it.PublicKey, it.Message, it.Signature) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkVerifyZIP215(b *testing.B) {
	it := benchItems(b, 1, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if !signing.VerifyZIP215(it.PublicKey, it.Message, it.Signature) {
			b.Fatal("invalid")
		}
	}
}

func reportPerSig(b *testing.B, n int, cpu time.Duration) {
	sigs := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/sigs, "ns/sig")
	b.ReportMetric(float64(cpu.Nanoseconds())/sigs, "cpu-ns/sig")
}

var benchShapes = []struct {
	n, signers int
}{{64, 64}, {64, 3}, {64, 30}, {1024, 1024}, {1024, 3}, {1024, 30}}

func BenchmarkVerifyBatch(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(fmt.Sprintf("%d/signers=%d", sh.n, sh.signers), func(b *testing.B) {
			items := benchItems(b, sh.n, sh.signers)
			b.ReportAllocs()
			cpu := testenv.ProcessCPU()
			for b.Loop() {
				if bad := signing.VerifyBatch(items); bad != nil {
					b.Fatal(bad)
				}
			}
			reportPerSig(b, sh.n, testenv.ProcessCPU()-cpu)
		})
	}
}

func BenchmarkVerifyOneByOne(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(fmt.Sprintf("%d/signers=%d", sh.n, sh.signers), func(b *testing.B) {
			items := benchItems(b, sh.n, sh.signers)
			b.ReportAllocs()
			cpu := testenv.ProcessCPU()
			for b.Loop() {
				for _, it := range items {
					if !ed25519.Verify(it.PublicKey, it.Message, it.Signature) {
						b.Fatal("invalid")
					}
				}
			}
			reportPerSig(b, sh.n, testenv.ProcessCPU()-cpu)
		})
	}
}

// RFC 8032 §7.1 TEST 1024 message (1023 bytes).
const rfc8032Test1024Msg = `
08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1
e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d
658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a
7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e
06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10
3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1
85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d
502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270
88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b
eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba
b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b
e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7
51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d
cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df
f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7
984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4
88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09
43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f
b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161
0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d
b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca
c60c905c15fc910840b94c00a0b9d0
`

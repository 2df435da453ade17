package spake2plus

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
)

// rfcVector is RFC 9383 Appendix C, P256-SHA256-HKDF-SHA256-HMAC-SHA256:
// w0 and w1 are given (the PBKDF is left out), x and y are the runs'
// random scalars, every other value is what both sides must compute.
var rfcVector = struct {
	context, idProver, idVerifier                string
	w0, w1, L, x, shareP, y, shareV, Z, V, TT    string
	kMain, kConfirmP, kConfirmV, confirmP, confV string
	kShared                                      string
}{
	context:    "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
	idProver:   "client",
	idVerifier: "server",
	w0:         "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3",
	w1:         "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba",
	L: "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f" +
		"00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd",
	x: "d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539",
	shareP: "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1" +
		"de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727",
	y: "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3",
	shareV: "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb" +
		"5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048",
	Z: "04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091" +
		"a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c41839",
	V: "0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b951" +
		"4b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b68",
	TT: "38000000000000005350414b45322b2d503235362d5348413235362d484b44462d" +
		"5348413235362d484d41432d534841323536205465737420566563746f7273060000" +
		"0000000000636c69656e740600000000000000736572766572410000000000000004" +
		"886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f5ff3" +
		"55163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d2041000000" +
		"0000000004d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1" +
		"292b4907d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e656edb" +
		"e7410000000000000004ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1" +
		"733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79" +
		"c7193e341727410000000000000004c0f65da0d11927bdf5d560c69e1d7d939a05b0" +
		"e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986a" +
		"b46742c798a9a68437b048410000000000000004bbfce7dd7f277819c8da21544afb" +
		"7964705569bdf12fb92aa388059408d50091a0c5f1d3127f56813b5337f9e4e67e2c" +
		"a633117a4fbd559946ab474356c4183941000000000000000458bf27c6bca011c9ce" +
		"1930e8984a797a3419797b936629a5a937cf2f11c8b9514b82b993da8a46e664f23d" +
		"b7c01edc87faa530db01c2ee405230b18997f16b682000000000000000bb8e1bbcf3" +
		"c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3",
	kMain:     "4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29",
	kConfirmP: "871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a",
	kConfirmV: "ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680",
	confirmP:  "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527",
	confV:     "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68",
	kShared:   "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7",
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scalarOf(t *testing.T, s string) scalar {
	var out scalar
	copy(out[:], unhex(t, s))
	return out
}

// TestRFC9383Vectors runs both roles with the vector's scalars and checks
// every value the RFC prints.
func TestRFC9383Vectors(t *testing.T) {
	v := rfcVector
	c := Context{Context: []byte(v.context), IDProver: []byte(v.idProver), IDVerifier: []byte(v.idVerifier)}
	// A PBKDF output that reduces to the vector's w0 and w1: each padded
	// with zeros in front to the 40 bytes a half takes.
	pbkdf := append(append(make([]byte, 8), unhex(t, v.w0)...), append(make([]byte, 8), unhex(t, v.w1)...)...)
	sec, err := NewSecret(pbkdf)
	if err != nil {
		t.Fatal(err)
	}
	rec := sec.Record()
	check := func(name string, got []byte, want string) {
		t.Helper()
		if !bytes.Equal(got, unhex(t, want)) {
			t.Errorf("%s:\n got %x\nwant %s", name, got, want)
		}
	}
	check("w0", rec.W0[:], v.w0)
	check("L", rec.L[:], v.L)

	p := newProver(c, sec, scalarOf(t, v.x))
	check("shareP", p.shareP, v.shareP)
	ver, shareV, confirmV, err := newVerifier(c, rec, p.shareP, scalarOf(t, v.y))
	if err != nil {
		t.Fatal(err)
	}
	check("shareV", shareV, v.shareV)
	check("Z", ver.k.z, v.Z)
	check("V", ver.k.v, v.V)
	check("TT", ver.k.tt, v.TT)
	check("K_main", ver.k.main[:], v.kMain)
	check("K_confirmP", ver.k.confirmP, v.kConfirmP)
	check("K_confirmV", ver.k.confirmV, v.kConfirmV)
	check("confirmV", confirmV, v.confV)
	check("K_shared (verifier)", ver.k.shared, v.kShared)

	confirmP, sharedP, err := p.Finish(shareV, confirmV)
	if err != nil {
		t.Fatal(err)
	}
	check("confirmP", confirmP, v.confirmP)
	check("K_shared (prover)", sharedP, v.kShared)
	sharedV, err := ver.Finish(confirmP)
	if err != nil {
		t.Fatal(err)
	}
	check("K_shared (verifier, after confirmation)", sharedV, v.kShared)
}

func testSecret(t *testing.T, fill byte) *Secret {
	t.Helper()
	s, err := NewSecret(bytes.Repeat([]byte{fill}, PBKDFSize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTripAndWrongPassword(t *testing.T) {
	c := Context{Context: []byte("test"), IDProver: []byte("PE-1"), IDVerifier: []byte("ca")}
	right, wrong := testSecret(t, 1), testSecret(t, 2)
	tests := []struct {
		name    string
		prover  *Secret
		ctx     Context
		wantErr error
	}{
		{name: "right password", prover: right, ctx: c},
		{name: "wrong password", prover: wrong, ctx: c, wantErr: ErrConfirmation},
		{name: "other prover identity", prover: right, ctx: Context{Context: c.Context, IDProver: []byte("PE-2"), IDVerifier: c.IDVerifier}, wantErr: ErrConfirmation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, shareP, err := NewProver(tc.ctx, tc.prover, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			v, shareV, confirmV, err := NewVerifier(c, right.Record(), shareP, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			confirmP, kp, err := p.Finish(shareV, confirmV)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("prover: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				// The verifier refuses whatever a prover that failed
				// could send instead.
				if _, err := v.Finish(make([]byte, ConfirmSize)); !errors.Is(err, ErrConfirmation) {
					t.Errorf("verifier accepted a forged confirmation: %v", err)
				}
				return
			}
			kv, err := v.Finish(confirmP)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kp, kv) || len(kp) != KeySize {
				t.Errorf("keys differ: %x %x", kp, kv)
			}
		})
	}
}

func TestSharesRefused(t *testing.T) {
	c := Context{}
	rec := testSecret(t, 3).Record()
	_, good, err := NewProver(c, testSecret(t, 3), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	compressed := append([]byte{2 + good[64]&1}, good[1:33]...)
	offCurve := bytes.Clone(good)
	offCurve[64] ^= 1
	for name, share := range map[string][]byte{
		"empty":      nil,
		"identity":   {0},
		"compressed": compressed,
		"off curve":  offCurve,
		"truncated":  good[:64],
		"long":       append(bytes.Clone(good), 0),
	} {
		if _, _, _, err := NewVerifier(c, rec, share, rand.Reader); !errors.Is(err, ErrInvalidShare) {
			t.Errorf("%s: %v, want ErrInvalidShare", name, err)
		}
	}
}

func TestTwoRunsDiffer(t *testing.T) {
	// The same password gives a fresh shareP each run: a passive observer
	// sees nothing it could test a password guess against.
	s := testSecret(t, 4)
	_, a, _ := NewProver(Context{}, s, rand.Reader)
	_, b, _ := NewProver(Context{}, s, rand.Reader)
	if bytes.Equal(a, b) {
		t.Fatal("two runs sent the same share")
	}
}

func BenchmarkRun(b *testing.B) {
	b.ReportAllocs()
	c := Context{Context: []byte("bench"), IDProver: []byte("PE-1"), IDVerifier: []byte("ca")}
	s, _ := NewSecret(bytes.Repeat([]byte{7}, PBKDFSize))
	rec := s.Record()
	for b.Loop() {
		p, shareP, _ := NewProver(c, s, rand.Reader)
		v, shareV, confirmV, _ := NewVerifier(c, rec, shareP, rand.Reader)
		confirmP, _, err := p.Finish(shareV, confirmV)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Finish(confirmP); err != nil {
			b.Fatal(err)
		}
	}
}

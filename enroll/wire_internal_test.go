package enroll

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unhexLines decodes hex written one field per line, with # comments.
func unhexLines(t testing.TB, s string) []byte {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		b.WriteString(strings.Join(strings.Fields(line), ""))
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var share = bytes.Repeat([]byte{0xaa}, 65)

// goldenHello is a hello for node "PE-1".
var goldenHello = `
01                 # version
04                 # name length
50452d31           # "PE-1"
` + strings.Repeat("aa", 65) + " # shareP (65)"

// goldenGrant is a grant with two one-byte certificates and no list.
const goldenGrant = `
00000001 c1        # certificate
00000001 ca        # CA certificate
00000000           # no revocation list
`

type codec interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
	Len() int
}

func TestWireGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		msg    codec
		fresh  func() codec
	}{
		{"hello", goldenHello, &hello{Version: 1, Node: "PE-1", Share: share}, func() codec { return &hello{} }},
		{"grant", goldenGrant, &grant{Cert: []byte{0xc1}, CA: []byte{0xca}}, func() codec { return &grant{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := unhexLines(t, tc.golden)
			got, err := tc.msg.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || tc.msg.Len() != len(want) {
				t.Fatalf("encoding (Len %d):\n got %x\nwant %x", tc.msg.Len(), got, want)
			}
			back := tc.fresh()
			if err := back.UnmarshalBinary(want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.msg, back); diff != "" {
				t.Errorf("decode (-want +got):\n%s", diff)
			}
			// Every strict prefix is short input, never a panic or a
			// different message.
			for i := range len(want) {
				if err := tc.fresh().UnmarshalBinary(want[:i]); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformed) {
					t.Errorf("prefix of %d bytes: %v", i, err)
				}
			}
		})
	}
}

func TestReadFrameBounds(t *testing.T) {
	// A header announcing 4 GiB is refused before anything is allocated.
	huge := []byte{typeResult, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := readFrame(bytes.NewReader(huge), typeResult); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge frame: %v", err)
	}
	if _, _, err := readFrame(bytes.NewReader([]byte{typeHello, 0, 0}), typeHello); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short header: %v", err)
	}
	if _, _, err := readFrame(bytes.NewReader(appendFrame(nil, typeFinish, nil)), typeHello); !errors.Is(err, ErrMalformed) {
		t.Errorf("unexpected type: %v", err)
	}
}

// FuzzOnboardingMessages: the first byte picks a decoder (hello,
// challenge, finish, grant, or a frame read); whatever a decoder accepts
// re-encodes to exactly its input (one spelling per message) and decodes
// again to the same value; readFrame never returns more than its type's
// bound.
func FuzzOnboardingMessages(f *testing.F) {
	f.Add(append([]byte{0}, unhexLines(f, goldenHello)...))
	f.Add(append([]byte{1}, append(bytes.Clone(share), bytes.Repeat([]byte{1}, 32)...)...))
	f.Add(append([]byte{2}, bytes.Repeat([]byte{2}, 32+16+100)...))
	f.Add(append([]byte{3}, unhexLines(f, goldenGrant)...))
	f.Add(append([]byte{4}, appendFrame(nil, typeHello, unhexLines(f, goldenHello))...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		sel, b := in[0]%5, in[1:]
		if sel == 4 {
			for _, want := range []byte{typeHello, typeChallenge, typeFinish, typeResult} {
				typ, p, err := readFrame(bytes.NewReader(b), want)
				if err != nil {
					continue
				}
				max, ok := maxPayload(typ)
				if !ok || len(p) > max {
					t.Fatalf("frame type %d with %d bytes accepted", typ, len(p))
				}
			}
			return
		}
		fresh := []func() codec{
			func() codec { return &hello{} }, func() codec { return &challenge{} },
			func() codec { return &finish{} }, func() codec { return &grant{} },
		}[sel]
		m := fresh()
		if err := m.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is none of the codec's", err)
			}
			return
		}
		out, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("re-encode of an accepted message: %v", err)
		}
		if !bytes.Equal(out, b) || m.Len() != len(out) {
			t.Fatalf("round trip:\n in %x\nout %x (Len %d)", b, out, m.Len())
		}
		again := fresh()
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("second decode (-first +second):\n%s", diff)
		}
	})
}

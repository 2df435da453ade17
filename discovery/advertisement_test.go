package discovery_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/d2dmesh/d2d/discovery"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// unhex decodes a golden written one field per line, with "#" comments.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad golden: %v", err)
	}
	return b
}

func testAdvertisement() discovery.Advertisement {
	a := discovery.Advertisement{
		Node:         "r1",
		Endpoint:     netip.MustParseAddrPort("192.0.2.1:9514"),
		Capabilities: []string{"show", "ping"},
		GossipPort:   7946,
	}
	for i := range a.Thumbprint {
		a.Thumbprint[i] = byte(i)
	}
	return a
}

const advGolden = `
01 02 7231                      # node "r1"
02 02 252a                      # port 9514
03 20 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f # thumbprint
04 04 73686f77                  # capability "show"
04 04 70696e67                  # capability "ping"
05 04 c0000201                  # address 192.0.2.1
06 02 1f0a                      # gossip port 7946
`

var advOpts = cmpopts.EquateComparable(netip.AddrPort{})

func TestAdvertisementGolden(t *testing.T) {
	a := testAdvertisement()
	want := unhex(t, advGolden)
	got, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary:\n got %x\nwant %x", got, want)
	}
	if a.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", a.Len(), len(want))
	}
	var back discovery.Advertisement
	if err := back.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, back, advOpts); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestAdvertisementTruncated(t *testing.T) {
	full := unhex(t, advGolden)
	// Cut points on a sub-TLV boundary decode to a smaller advertisement;
	// every other cut must report io.ErrUnexpectedEOF.
	boundaries := map[int]bool{}
	for i := 0; i < len(full); i += 2 + int(full[i+1]) {
		boundaries[i] = true
	}
	for n := range len(full) {
		var a discovery.Advertisement
		err := a.UnmarshalBinary(full[:n])
		if boundaries[n] {
			if err != nil {
				t.Errorf("prefix %d (boundary): %v", n, err)
			}
			continue
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("prefix %d: err = %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

func TestAdvertisementDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    discovery.Advertisement
		wantErr error
	}{
		{name: "empty", in: ""},
		{name: "unknown skipped", in: "ff 03 010203  01 01 61", want: discovery.Advertisement{Node: "a"}},
		{name: "ipv6 without port", in: "05 10 20010db8000000000000000000000001",
			want: discovery.Advertisement{Endpoint: netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), 0)}},
		{name: "port only", in: "02 02 252a", want: discovery.Advertisement{Endpoint: netip.AddrPortFrom(netip.Addr{}, 9514)}},
		{name: "bad port length", in: "02 01 25", wantErr: discovery.ErrBadSubTLV},
		{name: "zero port", in: "02 02 0000", wantErr: discovery.ErrBadSubTLV},
		{name: "bad thumbprint", in: "03 01 00", wantErr: discovery.ErrBadSubTLV},
		{name: "bad address", in: "05 03 010203", wantErr: discovery.ErrBadSubTLV},
		{name: "empty capability", in: "04 00", wantErr: discovery.ErrBadSubTLV},
		{name: "empty node", in: "01 00", wantErr: discovery.ErrBadSubTLV},
		{name: "repeated node", in: "01 01 61 01 01 62", wantErr: discovery.ErrBadSubTLV},
		{name: "short header", in: "01", wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got discovery.Advertisement
			err := got.UnmarshalBinary(unhex(t, tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, advOpts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdvertisementEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		adv  discovery.Advertisement
	}{
		{name: "long node", adv: discovery.Advertisement{Node: strings.Repeat("n", discovery.MaxStringLen+1)}},
		{name: "empty capability", adv: discovery.Advertisement{Capabilities: []string{""}}},
		{name: "long capability", adv: discovery.Advertisement{Capabilities: []string{strings.Repeat("c", 241)}}},
		{name: "zone", adv: discovery.Advertisement{Endpoint: netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.adv.MarshalBinary(); !errors.Is(err, discovery.ErrBadAdvertisement) {
				t.Fatalf("err = %v, want ErrBadAdvertisement", err)
			}
		})
	}
}

func FuzzAdvertisement(f *testing.F) {
	f.Add(unhex(f, advGolden))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var a discovery.Advertisement
		if err := a.UnmarshalBinary(in); err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal of decoded %+v: %v", a, err)
		}
		if len(out) != a.Len() {
			t.Fatalf("Len() = %d, wrote %d", a.Len(), len(out))
		}
		var b discovery.Advertisement
		if err := b.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(a, b, advOpts); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

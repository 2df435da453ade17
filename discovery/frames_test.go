package discovery_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/d2dmesh/d2d/discovery"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var testMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}

func testLLDP() discovery.LLDPFrame {
	a := testAdvertisement()
	return discovery.LLDPFrame{
		Src:         testMAC,
		ChassisID:   layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeMACAddr, ID: testMAC},
		PortID:      layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte("eth1")},
		TTL:         120,
		SystemName:  "r1",
		MgmtAddr:    netip.MustParseAddr("192.0.2.1"),
		MgmtIfIndex: 2,
		Adv:         &a,
	}
}

const lldpGolden = `
0180c200000e                    # dst: nearest bridge
020000000001                    # src
88cc                            # ethertype LLDP
0207 04 020000000001            # chassis ID, MAC
0405 05 65746831                # port ID, interface name "eth1"
0602 0078                       # TTL 120
0a02 7231                       # system name "r1"
100c 05 01 c0000201 02 00000002 00 # management address 192.0.2.1, ifIndex 2
fe44 00005e d2                  # org specific, OUI 00-00-5E, subtype 0xd2
  010272310202252a0320000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  040473686f77040470696e670504c000020106021f0a # advertisement sub-TLVs
0000                            # end
`

func testISIS() discovery.ISISFrame {
	a := testAdvertisement()
	return discovery.ISISFrame{Src: testMAC, LSP: discovery.ISISLSP{
		Level:             1,
		RemainingLifetime: 1200,
		LSPID:             discovery.LSPID{2, 0, 0, 0, 0, 1, 0, 0},
		Sequence:          7,
		Hostname:          "r1",
		AppAddr:           netip.MustParseAddr("192.0.2.1"),
		Adv:               &a,
	}}
}

const isisGolden = `
0180c2000014                    # dst: AllL1ISs
020000000001                    # src
006d                            # 802.3 length 109
fe fe 03                        # LLC: DSAP, SSAP ISO network layer, UI
83 1b 01 00 12 01 00 00         # NLPID, header length 27, version, ID length, L1 LSP, version, reserved, max areas
006a                            # PDU length 106
04b0                            # remaining lifetime 1200
020000000001 00 00              # LSP ID
00000007                        # sequence number
7173                            # Fletcher checksum
01                              # type block: IS type L1
89 02 7231                      # TLV 137 hostname "r1"
fb 49 04 0d2d                   # TLV 251 GENINFO, flags I, application ID 0x0d2d
  06 04 c0000201                # application IPv4 address
  010272310202252a0320000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  040473686f77040470696e670504c000020106021f0a # advertisement sub-TLVs
`

var frameOpts = cmp.Options{
	cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{}),
	cmpopts.EquateEmpty(),
	cmpopts.IgnoreFields(discovery.ISISLSP{}, "BaseLayer"),
}

func TestLLDPGolden(t *testing.T) {
	f := testLLDP()
	want := unhex(t, lldpGolden)
	got, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary:\n got %x\nwant %x", got, want)
	}
	if f.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", f.Len(), len(want))
	}
	var back discovery.LLDPFrame
	if err := back.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	f.Dst = discovery.LLDPMulticast
	if diff := cmp.Diff(f, back, frameOpts); diff != "" {
		t.Errorf("decode (-want +got):\n%s", diff)
	}
	// Decoding copies: scribbling over the input changes nothing.
	for i := range want {
		want[i] = 0xff
	}
	if diff := cmp.Diff(f, back, frameOpts); diff != "" {
		t.Errorf("decoded frame aliases its input (-want +got):\n%s", diff)
	}
}

func TestISISGolden(t *testing.T) {
	f := testISIS()
	want := unhex(t, isisGolden)
	got, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary:\n got %x\nwant %x", got, want)
	}
	if f.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", f.Len(), len(want))
	}
	var back discovery.ISISFrame
	if err := back.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	f.Dst = discovery.AllL1ISs
	if diff := cmp.Diff(f, back, frameOpts); diff != "" {
		t.Errorf("decode (-want +got):\n%s", diff)
	}
	// The same PDU decodes as a gopacket layer on top of LLC.
	pkt := gopacket.NewPacket(want[17:], discovery.LayerTypeISIS, gopacket.Default)
	l, ok := pkt.Layer(discovery.LayerTypeISIS).(*discovery.ISISLSP)
	if !ok {
		t.Fatalf("no ISIS layer: %v", pkt.ErrorLayer())
	}
	if diff := cmp.Diff(f.LSP, *l, frameOpts); diff != "" {
		t.Errorf("gopacket decode (-want +got):\n%s", diff)
	}
}

func TestFramesTruncated(t *testing.T) {
	for name, golden := range map[string]string{"lldp": lldpGolden, "isis": isisGolden} {
		full := unhex(t, golden)
		for n := range len(full) {
			var err error
			if name == "lldp" {
				var f discovery.LLDPFrame
				err = f.UnmarshalBinary(full[:n])
			} else {
				var f discovery.ISISFrame
				err = f.UnmarshalBinary(full[:n])
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
			}
		}
	}
}

// bigAdvertisement needs several LLDP org TLVs and GENINFO TLVs.
func bigAdvertisement() discovery.Advertisement {
	a := testAdvertisement()
	a.Endpoint = netip.MustParseAddrPort("[2001:db8::1]:9514")
	a.Capabilities = nil
	for i := range 5 {
		a.Capabilities = append(a.Capabilities, fmt.Sprintf("%03d-%s", i, bytes.Repeat([]byte("c"), 230)))
	}
	return a
}

func TestSplitAcrossTLVs(t *testing.T) {
	a := bigAdvertisement()
	l := testLLDP()
	l.Adv = &a
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != l.Len() {
		t.Errorf("LLDP Len() = %d, wrote %d", l.Len(), len(b))
	}
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	info := pkt.Layer(layers.LayerTypeLinkLayerDiscoveryInfo).(*layers.LinkLayerDiscoveryInfo)
	if len(info.OrgTLVs) < 3 {
		t.Errorf("LLDP: %d org TLVs, want the advertisement split over at least 3", len(info.OrgTLVs))
	}
	var lb discovery.LLDPFrame
	if err := lb.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&a, lb.Adv, frameOpts); diff != "" {
		t.Errorf("LLDP reassembly (-want +got):\n%s", diff)
	}

	i := testISIS()
	i.LSP.AppAddr = netip.MustParseAddr("2001:db8::1")
	i.LSP.Adv = &a
	b, err = i.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != i.Len() {
		t.Errorf("IS-IS Len() = %d, wrote %d", i.Len(), len(b))
	}
	var ib discovery.ISISFrame
	if err := ib.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	i.Dst = discovery.AllL1ISs
	if diff := cmp.Diff(i, ib, frameOpts); diff != "" {
		t.Errorf("IS-IS reassembly (-want +got):\n%s", diff)
	}
}

func TestFrameDecodeErrors(t *testing.T) {
	lldp := unhex(t, lldpGolden)
	isis := unhex(t, isisGolden)
	patch := func(b []byte, off int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[off:], v)
		return b
	}
	tests := []struct {
		name    string
		lldp    bool
		in      []byte
		wantErr error
	}{
		{name: "lldp wrong ethertype", lldp: true, in: patch(lldp, 12, 0x08, 0x00), wantErr: discovery.ErrBadLLDP},
		{name: "lldp chassis too short", lldp: true, in: append(patch(lldp[:14], 0), 0x02, 0x01, 0x04, 0, 0), wantErr: discovery.ErrBadLLDP},
		{name: "lldp bad advertisement", lldp: true, in: patch(lldp, 58, 0x02, 0x01), wantErr: discovery.ErrBadSubTLV},
		{name: "isis bad checksum", in: patch(isis, 42, 0x00, 0x01), wantErr: discovery.ErrBadChecksum},
		{name: "isis not LLC", in: patch(isis, 14, 0xaa), wantErr: discovery.ErrBadISIS},
		{name: "isis hello", in: patch(isis, 21, 0x0f), wantErr: discovery.ErrNotLSP},
		{name: "isis ethertype frame", in: patch(isis, 12, 0x08, 0x00), wantErr: discovery.ErrBadISIS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.lldp {
				var f discovery.LLDPFrame
				err = f.UnmarshalBinary(tt.in)
			} else {
				var f discovery.ISISFrame
				err = f.UnmarshalBinary(tt.in)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestUnknownTLVsSkipped(t *testing.T) {
	// A non-D2D LLDP speaker: chassis, port, TTL, a system description, an
	// 802.1 org TLV, end.
	plain := unhex(t, `
0180c200000e 020000000002 88cc
0207 04 020000000002
0405 05 65746832
0602 0078
0c03 616263                     # system description
fe06 0080c2 01 0001             # 802.1 port VLAN ID
fe05 00005e 01 61               # IANA OUI, another subtype
0000`)
	var f discovery.LLDPFrame
	if err := f.UnmarshalBinary(plain); err != nil {
		t.Fatal(err)
	}
	if f.Adv != nil || string(f.PortID.ID) != "eth2" {
		t.Errorf("got %+v, want no advertisement and port eth2", f)
	}

	// An LSP with an unknown TLV and a GENINFO TLV of another application
	// before ours.
	i := testISIS()
	pdu, err := i.LSP.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	extra := []byte{0x81, 0x01, 0xcc, 0xfb, 0x04, 0x00, 0x00, 0x01, 0xaa}
	pdu = append(pdu[:27:27], append(extra, pdu[27:]...)...)
	pdu[8], pdu[9] = byte(len(pdu)>>8), byte(len(pdu))
	pdu[24], pdu[25] = 0, 0
	var l discovery.ISISLSP
	err = l.UnmarshalBinary(pdu)
	if !errors.Is(err, discovery.ErrBadChecksum) {
		t.Fatalf("zero checksum on a live LSP: err = %v, want ErrBadChecksum", err)
	}
	discovery.FixChecksum(pdu)
	if err := l.UnmarshalBinary(pdu); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(i.LSP, l, frameOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzLLDP(f *testing.F) {
	f.Add(unhex(f, lldpGolden))
	f.Fuzz(func(t *testing.T, in []byte) {
		var a discovery.LLDPFrame
		if err := a.UnmarshalBinary(in); err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil {
			// Decodable but not encodable: chassis/port IDs beyond what
			// we send, or an oversized frame. Fine.
			return
		}
		if len(out) != a.Len() {
			t.Fatalf("Len() = %d, wrote %d", a.Len(), len(out))
		}
		var b discovery.LLDPFrame
		if err := b.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(a, b, frameOpts); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzISIS(f *testing.F) {
	f.Add(unhex(f, isisGolden))
	f.Fuzz(func(t *testing.T, in []byte) {
		var a discovery.ISISFrame
		if err := a.UnmarshalBinary(in); err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil {
			return
		}
		if len(out) != a.Len() {
			t.Fatalf("Len() = %d, wrote %d", a.Len(), len(out))
		}
		var b discovery.ISISFrame
		if err := b.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(a, b, frameOpts); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func BenchmarkLLDPEncode(b *testing.B) {
	f := testLLDP()
	buf := make([]byte, 0, discovery.MaxFrame)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLLDPDecode(b *testing.B) {
	in := unhex(b, lldpGolden)
	b.ReportAllocs()
	for b.Loop() {
		var f discovery.LLDPFrame
		if err := f.UnmarshalBinary(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkISISEncode(b *testing.B) {
	f := testISIS()
	buf := make([]byte, 0, discovery.MaxFrame)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkISISDecode(b *testing.B) {
	in := unhex(b, isisGolden)
	b.ReportAllocs()
	for b.Loop() {
		var f discovery.ISISFrame
		if err := f.UnmarshalBinary(in); err != nil {
			b.Fatal(err)
		}
	}
}

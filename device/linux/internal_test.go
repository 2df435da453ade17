package linux

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/d2dmesh/d2d/device"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/net/icmp"
)

func nodes(s string) string {
	return map[string]string{"2001:db8:0:1::2": "P-2", "fc00:0:3::1": "PE-3"}[s]
}

func TestParseBGPNeighbors(t *testing.T) {
	out, err := os.ReadFile("testdata/frr/show_bgp_neighbors.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBGPNeighbors(out, nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := []device.BGPNeighbor{
		{Address: "2001:db8:0:1::2", Node: "P-2", LocalAS: 65001, PeerAS: 65002, State: "Established", UptimeS: 3725, LastError: "Waiting for peer OPEN"},
		{Address: "eth2", LocalAS: 65001, State: "Idle", LastError: "No AFI/SAFI activated for peer"},
		{Address: "fc00:0:3::1", Node: "PE-3", LocalAS: 65001, PeerAS: 65001, State: "Active", LastError: "Hold Timer Expired"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("neighbours (-want +got):\n%s", d)
	}
	if _, err := parseBGPNeighbors([]byte("% BGP instance not found"), nodes); err == nil {
		t.Error("non-JSON output accepted")
	}
}

func TestParseBFDPeers(t *testing.T) {
	out, err := os.ReadFile("testdata/frr/show_bfd_peers.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBFDPeers(out, nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := []device.BFDSession{
		{Peer: "2001:db8:0:1::2", Node: "P-2", Interface: "eth1", LocalState: "Up", RemoteState: "Up"},
		{Peer: "fc00:0:3::1", Node: "PE-3", LocalState: "Down", RemoteState: "Down", Diagnostic: "control detection time expired"},
		{Peer: "10.0.1.9", Interface: "eth1", LocalState: "AdminDown", RemoteState: "Down", Diagnostic: "administratively down"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sessions (-want +got):\n%s", d)
	}
}

func TestSRv6EchoPacket(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:0:1::1")
	tail := netip.MustParseAddr("fc00:0:3::1")
	segs := []netip.Addr{netip.MustParseAddr("fc00:0:2::1"), netip.MustParseAddr("fc00:0:3::d6")}
	b, err := srv6EchoPacket(src, tail, segs, 0x1234, 7)
	if err != nil {
		t.Fatal(err)
	}
	type layout struct {
		Len, PayloadLen         int
		Next, SRHNext, Type, SL byte
		LastEntry, HdrExtLen    byte
		OuterDst, Seg0, Seg1    string
		InnerNext               byte
		InnerSrc, InnerDst      string
		EchoType                byte
		ID, Seq                 int
	}
	a16 := func(b []byte) string { a, _ := netip.AddrFromSlice(b); return a.String() }
	got := layout{
		Len: len(b), PayloadLen: int(binary.BigEndian.Uint16(b[4:])),
		Next: b[6], SRHNext: b[40], HdrExtLen: b[41], Type: b[42], SL: b[43], LastEntry: b[44],
		OuterDst: a16(b[24:40]), Seg0: a16(b[48:64]), Seg1: a16(b[64:80]),
		InnerNext: b[80+6], InnerSrc: a16(b[88:104]), InnerDst: a16(b[104:120]),
		EchoType: b[120], ID: int(binary.BigEndian.Uint16(b[124:])), Seq: int(binary.BigEndian.Uint16(b[126:])),
	}
	want := layout{
		Len: 40 + 8 + 32 + 40 + 8 + len(probePayload), PayloadLen: 8 + 32 + 40 + 8 + len(probePayload),
		Next: 43, SRHNext: 41, HdrExtLen: 4, Type: 4, SL: 1, LastEntry: 1,
		OuterDst: "fc00:0:2::1", Seg0: "fc00:0:3::d6", Seg1: "fc00:0:2::1",
		InnerNext: 58, InnerSrc: "2001:db8:0:1::1", InnerDst: "fc00:0:3::1",
		EchoType: 128, ID: 0x1234, Seq: 7,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("packet layout (-want +got):\n%s", d)
	}
	// The ICMPv6 checksum verifies against the inner pseudo-header.
	echo := b[120:]
	m, err := icmp.ParseMessage(protoICMPv6, echo)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), tail.AsSlice()))
	if d := cmp.Diff(echo, again); d != "" {
		t.Errorf("checksum differs from a fresh computation:\n%s", d)
	}
	// An ICMP error quoting the probe, cut anywhere after the echo header,
	// is matched back to it.
	id, seq, ok := embeddedEcho(false, b[:128])
	if !ok || id != 0x1234 || seq != 7 {
		t.Errorf("embeddedEcho = %#x, %d, %v", id, seq, ok)
	}
	for n := range 128 {
		if _, _, ok := embeddedEcho(false, b[:n]); ok {
			t.Errorf("embeddedEcho matched a %d-byte truncation", n)
		}
	}
	if _, err := srv6EchoPacket(src, tail, nil, 1, 1); err == nil {
		t.Error("empty segment list accepted")
	}
}

func TestDescribeRule(t *testing.T) {
	ud := userdata.AppendString(nil, userdata.TypeComment, "acl=2001 rule=10,action=permit")
	if d := cmp.Diff(map[string]string{"acl": "2001", "rule": "10", "action": "permit"}, parseComment(ud)); d != "" {
		t.Errorf("comment (-want +got):\n%s", d)
	}
	var ar aclRule
	describe(&ar, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("eth1")},
		&expr.Numgen{Register: 1, Modulus: 10000},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{0, 0, 1, 0x2c}},
		&expr.Counter{Packets: 3, Bytes: 300},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: "acl-2001-r10"},
	})
	want := aclRule{iface: "eth1", match: `oifname "eth1" numgen random mod 10000 < 300`, packets: 3, bytes: 300, verdictChain: "acl-2001-r10"}
	if d := cmp.Diff(want, ar, cmp.AllowUnexported(aclRule{})); d != "" {
		t.Errorf("rule (-want +got):\n%s", d)
	}
}

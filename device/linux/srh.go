package linux

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// srv6EchoPacket builds an SRv6 probe: outer IPv6 header to the first
// segment, Segment Routing Header, encapsulated IPv6 header to tail and an
// ICMPv6 echo request.
//
//	outer IPv6 (40)  ver 6 | payload length | next header 43 | hop limit 64 | src | dst = segs[0]
//	SRH (8+16n)      next header 41 | hdr ext len 2n | type 4 | segments left n-1 |
//	                 last entry n-1 | flags 0 | tag 0 | segment list[0..n-1] = segs reversed
//	inner IPv6 (40)  next header 58 | hop limit 64 | src | dst = tail
//	ICMPv6 echo      type 128 | code | checksum | id | seq | data
//
// RFC 8754 §2: Segment List[0] is the last segment, so the list is written
// in reverse order of travel.
func srv6EchoPacket(src, tail netip.Addr, segs []netip.Addr, id, seq int) ([]byte, error) {
	if len(segs) == 0 || len(segs) > 127 {
		return nil, errors.New("linux: segment list must hold 1 to 127 segments")
	}
	m := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: id, Seq: seq, Data: probePayload}}
	echo, err := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), tail.AsSlice()))
	if err != nil {
		return nil, err
	}
	n := len(segs)
	srhLen := 8 + 16*n
	total := 40 + srhLen + 40 + len(echo)
	b := make([]byte, total)

	putIPv6(b[0:40], src, segs[0], 43, total-40)
	s := b[40 : 40+srhLen]
	s[0] = 41                  // next header: IPv6
	s[1] = byte(2 * n)         // header extension length in 8-octet units, first 8 excluded
	s[2] = 4                   // routing type: Segment Routing Header
	s[3] = byte(n - 1)         // segments left
	s[4] = byte(n - 1)         // last entry
	for i, seg := range segs { // flags and tag stay zero
		a := seg.As16()
		copy(s[8+16*(n-1-i):], a[:])
	}
	inner := b[40+srhLen:]
	putIPv6(inner[:40], src, tail, protoICMPv6, len(echo))
	copy(inner[40:], echo)
	return b, nil
}

func putIPv6(h []byte, src, dst netip.Addr, next byte, payload int) {
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], uint16(payload))
	h[6] = next
	h[7] = 64 // hop limit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
}

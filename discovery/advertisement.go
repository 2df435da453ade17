package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// DefaultPort is the D2D port (draft-zm-rtgwg-mcp-troubleshooting-01
// §5.3.1 step 1: mcp-d2d-port = 9514).
const DefaultPort = 9514

// Advertisement is what a collaboration agent tells its neighbours: its
// name, where its D2D endpoint listens, which capabilities it offers and
// the SHA-256 thumbprint of its certificate (docs/ARCHITECTURE.md §3.1). LLDP, IS-IS
// and membership metadata all decode to this one type.
type Advertisement struct {
	Node         string
	Endpoint     netip.AddrPort // address may be invalid when only the port is known
	Capabilities []string
	Thumbprint   [32]byte
	// GossipPort is the UDP/TCP port of the node's domain-membership
	// (memberlist) listener; zero when the node does not gossip.
	GossipPort uint16
}

// Sub-TLV types of the advertisement block (one type byte, one length
// byte, then the value). The same block travels in LLDP organisationally
// specific TLVs, in IS-IS GENINFO TLVs and in membership metadata.
const (
	SubTLVNode       = 1 // node name, 1..MaxStringLen bytes of UTF-8
	SubTLVPort       = 2 // D2D port, 2 bytes big endian
	SubTLVThumbprint = 3 // SHA-256 of the DER certificate, 32 bytes
	SubTLVCapability = 4 // one capability name, 1..MaxStringLen bytes; repeatable
	SubTLVAddress    = 5 // D2D endpoint address, 4 (IPv4) or 16 (IPv6) bytes
	SubTLVGossipPort = 6 // membership port, 2 bytes big endian
)

// MaxStringLen bounds node names and capability names. 240 rather than
// the 255 a length byte allows, so that any single sub-TLV (2+240 bytes)
// fits in one IS-IS GENINFO TLV next to its 3-byte header and an optional
// application address (RFC 6823 §3: at most 255 bytes of value).
const MaxStringLen = 240

var (
	// ErrBadSubTLV reports a complete advertisement block holding a
	// sub-TLV with an impossible length or a repeated single-valued
	// sub-TLV.
	ErrBadSubTLV = errors.New("discovery: bad advertisement sub-TLV")
	// ErrBadAdvertisement reports an Advertisement that cannot be encoded:
	// an empty or overlong node or capability name, or an address with a
	// zone.
	ErrBadAdvertisement = errors.New("discovery: advertisement not encodable")
)

// Len returns the size of the sub-TLV block AppendBinary writes.
func (a *Advertisement) Len() int {
	n := 0
	if a.Node != "" {
		n += 2 + len(a.Node)
	}
	if a.Endpoint.Port() != 0 {
		n += 2 + 2
	}
	if a.Thumbprint != ([32]byte{}) {
		n += 2 + 32
	}
	for _, c := range a.Capabilities {
		n += 2 + len(c)
	}
	if addr := a.Endpoint.Addr(); addr.IsValid() {
		n += 2 + addr.BitLen()/8
	}
	if a.GossipPort != 0 {
		n += 2 + 2
	}
	return n
}

func (a *Advertisement) check() error {
	if len(a.Node) > MaxStringLen {
		return fmt.Errorf("%w: node name of %d bytes exceeds %d", ErrBadAdvertisement, len(a.Node), MaxStringLen)
	}
	for _, c := range a.Capabilities {
		if c == "" || len(c) > MaxStringLen {
			return fmt.Errorf("%w: capability %q must have 1..%d bytes", ErrBadAdvertisement, c, MaxStringLen)
		}
	}
	if a.Endpoint.Addr().Zone() != "" {
		return fmt.Errorf("%w: endpoint address %v has a zone", ErrBadAdvertisement, a.Endpoint.Addr())
	}
	return nil
}

// AppendBinary appends the sub-TLV block to b: node, port, thumbprint,
// capabilities in order, address, gossip port. Absent fields (empty name,
// zero port, zero thumbprint, invalid address, zero gossip port) are left
// out. It returns ErrBadAdvertisement for fields that do not fit.
func (a *Advertisement) AppendBinary(b []byte) ([]byte, error) {
	if err := a.check(); err != nil {
		return b, err
	}
	if a.Node != "" {
		b = append(b, SubTLVNode, byte(len(a.Node)))
		b = append(b, a.Node...)
	}
	if p := a.Endpoint.Port(); p != 0 {
		b = append(b, SubTLVPort, 2)
		b = binary.BigEndian.AppendUint16(b, p)
	}
	if a.Thumbprint != ([32]byte{}) {
		b = append(b, SubTLVThumbprint, 32)
		b = append(b, a.Thumbprint[:]...)
	}
	for _, c := range a.Capabilities {
		b = append(b, SubTLVCapability, byte(len(c)))
		b = append(b, c...)
	}
	if addr := a.Endpoint.Addr(); addr.IsValid() {
		s := addr.AsSlice()
		b = append(b, SubTLVAddress, byte(len(s)))
		b = append(b, s...)
	}
	if a.GossipPort != 0 {
		b = append(b, SubTLVGossipPort, 2)
		b = binary.BigEndian.AppendUint16(b, a.GossipPort)
	}
	return b, nil
}

// MarshalBinary returns the sub-TLV block.
func (a *Advertisement) MarshalBinary() ([]byte, error) {
	return a.AppendBinary(make([]byte, 0, a.Len()))
}

// UnmarshalBinary replaces a with the advertisement in the sub-TLV block
// b, copying out of b. Unknown sub-TLV types are skipped. A block cut
// inside a sub-TLV returns a wrapped io.ErrUnexpectedEOF; a wrong
// fixed-size length, an empty or overlong name or a repeated
// single-valued sub-TLV returns a wrapped ErrBadSubTLV.
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	var (
		out  Advertisement
		port uint16
		addr netip.Addr
		seen [SubTLVGossipPort + 1]bool
	)
	for len(b) > 0 {
		if len(b) < 2 {
			return fmt.Errorf("discovery: advertisement sub-TLV header: %w", io.ErrUnexpectedEOF)
		}
		t, l := b[0], int(b[1])
		if len(b) < 2+l {
			return fmt.Errorf("discovery: advertisement sub-TLV %d wants %d bytes, %d left: %w", t, l, len(b)-2, io.ErrUnexpectedEOF)
		}
		v := b[2 : 2+l]
		b = b[2+l:]
		if t != SubTLVCapability && int(t) < len(seen) {
			if seen[t] {
				return fmt.Errorf("%w: sub-TLV %d repeated", ErrBadSubTLV, t)
			}
			seen[t] = true
		}
		switch t {
		case SubTLVNode:
			if l == 0 || l > MaxStringLen {
				return fmt.Errorf("%w: node name of %d bytes", ErrBadSubTLV, l)
			}
			out.Node = string(v)
		case SubTLVPort, SubTLVGossipPort:
			if l != 2 {
				return fmt.Errorf("%w: port sub-TLV %d has length %d, want 2", ErrBadSubTLV, t, l)
			}
			p := binary.BigEndian.Uint16(v)
			if p == 0 {
				return fmt.Errorf("%w: port sub-TLV %d is zero", ErrBadSubTLV, t)
			}
			if t == SubTLVPort {
				port = p
			} else {
				out.GossipPort = p
			}
		case SubTLVThumbprint:
			if l != 32 {
				return fmt.Errorf("%w: thumbprint has length %d, want 32", ErrBadSubTLV, l)
			}
			copy(out.Thumbprint[:], v)
		case SubTLVCapability:
			if l == 0 || l > MaxStringLen {
				return fmt.Errorf("%w: capability of %d bytes", ErrBadSubTLV, l)
			}
			out.Capabilities = append(out.Capabilities, string(v))
		case SubTLVAddress:
			var ok bool
			addr, ok = netip.AddrFromSlice(v)
			if !ok {
				return fmt.Errorf("%w: address has length %d, want 4 or 16", ErrBadSubTLV, l)
			}
		}
	}
	if port != 0 || addr.IsValid() {
		out.Endpoint = netip.AddrPortFrom(addr, port)
	}
	*a = out
	return nil
}

// splitBlock cuts a sub-TLV block into pieces ending on sub-TLV
// boundaries, the first at most first bytes and the others at most rest
// bytes, so that a block too large for one LLDP organisationally specific
// TLV or IS-IS GENINFO TLV continues in the next. rest must hold the
// largest sub-TLV (2+MaxStringLen bytes); the first piece may be empty
// when its room is smaller than the first sub-TLV.
func splitBlock(block []byte, first, rest int) [][]byte {
	out := [][]byte{}
	limit, start := first, 0
	for i := 0; i < len(block); {
		next := i + 2 + int(block[i+1])
		if next-start > limit {
			out = append(out, block[start:i])
			start, limit = i, rest
		}
		i = next
	}
	return append(out, block[start:])
}

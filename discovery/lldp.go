package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// LLDP constants (IEEE 802.1AB-2016).
const (
	// EtherTypeLLDP is LLDP's ethertype.
	EtherTypeLLDP = 0x88cc
	// DefaultLLDPSubtype is the provisional subtype of the D2D
	// organisationally specific TLV under OUI 00-00-5E. IANA has not
	// assigned one; 0xD2 ("D2") is outside the values IETF documents have
	// used so far and is configurable (LinkConfig.OUISubtype).
	DefaultLLDPSubtype = 0xD2
	// maxOrgInfo is the information string of one organisationally
	// specific TLV: 511 bytes of TLV value less OUI and subtype.
	maxOrgInfo = 507
	// MaxFrame bounds every frame this package sends or reads: an
	// untagged Ethernet frame with a 1500-byte payload.
	MaxFrame = 1514
)

// OUIIANA is the IANA OUI 00-00-5E that IETF-defined LLDP TLVs use.
var OUIIANA = [3]byte{0x00, 0x00, 0x5e}

// LLDPMulticast is the nearest-bridge group address LLDP frames go to.
var LLDPMulticast = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

var (
	// ErrBadLLDP reports a complete frame that is not a valid LLDPDU
	// (missing or malformed mandatory TLVs, wrong ethertype).
	ErrBadLLDP = errors.New("discovery: bad LLDP frame")
	// ErrFrameTooLarge reports a frame that would exceed MaxFrame.
	ErrFrameTooLarge = errors.New("discovery: frame too large")
)

// LLDPFrame is one LLDP Ethernet frame: the mandatory TLVs, System Name,
// Management Address and, for a D2D agent, the advertisement in
// organisationally specific TLVs.
type LLDPFrame struct {
	Dst net.HardwareAddr // if nil, LLDPMulticast
	Src net.HardwareAddr

	ChassisID layers.LLDPChassisID // D2D sends subtype MAC address
	PortID    layers.LLDPPortID    // D2D sends subtype interface name
	TTL       uint16               // seconds

	SystemName  string     // omitted when empty
	MgmtAddr    netip.Addr // omitted when invalid
	MgmtIfIndex uint32     // interface number of MgmtAddr (ifIndex)

	// Subtype selects the organisationally specific TLVs under OUIIANA
	// that carry Adv, when encoding and when decoding. If zero,
	// DefaultLLDPSubtype.
	Subtype uint8
	// Adv is nil for a frame without a D2D advertisement (any other LLDP
	// speaker).
	Adv *Advertisement
}

func (f *LLDPFrame) subtype() uint8 {
	if f.Subtype == 0 {
		return DefaultLLDPSubtype
	}
	return f.Subtype
}

func (f *LLDPFrame) layers() (*layers.Ethernet, *layers.LinkLayerDiscovery, error) {
	if len(f.Src) != 6 {
		return nil, nil, fmt.Errorf("%w: source MAC %v", ErrBadLLDP, f.Src)
	}
	dst := f.Dst
	if dst == nil {
		dst = LLDPMulticast
	}
	if len(f.ChassisID.ID) == 0 || len(f.ChassisID.ID) > 255 || f.ChassisID.Subtype == 0 ||
		len(f.PortID.ID) == 0 || len(f.PortID.ID) > 255 || f.PortID.Subtype == 0 {
		return nil, nil, fmt.Errorf("%w: chassis and port IDs need a subtype and 1..255 bytes", ErrBadLLDP)
	}
	lldp := &layers.LinkLayerDiscovery{ChassisID: f.ChassisID, PortID: f.PortID, TTL: f.TTL}
	if f.SystemName != "" {
		if len(f.SystemName) > 255 {
			return nil, nil, fmt.Errorf("%w: system name longer than 255 bytes", ErrBadLLDP)
		}
		lldp.Values = append(lldp.Values, layers.LinkLayerDiscoveryValue{
			Type: layers.LLDPTLVSysName, Length: uint16(len(f.SystemName)), Value: []byte(f.SystemName)})
	}
	if f.MgmtAddr.IsValid() {
		a := f.MgmtAddr.Unmap()
		raw := a.AsSlice()
		family := byte(layers.IANAAddressFamilyIPV4)
		if a.Is6() {
			family = byte(layers.IANAAddressFamilyIPV6)
		}
		// 802.1AB §8.5.9: string length, family, address, interface
		// numbering subtype (2 = ifIndex), number, OID length.
		v := make([]byte, 0, 2+len(raw)+6)
		v = append(v, byte(1+len(raw)), family)
		v = append(v, raw...)
		v = append(v, byte(layers.LLDPInterfaceSubtypeifIndex))
		v = binary.BigEndian.AppendUint32(v, f.MgmtIfIndex)
		v = append(v, 0)
		lldp.Values = append(lldp.Values, layers.LinkLayerDiscoveryValue{
			Type: layers.LLDPTLVMgmtAddress, Length: uint16(len(v)), Value: v})
	}
	if f.Adv != nil {
		block, err := f.Adv.MarshalBinary()
		if err != nil {
			return nil, nil, err
		}
		for _, piece := range splitBlock(block, maxOrgInfo, maxOrgInfo) {
			v := make([]byte, 0, 4+len(piece))
			v = append(v, OUIIANA[:]...)
			v = append(v, f.subtype())
			v = append(v, piece...)
			lldp.Values = append(lldp.Values, layers.LinkLayerDiscoveryValue{
				Type: layers.LLDPTLVOrgSpecific, Length: uint16(len(v)), Value: v})
		}
	}
	eth := &layers.Ethernet{SrcMAC: f.Src, DstMAC: dst, EthernetType: layers.EthernetTypeLinkLayerDiscovery}
	return eth, lldp, nil
}

func (f *LLDPFrame) payloadLen() int {
	n := 2 + 1 + len(f.ChassisID.ID) + 2 + 1 + len(f.PortID.ID) + 2 + 2 + 2 // ... + End
	if f.SystemName != "" {
		n += 2 + len(f.SystemName)
	}
	if f.MgmtAddr.IsValid() {
		n += 2 + 2 + f.MgmtAddr.Unmap().BitLen()/8 + 6
	}
	if f.Adv != nil {
		l := f.Adv.Len()
		pieces := 1
		if l > maxOrgInfo {
			// An upper bound is not good enough for Len; count exactly.
			if block, err := f.Adv.MarshalBinary(); err == nil {
				pieces = len(splitBlock(block, maxOrgInfo, maxOrgInfo))
			}
		}
		n += l + pieces*(2+4)
	}
	return n
}

// Len returns the frame size AppendBinary writes, padding included.
func (f *LLDPFrame) Len() int {
	return max(14+f.payloadLen(), 60)
}

// AppendBinary appends the Ethernet frame to b, padded to the 60-byte
// Ethernet minimum.
func (f *LLDPFrame) AppendBinary(b []byte) ([]byte, error) {
	eth, lldp, err := f.layers()
	if err != nil {
		return b, err
	}
	if n := 14 + f.payloadLen(); n > MaxFrame {
		return b, fmt.Errorf("%w: LLDP frame of %d bytes", ErrFrameTooLarge, n)
	}
	buf := gopacket.NewSerializeBufferExpectedSize(14, f.payloadLen())
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, lldp); err != nil {
		return b, fmt.Errorf("discovery: serialise LLDP: %w", err)
	}
	return append(b, buf.Bytes()...), nil
}

// MarshalBinary returns the Ethernet frame.
func (f *LLDPFrame) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(make([]byte, 0, f.Len()))
}

// UnmarshalBinary replaces f with the LLDP frame in b (an Ethernet frame,
// copied out). It keeps f.Subtype to select the D2D TLVs. Unknown TLVs and
// organisationally specific TLVs of other OUIs or subtypes are skipped. A
// frame cut before its End TLV returns a wrapped io.ErrUnexpectedEOF;
// a frame that is not LLDP or lacks a mandatory TLV returns a wrapped
// ErrBadLLDP; a malformed advertisement returns ErrBadSubTLV.
func (f *LLDPFrame) UnmarshalBinary(b []byte) error {
	if len(b) < 14 {
		return fmt.Errorf("discovery: LLDP Ethernet header: %w", io.ErrUnexpectedEOF)
	}
	if binary.BigEndian.Uint16(b[12:14]) != EtherTypeLLDP {
		return fmt.Errorf("%w: ethertype %#04x", ErrBadLLDP, binary.BigEndian.Uint16(b[12:14]))
	}
	if err := scanLLDP(b[14:]); err != nil {
		return err
	}
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	if el := pkt.ErrorLayer(); el != nil {
		return fmt.Errorf("%w: %v", ErrBadLLDP, el.Error())
	}
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	lldp, _ := pkt.Layer(layers.LayerTypeLinkLayerDiscovery).(*layers.LinkLayerDiscovery)
	info, _ := pkt.Layer(layers.LayerTypeLinkLayerDiscoveryInfo).(*layers.LinkLayerDiscoveryInfo)
	if eth == nil || lldp == nil || info == nil {
		return fmt.Errorf("%w: no LLDPDU", ErrBadLLDP)
	}
	out := LLDPFrame{
		Dst:        clone(eth.DstMAC),
		Src:        clone(eth.SrcMAC),
		ChassisID:  layers.LLDPChassisID{Subtype: lldp.ChassisID.Subtype, ID: clone(lldp.ChassisID.ID)},
		PortID:     layers.LLDPPortID{Subtype: lldp.PortID.Subtype, ID: clone(lldp.PortID.ID)},
		TTL:        lldp.TTL,
		SystemName: info.SysName,
		Subtype:    f.Subtype,
	}
	if m := info.MgmtAddress; len(m.Address) > 0 {
		if a, ok := netip.AddrFromSlice(m.Address); ok {
			out.MgmtAddr = a.Unmap()
			out.MgmtIfIndex = m.InterfaceNumber
		}
	}
	var block []byte
	found := false
	for _, o := range info.OrgTLVs {
		if o.OUI == layers.IEEEOUI(0x00005e) && o.SubType == out.subtype() {
			found = true
			block = append(block, o.Info...)
		}
	}
	if found {
		out.Adv = new(Advertisement)
		if err := out.Adv.UnmarshalBinary(block); err != nil {
			return fmt.Errorf("discovery: LLDP D2D TLV: %w", err)
		}
	}
	*f = out
	return nil
}

// scanLLDP walks the TLVs of an LLDPDU so that a truncated frame reports
// io.ErrUnexpectedEOF before gopacket reports it in its own words.
func scanLLDP(b []byte) error {
	for {
		if len(b) < 2 {
			return fmt.Errorf("discovery: LLDP TLV header: %w", io.ErrUnexpectedEOF)
		}
		t, l := b[0]>>1, int(b[0]&1)<<8|int(b[1])
		if len(b) < 2+l {
			return fmt.Errorf("discovery: LLDP TLV %d wants %d bytes, %d left: %w", t, l, len(b)-2, io.ErrUnexpectedEOF)
		}
		if t == 0 {
			return nil
		}
		b = b[2+l:]
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

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

// IS-IS constants (ISO/IEC 10589:2002, RFC 6823).
const (
	// DefaultAppID is the provisional GENINFO Application ID of D2D
	// (RFC 6823 §3; IANA has not assigned one). 0x0D2D is configurable
	// (LinkConfig.AppID).
	DefaultAppID = 0x0D2D
	// DefaultLSPLifetime is the remaining lifetime of an originated LSP
	// when the caller sets none: IS-IS's MaxAge, 1200 s.
	DefaultLSPLifetime = 1200

	nlpidISIS      = 0x83
	lspHeaderLen   = 27 // common header (8) + LSP header (19)
	pduTypeL1LSP   = 18
	pduTypeL2LSP   = 20
	tlvHostname    = 137 // RFC 5301
	tlvGenInfo     = 251 // RFC 6823
	genInfoFlagI   = 0x04
	genInfoFlagV   = 0x08
	subTLVIPv4Addr = 6  // RFC 5305 §3.2, reused by RFC 6823
	subTLVIPv6Addr = 12 // RFC 6119 §4, reused by RFC 6823
)

// IS-IS destination MAC addresses (ISO/IEC 10589 §8.4.8).
var (
	AllL1ISs = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x14}
	AllL2ISs = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x15}
	AllISs   = net.HardwareAddr{0x09, 0x00, 0x2b, 0x00, 0x00, 0x05}
)

// LayerTypeISIS is the gopacket layer type of an IS-IS link state PDU,
// decoded from the payload of an LLC layer with DSAP/SSAP 0xFE. gopacket
// reserves 1000-1999 for application layer types; 1083 echoes NLPID 0x83.
var LayerTypeISIS = gopacket.RegisterLayerType(1083, gopacket.LayerTypeMetadata{
	Name:    "ISIS",
	Decoder: gopacket.DecodeFunc(decodeISIS),
})

var (
	// ErrBadISIS reports a complete frame or PDU that is not a valid IS-IS
	// LSP: wrong LLC header or NLPID, impossible lengths, a TLV running past
	// the PDU, a malformed GENINFO TLV.
	ErrBadISIS = errors.New("discovery: bad IS-IS PDU")
	// ErrNotLSP reports a valid IS-IS PDU of another type (hello, CSNP,
	// PSNP), which the link agent ignores.
	ErrNotLSP = errors.New("discovery: IS-IS PDU is not an LSP")
	// ErrBadChecksum reports an LSP whose Fletcher checksum does not verify.
	ErrBadChecksum = errors.New("discovery: IS-IS LSP checksum mismatch")
)

// LSPID is an IS-IS LSP identifier: system ID (6 bytes), pseudonode ID,
// fragment number.
type LSPID [8]byte

// SystemID returns the originator's system ID.
func (id LSPID) SystemID() [6]byte { return [6]byte(id[:6]) }

// String formats id the way IS-IS implementations print it,
// "0102.0304.0506.00-00".
func (id LSPID) String() string {
	return fmt.Sprintf("%02x%02x.%02x%02x.%02x%02x.%02x-%02x", id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7])
}

// ISISLSP is an IS-IS link state PDU carrying a D2D advertisement in
// GENINFO TLVs. It is a gopacket layer (LayerTypeISIS) and a wire codec
// starting at the NLPID byte.
type ISISLSP struct {
	layers.BaseLayer

	Level             int    // 1 or 2; if zero, 1
	RemainingLifetime uint16 // seconds; zero is a purge
	LSPID             LSPID
	Sequence          uint32
	// Attributes holds the P, ATT and OL bits of the LSP's type block;
	// the IS-type bits follow Level.
	Attributes uint8
	Hostname   string // dynamic hostname TLV 137 (RFC 5301); omitted when empty

	// AppID is the GENINFO Application ID that carries Adv, when encoding
	// and when decoding. If zero, DefaultAppID.
	AppID uint16
	// AppAddr is the optional application IPv4/IPv6 address of the first
	// GENINFO TLV (RFC 6823 §3.1).
	AppAddr netip.Addr
	// Adv is nil when the LSP carries no GENINFO TLV for AppID.
	Adv *Advertisement
}

func (l *ISISLSP) appID() uint16 {
	if l.AppID == 0 {
		return DefaultAppID
	}
	return l.AppID
}

func (l *ISISLSP) level() int {
	if l.Level == 2 {
		return 2
	}
	return 1
}

func (l *ISISLSP) addrLen() int {
	if !l.AppAddr.IsValid() {
		return 0
	}
	return 2 + l.AppAddr.Unmap().BitLen()/8
}

// pieces splits the advertisement over GENINFO TLVs of at most 255 bytes:
// flags and Application ID (3), the address sub-TLV in the first only.
func (l *ISISLSP) pieces() ([][]byte, error) {
	if l.Adv == nil {
		return nil, nil
	}
	block, err := l.Adv.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return splitBlock(block, 255-3-l.addrLen(), 255-3), nil
}

func (l *ISISLSP) lenWith(pieces [][]byte) int {
	n := lspHeaderLen
	if l.Hostname != "" {
		n += 2 + len(l.Hostname)
	}
	for i, p := range pieces {
		n += 2 + 3 + len(p)
		if i == 0 {
			n += l.addrLen()
		}
	}
	return n
}

// Len returns the PDU size AppendBinary writes.
func (l *ISISLSP) Len() int {
	pieces, _ := l.pieces()
	return l.lenWith(pieces)
}

// AppendBinary appends the PDU, from the NLPID byte on, with its Fletcher
// checksum computed (ISO/IEC 10589 §7.3.11).
func (l *ISISLSP) AppendBinary(b []byte) ([]byte, error) {
	if len(l.Hostname) > 255 {
		return b, fmt.Errorf("%w: hostname longer than 255 bytes", ErrBadISIS)
	}
	pieces, err := l.pieces()
	if err != nil {
		return b, err
	}
	n := l.lenWith(pieces)
	if n > MaxFrame-14-3 {
		return b, fmt.Errorf("%w: IS-IS LSP of %d bytes", ErrFrameTooLarge, n)
	}
	start := len(b)
	pduType, isType := byte(pduTypeL1LSP), byte(1)
	if l.level() == 2 {
		pduType, isType = pduTypeL2LSP, 3
	}
	b = append(b, nlpidISIS, lspHeaderLen, 1, 0, pduType, 1, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = binary.BigEndian.AppendUint16(b, l.RemainingLifetime)
	b = append(b, l.LSPID[:]...)
	b = binary.BigEndian.AppendUint32(b, l.Sequence)
	b = append(b, 0, 0, l.Attributes&^3|isType)
	if l.Hostname != "" {
		b = append(b, tlvHostname, byte(len(l.Hostname)))
		b = append(b, l.Hostname...)
	}
	for i, p := range pieces {
		flags, addr := byte(0), l.AppAddr.Unmap()
		if i == 0 && addr.IsValid() {
			flags = genInfoFlagI
			if addr.Is6() {
				flags = genInfoFlagV
			}
		}
		ln := 3 + len(p)
		if flags != 0 {
			ln += l.addrLen()
		}
		b = append(b, tlvGenInfo, byte(ln), flags)
		b = binary.BigEndian.AppendUint16(b, l.appID())
		switch flags {
		case genInfoFlagI:
			b = append(b, subTLVIPv4Addr, 4)
			b = append(b, addr.AsSlice()...)
		case genInfoFlagV:
			b = append(b, subTLVIPv6Addr, 16)
			b = append(b, addr.AsSlice()...)
		}
		b = append(b, p...)
	}
	pdu := b[start:]
	x, y := fletcher(pdu[12:], 12)
	pdu[24], pdu[25] = x, y
	return b, nil
}

// MarshalBinary returns the PDU.
func (l *ISISLSP) MarshalBinary() ([]byte, error) {
	return l.AppendBinary(make([]byte, 0, l.Len()))
}

// UnmarshalBinary replaces l with the LSP in b (from the NLPID byte on),
// copying out of b and keeping l.AppID to select the D2D GENINFO TLVs.
// Unknown TLVs and GENINFO TLVs of other applications are skipped. A PDU
// shorter than its header or PDU length returns a wrapped
// io.ErrUnexpectedEOF; another IS-IS PDU type returns ErrNotLSP; a bad
// checksum ErrBadChecksum; anything else malformed ErrBadISIS (or
// ErrBadSubTLV inside the advertisement).
func (l *ISISLSP) UnmarshalBinary(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("discovery: IS-IS common header: %w", io.ErrUnexpectedEOF)
	}
	if b[0] != nlpidISIS {
		return fmt.Errorf("%w: NLPID %#02x", ErrBadISIS, b[0])
	}
	if b[3] != 0 && b[3] != 6 {
		return fmt.Errorf("%w: system ID length %d", ErrBadISIS, b[3])
	}
	out := ISISLSP{AppID: l.AppID}
	switch b[4] & 0x1f {
	case pduTypeL1LSP:
		out.Level = 1
	case pduTypeL2LSP:
		out.Level = 2
	default:
		return fmt.Errorf("%w: PDU type %d", ErrNotLSP, b[4]&0x1f)
	}
	if b[1] != lspHeaderLen {
		return fmt.Errorf("%w: LSP header length %d", ErrBadISIS, b[1])
	}
	if len(b) < lspHeaderLen {
		return fmt.Errorf("discovery: IS-IS LSP header: %w", io.ErrUnexpectedEOF)
	}
	n := int(binary.BigEndian.Uint16(b[8:10]))
	if n < lspHeaderLen {
		return fmt.Errorf("%w: PDU length %d", ErrBadISIS, n)
	}
	if len(b) < n {
		return fmt.Errorf("discovery: IS-IS LSP of %d bytes, %d present: %w", n, len(b), io.ErrUnexpectedEOF)
	}
	b = b[:n]
	out.RemainingLifetime = binary.BigEndian.Uint16(b[10:12])
	copy(out.LSPID[:], b[12:20])
	out.Sequence = binary.BigEndian.Uint32(b[20:24])
	out.Attributes = b[26] &^ 3
	if csum := binary.BigEndian.Uint16(b[24:26]); !(csum == 0 && out.RemainingLifetime == 0) && !fletcherOK(b[12:]) {
		return fmt.Errorf("%w: LSP %v seq %#x", ErrBadChecksum, out.LSPID, out.Sequence)
	}
	var block []byte
	for t := b[lspHeaderLen:]; len(t) > 0; {
		if len(t) < 2 || len(t) < 2+int(t[1]) {
			return fmt.Errorf("%w: TLV runs past the PDU length", ErrBadISIS)
		}
		typ, v := t[0], t[2:2+int(t[1])]
		t = t[2+len(v):]
		switch typ {
		case tlvHostname:
			out.Hostname = string(v)
		case tlvGenInfo:
			if len(v) < 3 {
				return fmt.Errorf("%w: GENINFO TLV of %d bytes", ErrBadISIS, len(v))
			}
			if binary.BigEndian.Uint16(v[1:3]) != out.appID() {
				continue
			}
			flags := v[0]
			v = v[3:]
			for _, want := range []struct {
				bit       byte
				typ, size int
			}{{genInfoFlagI, subTLVIPv4Addr, 4}, {genInfoFlagV, subTLVIPv6Addr, 16}} {
				if flags&want.bit == 0 {
					continue
				}
				if len(v) < 2+want.size || int(v[0]) != want.typ || int(v[1]) != want.size {
					return fmt.Errorf("%w: GENINFO application address sub-TLV", ErrBadISIS)
				}
				if !out.AppAddr.IsValid() {
					out.AppAddr, _ = netip.AddrFromSlice(v[2 : 2+want.size])
				}
				v = v[2+want.size:]
			}
			block = append(block, v...)
			if out.Adv == nil {
				out.Adv = new(Advertisement)
			}
		}
	}
	if out.Adv != nil {
		if err := out.Adv.UnmarshalBinary(block); err != nil {
			return fmt.Errorf("discovery: IS-IS GENINFO: %w", err)
		}
	}
	*l = out
	return nil
}

// LayerType implements gopacket.Layer.
func (l *ISISLSP) LayerType() gopacket.LayerType { return LayerTypeISIS }

// CanDecode implements gopacket.DecodingLayer.
func (l *ISISLSP) CanDecode() gopacket.LayerClass { return LayerTypeISIS }

// NextLayerType implements gopacket.DecodingLayer: an LSP is the last layer.
func (l *ISISLSP) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

// DecodeFromBytes implements gopacket.DecodingLayer.
func (l *ISISLSP) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := l.UnmarshalBinary(data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			df.SetTruncated()
		}
		return err
	}
	n := min(len(data), int(binary.BigEndian.Uint16(data[8:10])))
	l.BaseLayer = layers.BaseLayer{Contents: data[:n], Payload: data[n:]}
	return nil
}

// SerializeTo implements gopacket.SerializableLayer.
func (l *ISISLSP) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	pdu, err := l.MarshalBinary()
	if err != nil {
		return err
	}
	buf, err := b.PrependBytes(len(pdu))
	if err != nil {
		return err
	}
	copy(buf, pdu)
	return nil
}

func decodeISIS(data []byte, p gopacket.PacketBuilder) error {
	l := &ISISLSP{}
	if err := l.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(l)
	return nil
}

// ISISFrame is an IS-IS LSP framed as on a router's LAN interface: an
// 802.3 length frame, LLC DSAP/SSAP 0xFE control 0x03, then the PDU.
type ISISFrame struct {
	Dst net.HardwareAddr // if nil, AllL1ISs or AllL2ISs by LSP.Level
	Src net.HardwareAddr
	LSP ISISLSP
}

func (f *ISISFrame) dst() net.HardwareAddr {
	if f.Dst != nil {
		return f.Dst
	}
	if f.LSP.level() == 2 {
		return AllL2ISs
	}
	return AllL1ISs
}

// Len returns the frame size AppendBinary writes, padding included.
func (f *ISISFrame) Len() int { return max(14+3+f.LSP.Len(), 60) }

// AppendBinary appends the Ethernet frame to b.
func (f *ISISFrame) AppendBinary(b []byte) ([]byte, error) {
	if len(f.Src) != 6 {
		return b, fmt.Errorf("%w: source MAC %v", ErrBadISIS, f.Src)
	}
	return appendISISFrame(b, f.dst(), f.Src, &f.LSP)
}

func appendISISFrame(b []byte, dst, src net.HardwareAddr, pdu gopacket.SerializableLayer) ([]byte, error) {
	buf := gopacket.NewSerializeBufferExpectedSize(17, 0)
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{DstMAC: dst, SrcMAC: src, EthernetType: layers.EthernetTypeLLC},
		&layers.LLC{DSAP: 0xfe, SSAP: 0xfe, Control: 0x03},
		pdu)
	if err != nil {
		return b, fmt.Errorf("discovery: serialise IS-IS: %w", err)
	}
	return append(b, buf.Bytes()...), nil
}

// MarshalBinary returns the Ethernet frame.
func (f *ISISFrame) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(make([]byte, 0, f.Len()))
}

// UnmarshalBinary replaces f with the IS-IS frame in b, keeping
// f.LSP.AppID. Errors as ISISLSP.UnmarshalBinary; a frame that is not an
// 802.3/LLC IS-IS frame returns ErrBadISIS.
func (f *ISISFrame) UnmarshalBinary(b []byte) error {
	pdu, err := isisPDU(b)
	if err != nil {
		return err
	}
	out := ISISFrame{Dst: clone(b[0:6]), Src: clone(b[6:12]), LSP: ISISLSP{AppID: f.LSP.AppID}}
	if err := out.LSP.UnmarshalBinary(pdu); err != nil {
		return err
	}
	*f = out
	return nil
}

// isisPDU returns the IS-IS PDU inside an Ethernet frame, decoding the
// Ethernet and LLC layers with gopacket.
func isisPDU(b []byte) ([]byte, error) {
	if len(b) < 14 {
		return nil, fmt.Errorf("discovery: IS-IS Ethernet header: %w", io.ErrUnexpectedEOF)
	}
	var (
		eth layers.Ethernet
		llc layers.LLC
		df  truncation
	)
	if err := eth.DecodeFromBytes(b, &df); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadISIS, err)
	}
	if eth.EthernetType != layers.EthernetTypeLLC {
		return nil, fmt.Errorf("%w: ethertype %#04x is not an 802.3 length", ErrBadISIS, uint16(eth.EthernetType))
	}
	if df {
		return nil, fmt.Errorf("discovery: 802.3 length %d, %d bytes present: %w", eth.Length, len(eth.Payload), io.ErrUnexpectedEOF)
	}
	if len(eth.Payload) < 3 {
		return nil, fmt.Errorf("discovery: LLC header: %w", io.ErrUnexpectedEOF)
	}
	if err := llc.DecodeFromBytes(eth.Payload, &df); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadISIS, err)
	}
	if llc.DSAP != 0xfe || llc.SSAP != 0xfe || llc.Control != 0x03 {
		return nil, fmt.Errorf("%w: LLC %#02x/%#02x/%#02x is not OSI", ErrBadISIS, llc.DSAP, llc.SSAP, llc.Control)
	}
	return llc.Payload, nil
}

// truncation is a gopacket.DecodeFeedback that remembers truncation.
type truncation bool

func (t *truncation) SetTruncated() { *t = true }

// fletcher returns the two checksum bytes for data whose checksum field
// sits at offset off (zeroed), per ISO/IEC 10589 §7.3.11 and RFC 1008
// Annex B: the running sums over the whole data, checksum included, must
// both be zero modulo 255.
func fletcher(data []byte, off int) (byte, byte) {
	var c0, c1 int
	for _, v := range data {
		c0 = (c0 + int(v)) % 255
		c1 = (c1 + c0) % 255
	}
	x := ((len(data)-off-1)*c0 - c1) % 255
	if x <= 0 {
		x += 255
	}
	y := 510 - c0 - x
	if y > 255 {
		y -= 255
	}
	return byte(x), byte(y)
}

func fletcherOK(data []byte) bool {
	var c0, c1 int
	for _, v := range data {
		c0 = (c0 + int(v)) % 255
		c1 = (c1 + c0) % 255
	}
	return c0 == 0 && c1 == 0
}

// FixChecksum recomputes the Fletcher checksum of an LSP (from the NLPID
// byte on) in place, after a caller changed its body. Changing only the
// remaining lifetime needs no new checksum: it lies outside the
// checksummed range, which is what lets IS-IS age and re-flood an LSP
// without its originator.
func FixChecksum(pdu []byte) {
	if len(pdu) < lspHeaderLen {
		return
	}
	n := min(len(pdu), int(binary.BigEndian.Uint16(pdu[8:10])))
	pdu[24], pdu[25] = 0, 0
	pdu[24], pdu[25] = fletcher(pdu[12:n], 12)
}

package linux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/d2dmesh/d2d/device"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// probePayload pads echo requests; its content is irrelevant to matching.
var probePayload = []byte("d2d echo probe..")

// Ping sends ICMP or ICMPv6 echo requests to req.Destination (an address
// or a node name of Config.Names), from req.Source (an address, node name
// or interface name) when given.
func (b *Backend) Ping(ctx context.Context, req device.PingRequest, progress device.Progress) (device.ProbeResult, error) {
	if err := b.check(ctx); err != nil {
		return device.ProbeResult{}, err
	}
	count, interval, timeout := req.Probes()
	count = min(count, maxProbes)
	dst, err := b.resolve(req.Destination)
	if err != nil {
		return device.ProbeResult{}, err
	}
	src, err := b.source(req.Source, dst.Is4())
	if err != nil {
		return device.ProbeResult{}, err
	}
	c, raw, err := b.listenICMP(dst.Is4(), src)
	if err != nil {
		return device.ProbeResult{}, err
	}
	defer c.Close()

	id := b.nextEchoID()
	proto, typ := protoICMPv6, icmp.Type(ipv6.ICMPTypeEchoRequest)
	if dst.Is4() {
		proto, typ = protoICMP, ipv4.ICMPTypeEcho
	}
	var to net.Addr = &net.IPAddr{IP: dst.AsSlice()}
	if !raw {
		to = &net.UDPAddr{IP: dst.AsSlice()}
	}
	run := probeRun{
		count: count, interval: interval, timeout: timeout, conn: c,
		send: func(seq int) error {
			m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: probePayload}}
			pkt, err := m.Marshal(nil) // the kernel fills in the ICMPv6 checksum
			if err != nil {
				return err
			}
			if _, err := c.WriteTo(pkt, to); err != nil {
				if sendLoss(err) {
					return nil
				}
				return fmt.Errorf("linux: ping %s: %w", dst, permission(err))
			}
			return nil
		},
		parse: func(pkt []byte, from net.Addr) reply {
			return parseEcho(proto, pkt, from, dst, id, raw)
		},
	}
	res, err := run.run(ctx, progress, "ping "+dst.String())
	res.Path = []string{dst.String()}
	return res, err
}

// source resolves PingRequest.Source: "" (kernel's choice), an address,
// a node name or an interface (its first address of the family).
func (b *Backend) source(s string, v4 bool) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	if a, err := b.resolve(s); err == nil {
		return a, nil
	}
	l, err := b.interfaceByName(s)
	if err != nil {
		return netip.Addr{}, err
	}
	fam := netlink.FAMILY_V6
	if v4 {
		fam = netlink.FAMILY_V4
	}
	addrs, err := b.nl.AddrList(l, fam)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("linux: addresses of %s: %w", s, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("linux: interface %s has no usable address: %w", s, device.ErrUnknownInterface)
}

// listenICMP opens an ICMP socket in the namespace: raw when permitted,
// otherwise an unprivileged datagram socket (net.ipv4.ping_group_range).
func (b *Backend) listenICMP(v4 bool, src netip.Addr) (c *icmp.PacketConn, raw bool, err error) {
	rawNet, dgramNet, any := "ip6:ipv6-icmp", "udp6", "::"
	if v4 {
		rawNet, dgramNet, any = "ip4:icmp", "udp4", "0.0.0.0"
	}
	laddr := any
	if src.IsValid() {
		laddr = src.String()
	}
	err = b.do(func() error {
		var err error
		if c, err = icmp.ListenPacket(rawNet, laddr); err == nil {
			raw = true
			return nil
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
			return err
		}
		c, err = icmp.ListenPacket(dgramNet, laddr)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("linux: ICMP socket: %w", permission(err))
	}
	if raw && !v4 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		for _, t := range []ipv6.ICMPType{ipv6.ICMPTypeEchoReply, ipv6.ICMPTypeDestinationUnreachable,
			ipv6.ICMPTypeTimeExceeded, ipv6.ICMPTypeParameterProblem, ipv6.ICMPTypePacketTooBig} {
			f.Accept(t)
		}
		if err := c.IPv6PacketConn().SetICMPFilter(&f); err != nil {
			c.Close()
			return nil, false, fmt.Errorf("linux: ICMPv6 filter: %w", err)
		}
	}
	return c, raw, nil
}

// parseEcho matches one received ICMP packet against the run's echo
// identifier. Datagram sockets receive only their own replies, with the
// identifier rewritten by the kernel, so id is checked on raw sockets only.
func parseEcho(proto int, pkt []byte, from net.Addr, dst netip.Addr, id int, raw bool) reply {
	m, err := icmp.ParseMessage(proto, pkt)
	if err != nil {
		return reply{}
	}
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			return reply{}
		}
		if raw && body.ID != id {
			return reply{}
		}
		if a := addrOf(from); raw && a != dst {
			return reply{}
		}
		return reply{seq: body.Seq, ok: true, match: true}
	default:
		data := errorData(m)
		if data == nil {
			return reply{}
		}
		eid, seq, ok := embeddedEcho(proto == protoICMP, data)
		if !ok || eid != id {
			return reply{}
		}
		return reply{seq: seq, match: true, note: describeICMP(m, addrOf(from))}
	}
}

// errorData returns the invoking packet quoted by an ICMP error message.
func errorData(m *icmp.Message) []byte {
	switch body := m.Body.(type) {
	case *icmp.DstUnreach:
		return body.Data
	case *icmp.TimeExceeded:
		return body.Data
	case *icmp.ParamProb:
		return body.Data
	case *icmp.PacketTooBig:
		return body.Data
	}
	return nil
}

// describeICMP names an ICMP error for ProbeResult.Error.
func describeICMP(m *icmp.Message, from netip.Addr) string {
	s := fmt.Sprintf("ICMP %v", m.Type)
	switch m.Type {
	case ipv6.ICMPTypeDestinationUnreachable:
		reasons := []string{"no route", "administratively prohibited", "beyond scope of source", "address unreachable", "port unreachable", "source address failed policy", "reject route"}
		s = "ICMPv6 destination unreachable"
		if m.Code < len(reasons) {
			s += " (" + reasons[m.Code] + ")"
		}
	case ipv6.ICMPTypeTimeExceeded:
		s = "ICMPv6 time exceeded"
	case ipv6.ICMPTypeParameterProblem:
		s = fmt.Sprintf("ICMPv6 parameter problem (code %d)", m.Code)
	case ipv6.ICMPTypePacketTooBig:
		s = "ICMPv6 packet too big"
	case ipv4.ICMPTypeDestinationUnreachable:
		s = fmt.Sprintf("ICMP destination unreachable (code %d)", m.Code)
	case ipv4.ICMPTypeTimeExceeded:
		s = "ICMP time exceeded"
	}
	if from.IsValid() {
		s += " from " + from.String()
	}
	return s
}

// embeddedEcho finds the echo request quoted in an ICMP error: behind an
// IPv4 header, or behind an IPv6 header and any extension headers,
// Segment Routing Header and encapsulated IPv6 header (RFC 8754 §5).
func embeddedEcho(v4 bool, b []byte) (id, seq int, ok bool) {
	if v4 {
		if len(b) < 20 || b[0]>>4 != 4 {
			return 0, 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		if b[9] != protoICMP || len(b) < ihl+8 || b[ihl] != byte(ipv4.ICMPTypeEcho) {
			return 0, 0, false
		}
		return int(binary.BigEndian.Uint16(b[ihl+4:])), int(binary.BigEndian.Uint16(b[ihl+6:])), true
	}
	for depth := 0; depth < 8; depth++ {
		if len(b) < 40 || b[0]>>4 != 6 {
			return 0, 0, false
		}
		next, rest := b[6], b[40:]
	ext:
		for {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing (SRH), destination options
				if len(rest) < 8 {
					return 0, 0, false
				}
				l := (int(rest[1]) + 1) * 8
				if len(rest) < l {
					return 0, 0, false
				}
				next, rest = rest[0], rest[l:]
			default:
				break ext
			}
		}
		switch next {
		case 41: // encapsulated IPv6
			b = rest
			continue
		case protoICMPv6:
			if len(rest) < 8 || rest[0] != byte(ipv6.ICMPTypeEchoRequest) {
				return 0, 0, false
			}
			return int(binary.BigEndian.Uint16(rest[4:])), int(binary.BigEndian.Uint16(rest[6:])), true
		}
		return 0, 0, false
	}
	return 0, 0, false
}

func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

package linux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/d2dmesh/d2d/device"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// maxTraceHops bounds MaxHops: 64 is more than any network this agent
// troubleshoots and keeps a call short.
const maxTraceHops = 64

// Traceroute sends one ICMP or ICMPv6 echo request per hop limit, from 1
// up to req.MaxHops, and names each hop from its Time Exceeded message
// (RFC 792, RFC 4443 §3.3). It stops when the destination answers or
// reports it unreachable. It needs a raw socket (CAP_NET_RAW).
func (b *Backend) Traceroute(ctx context.Context, req device.TracerouteRequest, progress device.Progress) (device.TracerouteResult, error) {
	if err := b.check(ctx); err != nil {
		return device.TracerouteResult{}, err
	}
	maxHops, timeout := req.MaxHops, req.Timeout
	if maxHops <= 0 {
		maxHops = 16
	}
	maxHops = min(maxHops, maxTraceHops)
	if timeout <= 0 {
		timeout = time.Second
	}
	dst, err := b.resolve(req.Destination)
	if err != nil {
		return device.TracerouteResult{}, err
	}
	c, raw, err := b.listenICMP(dst.Is4(), netip.Addr{})
	if err != nil {
		return device.TracerouteResult{}, err
	}
	defer c.Close()
	if !raw {
		return device.TracerouteResult{}, fmt.Errorf("linux: traceroute: raw ICMP socket: %w", ErrPermission)
	}
	proto, typ := protoICMPv6, icmp.Type(ipv6.ICMPTypeEchoRequest)
	setHop := func(h int) error { return c.IPv6PacketConn().SetHopLimit(h) }
	if dst.Is4() {
		proto, typ = protoICMP, ipv4.ICMPTypeEcho
		setHop = func(h int) error { return c.IPv4PacketConn().SetTTL(h) }
	}
	id := b.nextEchoID()
	res := device.TracerouteResult{Destination: dst.String(), Hops: []device.TracerouteHop{}}
	buf := make([]byte, 1500)
	to := &net.IPAddr{IP: dst.AsSlice()}
	for ttl := 1; ttl <= maxHops; ttl++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := setHop(ttl); err != nil {
			return res, fmt.Errorf("linux: traceroute: hop limit: %w", err)
		}
		m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: ttl, Data: probePayload}}
		pkt, err := m.Marshal(nil)
		if err != nil {
			return res, err
		}
		sent := time.Now()
		if _, err := c.WriteTo(pkt, to); err != nil {
			return res, fmt.Errorf("linux: traceroute %s: %w", dst, permission(err))
		}
		hop := device.TracerouteHop{TTL: ttl, Lost: true}
		final := false
		deadline := sent.Add(timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = c.SetReadDeadline(deadline)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return res, fmt.Errorf("linux: traceroute: %w", err)
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil {
				continue
			}
			addr := addrOf(from)
			if e, ok := m.Body.(*icmp.Echo); ok {
				if (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) || e.ID != id || e.Seq != ttl || addr != dst {
					continue
				}
				final, res.Reached = true, true
			} else {
				data := errorData(m)
				if data == nil {
					continue
				}
				eid, seq, ok := embeddedEcho(dst.Is4(), data)
				if !ok || eid != id || seq != ttl {
					continue
				}
				if m.Type != ipv4.ICMPTypeTimeExceeded && m.Type != ipv6.ICMPTypeTimeExceeded {
					final = true // unreachable: no point in going further
				}
			}
			hop = device.TracerouteHop{TTL: ttl, Address: addr.String(), Node: b.nodeOf(addr), RTTMS: ms(time.Since(sent))}
			break
		}
		res.Hops = append(res.Hops, hop)
		if progress != nil {
			progress(float64(ttl), float64(maxHops), "traceroute "+dst.String())
		}
		if final {
			break
		}
	}
	return res, nil
}

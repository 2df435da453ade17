package linux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/d2dmesh/d2d/device"
	"golang.org/x/sys/unix"
)

// SRv6Ping sends req.Count ICMPv6 echo requests along req.SIDList and
// measures loss and round-trip time. SIDs and Tail are IPv6 addresses or
// node names of Config.Names; Tail, the inner echo destination, defaults
// to the last segment, which then has to be an address of the tail node
// (the kernel decapsulates SRH packets with no segments left that arrive
// for a local address). With an End.DT6 or End.DX6 SID as last segment,
// give Tail. See the package documentation for the packet and why no
// route is installed.
func (b *Backend) SRv6Ping(ctx context.Context, req device.SRv6PingRequest, progress device.Progress) (device.ProbeResult, error) {
	if err := b.check(ctx); err != nil {
		return device.ProbeResult{}, err
	}
	if req.Head != "" && req.Head != b.cfg.Node {
		return device.ProbeResult{}, fmt.Errorf("linux: SRv6 ping head %q: this backend is %q: %w", req.Head, b.cfg.Node, device.ErrUnknownPeer)
	}
	if len(req.SIDList) == 0 {
		return device.ProbeResult{}, fmt.Errorf("linux: SRv6 ping: empty SID list: %w", device.ErrUnknownSID)
	}
	count, interval, timeout := req.Probes()
	count = min(count, maxProbes)
	segs := make([]netip.Addr, len(req.SIDList))
	path := make([]string, 0, len(segs)+1)
	for i, s := range req.SIDList {
		a, err := b.resolve(s)
		if err != nil {
			return device.ProbeResult{}, err
		}
		if !a.Is6() {
			return device.ProbeResult{}, fmt.Errorf("linux: SID %q is not an IPv6 address: %w", s, device.ErrUnknownSID)
		}
		segs[i] = a
		path = append(path, a.String())
	}
	tail := segs[len(segs)-1]
	if req.Tail != "" {
		a, err := b.resolve(req.Tail)
		if err != nil {
			return device.ProbeResult{}, err
		}
		if !a.Is6() {
			return device.ProbeResult{}, fmt.Errorf("linux: tail %q is not an IPv6 address: %w", req.Tail, device.ErrUnknownSID)
		}
		if a != tail {
			path = append(path, a.String())
		}
		tail = a
	}

	src, err := b.sourceFor(segs[0])
	if err != nil {
		return device.ProbeResult{Path: path}, fmt.Errorf("linux: SRv6 ping via %s: %w: %v", strings.Join(path, ","), device.ErrNoProbeSent, err)
	}
	var fd int
	if err := b.do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		return device.ProbeResult{}, fmt.Errorf("linux: SRv6 ping: raw socket: %w", permission(err))
	}
	defer unix.Close(fd)
	// IPPROTO_RAW implies the header is included; say so for older kernels.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1)

	c, raw, err := b.listenICMP(false, src)
	if err != nil {
		return device.ProbeResult{}, err
	}
	defer c.Close()
	if !raw {
		return device.ProbeResult{}, fmt.Errorf("linux: SRv6 ping: raw ICMPv6 socket: %w", ErrPermission)
	}

	id := b.nextEchoID()
	first := &unix.SockaddrInet6{Addr: segs[0].As16()}
	run := probeRun{
		count: count, interval: interval, timeout: timeout, conn: c,
		send: func(seq int) error {
			pkt, err := srv6EchoPacket(src, tail, segs, id, seq)
			if err != nil {
				return err
			}
			if err := unix.Sendto(fd, pkt, 0, first); err != nil {
				if sendLoss(err) {
					return nil
				}
				return fmt.Errorf("linux: SRv6 ping: send: %w", permission(err))
			}
			return nil
		},
		parse: func(pkt []byte, from net.Addr) reply {
			return parseEcho(protoICMPv6, pkt, from, tail, id, true)
		},
	}
	res, err := run.run(ctx, progress, "SRv6 ping via "+strings.Join(path, ","))
	res.Path = path
	return res, err
}

// sourceFor asks the kernel which source address it would use towards
// dst, by connecting a UDP socket (nothing is sent).
func (b *Backend) sourceFor(dst netip.Addr) (netip.Addr, error) {
	var src netip.Addr
	err := b.do(func() error {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		src = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		return nil
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to first segment %s: %v", dst, err)
	}
	return src, nil
}

// sendLoss reports whether a send error means the probe was lost on the
// way out rather than that probing cannot work: no route or neighbour, a
// full queue, or EPERM, which is what a local netfilter drop (an egress
// ACL) returns to the sender; the socket itself was already permitted.
func sendLoss(err error) bool {
	switch {
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH),
		errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EPERM):
		return true
	}
	return false
}

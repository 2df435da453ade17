package collab

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// lossyUDPConn turns the EPERM a local netfilter drop returns to sendmsg
// into a silently lost datagram. On a router an egress ACL that drops
// some of the box's own packets must not tear down its D2D sessions: QUIC
// already recovers from loss, but quic-go closes a connection whose send
// fails. Every other error is passed on. The *net.UDPConn is embedded so
// quic-go still finds its fast paths (ReadMsgUDP, SyscallConn, buffer
// sizes); only the write methods are wrapped.
type lossyUDPConn struct {
	*net.UDPConn
}

func swallowEPERM(n int, err error, size int) (int, error) {
	if errors.Is(err, syscall.EPERM) {
		return size, nil
	}
	return n, err
}

func (c lossyUDPConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	n, oobn, err := c.UDPConn.WriteMsgUDP(b, oob, addr)
	if errors.Is(err, syscall.EPERM) {
		return len(b), len(oob), nil
	}
	return n, oobn, err
}

func (c lossyUDPConn) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (int, int, error) {
	n, oobn, err := c.UDPConn.WriteMsgUDPAddrPort(b, oob, addr)
	if errors.Is(err, syscall.EPERM) {
		return len(b), len(oob), nil
	}
	return n, oobn, err
}

func (c lossyUDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	return swallowEPERM(n, err, len(b))
}

func (c lossyUDPConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	n, err := c.UDPConn.WriteToUDP(b, addr)
	return swallowEPERM(n, err, len(b))
}

// tolerateLocalDrops wraps a UDP socket; other packet conns (in-memory
// networks) are returned as they are.
func tolerateLocalDrops(pc net.PacketConn) net.PacketConn {
	if u, ok := pc.(*net.UDPConn); ok {
		return lossyUDPConn{u}
	}
	return pc
}

package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d2dmesh/d2d/internal/memnet"
	"github.com/hashicorp/memberlist"
)

// memPacketQueue is how many packets wait for a node before further ones
// are dropped, as a full socket buffer would: enough for a burst of
// gossip from a thousand peers without letting a stalled node hoard
// memory.
const memPacketQueue = 1024

// MemNetwork is an in-memory network for membership simulations:
// transports on made-up addresses (10.x.y.z:7946 by default) that exist
// only in this process. Packets travel through channels, streams through
// net.Pipe. Thousands of nodes fit in one process.
//
// The zero MemNetwork is not usable; call NewMemNetwork.
type MemNetwork struct {
	// Link, if set, is consulted for every packet and every stream dial
	// from one address to another: drop loses the packet (or fails the
	// dial) and delay postpones delivery (or the dial). It must be safe
	// for concurrent use. Set it before creating transports.
	Link func(from, to netip.AddrPort) (delay time.Duration, drop bool)

	mu      sync.RWMutex
	nodes   map[netip.AddrPort]*MemTransport
	next    uint32
	dropped atomic.Uint64
}

// NewMemNetwork returns an empty in-memory network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: make(map[netip.AddrPort]*MemTransport)}
}

// ErrAddrInUse reports a MemNetwork address taken by a live transport.
var ErrAddrInUse = errors.New("discovery: in-memory address in use")

// errUnreachable is what a dial to an address without a transport
// returns, like a refused TCP connection.
var errUnreachable = errors.New("discovery: in-memory address unreachable")

// NewTransport attaches a transport at addr. If addr is zero, the next
// free address of 10.0.0.0/8 at port DefaultGossipPort is used. The
// address becomes free again when the transport shuts down.
func (n *MemNetwork) NewTransport(addr netip.AddrPort) (*MemTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !addr.IsValid() {
		for {
			n.next++
			h := n.next
			if h >= 1<<24 {
				return nil, fmt.Errorf("%w: 10.0.0.0/8 exhausted", ErrAddrInUse)
			}
			if b := byte(h); b == 0 || b == 255 {
				continue
			}
			addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(h >> 16), byte(h >> 8), byte(h)}), DefaultGossipPort)
			if _, taken := n.nodes[addr]; !taken {
				break
			}
		}
	}
	if _, taken := n.nodes[addr]; taken {
		return nil, fmt.Errorf("%w: %v", ErrAddrInUse, addr)
	}
	t := &MemTransport{
		net:      n,
		addr:     addr,
		packetCh: make(chan *memberlist.Packet, memPacketQueue),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
		conns:    make(map[*memConn]struct{}),
	}
	n.nodes[addr] = t
	return t, nil
}

// Dropped returns how many packets were lost so far, to Link or to full
// queues.
func (n *MemNetwork) Dropped() uint64 { return n.dropped.Load() }

func (n *MemNetwork) lookup(addr string) (*MemTransport, netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, ap, fmt.Errorf("discovery: in-memory address %q: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	n.mu.RLock()
	t := n.nodes[ap]
	n.mu.RUnlock()
	return t, ap, nil
}

// MemTransport is one node's attachment to a MemNetwork. It implements
// memberlist.NodeAwareTransport.
type MemTransport struct {
	net      *MemNetwork
	addr     netip.AddrPort
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}

	mu       sync.Mutex
	shutdown bool
	conns    map[*memConn]struct{}
	delayed  memnet.Delays
}

var _ memberlist.NodeAwareTransport = (*MemTransport)(nil)

// Addr returns the transport's address.
func (t *MemTransport) Addr() netip.AddrPort { return t.addr }

// FinalAdvertiseAddr returns the transport's own address whatever is
// asked: nothing else is reachable on a MemNetwork.
func (t *MemTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.IP(t.addr.Addr().AsSlice()), int(t.addr.Port()), nil
}

// WriteTo sends a copy of b to addr. Like UDP it reports no error for an
// address nobody listens on, or for a packet lost on the way.
func (t *MemTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	if t.isShutdown() {
		return now, net.ErrClosed
	}
	dst, to, err := t.net.lookup(addr)
	if err != nil {
		return now, err
	}
	if dst == nil {
		return now, nil
	}
	var delay time.Duration
	if t.net.Link != nil {
		var drop bool
		if delay, drop = t.net.Link(t.addr, to); drop {
			t.net.dropped.Add(1)
			return now, nil
		}
	}
	p := &memberlist.Packet{
		Buf:  append([]byte(nil), b...),
		From: net.UDPAddrFromAddrPort(t.addr),
	}
	if delay <= 0 {
		dst.deliver(p)
		return now, nil
	}
	t.delayed.After(delay, func() { dst.deliver(p) })
	return now, nil
}

// WriteToAddress is WriteTo; the node name is not needed to route.
func (t *MemTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *MemTransport) deliver(p *memberlist.Packet) {
	p.Timestamp = time.Now()
	select {
	case <-t.done:
	case t.packetCh <- p:
	default:
		t.net.dropped.Add(1)
	}
}

// PacketCh returns the channel of received packets.
func (t *MemTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of accepted streams.
func (t *MemTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout connects a stream to the transport at addr, which must
// accept it within timeout.
func (t *MemTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.isShutdown() {
		return nil, net.ErrClosed
	}
	dst, to, err := t.net.lookup(addr)
	if err != nil {
		return nil, err
	}
	if dst == nil {
		return nil, fmt.Errorf("discovery: dial %s: %w", addr, errUnreachable)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if t.net.Link != nil {
		delay, drop := t.net.Link(t.addr, to)
		if drop {
			return nil, fmt.Errorf("discovery: dial %s: %w", addr, errUnreachable)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-deadline.C:
				return nil, fmt.Errorf("discovery: dial %s: timeout", addr)
			case <-t.done:
				return nil, net.ErrClosed
			}
		}
	}
	a, b := net.Pipe()
	local := t.track(a, net.TCPAddrFromAddrPort(t.addr), net.TCPAddrFromAddrPort(to))
	if local == nil {
		_ = b.Close()
		return nil, net.ErrClosed
	}
	remote := dst.track(b, net.TCPAddrFromAddrPort(to), net.TCPAddrFromAddrPort(t.addr))
	if remote == nil {
		_ = local.Close()
		return nil, fmt.Errorf("discovery: dial %s: %w", addr, errUnreachable)
	}
	select {
	case dst.streamCh <- remote:
		return local, nil
	case <-deadline.C:
		err = fmt.Errorf("discovery: dial %s: timeout", addr)
	case <-dst.done:
		err = fmt.Errorf("discovery: dial %s: %w", addr, errUnreachable)
	case <-t.done:
		err = net.ErrClosed
	}
	_ = local.Close()
	_ = remote.Close()
	return nil, err
}

// DialAddressTimeout is DialTimeout; the node name is not needed to route.
func (t *MemTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// track registers one end of a stream so that Shutdown can close it; it
// returns nil when the transport is already shut down.
func (t *MemTransport) track(c net.Conn, local, remote net.Addr) *memConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		_ = c.Close()
		return nil
	}
	mc := &memConn{Conn: c, local: local, remote: remote, owner: t}
	t.conns[mc] = struct{}{}
	return mc
}

// Shutdown detaches the transport: its address becomes free, pending
// delayed packets are discarded and its open streams are closed.
func (t *MemTransport) Shutdown() error {
	t.mu.Lock()
	if t.shutdown {
		t.mu.Unlock()
		return nil
	}
	t.shutdown = true
	close(t.done)
	t.delayed.Stop()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	t.net.mu.Lock()
	if t.net.nodes[t.addr] == t {
		delete(t.net.nodes, t.addr)
	}
	t.net.mu.Unlock()
	return nil
}

func (t *MemTransport) isShutdown() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// memConn is one end of an in-memory stream, with TCP-style addresses.
type memConn struct {
	net.Conn
	local, remote net.Addr
	owner         *MemTransport
	once          sync.Once
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return err
}

// Package memnet is an in-memory datagram network: net.PacketConn values
// on made-up addresses that exist only in this process. quic-go accepts
// any net.PacketConn, so the very same QUIC, TLS and JSON-RPC code of the
// D2D endpoint runs over it without kernel sockets: a thousand agents fit
// in one process on two cores, where a thousand UDP sockets and their
// receive goroutines would not.
//
// Datagrams are copied on send and queued at the receiver; a full queue
// drops, as a full socket buffer does. Per-address impairments add a
// one-way delay and a loss probability to every datagram sent from or to
// that address, which is how the scale harness puts a controller behind a
// slow, lossy path while the devices talk to each other undisturbed.
// Losses are drawn from a random stream seeded by Config.Seed, so a run
// is repeatable as far as goroutine scheduling allows.
package memnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAddrInUse reports an address taken by a live Conn.
var ErrAddrInUse = errors.New("memnet: address in use")

// DefaultQueue is the receive queue of a Conn in datagrams: a QUIC
// flight of a few dozen packets from many peers fits, a flood does not.
const DefaultQueue = 4096

// Impairment degrades every datagram to or from one address.
type Impairment struct {
	// Delay is added to the one-way latency.
	Delay time.Duration
	// Loss is the probability in [0,1] that a datagram is lost.
	Loss float64
}

// Config configures a Network. The zero value works.
type Config struct {
	// Prefix is where addresses come from when Listen is given none. If
	// zero, fd00:d2d::/32 (a unique-local prefix nobody routes).
	Prefix netip.Prefix
	// Port of automatically chosen addresses. If zero, 9514 (the D2D
	// port), so that addresses look like real endpoints.
	Port uint16
	// Queue is each Conn's receive queue in datagrams. If zero,
	// DefaultQueue.
	Queue int
	// Seed seeds the loss draws.
	Seed uint64
}

// Network is a set of Conns that can reach each other.
type Network struct {
	cfg Config

	mu     sync.RWMutex
	conns  map[netip.AddrPort]*Conn
	impair map[netip.Addr]Impairment
	next   uint64

	rngMu sync.Mutex
	rng   *rand.Rand

	sent, dropped atomic.Uint64
}

// New returns an empty network.
func New(cfg Config) *Network {
	if !cfg.Prefix.IsValid() {
		cfg.Prefix = netip.MustParsePrefix("fd00:d2d::/32")
	}
	if cfg.Port == 0 {
		cfg.Port = 9514
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	return &Network{
		cfg:    cfg,
		conns:  map[netip.AddrPort]*Conn{},
		impair: map[netip.Addr]Impairment{},
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x6d656d6e6574)),
	}
}

// Impair sets the impairment of every datagram sent from or to addr; the
// zero Impairment removes it. When both ends are impaired, delays add up
// and each end's loss applies.
func (n *Network) Impair(addr netip.Addr, imp Impairment) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if imp == (Impairment{}) {
		delete(n.impair, addr)
		return
	}
	n.impair[addr] = imp
}

// Stats returns how many datagrams were sent and how many of them were
// lost (to impairments or full queues).
func (n *Network) Stats() (sent, dropped uint64) { return n.sent.Load(), n.dropped.Load() }

// Listen attaches a Conn at addr; the zero addr picks the next free
// address of Config.Prefix at Config.Port. The address is free again
// once the Conn is closed.
func (n *Network) Listen(addr netip.AddrPort) (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !addr.IsValid() {
		for {
			n.next++
			a, ok := nthAddr(n.cfg.Prefix, n.next)
			if !ok {
				return nil, fmt.Errorf("%w: %v exhausted", ErrAddrInUse, n.cfg.Prefix)
			}
			addr = netip.AddrPortFrom(a, n.cfg.Port)
			if _, taken := n.conns[addr]; !taken {
				break
			}
		}
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if _, taken := n.conns[addr]; taken {
		return nil, fmt.Errorf("%w: %v", ErrAddrInUse, addr)
	}
	c := &Conn{
		net:   n,
		addr:  addr,
		udp:   net.UDPAddrFromAddrPort(addr),
		queue: make(chan datagram, n.cfg.Queue),
		done:  make(chan struct{}),
	}
	n.conns[addr] = c
	return c, nil
}

// nthAddr returns the i-th address of p (i ≥ 1), skipping nothing: the
// prefixes used are large and made up.
func nthAddr(p netip.Prefix, i uint64) (netip.Addr, bool) {
	b := p.Masked().Addr().AsSlice()
	hostBits := len(b)*8 - p.Bits()
	if hostBits < 64 && i >= 1<<hostBits-1 {
		return netip.Addr{}, false
	}
	for k := len(b) - 1; k >= 0 && i > 0; k-- {
		sum := uint64(b[k]) + i&0xff
		b[k] = byte(sum)
		i = i>>8 + sum>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a, true
}

// route decides a datagram's fate from the impairments of both ends.
func (n *Network) route(from, to netip.Addr) (delay time.Duration, drop bool) {
	n.mu.RLock()
	a, okA := n.impair[from]
	b, okB := n.impair[to]
	n.mu.RUnlock()
	if !okA && !okB {
		return 0, false
	}
	delay = a.Delay + b.Delay
	if a.Loss > 0 || b.Loss > 0 {
		n.rngMu.Lock()
		drop = n.rng.Float64() < a.Loss || n.rng.Float64() < b.Loss
		n.rngMu.Unlock()
	}
	return delay, drop
}

func (n *Network) lookup(a netip.AddrPort) *Conn {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.conns[a]
}

type datagram struct {
	b    []byte
	from *net.UDPAddr
}

// Conn is one address on a Network. It implements net.PacketConn.
type Conn struct {
	net   *Network
	addr  netip.AddrPort
	udp   *net.UDPAddr
	queue chan datagram
	done  chan struct{}
	read  Deadline

	mu      sync.Mutex
	closed  bool
	delayed Delays
}

var _ net.PacketConn = (*Conn)(nil)

// ReadFrom waits for the next datagram.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	d, err := Receive(&c.read, c.queue, c.done)
	if err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Addr: c.udp, Err: err}
	}
	return copy(p, d.b), d.from, nil
}

// WriteTo sends a copy of p to addr, a *net.UDPAddr. Like UDP it
// reports no error for an address nobody listens on or a datagram lost on
// the way.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.isClosed() {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: c.udp, Err: net.ErrClosed}
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: c.udp, Err: fmt.Errorf("memnet: address %v is not UDP", addr)}
	}
	to := ua.AddrPort()
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	c.net.sent.Add(1)
	delay, drop := c.net.route(c.addr.Addr(), to.Addr())
	if drop {
		c.net.dropped.Add(1)
		return len(p), nil
	}
	d := datagram{b: append([]byte(nil), p...), from: c.udp}
	if delay <= 0 {
		c.net.deliver(to, d)
		return len(p), nil
	}
	c.after(delay, func() { c.net.deliver(to, d) })
	return len(p), nil
}

func (n *Network) deliver(to netip.AddrPort, d datagram) {
	dst := n.lookup(to)
	if dst == nil {
		return
	}
	select {
	case dst.queue <- d:
	default:
		n.dropped.Add(1)
	}
}

// after runs f after delay unless c closes first.
func (c *Conn) after(delay time.Duration, f func()) { c.delayed.After(delay, f) }

// Close detaches the Conn; datagrams still on their way are lost. A
// second call returns a wrapped net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("memnet: close %v: %w", c.addr, net.ErrClosed)
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	c.delayed.Stop()
	c.net.mu.Lock()
	if c.net.conns[c.addr] == c {
		delete(c.net.conns, c.addr)
	}
	c.net.mu.Unlock()
	return nil
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// LocalAddr returns the Conn's address as a *net.UDPAddr, as a UDP
// socket would.
func (c *Conn) LocalAddr() net.Addr { return c.udp }

// AddrPort returns the Conn's address.
func (c *Conn) AddrPort() netip.AddrPort { return c.addr }

// SetDeadline sets the read deadline; writes never block.
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline makes a waiting and every later ReadFrom return a
// timeout error once t has passed; the zero t waits forever.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.read.Set(t)
	return nil
}

// SetWriteDeadline does nothing: writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer accepts and ignores a socket buffer size: the queue is
// counted in datagrams (Config.Queue). It exists because quic-go asks
// for larger buffers and warns on the process's log when it cannot.
func (c *Conn) SetReadBuffer(int) error { return nil }

// SetWriteBuffer accepts and ignores a socket buffer size: writes never
// block.
func (c *Conn) SetWriteBuffer(int) error { return nil }

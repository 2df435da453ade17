package memnet

import (
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Impaired wraps a real socket (loopback UDP) so that every datagram it
// sends or receives is delayed by imp.Delay and lost with probability
// imp.Loss: one party's path impaired while everybody else's stays
// healthy, as Network.Impair does on the in-memory network. Loss draws
// come from a stream seeded by seed. The wrapper owns pc: Close closes it.
func Impaired(pc net.PacketConn, imp Impairment, seed uint64) net.PacketConn {
	c := &impaired{
		PacketConn: pc,
		imp:        imp,
		rng:        rand.New(rand.NewPCG(seed, 0x696d70)),
		in:         make(chan datagram, DefaultQueue),
		done:       make(chan struct{}),
	}
	c.wg.Add(1)
	go c.pump()
	return c
}

type impaired struct {
	net.PacketConn
	imp Impairment

	rngMu sync.Mutex
	rng   *rand.Rand

	in   chan datagram
	done chan struct{}
	read Deadline
	wg   sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	delayed Delays
}

func (c *impaired) lose() bool {
	if c.imp.Loss <= 0 {
		return false
	}
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.Float64() < c.imp.Loss
}

// later runs f after the delay unless the wrapper closes first.
func (c *impaired) later(f func()) {
	if c.imp.Delay <= 0 {
		f()
		return
	}
	c.delayed.After(c.imp.Delay, f)
}

// pump reads the real socket and queues what survives, after the delay.
func (c *impaired) pump() {
	defer c.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.PacketConn.ReadFrom(buf)
		if err != nil {
			return // closed: Close is the only way out
		}
		if c.lose() {
			continue
		}
		d := datagram{b: append([]byte(nil), buf[:n]...)}
		addr := from
		c.later(func() {
			select {
			case c.in <- datagramFrom(d, addr):
			default: // a full queue drops, as a socket buffer does
			}
		})
	}
}

// datagramFrom keeps the sender's address whatever its type.
func datagramFrom(d datagram, from net.Addr) datagram {
	if ua, ok := from.(*net.UDPAddr); ok {
		d.from = ua
	}
	return d
}

func (c *impaired) ReadFrom(p []byte) (int, net.Addr, error) {
	d, err := Receive(&c.read, c.in, c.done)
	if err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Addr: c.LocalAddr(), Err: err}
	}
	return copy(p, d.b), d.from, nil
}

func (c *impaired) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.lose() {
		return len(p), nil
	}
	if c.imp.Delay <= 0 {
		return c.PacketConn.WriteTo(p, addr)
	}
	b := append([]byte(nil), p...)
	c.later(func() { _, _ = c.PacketConn.WriteTo(b, addr) })
	return len(p), nil
}

// SetReadDeadline applies to the wrapper's queue, and wakes a waiting
// ReadFrom (quic-go unblocks its reader this way when it closes); the
// pump keeps reading the socket.
func (c *impaired) SetReadDeadline(t time.Time) error {
	c.read.Set(t)
	return nil
}

func (c *impaired) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadBuffer and SetWriteBuffer pass through when the socket has
// them (quic-go asks for larger buffers).
func (c *impaired) SetReadBuffer(n int) error {
	if s, ok := c.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(n)
	}
	return nil
}

func (c *impaired) SetWriteBuffer(n int) error {
	if s, ok := c.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(n)
	}
	return nil
}

// Close stops the delayed deliveries, closes the socket and waits for the
// pump. A second call returns the socket's own error for a second Close.
func (c *impaired) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.PacketConn.Close()
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	c.delayed.Stop()
	err := c.PacketConn.Close()
	c.wg.Wait()
	return err
}

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
		wake:       make(chan struct{}, 1),
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
	wake chan struct{} // a deadline changed
	wg   sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	delayed  delays
	deadline time.Time
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
	c.delayed.after(c.imp.Delay, f)
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
	for {
		c.mu.Lock()
		dl := c.deadline
		c.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, &net.OpError{Op: "read", Net: "udp", Addr: c.LocalAddr(), Err: timeoutError{}}
			}
			t = time.NewTimer(d)
			timeout = t.C
		}
		select {
		case d := <-c.in:
			stop(t)
			return copy(p, d.b), d.from, nil
		case <-c.done:
			stop(t)
			return 0, nil, &net.OpError{Op: "read", Net: "udp", Addr: c.LocalAddr(), Err: net.ErrClosed}
		case <-timeout:
		case <-c.wake:
			stop(t)
		}
	}
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
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
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
	c.delayed.stop()
	err := c.PacketConn.Close()
	c.wg.Wait()
	return err
}

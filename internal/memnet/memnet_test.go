package memnet_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/d2dmesh/d2d/internal/memnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T, n *memnet.Network) *memnet.Conn {
	t.Helper()
	c, err := n.Listen(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestDeliveryAndAddresses(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b := listen(t, n), listen(t, n)
	if a.AddrPort() == b.AddrPort() {
		t.Fatalf("two conns share %v", a.AddrPort())
	}
	if _, ok := a.LocalAddr().(*net.UDPAddr); !ok {
		t.Fatalf("LocalAddr is %T, want *net.UDPAddr (the endpoint reads its port from it)", a.LocalAddr())
	}
	msg := []byte("hello")
	if _, err := a.WriteTo(msg, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	msg[0] = 'J' // the network must have copied the datagram
	buf := make([]byte, 64)
	k, from, err := b.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:k]); got != "hello" {
		t.Errorf("got %q, want hello", got)
	}
	if from.String() != a.LocalAddr().String() {
		t.Errorf("from %v, want %v", from, a.LocalAddr())
	}
	if _, err := n.Listen(a.AddrPort()); !errors.Is(err, memnet.ErrAddrInUse) {
		t.Errorf("second Listen on %v: %v, want ErrAddrInUse", a.AddrPort(), err)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a := listen(t, n)
	_ = a.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, _, err := a.ReadFrom(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = a.SetReadDeadline(time.Time{})
	done := make(chan error)
	go func() {
		_, _, err := a.ReadFrom(make([]byte, 8))
		done <- err
	}()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked read after Close: %v, want net.ErrClosed", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

func TestImpairment(t *testing.T) {
	n := memnet.New(memnet.Config{Seed: 1})
	a, b := listen(t, n), listen(t, n)
	n.Impair(a.AddrPort().Addr(), memnet.Impairment{Delay: 20 * time.Millisecond, Loss: 0.5})
	const sent = 400
	start := time.Now()
	for range sent {
		_, _ = a.WriteTo([]byte{1}, b.LocalAddr())
	}
	_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := 0
	buf := make([]byte, 8)
	for {
		if _, _, err := b.ReadFrom(buf); err != nil {
			break
		}
		got++
		if got == 1 && time.Since(start) < 20*time.Millisecond {
			// Delay is a lower bound: it is a property of the model,
			// not a claim about this machine's speed.
			t.Errorf("first datagram arrived before the added delay")
		}
		_ = b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	}
	// 400 draws at p=0.5: outside [120,280] has probability far below 1e-9.
	if got < 120 || got > 280 {
		t.Errorf("%d of %d datagrams arrived through 50%% loss", got, sent)
	}
	s, d := n.Stats()
	if s != sent || int(d)+got != sent {
		t.Errorf("stats sent=%d dropped=%d, received %d", s, d, got)
	}
	n.Impair(a.AddrPort().Addr(), memnet.Impairment{})
	_, _ = a.WriteTo([]byte{2}, b.LocalAddr())
	_ = b.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, err := b.ReadFrom(buf); err != nil {
		t.Errorf("after removing the impairment: %v", err)
	}
}

func TestImpairedSocket(t *testing.T) {
	var lc net.ListenConfig
	raw, err := lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	peer, err := lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c := memnet.Impaired(raw, memnet.Impairment{Delay: 10 * time.Millisecond, Loss: 0.5}, 1)
	const sent = 200
	for range sent {
		_, _ = c.WriteTo([]byte{1}, peer.LocalAddr())
	}
	got := 0
	buf := make([]byte, 8)
	_ = peer.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := peer.ReadFrom(buf); err != nil {
			break
		}
		got++
		_ = peer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	}
	// 200 draws at p=0.5: outside [50,150] has probability far below 1e-9.
	if got < 50 || got > 150 {
		t.Errorf("%d of %d datagrams left through 50%% loss", got, sent)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
}

// TestImpairedDeadlineWakesReader: quic-go unblocks its reader by setting
// a past deadline before it closes the socket; a reader that slept
// through it would hang the close.
func TestImpairedDeadlineWakesReader(t *testing.T) {
	var lc net.ListenConfig
	raw, err := lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	c := memnet.Impaired(raw, memnet.Impairment{Delay: time.Millisecond}, 1)
	defer c.Close()
	done := make(chan error)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	_ = c.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("woken read: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a past deadline did not wake the reader")
	}
}

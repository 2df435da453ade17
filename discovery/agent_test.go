package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/discovery"
	"github.com/d2dmesh/d2d/internal/netns"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/gopacket/gopacket/layers"
	"go.uber.org/goleak"
)

// nsLinks is RawLinks inside a network namespace.
type nsLinks struct{ ns *netns.NS }

func (n nsLinks) Interfaces() (out []discovery.LinkInfo, err error) {
	err = n.ns.Do(func() error { out, err = discovery.RawLinks{}.Interfaces(); return err })
	return out, err
}

func (n nsLinks) Open(name string, mode discovery.Mode) (l discovery.Link, err error) {
	err = n.ns.Do(func() error { l, err = discovery.RawLinks{}.Open(name, mode); return err })
	return l, err
}

// line is three nodes n0 - n1 - n2: n0/e01 <-> n1/e10, n1/e12 <-> n2/e21.
type line struct {
	nets [3]discovery.LinkNetwork
	// cut takes the n1-n2 link down.
	cut func(t *testing.T)
}

func memLine(t *testing.T) line {
	m := discovery.NewMemLinkNetwork()
	if err := m.Connect("n0", "e01", "n1", "e10"); err != nil {
		t.Fatal(err)
	}
	if err := m.Connect("n1", "e12", "n2", "e21"); err != nil {
		t.Fatal(err)
	}
	return line{
		nets: [3]discovery.LinkNetwork{m.Node("n0"), m.Node("n1"), m.Node("n2")},
		cut: func(t *testing.T) {
			if err := m.SetUp("n1", "e12", false); err != nil {
				t.Fatal(err)
			}
		},
	}
}

var nsSeq int

func nsLine(t *testing.T) line {
	testenv.RequirePrivileged(t)
	nsSeq++
	var ns [3]*netns.NS
	for i := range ns {
		n, err := netns.New(fmt.Sprintf("d2dC-%d-%d-%d", os.Getpid(), nsSeq, i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		ns[i] = n
	}
	if err := netns.Veth(ns[0], "e01", ns[1], "e10", 0); err != nil {
		t.Fatal(err)
	}
	if err := netns.Veth(ns[1], "e12", ns[2], "e21", 0); err != nil {
		t.Fatal(err)
	}
	return line{
		nets: [3]discovery.LinkNetwork{nsLinks{ns[0]}, nsLinks{ns[1]}, nsLinks{ns[2]}},
		cut: func(t *testing.T) {
			if _, err := ns[1].Run(context.Background(), "ip", "link", "del", "e12"); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func nodeAdv(i int) discovery.Advertisement {
	a := discovery.Advertisement{
		Node:         fmt.Sprintf("n%d", i),
		Capabilities: []string{"show", fmt.Sprintf("cap-n%d", i)},
	}
	a.Thumbprint[0], a.Thumbprint[31] = byte(i+1), 0xee
	return a
}

func tlogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

const (
	testInterval = 200 * time.Millisecond
	testHold     = 4 * testInterval
)

func startAgents(t *testing.T, nets [3]discovery.LinkNetwork, mode discovery.Mode) [3]*discovery.LinkAgent {
	var agents [3]*discovery.LinkAgent
	for i := range agents {
		a, err := discovery.NewLinkAgent(discovery.LinkConfig{
			Mode: mode, Interval: testInterval, Holdtime: testHold,
			Self: nodeAdv(i), Links: nets[i],
		})
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
		done := make(chan error, 1)
		go func() { done <- a.Run(context.Background()) }()
		t.Cleanup(func() {
			a.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	return agents
}

func find(ns []discovery.Neighbor, iface, node string) (discovery.Neighbor, bool) {
	for _, n := range ns {
		if n.Interface == iface && n.Adv.Node == node {
			return n, true
		}
	}
	return discovery.Neighbor{}, false
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLinkAgentLine(t *testing.T) {
	linkLeakCheck(t)
	for _, env := range []struct {
		name string
		mk   func(*testing.T) line
	}{{"mem", memLine}, {"netns", nsLine}} {
		for _, mode := range []discovery.Mode{discovery.ModeLLDP, discovery.ModeISIS} {
			t.Run(env.name+"/"+string(mode), func(t *testing.T) {
				l := env.mk(t)
				agents := startAgents(t, l.nets, mode)
				type adj struct {
					at     int
					iface  string
					peer   int
					port   string
					direct bool
				}
				want := []adj{
					{0, "e01", 1, "e10", true}, {1, "e10", 0, "e01", true},
					{1, "e12", 2, "e21", true}, {2, "e21", 1, "e12", true},
				}
				if mode == discovery.ModeISIS {
					want = append(want, adj{0, "e01", 2, "", false}, adj{2, "e21", 0, "", false})
				}
				for _, w := range want {
					peer := fmt.Sprintf("n%d", w.peer)
					waitUntil(t, 2*testInterval, fmt.Sprintf("n%d lists %s on %s", w.at, peer, w.iface), func() bool {
						n, ok := find(agents[w.at].Neighbors(), w.iface, peer)
						return ok && n.Direct == w.direct
					})
					n, _ := find(agents[w.at].Neighbors(), w.iface, peer)
					wa := nodeAdv(w.peer)
					if !n.D2D || !slices.Equal(n.Adv.Capabilities, wa.Capabilities) || n.Adv.Thumbprint != wa.Thumbprint {
						t.Errorf("n%d: neighbour %s = %+v, want port %q, %v, thumbprint %x", w.at, peer, n, w.port, wa.Capabilities, wa.Thumbprint[:2])
					}
					if mode == discovery.ModeLLDP && n.Port != w.port {
						t.Errorf("port %q, want %q", n.Port, w.port)
					}
				}
				events, cancel := agents[1].Subscribe()
				defer cancel()
				cut := time.Now()
				l.cut(t)
				waitUntil(t, testHold+time.Second, "n1 expires n2", func() bool {
					_, ok := find(agents[1].Neighbors(), "e12", "n2")
					return !ok
				})
				if d := time.Since(cut); d < testHold/2 {
					t.Errorf("n2 expired after %v, before the holdtime %v", d, testHold)
				}
				for {
					ev := <-events
					if ev.Kind == discovery.NeighborExpired && ev.Neighbor.Adv.Node == "n2" {
						break
					}
				}
				if mode == discovery.ModeISIS {
					// n0 learnt n2 through flooding only; without refreshes its
					// entry ages out too (lifetime rounds up to whole seconds).
					waitUntil(t, testHold+2*time.Second, "n0 expires n2", func() bool {
						_, ok := find(agents[0].Neighbors(), "e01", "n2")
						return !ok
					})
				}
			})
		}
	}
}

func TestLinkPair(t *testing.T) {
	linkLeakCheck(t)
	for _, env := range []struct {
		name string
		mk   func(*testing.T) line
	}{{"mem", memLine}, {"netns", nsLine}} {
		t.Run(env.name, func(t *testing.T) {
			l := env.mk(t)
			a, err := l.nets[0].Open("e01", discovery.ModeLLDP)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := l.nets[1].Open("e10", discovery.ModeLLDP)
			if err != nil {
				t.Fatal(err)
			}
			bi, err := l.nets[1].Open("e10", discovery.ModeISIS)
			if err != nil {
				t.Fatal(err)
			}
			defer bi.Close()
			f := testLLDP()
			f.Src = a.Info().HardwareAddr
			frame, err := f.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := a.WriteFrame(frame); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, discovery.MaxFrame)
			b.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := b.ReadFrame(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := buf[:n]; string(got) != string(frame) {
				t.Errorf("read %x, want %x", got, frame)
			}
			// The IS-IS link filters LLDP out: only its deadline fires.
			bi.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := bi.ReadFrame(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("IS-IS link read: err = %v, want deadline exceeded", err)
			}
			// Close unblocks a pending read.
			b.SetReadDeadline(time.Time{})
			errc := make(chan error, 1)
			go func() { _, err := b.ReadFrame(buf); errc <- err }()
			time.Sleep(50 * time.Millisecond)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; !errors.Is(err, net.ErrClosed) {
				t.Errorf("read after close: %v, want net.ErrClosed", err)
			}
			if err := b.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestLinkAgentClose(t *testing.T) {
	linkLeakCheck(t)
	m := discovery.NewMemLinkNetwork()
	m.Connect("a", "x", "b", "y")
	a, err := discovery.NewLinkAgent(discovery.LinkConfig{Links: m.Node("a"), Logger: tlogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := discovery.NewLinkAgent(discovery.LinkConfig{Mode: "cdp"}); err == nil {
		t.Error("mode cdp accepted")
	}
}

// TestNonD2DNeighbor: an LLDP speaker without the D2D TLV is listed
// without D2D capability.
func TestNonD2DNeighbor(t *testing.T) {
	linkLeakCheck(t)
	m := discovery.NewMemLinkNetwork()
	m.Connect("a", "x", "b", "y")
	agents := startAgents(t, [3]discovery.LinkNetwork{m.Node("a"), discovery.NewMemLinkNetwork().Node("none"), discovery.NewMemLinkNetwork().Node("none")}, discovery.ModeLLDP)
	l, err := m.Node("b").Open("y", discovery.ModeLLDP)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mac := l.Info().HardwareAddr
	f := discovery.LLDPFrame{Src: mac, TTL: 120, SystemName: "switch",
		ChassisID: layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeMACAddr, ID: mac},
		PortID:    layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte("y")}}
	b, _ := f.MarshalBinary()
	waitUntil(t, time.Second, "a lists the switch", func() bool {
		l.WriteFrame(b)
		ns := agents[0].Neighbors()
		return len(ns) == 1 && ns[0].SystemName == "switch" && !ns[0].D2D && ns[0].Port == "y"
	})
}

// linkLeakCheck fails t if goroutines started during it outlive its
// cleanups.
func linkLeakCheck(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

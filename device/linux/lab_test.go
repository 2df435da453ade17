package linux_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/device/linux"
	"github.com/d2dmesh/d2d/internal/kernel"
	"github.com/d2dmesh/d2d/internal/netns"
	"github.com/d2dmesh/d2d/internal/testenv"
)

// lab is the headline scenario's path PE-1 — P-2 — PE-3, one namespace
// and one backend per node.
type lab struct {
	path *linux.PathLab
	ns   map[string]*netns.NS
	be   map[string]*linux.Backend
}

var labNodes = []string{"PE-1", "P-2", "PE-3"}

// newLab builds the path in fresh namespaces named d2dF-<random>-<i> and
// tears everything down when tb ends.
func newLab(tb testing.TB) *lab {
	tb.Helper()
	testenv.RequirePrivileged(tb)
	testenv.LookPath(tb, "ip", "iproute2")
	p, err := linux.SRv6TriangleScript(labNodes[0], labNodes[1], labNodes[2])
	if err != nil {
		tb.Fatal(err)
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	prefix := "d2dF-" + hex.EncodeToString(r[:])
	l := &lab{path: p, ns: map[string]*netns.NS{}, be: map[string]*linux.Backend{}}
	for i, n := range labNodes {
		ns, err := netns.New(fmt.Sprintf("%s-%d", prefix, i+1))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ns.Close() })
		l.ns[n] = ns
	}
	for _, k := range p.Links {
		if err := netns.Veth(l.ns[k.A], k.AIf, l.ns[k.B], k.BIf, 0); err != nil {
			tb.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, n := range labNodes {
		for _, line := range p.Commands[n] {
			// seg6local SIDs need CONFIG_IPV6_SEG6_LWTUNNEL; the tests
			// that use them skip through testenv.RequireKernel.
			if f, lacks := kernel.Lacks(strings.Fields(line)); lacks {
				tb.Logf("%s: left out %q: %s", n, line, f.Missing())
				continue
			}
			if err := l.ns[n].Script(ctx, line); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for _, n := range labNodes {
		b, err := linux.New(linux.Config{
			Node: n, Names: p.Names, NetNS: l.ns[n].Name,
			Logger: slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := b.Cleanup(context.Background()); err != nil {
				tb.Error(err)
			}
			b.Close()
		})
		l.be[n] = b
	}
	// Wait for neighbour discovery along the whole path, both families.
	for _, dst := range []string{p.Names["PE-3"], p.Names4["PE-3"]} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := l.be["PE-1"].Ping(ctx, device.PingRequest{Destination: dst, Count: 3, Timeout: 300 * time.Millisecond}, nil)
			if err == nil && res.Received == 3 {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("lab: PE-1 cannot reach %s: %+v %v", dst, res, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return l
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(b []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(b))
	return len(b), nil
}

package netns_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/d2dmesh/d2d/internal/netns"
	"github.com/d2dmesh/d2d/internal/testenv"
)

func TestVethPing(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, err := netns.New("d2dt-a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := netns.New("d2dt-b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := netns.Veth(a, "eth1", b, "eth1", 1500); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Script(ctx, "ip addr add 10.99.0.1/30 dev eth1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Script(ctx, "ip addr add 10.99.0.2/30 dev eth1"); err != nil {
		t.Fatal(err)
	}
	out, err := a.Run(ctx, "ping", "-c1", "-W2", "10.99.0.2")
	if err != nil {
		t.Fatalf("ping across veth: %v", err)
	}
	if !strings.Contains(string(out), "1 received") {
		t.Fatalf("ping output: %s", out)
	}
	// Do must run in the namespace: only there is eth1 visible.
	var names []string
	if err := a.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "eth1") {
		t.Fatalf("interfaces inside Do = %v, want eth1 among them", names)
	}
}

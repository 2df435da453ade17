package linux_test

import (
	"context"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/device/linux"
)

func BenchmarkInterfaces(b *testing.B) {
	l := newLab(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.be["P-2"].Interfaces(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkACLs(b *testing.B) {
	l := newLab(b)
	ctx := context.Background()
	if err := l.be["PE-1"].InstallACLDrop(ctx, "2001", "10", "eth1", 0.03); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.be["PE-1"].ACLs(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSRv6Ping100 is one 100-probe SRv6 ping PE-1 → P-2 → PE-3 with
// 100 µs between probes.
func BenchmarkSRv6Ping100(b *testing.B) {
	l := newLab(b)
	ctx := context.Background()
	req := device.SRv6PingRequest{SIDList: []string{"P-2", "PE-3"}, Count: 100, Interval: 100 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		res, err := l.be["PE-1"].SRv6Ping(ctx, req, nil)
		if err != nil || res.Received != 100 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

func TestPathScript(t *testing.T) {
	for _, bad := range [][]string{{"A"}, {"A", "A"}, {"A", ""}} {
		if _, err := linux.SRv6PathScript(bad...); err == nil {
			t.Errorf("SRv6PathScript(%q) succeeded", bad)
		}
	}
	p, err := linux.SRv6PathScript("a", "b", "c", "d")
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, k := range p.Links {
		links = append(links, k.A+":"+k.AIf+"-"+k.B+":"+k.BIf)
	}
	if got, want := len(links), 3; got != want || links[0] != "a:eth1-b:eth1" || links[1] != "b:eth2-c:eth1" {
		t.Errorf("links = %v", links)
	}
	if p.Names["d"] != "fc00:0:4::1" || len(p.Commands["b"]) == 0 {
		t.Errorf("names %v, commands of b %v", p.Names, p.Commands["b"])
	}
}

package linux_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/device/linux"
	"github.com/d2dmesh/d2d/internal/kernel"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInterfaces(t *testing.T) {
	l := newLab(t)
	ifs, err := l.be["PE-1"].Interfaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]device.Interface{}
	for _, i := range ifs {
		byName[i.Name] = i
	}
	lo, eth := byName["lo"], byName["eth1"]
	type summary struct {
		Type            string
		Enabled, OperUp bool
		HasMAC          bool
	}
	got := map[string]summary{
		"lo":   {lo.Type, lo.Enabled, lo.OperUp, lo.PhysAddress != ""},
		"eth1": {eth.Type, eth.Enabled, eth.OperUp, eth.PhysAddress != ""},
	}
	want := map[string]summary{
		"lo":   {"iana-if-type:softwareLoopback", true, true, false},
		"eth1": {"iana-if-type:ethernetCsmacd", true, true, true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("interfaces (-want +got):\n%s", d)
	}
	if len(ifs) != 2 {
		t.Errorf("PE-1 has %d interfaces, want lo and eth1: %+v", len(ifs), ifs)
	}
	for _, a := range []string{"2001:db8:0:1::1/64", "10.0.1.1/24"} {
		if !slices.Contains(eth.Addresses, a) {
			t.Errorf("eth1 addresses %v lack %s", eth.Addresses, a)
		}
	}
	if !slices.Contains(lo.Addresses, "fc00:0:1::1/128") {
		t.Errorf("lo addresses %v lack fc00:0:1::1/128", lo.Addresses)
	}
	// The lab's warm-up pings crossed eth1 both ways.
	if eth.Stats.OutUnicastPkts == 0 || eth.Stats.InUnicastPkts == 0 || eth.Stats.InOctets == 0 || eth.Stats.OutOctets == 0 {
		t.Errorf("eth1 counters still zero after traffic: %+v", eth.Stats)
	}
	if eth.Stats.DiscontinuityTime.IsZero() || eth.SpeedBPS == 0 {
		t.Errorf("eth1: discontinuity %v, speed %d; want both set (veth reports 10 Gb/s)", eth.Stats.DiscontinuityTime, eth.SpeedBPS)
	}
	// Counters grow with traffic.
	if _, err := l.be["PE-1"].Ping(context.Background(), device.PingRequest{Destination: "PE-3", Count: 10, Interval: time.Millisecond}, nil); err != nil {
		t.Fatal(err)
	}
	ifs2, err := l.be["PE-1"].Interfaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs2 {
		if i.Name == "eth1" && i.Stats.OutUnicastPkts < eth.Stats.OutUnicastPkts+10 {
			t.Errorf("eth1 out packets %d after 10 pings, want ≥ %d", i.Stats.OutUnicastPkts, eth.Stats.OutUnicastPkts+10)
		}
	}
}

func TestPing(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	tests := []struct {
		name, dst, src string
		wantRecv       int
		wantErrText    string
	}{
		{name: "IPv6 by name", dst: "PE-3", wantRecv: 5},
		{name: "IPv6 by address from interface", dst: "fc00:0:3::1", src: "eth1", wantRecv: 5},
		{name: "IPv4", dst: l.path.Names4["PE-3"], wantRecv: 5},
		{name: "missing address answers unreachable", dst: "fc00:0:3::99", wantRecv: 0, wantErrText: "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			res, err := l.be["PE-1"].Ping(ctx, device.PingRequest{Destination: tt.dst, Source: tt.src, Timeout: 500 * time.Millisecond},
				func(done, total float64, _ string) {
					calls++
					if total != 5 || done != float64(calls) {
						t.Errorf("progress(%v, %v) at call %d", done, total, calls)
					}
				})
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != 5 || res.Received != tt.wantRecv || calls != 5 {
				t.Fatalf("result %+v after %d progress calls, want 5 sent, %d received", res, calls, tt.wantRecv)
			}
			if !strings.Contains(res.Error, tt.wantErrText) {
				t.Errorf("error text %q, want it to contain %q", res.Error, tt.wantErrText)
			}
			if tt.wantRecv > 0 && !(res.RTTMinMS > 0 && res.RTTMinMS <= res.RTTAvgMS && res.RTTAvgMS <= res.RTTMaxMS) {
				t.Errorf("RTT min/avg/max %v/%v/%v not ordered", res.RTTMinMS, res.RTTAvgMS, res.RTTMaxMS)
			}
		})
	}
}

func TestTraceroute(t *testing.T) {
	l := newLab(t)
	for _, tt := range []struct {
		name, dst, hop1 string
	}{
		{"IPv6", "PE-3", "2001:db8:0:1::2"},
		{"IPv4", l.path.Names4["PE-3"], "10.0.1.2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := l.be["PE-1"].Traceroute(context.Background(), device.TracerouteRequest{Destination: tt.dst, MaxHops: 5, Timeout: time.Second}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range res.Hops {
				got = append(got, h.Address+"/"+h.Node)
			}
			dst := tt.dst
			if dst == "PE-3" {
				dst = l.path.Names["PE-3"]
			}
			node := "PE-3"
			if tt.name == "IPv4" {
				node = "" // Names holds IPv6 addresses only
			}
			want := []string{tt.hop1 + "/", dst + "/" + node}
			if d := cmp.Diff(want, got); d != "" || !res.Reached {
				t.Errorf("hops (-want +got):\n%s reached=%v", d, res.Reached)
			}
		})
	}
}

// TestSRv6Scenario is the headline scenario on the real kernel: PE-1's
// egress ACL 2001 drops a few percent towards P-2.
func TestSRv6Scenario(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	pe1, p2 := l.be["PE-1"], l.be["P-2"]
	before := kernelState(t, l, "PE-1")

	ping := func(b *linux.Backend, sids []string, tail string, n int) device.ProbeResult {
		t.Helper()
		res, err := b.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: sids, Tail: tail, Count: n, Interval: time.Millisecond, Timeout: 500 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != n {
			t.Fatalf("sent %d of %d: %+v", res.Sent, n, res)
		}
		return res
	}
	if res := ping(pe1, []string{"P-2", "PE-3"}, "", 200); res.Received != 200 {
		t.Fatalf("before the fault: %+v, want no loss", res)
	}
	if d := cmp.Diff([]string{"fc00:0:2::1", "fc00:0:3::1"}, ping(pe1, []string{"P-2", "PE-3"}, "", 1).Path); d != "" {
		t.Errorf("path (-want +got):\n%s", d)
	}
	// An explicit tail that is not the last segment: PE-3 decapsulates
	// at its loopback SID and answers for its link address.
	tail := l.path.Links[1].BAddr
	if res := ping(pe1, []string{"P-2", "PE-3"}, tail, 50); res.Received != 50 || res.Path[len(res.Path)-1] != tail {
		t.Fatalf("via loopback SIDs to tail %s: %+v, want no loss", tail, res)
	}
	t.Run("seg6local SIDs", func(t *testing.T) {
		// End on P-2 and End.DT6 on PE-3, with an explicit tail.
		testenv.RequireKernel(t, kernel.Seg6Local)
		sids := []string{l.path.EndSIDs["P-2"], l.path.DecapSIDs["PE-3"]}
		res, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: sids, Tail: "PE-3", Count: 50, Interval: time.Millisecond, Timeout: 500 * time.Millisecond}, nil)
		if err != nil || res.Received != 50 {
			t.Fatalf("via End and End.DT6 SIDs: %+v, %v; want no loss", res, err)
		}
	})

	if err := pe1.InstallACLDrop(ctx, "2001", "10", "eth1", 0.05); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	lossy := ping(pe1, []string{"P-2", "PE-3"}, "", n)
	// 5 % of 1000: σ ≈ 0.7 %, so 2 %…9 % fails only on a broken ACL.
	if lossy.LossPercent < 2 || lossy.LossPercent > 9 {
		t.Errorf("PE-1 via P-2 to PE-3 with the ACL: loss %.1f %%, want about 5 %%", lossy.LossPercent)
	}
	if res := ping(p2, []string{"PE-3"}, "", 300); res.Received != 300 {
		t.Errorf("P-2 to PE-3: %+v, want no loss", res)
	}
	acls, err := pe1.ACLs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(acls) != 1 || len(acls[0].Rules) != 1 {
		t.Fatalf("ACLs = %+v, want ACL 2001 with one rule", acls)
	}
	r := acls[0].Rules[0]
	got := device.ACL{Name: acls[0].Name, Interface: acls[0].Interface, Direction: acls[0].Direction,
		Rules: []device.ACLRule{{ID: r.ID, Action: r.Action, Match: r.Match, Enabled: r.Enabled}}}
	want := device.ACL{Name: "2001", Interface: "eth1", Direction: "egress",
		Rules: []device.ACLRule{{ID: "10", Action: "deny", Match: `oifname "eth1" numgen random mod 10000 < 500`, Enabled: true}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ACL (-want +got):\n%s", d)
	}
	if lost := uint64(lossy.Sent - lossy.Received); r.MatchedPackets < lost || r.MatchedBytes == 0 {
		t.Errorf("ACL counters %d packets / %d bytes, want ≥ the %d probes lost", r.MatchedPackets, r.MatchedBytes, lost)
	}

	// Mitigation: disable, loss gone; the counter keeps counting.
	if err := pe1.SetACLRule(ctx, "2001", "10", false); err != nil {
		t.Fatal(err)
	}
	if err := pe1.SetACLRule(ctx, "2001", "10", false); err != nil {
		t.Fatalf("disabling twice: %v", err)
	}
	if res := ping(pe1, []string{"P-2", "PE-3"}, "", 500); res.Received != 500 {
		t.Errorf("with rule 10 disabled: %+v, want no loss", res)
	}
	acls, err = pe1.ACLs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r2 := acls[0].Rules[0]; r2.Enabled || r2.MatchedPackets <= r.MatchedPackets {
		t.Errorf("disabled rule: %+v, want enabled=false and counter above %d", r2, r.MatchedPackets)
	}
	// Rollback: re-enable, loss back.
	if err := pe1.SetACLRule(ctx, "2001", "10", true); err != nil {
		t.Fatal(err)
	}
	if res := ping(pe1, []string{"P-2", "PE-3"}, "", n); res.LossPercent < 2 {
		t.Errorf("re-enabled: loss %.1f %%, want about 5 %%", res.LossPercent)
	}

	// A SID that PE-3 does not instantiate is answered, and said so.
	res := ping(pe1, []string{"P-2", "fc00:0:3::100"}, "PE-3", 3)
	if res.Received != 0 || !strings.Contains(res.Error, "unreachable") {
		t.Errorf("missing SID: %+v, want no reply and an unreachable error", res)
	}

	// Probing left nothing behind: the ACL table is the only change.
	if err := pe1.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, kernelState(t, l, "PE-1")); d != "" {
		t.Errorf("kernel state changed (-before +after):\n%s", d)
	}
}

func TestConcurrentProbes(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]device.ProbeResult, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			if i%2 == 0 {
				results[i], errs[i] = l.be["PE-1"].SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"P-2", "PE-3"}, Count: 100, Interval: time.Millisecond}, nil)
			} else {
				results[i], errs[i] = l.be["PE-1"].Ping(ctx, device.PingRequest{Destination: "PE-3", Count: 100, Interval: time.Millisecond}, nil)
			}
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || results[i].Sent != 100 || results[i].Received != 100 {
			t.Errorf("run %d: %+v %v, want 100 of 100 (each run sees only its own replies)", i, results[i], errs[i])
		}
	}
}

func TestCancel(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := l.be["PE-1"].SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"P-2", "PE-3"}, Count: 1000, Interval: 10 * time.Millisecond}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if res.Sent == 0 || res.Sent >= 1000 || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled run sent %d probes in %v", res.Sent, time.Since(start))
	}
}

func TestBadInput(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	pe1 := l.be["PE-1"]
	before := kernelState(t, l, "PE-1")
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"SRv6 ping unknown node", func() error {
			_, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"P-2", "PE-9"}}, nil)
			return err
		}, device.ErrUnknownSID},
		{"SRv6 ping IPv4 SID", func() error {
			_, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"10.0.1.2"}}, nil)
			return err
		}, device.ErrUnknownSID},
		{"SRv6 ping empty list", func() error {
			_, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{}, nil)
			return err
		}, device.ErrUnknownSID},
		{"SRv6 ping unknown tail", func() error {
			_, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"P-2"}, Tail: "nowhere"}, nil)
			return err
		}, device.ErrUnknownSID},
		{"SRv6 ping from another head", func() error {
			_, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{Head: "P-2", SIDList: []string{"PE-3"}}, nil)
			return err
		}, device.ErrUnknownPeer},
		{"ping unknown node", func() error {
			_, err := pe1.Ping(ctx, device.PingRequest{Destination: "PE-9"}, nil)
			return err
		}, device.ErrUnknownSID},
		{"ping from unknown interface", func() error {
			_, err := pe1.Ping(ctx, device.PingRequest{Destination: "PE-3", Source: "eth9"}, nil)
			return err
		}, device.ErrUnknownInterface},
		{"traceroute unknown node", func() error {
			_, err := pe1.Traceroute(ctx, device.TracerouteRequest{Destination: "PE-9"}, nil)
			return err
		}, device.ErrUnknownSID},
		{"SRv6 ping through a first segment with no route", func() error {
			res, err := pe1.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"fc00:0:99::1", "PE-3"}, Count: 3}, nil)
			if res.Sent != 0 || res.LossPercent != 0 {
				t.Errorf("unroutable first segment: %+v, want nothing sent and no loss figure", res)
			}
			return err
		}, device.ErrNoProbeSent},
		{"ACL drop on unknown interface", func() error { return pe1.InstallACLDrop(ctx, "2001", "10", "eth9", 0.03) }, device.ErrUnknownInterface},
		{"unknown ACL rule", func() error { return pe1.SetACLRule(ctx, "2001", "10", false) }, device.ErrUnknownACL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// Through the registry, a probe that sent nothing is a tool error
	// with its reason: a signed result an LLM or a peer reads as such,
	// never as "0/0 received, 0.0% loss".
	reg := device.NewRegistry(pe1, device.RegistryOptions{})
	t.Cleanup(func() { reg.Close() })
	res, err := reg.CallTool(ctx, device.ToolRequest{Name: device.ToolSRv6Ping, Arguments: []byte(`{"sidList":["fc00:0:99::1","PE-3"],"count":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || len(res.StructuredContent) != 0 || len(res.Content) != 1 ||
		!strings.Contains(res.Content[0].Text, "no probe sent") || !strings.Contains(res.Content[0].Text, "fc00:0:99::1") {
		t.Errorf("srv6-ping through an unroutable first segment = %+v, want an error result naming the segment", res)
	}
	if d := cmp.Diff(before, kernelState(t, l, "PE-1")); d != "" {
		t.Errorf("bad input changed the kernel (-before +after):\n%s", d)
	}
	// Unknown rule of an existing ACL.
	if err := pe1.InstallACLDrop(ctx, "2001", "10", "eth1", 0.03); err != nil {
		t.Fatal(err)
	}
	if err := pe1.SetACLRule(ctx, "2001", "20", false); !errors.Is(err, device.ErrUnknownACL) {
		t.Errorf("unknown rule 20: err = %v, want ErrUnknownACL", err)
	}
	if err := pe1.InstallACLDrop(ctx, "2001", "10", "eth1", 1.5); err == nil {
		t.Error("rate 1.5 accepted")
	}
}

func TestEmptyRoutingDaemonLists(t *testing.T) {
	l := newLab(t)
	b, err := linux.New(linux.Config{Node: "x", NetNS: l.ns["PE-1"].Name, Vtysh: "/nonexistent/vtysh"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bgp, err := b.BGPNeighbors(context.Background())
	if err != nil || bgp == nil || len(bgp) != 0 {
		t.Errorf("BGPNeighbors = %v, %v; want an empty list without FRR", bgp, err)
	}
	bfd, err := b.BFDSessions(context.Background())
	if err != nil || bfd == nil || len(bfd) != 0 {
		t.Errorf("BFDSessions = %v, %v; want an empty list without FRR", bfd, err)
	}
	// FRR installed but none of its daemons running for this vtysh: no
	// sessions, not an error.
	vtysh := testenv.LookPath(t, "vtysh", "frr")
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "vtysh")
	script := "#!/bin/sh\nexec " + vtysh + " --vty_socket " + dir + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b2, err := linux.New(linux.Config{Node: "x", NetNS: l.ns["PE-1"].Name, Vtysh: wrapper})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	bgp, err = b2.BGPNeighbors(context.Background())
	if err != nil || bgp == nil || len(bgp) != 0 {
		t.Errorf("BGPNeighbors = %v, %v; want an empty list without FRR daemons", bgp, err)
	}
	bfd, err = b2.BFDSessions(context.Background())
	if err != nil || bfd == nil || len(bfd) != 0 {
		t.Errorf("BFDSessions = %v, %v; want an empty list without FRR daemons", bfd, err)
	}
}

func TestNewAndClose(t *testing.T) {
	l := newLab(t)
	if _, err := linux.New(linux.Config{NetNS: "d2dF-does-not-exist"}); err == nil {
		t.Error("New with a missing namespace succeeded")
	}
	if _, err := linux.New(linux.Config{Names: map[string]string{"A": "not-an-address"}}); err == nil {
		t.Error("New with a bad Names entry succeeded")
	}
	b, err := linux.New(linux.Config{NetNS: l.ns["P-2"].Name})
	if err != nil {
		t.Fatal(err)
	}
	if b.Node() == "" {
		t.Error("Node() empty: want the host name by default")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := b.Interfaces(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Interfaces after Close = %v, want net.ErrClosed", err)
	}
}

// kernelState lists what a probe or a bad call could leave behind in a
// namespace: routes of every table, policy rules and the nftables ruleset.
func kernelState(t *testing.T, l *lab, node string) map[string]string {
	t.Helper()
	ctx := context.Background()
	st := map[string]string{}
	for name, args := range map[string][]string{
		"routes6": {"ip", "-6", "route", "show", "table", "all"},
		"routes4": {"ip", "-4", "route", "show", "table", "all"},
		"rules6":  {"ip", "-6", "rule", "show"},
		"nft":     {"nft", "list", "ruleset"},
	} {
		if _, err := exec.LookPath(args[0]); err != nil {
			continue
		}
		out, err := l.ns[node].Run(ctx, args[0], args[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		st[name] = string(out)
	}
	return st
}

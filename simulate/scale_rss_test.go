package simulate_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/netns"
)

// BenchmarkAgentIdleRSS measures the resident memory of real `d2d agent`
// processes idling in a 3-node lab: three network namespaces (d2dE-r1 …
// d2dE-r3) joined in a triangle by veth links, one agent in each with the
// Linux backend, LLDP discovery and encrypted membership on the veths.
// After the agents have discovered each other and idled for 10 s, it
// reads VmRSS from /proc/PID/status. It needs root (namespaces); without
// root it is skipped, and with D2D_REQUIRE_PRIVILEGED=1 that is a failure.
// MB/agent is the largest of the three, MB/agent-mean their mean.
func BenchmarkAgentIdleRSS(b *testing.B) {
	if os.Geteuid() != 0 {
		if os.Getenv("D2D_REQUIRE_PRIVILEGED") == "1" {
			b.Fatal("BenchmarkAgentIdleRSS needs root (network namespaces)")
		}
		b.Skip("needs root: network namespaces")
	}
	for range b.N {
		maxMB, meanMB := idleRSS(b)
		b.ReportMetric(maxMB, "MB/agent")
		b.ReportMetric(meanMB, "MB/agent-mean")
	}
}

func idleRSS(b *testing.B) (maxMB, meanMB float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := b.TempDir()
	bin := filepath.Join(dir, "d2d")
	run := func(name string, args ...string) {
		b.Helper()
		if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "build", "-o", bin, "github.com/d2dmesh/d2d/cmd/d2d")
	pki := filepath.Join(dir, "pki")
	run(bin, "pki", "init", "--dir", pki)

	nodes := []string{"r1", "r2", "r3"}
	ns := map[string]*netns.NS{}
	for _, n := range nodes {
		name := "d2dE-" + n
		_ = exec.Command("ip", "netns", "del", name).Run() // a crashed earlier run
		x, err := netns.New(name)
		if err != nil {
			b.Fatal(err)
		}
		ns[n] = x
		b.Cleanup(func() { _ = x.Close() })
		run(bin, "pki", "issue", "--dir", pki, "--name", n, "--out", filepath.Join(dir, n))
	}
	// Triangle: r1.eth1–r2.eth1, r2.eth2–r3.eth1, r3.eth2–r1.eth2, with
	// 2001:db8:<link>::<node>/64 addresses.
	links := []struct {
		a, aIf, b, bIf string
		net            int
	}{{"r1", "eth1", "r2", "eth1", 12}, {"r2", "eth2", "r3", "eth1", 23}, {"r3", "eth2", "r1", "eth2", 13}}
	for _, l := range links {
		if err := netns.Veth(ns[l.a], l.aIf, ns[l.b], l.bIf, 0); err != nil {
			b.Fatal(err)
		}
		for _, e := range []struct{ n, ifn string }{{l.a, l.aIf}, {l.b, l.bIf}} {
			addr := fmt.Sprintf("2001:db8:%d::%s/64", l.net, strings.TrimPrefix(e.n, "r"))
			if _, err := ns[e.n].Run(ctx, "ip", "-6", "addr", "add", addr, "dev", e.ifn, "nodad"); err != nil {
				b.Fatal(err)
			}
		}
	}
	key := strings.Repeat("5a", 32)
	var pids []int
	for _, n := range nodes {
		state := filepath.Join(dir, n)
		cfg := fmt.Sprintf(`node: %s
listen: "[::]:9514"
state_dir: %s
pki:
  ca: %s/ca.crt
  cert: %s/%s.crt
  key: %s/%s.key
discovery:
  mode: lldp
  interfaces: [eth1, eth2]
  interval: 1s
  gossip: "[::]:7946"
  domain_key: %s
backend:
  kind: linux
`, n, state, pki, state, n, state, n, key)
		file := filepath.Join(state, "node.yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		log, err := os.Create(filepath.Join(state, "agent.log"))
		if err != nil {
			b.Fatal(err)
		}
		// ip netns exec execs the agent: the child's pid is the agent's.
		cmd := exec.Command("ip", "netns", "exec", "d2dE-"+n, bin, "agent", "--config", file, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			_ = log.Close()
		})
		pids = append(pids, cmd.Process.Pid)
	}
	// Start-up and discovery take a few seconds (LLDP every 1s here);
	// then the agents idle for 10 s before their memory is read.
	time.Sleep(5 * time.Second)
	time.Sleep(10 * time.Second)
	// The figure is of agents that found each other: r1's shell must
	// list r2 and r3 as domain members.
	out, err := exec.CommandContext(ctx, bin, "chat", "--socket", filepath.Join(dir, "r1", "admin.sock"), "-c", "show domain").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "r2") || !strings.Contains(string(out), "r3") {
		b.Fatalf("r1 does not see r2 and r3 after 15 s (err %v):\n%s", err, out)
	}
	var sum float64
	for i, pid := range pids {
		kb, err := vmRSS(pid)
		if err != nil {
			b.Fatalf("agent %s: %v (log in %s)", nodes[i], err, filepath.Join(dir, nodes[i], "agent.log"))
		}
		mb := float64(kb) / 1024
		b.Logf("agent %s (pid %d): VmRSS %.1f MB", nodes[i], pid, mb)
		maxMB = max(maxMB, mb)
		sum += mb
	}
	return maxMB, sum / float64(len(pids))
}

// vmRSS reads the resident set size in kB from /proc/PID/status.
func vmRSS(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status (process gone?)", pid)
}

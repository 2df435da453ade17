package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
	"github.com/d2dmesh/d2d/simulate"
)

// mesh is an in-process domain of real agents on loopback QUIC over a
// simulated network, like simulate.StartDomain, with what the controller
// tests need besides: Config.Controller set, a node stopped and started
// again with its state, and a member address seen wrongly by one node.
type mesh struct {
	t     testing.TB
	dir   string
	ca    *signing.CA
	trust *signing.Trust
	net   *simulate.Network
	// controller is the agents' Config.Controller.
	controller string
	// pushRetry is the agents' Options.PushRetry.
	pushRetry time.Duration

	mu     sync.Mutex
	agents map[string]*node.Agent
	addrs  map[string]netip.AddrPort
	// wrong[viewer][peer] replaces peer's address in viewer's domain.
	wrong map[string]map[string]netip.AddrPort
	// pushes[id] are the outcomes of the agents' background pushes of
	// report id, in order; pushed is signalled after each.
	pushes map[string][]error
	pushed chan struct{}
}

const headline = "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"

func newMesh(t testing.TB, controllerSpec string) *mesh {
	t.Helper()
	return newMeshWith(t, controllerSpec, 0)
}

// newMeshWith is newMesh with the agents' first push retry after
// pushRetry (0: the agent's default).
func newMeshWith(t testing.TB, controllerSpec string, pushRetry time.Duration) *mesh {
	t.Helper()
	netw, err := simulate.NewNetwork(simulate.Triangle(), 7)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := signing.NewCA("test-ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{t: t, dir: t.TempDir(), ca: ca, trust: signing.NewTrust(ca.Cert), net: netw, controller: controllerSpec, pushRetry: pushRetry,
		agents: map[string]*node.Agent{}, addrs: map[string]netip.AddrPort{}, wrong: map[string]map[string]netip.AddrPort{},
		pushes: map[string][]error{}, pushed: make(chan struct{}, 1)}
	if err := ca.Save(filepath.Join(m.dir, "pki")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.mu.Lock()
		agents := m.agents
		m.agents = nil
		m.mu.Unlock()
		for _, a := range agents {
			a.Close()
		}
	})
	for _, n := range netw.Nodes() {
		m.start(n)
	}
	return m
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// start starts (or restarts, with its state directory) one agent.
func (m *mesh) start(name string) *node.Agent {
	m.t.Helper()
	id, err := m.ca.Issue(name, signing.IssueOptions{})
	if err != nil {
		m.t.Fatal(err)
	}
	b, err := m.net.Device(name)
	if err != nil {
		m.t.Fatal(err)
	}
	cfg := node.Config{
		Node: name, Listen: "127.0.0.1:0", StateDir: filepath.Join(m.dir, name), AdminSocket: "-",
		CallTimeout: 2 * time.Second, ProbeCount: 50, Controller: m.controller,
		Discovery: node.DiscoveryConfig{Mode: "off"},
	}
	a, err := node.New(context.Background(), cfg, node.Options{Backend: b, Identity: id, Trust: m.trust,
		Members: m.members(name), Logger: testLogger(m.t), OnPush: m.onPush, PushRetry: m.pushRetry})
	if err != nil {
		m.t.Fatalf("starting %s: %v", name, err)
	}
	m.mu.Lock()
	m.agents[name] = a
	m.addrs[name] = a.Addr()
	m.mu.Unlock()
	return a
}

func (m *mesh) onPush(id string, err error) {
	m.mu.Lock()
	m.pushes[id] = append(m.pushes[id], err)
	m.mu.Unlock()
	select {
	case m.pushed <- struct{}{}:
	default:
	}
}

// waitPush waits for the n-th background push of report id (from 1) and
// returns its outcome.
func (m *mesh) waitPush(id string, n int) error {
	m.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		m.mu.Lock()
		outs := m.pushes[id]
		m.mu.Unlock()
		if len(outs) >= n {
			return outs[n-1]
		}
		select {
		case <-m.pushed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			m.t.Fatalf("push %d of report %s did not end within 30s", n, id)
		}
	}
}

// waitPushed waits, from the n-th background push of report id on,
// until one succeeds; it fails the test after eight attempts.
func (m *mesh) waitPushed(id string, n int) {
	m.t.Helper()
	for ; ; n++ {
		err := m.waitPush(id, n)
		if err == nil {
			return
		}
		if n == 8 {
			m.t.Fatalf("report %s: still failing after %d pushes: %v", id, n, err)
		}
	}
}

// stop closes one agent, as a device going offline.
func (m *mesh) stop(name string) {
	m.t.Helper()
	m.mu.Lock()
	a := m.agents[name]
	delete(m.agents, name)
	m.mu.Unlock()
	if err := a.Close(); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mesh) agent(name string) *node.Agent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.agents[name]
}

// members is self's view of the domain.
func (m *mesh) members(self string) func() []collab.Member {
	return func() []collab.Member {
		m.mu.Lock()
		defer m.mu.Unlock()
		var out []collab.Member
		for _, n := range m.net.Nodes() {
			a, ok := m.agents[n]
			if !ok || n == self {
				continue
			}
			addr := a.Addr()
			if w, ok := m.wrong[self][n]; ok {
				addr = w
			}
			out = append(out, collab.Member{Name: n, Peer: collab.Peer{Name: n, Addr: addr, Thumbprint: a.Identity().Thumbprint()},
				Capabilities: a.Registry().Offered(), Addresses: []string{addr.Addr().String()}})
		}
		return out
	}
}

// ctlMembers is the controller's list of nodes: name and address only,
// as `--nodes NAME@HOST:PORT` gives them.
func (m *mesh) ctlMembers() []collab.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n := range m.addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []collab.Member
	for _, n := range names {
		out = append(out, collab.Member{Name: n, Peer: collab.Peer{Name: n, Addr: m.addrs[n]}})
	}
	return out
}

// controllerIdentity issues the controller's certificate (role controller).
func (m *mesh) controllerIdentity() *signing.Identity {
	m.t.Helper()
	id, err := m.ca.Issue("ctl", signing.IssueOptions{Role: signing.RoleController})
	if err != nil {
		m.t.Fatal(err)
	}
	return id
}

func (m *mesh) newController(dir string, serve bool, listen string) *controller.Controller {
	m.t.Helper()
	c, err := controller.New(context.Background(), controller.Config{Identity: m.controllerIdentity(), Trust: m.trust, Dir: dir,
		Members: m.ctlMembers(), Serve: serve, Listen: listen, CallTimeout: 1500 * time.Millisecond, Logger: testLogger(m.t)})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { c.Close() })
	return c
}

// run types an intent on a node.
func (m *mesh) run(from, intent string) *collab.RunResult {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := m.agent(from).Workflow().Run(ctx, intent, nil)
	if err != nil {
		m.t.Fatalf("%s> %s: %v", from, intent, err)
	}
	return res
}

func (m *mesh) inject(fault string) {
	m.t.Helper()
	f, err := simulate.ParseFault(fault)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.net.Inject(f); err != nil {
		m.t.Fatal(err)
	}
}

// synthetic stores n small signed reports on a node, as if it had run n
// intents: the pull does not care what is inside, only that it verifies.
func (m *mesh) synthetic(name string, n int) []string {
	m.t.Helper()
	a := m.agent(name)
	var ids []string
	for i := range n {
		r, err := report.Assemble(report.Assembly{Creator: name, Intent: fmt.Sprintf("synthetic %d", i),
			Hypothesis: report.Hypothesis{Summary: "no fault found", Rule: "no-fault-found", Confidence: 0.5}})
		if err != nil {
			m.t.Fatal(err)
		}
		if err := r.Sign(a.Identity()); err != nil {
			m.t.Fatal(err)
		}
		if err := a.Store().Put(r); err != nil {
			m.t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// blackHole is a UDP socket that never answers: a peer unreachable from
// one node (its packets go nowhere), while reachable from others.
func blackHole(t testing.TB) netip.AddrPort {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

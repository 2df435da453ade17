package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// ctlSocket opens the controller's UDP socket before the agents start, so
// that their Config.Controller can name it.
func ctlSocket(t *testing.T) (net.PacketConn, string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc, "ctl@" + pc.LocalAddr().String()
}

func (m *mesh) serveController(dir string, pc net.PacketConn, listen string) *controller.Controller {
	m.t.Helper()
	c, err := controller.New(context.Background(), controller.Config{Identity: m.controllerIdentity(), Trust: m.trust, Dir: dir,
		Members: m.ctlMembers(), Serve: true, PacketConn: pc, Listen: listen, CallTimeout: 1500 * time.Millisecond, Logger: testLogger(m.t)})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { c.Close() })
	return c
}

// TestPush runs intents on agents whose Config.Controller names a
// controller that is up, then down, then up again: pushed reports are
// stored and marked pulled on their node at once, a report made while the
// controller is down stays on its node and arrives with the next pull,
// and a report updated after the operator's consent is pushed again as a
// second version that becomes current.
func TestPush(t *testing.T) {
	pc, spec := ctlSocket(t)
	addr := pc.LocalAddr().String()
	m := newMesh(t, spec)
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	dir := t.TempDir()
	c := m.serveController(dir, pc, "")

	// Up: the answer comes first, then the report is pushed and marked.
	up := m.run("PE-1", headline)
	if !up.PushQueued || up.Pushed || up.PushErr != nil {
		t.Fatalf("push with the controller up: queued %v, pushed %v, err %v; want queued", up.PushQueued, up.Pushed, up.PushErr)
	}
	if err := m.waitPush(up.Report.ID, 1); err != nil {
		t.Fatalf("push with the controller up: %v", err)
	}
	checkStore(t, m, c.Store(), []string{up.Report.ID})
	if e := entry(t, m, "PE-1", up.Report.ID); !e.Pulled || e.PulledBy != "ctl" {
		t.Errorf("pushed report on PE-1: %+v, want pulled by ctl", e)
	}
	rcs, err := c.Store().Receipts(up.Report.ID, mustHash(t, c, up.Report.ID))
	if err != nil || len(rcs) != 1 || rcs[0].Via != "push" || rcs[0].From != "PE-1" {
		t.Errorf("receipts = %+v, %v", rcs, err)
	}

	// Down: kept on the node, unpulled.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	down := m.run("P-2", headline)
	if !down.PushQueued || !down.Stored {
		t.Fatalf("push with the controller down: queued %v, stored %v", down.PushQueued, down.Stored)
	}
	// The operator has the answer while the push still waits for the
	// controller (its handshake takes the agents' 2 s call timeout).
	m.mu.Lock()
	early := len(m.pushes[down.Report.ID])
	m.mu.Unlock()
	if early != 0 {
		t.Error("the push had ended before the answer was returned")
	}
	if err := m.waitPush(down.Report.ID, 1); err == nil {
		t.Fatal("push with the controller down succeeded")
	}
	if e := entry(t, m, "P-2", down.Report.ID); e.Pulled {
		t.Errorf("report made while the controller was down is marked pulled: %+v", e)
	}

	// Up again on the same address: the next pull fetches it.
	c = m.serveController(dir, nil, addr)
	res := pull(t, c)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if n := nodeResult(t, res, "P-2"); n.Outcomes[controller.OutcomeNew] != 1 {
		t.Errorf("P-2: %+v", n)
	}
	if n := nodeResult(t, res, "PE-1"); n.Skipped != 1 {
		t.Errorf("PE-1 report pushed earlier was read again: %+v", n)
	}
	checkStore(t, m, c.Store(), []string{up.Report.ID, down.Report.ID})

	// The operator consents to the mitigation: PE-1 re-signs the report
	// with the action and pushes the new version.
	if up.Mitigation == nil {
		t.Fatal("no mitigation proposed for the ACL drop")
	}
	first, err := report.Decode(mustEncode(t, up.Report)) // the workflow updates up.Report in place
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.agent("PE-1").Workflow().Mitigate(ctx, up.Report.ID, collab.Approval{Operator: "alice", Role: "operator", RollbackSeconds: 600}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Outcome != report.OutcomeApplied {
		t.Fatalf("mitigation: %+v", out)
	}
	// The re-signed report is pushed again; the confirmation of the change
	// may already have queued a third version.
	if err := m.waitPush(up.Report.ID, 2); err != nil {
		t.Fatalf("push of the updated report: %v", err)
	}
	vs, err := c.Store().Versions(up.Report.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || !vs[0].Current || vs[0].Actions != 1 || vs[1].Actions != 0 {
		t.Errorf("versions after the update = %+v, want the one with the action current and the first kept", vs)
	}
	cur, err := c.Store().Get(up.Report.ID)
	if err != nil || len(cur.Actions) != 1 {
		t.Fatalf("current version: %v actions, %v", cur, err)
	}
	if err := report.VerifyArchived(cur, m.trust); err != nil {
		t.Errorf("updated report does not verify: %v", err)
	}
	// A late copy of the first version does not replace the update.
	if got, err := c.Store().Add(first, controller.Receipt{Via: "pull", From: "PE-1"}); err != nil || got != controller.OutcomeSuperseded {
		t.Errorf("late first version: %q, %v; want %q", got, err, controller.OutcomeSuperseded)
	}
}

func entry(t *testing.T, m *mesh, node, id string) report.Entry {
	t.Helper()
	for _, e := range m.agent(node).Store().List() {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("report %s not on %s", id, node)
	return report.Entry{}
}

// TestPushRefusesForeignReport: a node may push only reports it created.
func TestPushRefusesForeignReport(t *testing.T) {
	pc, spec := ctlSocket(t)
	m := newMesh(t, spec)
	c := m.serveController(t.TempDir(), pc, "")
	for _, mb := range m.ctlMembers() {
		c.SetMember(mb)
	}
	r := m.run("PE-3", headline).Report
	if err := m.waitPush(r.ID, 1); err != nil || !c.Store().Has(r.ID) {
		t.Fatal("PE-3's own report was not pushed")
	}
	// P-2 pushes PE-3's report.
	cl := &controller.Client{Endpoint: mustEndpoint(t, m, "P-2"), Controller: mustPeer(t, spec)}
	_, err := cl.Push(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "created by PE-3, pushed by P-2") {
		t.Fatalf("foreign push: %v", err)
	}
	var re *collab.RemoteError
	if !errors.As(err, &re) {
		t.Errorf("error %T is not a remote error", err)
	}
}

func mustPeer(t *testing.T, spec string) collab.Peer {
	t.Helper()
	p, err := controller.ParsePeer(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPushRefusesImpostor: the address named as the controller is served
// by a complete controller whose certificate, from the domain CA, holds
// the device role. The node pushes nothing to it and relays nothing
// through it; the report stays on the node for a real controller's pull.
func TestPushRefusesImpostor(t *testing.T) {
	pc, spec := ctlSocket(t)
	m := newMesh(t, spec)
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	id, err := m.ca.Issue("ctl", signing.IssueOptions{Role: signing.RoleDevice})
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(context.Background(), controller.Config{Identity: id, Trust: m.trust, Dir: t.TempDir(),
		Members: m.ctlMembers(), Serve: true, PacketConn: pc, CallTimeout: 1500 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	res := m.run("PE-1", headline)
	if err := m.waitPush(res.Report.ID, 1); !errors.Is(err, controller.ErrNotController) {
		t.Fatalf("push to a device posing as the controller: %v; want %v", err, controller.ErrNotController)
	}
	if !res.Stored {
		t.Error("report not stored on PE-1")
	}
	if e := entry(t, m, "PE-1", res.Report.ID); e.Pulled {
		t.Errorf("report marked pulled by an impostor: %+v", e)
	}
	checkStore(t, m, c.Store(), nil)

	// Relaying a call through it is refused the same way.
	cl := &controller.Client{Endpoint: mustEndpoint(t, m, "R-9"), Controller: mustPeer(t, spec), Verifier: signing.NewVerifier(m.trust, signing.VerifierOptions{})}
	_, err = cl.Poll(context.Background(), controller.PollRequest{Peer: collab.Peer{Name: "P-2", Addr: m.agent("P-2").Addr()},
		Method: "tools/call", Target: "interface-counters", Arguments: json.RawMessage(`{}`), Capability: "ietf-interface-counters"})
	if !errors.Is(err, controller.ErrNotController) {
		t.Errorf("poll through a device posing as the controller: %v, want %v", err, controller.ErrNotController)
	}
}

// mustEndpoint starts a bare D2D endpoint with a device certificate of
// the mesh's domain.
func mustEndpoint(t *testing.T, m *mesh, name string) *collab.Endpoint {
	t.Helper()
	id, err := m.ca.Issue(name, signing.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := collab.Listen(context.Background(), collab.Config{Identity: id, Trust: m.trust, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// TestPushRetries: a report made while the controller is down reaches it
// without a pull once it is back, through the agent's retries (their
// schedule and end are node's TestPusherRetries), also when the agent
// restarted in between.
func TestPushRetries(t *testing.T) {
	pc, spec := ctlSocket(t)
	addr := pc.LocalAddr().String()
	pc.Close() // down: nothing answers on the controller's address
	m := newMeshWith(t, spec, 300*time.Millisecond)
	res := m.run("PE-1", headline)
	if err := m.waitPush(res.Report.ID, 1); err == nil {
		t.Fatal("push with the controller down succeeded")
	}

	c := m.serveController(t.TempDir(), nil, addr)
	m.waitPushed(res.Report.ID, 2)
	checkStore(t, m, c.Store(), []string{res.Report.ID})
	if e := entry(t, m, "PE-1", res.Report.ID); !e.Pulled || e.PulledBy != "ctl" {
		t.Errorf("report on PE-1 after the retried push: %+v, want pulled by ctl", e)
	}

	// A report made while the controller is down, by an agent that then
	// restarts: the new run pushes what it finds unpulled.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	res = m.run("P-2", headline)
	if err := m.waitPush(res.Report.ID, 1); err == nil {
		t.Fatal("push with the controller down succeeded")
	}
	m.stop("P-2")
	c = m.serveController(t.TempDir(), nil, addr)
	m.start("P-2")
	m.waitPushed(res.Report.ID, 2)
	checkStore(t, m, c.Store(), []string{res.Report.ID})
}

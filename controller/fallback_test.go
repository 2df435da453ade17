package controller_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
)

// TestFallback: PE-1 cannot reach P-2 (its address for P-2 is a black
// hole), the controller can. The headline intent still localises the ACL
// drop; P-2's evidence came through the controller, says so, and
// verifies with P-2's own signature.
func TestFallback(t *testing.T) {
	pc, spec := ctlSocket(t)
	m := newMesh(t, spec)
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	c := m.serveController(t.TempDir(), pc, "")
	m.mu.Lock()
	m.wrong["PE-1"] = map[string]netip.AddrPort{"P-2": blackHole(t)}
	m.mu.Unlock()

	res := m.run("PE-1", headline)
	r := res.Report
	if err := report.VerifyArchived(r, m.trust); err != nil {
		t.Fatalf("report does not verify: %v", err)
	}
	if h := r.Hypothesis; h.Rule != "acl-drop" || !strings.Contains(h.Location, "PE-1") {
		t.Errorf("hypothesis = %+v, want the ACL drop on PE-1", h)
	}
	if len(r.Untrusted) != 0 {
		t.Errorf("untrusted = %+v, want none: the controller reached P-2", r.Untrusted)
	}
	p2 := 0
	for _, ev := range r.Evidence {
		want := "d2d"
		switch ev.Node {
		case "PE-1":
			want = "local"
		case "P-2":
			want = controller.ViaController
			p2++
		}
		if ev.Via != want {
			t.Errorf("evidence %s (%s %s) via %q, want %q", ev.Ref, ev.Node, ev.Target, ev.Via, want)
		}
	}
	if p2 == 0 {
		t.Fatal("no evidence from P-2")
	}
	for _, s := range r.Plan {
		if s.Node == "P-2" && !strings.Contains(s.Status, "via controller (direct: timeout)") {
			t.Errorf("plan step %s %s status %q", s.Node, s.Target, s.Status)
		}
	}
	if err := m.waitPush(r.ID, 1); err != nil || !c.Store().Has(r.ID) {
		t.Errorf("the report was not pushed: %v", err)
	}
}

// TestFallbackUnreachableEverywhere: when the controller cannot reach the
// peer either, the peer is untrusted with both reasons, and the workflow
// still finishes.
func TestFallbackUnreachableEverywhere(t *testing.T) {
	pc, spec := ctlSocket(t)
	m := newMesh(t, spec)
	c := m.serveController(t.TempDir(), pc, "")
	hole := blackHole(t)
	m.mu.Lock()
	m.wrong["PE-1"] = map[string]netip.AddrPort{"P-2": hole}
	m.mu.Unlock()
	c.SetMember(collab.Member{Name: "P-2", Peer: collab.Peer{Name: "P-2", Addr: hole}})

	r := m.run("PE-1", headline).Report
	if len(r.Untrusted) != 1 || r.Untrusted[0].Node != "P-2" || !strings.Contains(r.Untrusted[0].Reason, "controller fallback failed") {
		t.Errorf("untrusted = %+v", r.Untrusted)
	}
	if err := report.VerifyArchived(r, m.trust); err != nil {
		t.Errorf("report does not verify: %v", err)
	}
}

// TestControllerRun runs the headline intent in the controller-to-device
// model: the controller plans, calls every device itself and signs the
// report.
func TestControllerRun(t *testing.T) {
	m := newMesh(t, "")
	m.inject("acl-drop:PE-1:2001:P-2:3%")
	c := m.newController(t.TempDir(), false, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Run(ctx, headline, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	if r.Creator != "ctl" || !res.Stored || !c.Store().Has(r.ID) {
		t.Errorf("report by %s, stored %v", r.Creator, res.Stored)
	}
	if err := report.VerifyArchived(r, m.trust); err != nil {
		t.Fatalf("report does not verify: %v", err)
	}
	if h := r.Hypothesis; h.Rule != "acl-drop" || !strings.Contains(h.Location, "PE-1") {
		t.Errorf("hypothesis = %+v, want the ACL drop on PE-1", h)
	}
	for _, ev := range r.Evidence {
		if ev.Via != controller.ViaController || ev.Node == "ctl" {
			t.Errorf("evidence %s from %s via %q", ev.Ref, ev.Node, ev.Via)
		}
	}
	if len(r.Untrusted) != 0 {
		t.Errorf("untrusted = %+v", r.Untrusted)
	}

	if _, err := c.Run(ctx, "why is BGP neighbor PE-3 down", nil); !errors.Is(err, controller.ErrHeadRequired) {
		t.Errorf("intent without a head node: %v, want ErrHeadRequired", err)
	}
}

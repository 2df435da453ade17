package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/simulate"
)

// TestControllerCommands drives the controller subcommands against an
// in-process domain: run an intent from the controller, pull the nodes'
// reports, list, show and export the store, and verify the export.
func TestControllerCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Seed: 7, Discovery: "static", ProbeCount: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Agent("PE-1").Workflow().Run(ctx, "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2", nil); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if err := d.CA.Save(pki); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runD2D(t, "pki", "issue", "--dir", pki, "--name", "ctl", "--role", "controller")
	if code != 0 {
		t.Fatalf("pki issue: %d %s%s", code, out, errs)
	}
	var nodes []string
	for _, n := range d.Nodes() {
		a := d.Agent(n)
		nodes = append(nodes, n+"@"+a.Addr().String()+"="+a.Identity().Thumbprint().String())
	}
	list := strings.Join(nodes, ",")

	code, out, errs = runD2D(t, "controller", "run", "--dir", dir, "--nodes", list, "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2")
	if code != 0 || !strings.Contains(out, "stored in") {
		t.Fatalf("controller run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runD2D(t, "controller", "pull", "--dir", dir, "--nodes", list)
	if code != 0 || !strings.Contains(out, "PE-1: 1 listed, 0 already pulled, 1 new") {
		t.Fatalf("controller pull: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runD2D(t, "controller", "reports", "list", "--dir", dir)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, " ctl ") || !strings.Contains(out, " PE-1 ") {
		t.Fatalf("controller reports list: exit %d\n%s%s", code, out, errs)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if code, out, errs = runD2D(t, "controller", "reports", "show", "--dir", dir, id); code != 0 || !strings.Contains(out, "versions:") {
		t.Fatalf("controller reports show: exit %d\n%s%s", code, out, errs)
	}
	export := filepath.Join(dir, "export")
	if code, out, errs = runD2D(t, "controller", "reports", "export", "--dir", dir, "--out", export); code != 0 {
		t.Fatalf("controller reports export: exit %d\n%s%s", code, out, errs)
	}
	files, _ := filepath.Glob(filepath.Join(export, "*.json"))
	args := append([]string{"report", "verify", "--ca", filepath.Join(pki, "ca.crt")}, files...)
	if code, out, errs = runD2D(t, args...); code != 0 || strings.Count(out, "OK ") != 2 {
		t.Fatalf("verifying the export: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runD2D(t, "controller", "pull", "--dir", dir); code != 2 {
		t.Errorf("pull without nodes: exit %d, want 2", code)
	}
}

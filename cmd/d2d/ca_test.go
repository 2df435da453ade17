package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/d2dmesh/d2d/enroll"
	"github.com/d2dmesh/d2d/signing"
)

// TestKeysBornOnTheNode: request on the node, sign at the CA, install on
// the node; the key file never leaves the node's directory and the CA
// directory never holds it.
func TestKeysBornOnTheNode(t *testing.T) {
	caDir, nodeDir := t.TempDir(), t.TempDir()
	if _, stderr, code := runCmd(t, "pki", "init", "--dir", caDir); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := runCmd(t, "pki", "request", "--name", "PE-7", "--dir", nodeDir)
	if code != 0 {
		t.Fatalf("pki request: %s", stderr)
	}
	if !strings.Contains(out, "key sha256:") {
		t.Errorf("pki request output: %s", out)
	}
	csr := filepath.Join(nodeDir, "PE-7.csr")
	// The request travels to the CA; the key does not.
	carried := filepath.Join(caDir, "PE-7.csr")
	b, _ := os.ReadFile(csr)
	if err := os.WriteFile(carried, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCmd(t, "pki", "sign", "--dir", caDir, "--name", "PE-8", carried); code == 0 {
		t.Errorf("signed a request for PE-7 as PE-8: %s", stderr)
	}
	out, stderr, code = runCmd(t, "pki", "sign", "--dir", caDir, "--name", "PE-7", carried)
	if code != 0 {
		t.Fatalf("pki sign: %s", stderr)
	}
	if !strings.Contains(out, "signed PE-7 (device)") {
		t.Errorf("pki sign output: %s", out)
	}
	if _, stderr, code := runCmd(t, "pki", "install", "--dir", nodeDir, "--ca", filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "PE-7.crt")); code != 0 {
		t.Fatalf("pki install: %s", stderr)
	}
	id, err := signing.LoadIdentity(filepath.Join(nodeDir, "PE-7.crt"), filepath.Join(nodeDir, "PE-7.key"))
	if err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(caDir, "*.key")); len(matches) != 1 || filepath.Base(matches[0]) != "ca.key" {
		t.Errorf("keys in the CA directory: %v", matches)
	}

	// Revoke it: the list names its serial.
	out, stderr, code = runCmd(t, "pki", "revoke", "--dir", caDir, "--node", "PE-7")
	if code != 0 {
		t.Fatalf("pki revoke: %s", stderr)
	}
	serial := id.Cert.SerialNumber.Text(16)
	if !strings.Contains(out, "revoked serial "+serial) {
		t.Errorf("pki revoke output: %s", out)
	}
	out, _, code = runCmd(t, "pki", "revocations", filepath.Join(caDir, "crl.pem"))
	if code != 0 || !strings.Contains(out, "serial "+serial) {
		t.Errorf("pki revocations: %d %s", code, out)
	}
}

// TestEnrollCommand: `d2d ca code` then `d2d enroll` on the node, once.
func TestEnrollCommand(t *testing.T) {
	caDir, nodeDir := t.TempDir(), t.TempDir()
	if _, stderr, code := runCmd(t, "pki", "init", "--dir", caDir); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := runCmd(t, "ca", "code", "--dir", caDir, "--node", "PE-9")
	if code != 0 {
		t.Fatal(stderr)
	}
	m := regexp.MustCompile(`code: +(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ca code output: %s", out)
	}
	a, err := enroll.OpenAuthority(caDir, enroll.AuthorityConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := enroll.Serve(context.Background(), enroll.ServiceConfig{Authority: a, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	args := []string{"enroll", "--service", s.OnboardAddr(), "--name", "PE-9", "--code", m[1], "--dir", nodeDir}
	out, stderr, code = runCmd(t, args...)
	if code != 0 {
		t.Fatalf("enroll: %s", stderr)
	}
	if !strings.Contains(out, "enrolled PE-9 (device)") {
		t.Errorf("enroll output: %s", out)
	}
	for _, f := range []string{"PE-9.key", "PE-9.crt", "ca.crt", "crl.pem"} {
		if _, err := os.Stat(filepath.Join(nodeDir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, stderr, code = runCmd(t, args...); code != 1 || !strings.Contains(stderr, "wrong, expired or used code") {
		t.Errorf("second enroll with the same code: exit %d: %s", code, stderr)
	}
}

// TestReportVerifyRevoked: evidence a revoked node signs after its
// revocation fails `d2d report verify --crl`; without the list it passes.
func TestReportVerifyRevoked(t *testing.T) {
	caDir := t.TempDir()
	if _, stderr, code := runCmd(t, "pki", "init", "--dir", caDir); code != 0 {
		t.Fatal(stderr)
	}
	for _, n := range []string{"PE-1", "P-2"} {
		if _, stderr, code := runCmd(t, "pki", "issue", "--dir", caDir, "--name", n); code != 0 {
			t.Fatal(stderr)
		}
	}
	load := func(n string) *signing.Identity {
		id, err := signing.LoadIdentity(filepath.Join(caDir, n+".crt"), filepath.Join(caDir, n+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	creator, revoked := load("PE-1"), load("P-2")
	if _, stderr, code := runCmd(t, "pki", "revoke", "--dir", caDir, "--node", "P-2"); code != 0 {
		t.Fatal(stderr)
	}
	file := filepath.Join(t.TempDir(), "r.json")
	writeReportWithEvidence(t, file, creator, revoked)
	ca := filepath.Join(caDir, "ca.crt")
	if out, stderr, code := runCmd(t, "report", "verify", "--ca", ca, file); code != 0 {
		t.Fatalf("without the list: %d %s %s", code, out, stderr)
	}
	out, _, code := runCmd(t, "report", "verify", "--ca", ca, "--crl", filepath.Join(caDir, "crl.pem"), file)
	if code != 1 || !strings.Contains(out, "certificate revoked") {
		t.Errorf("with the list: exit %d: %s", code, out)
	}
}

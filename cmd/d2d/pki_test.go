package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return out.String(), errb.String(), code
}

func TestPKICommands(t *testing.T) {
	dir := t.TempDir()
	out, stderr, code := runCmd(t, "pki", "init", "--dir", dir, "--name", "lab CA")
	if code != 0 {
		t.Fatalf("pki init: %d %s", code, stderr)
	}
	if !strings.Contains(out, "thumbprint:") {
		t.Errorf("pki init output: %s", out)
	}
	if _, stderr, code := runCmd(t, "pki", "init", "--dir", dir); code == 0 {
		t.Errorf("second pki init succeeded: %s", stderr)
	}
	outDir := filepath.Join(dir, "nodes")
	out, stderr, code = runCmd(t, "pki", "issue", "--dir", dir, "--name", "PE-1", "--role", "controller", "--validity", "2h", "--out", outDir)
	if code != 0 {
		t.Fatalf("pki issue: %d %s", code, stderr)
	}
	key, err := os.ReadFile(filepath.Join(outDir, "PE-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(outDir, "PE-1.key"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	if strings.Contains(out, strings.Split(string(key), "\n")[1]) {
		t.Fatal("private key printed")
	}
	out, stderr, code = runCmd(t, "pki", "show", filepath.Join(outDir, "PE-1.crt"))
	if code != 0 {
		t.Fatalf("pki show: %d %s", code, stderr)
	}
	for _, want := range []string{"CN=PE-1", "san dns:     PE-1", "role:        controller", "not after:", "thumbprint:"} {
		if !strings.Contains(out, want) {
			t.Errorf("pki show output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := runCmd(t, "pki", "issue", "--dir", dir); code != 2 {
		t.Errorf("pki issue without --name: exit %d, want 2", code)
	}
	if _, _, code := runCmd(t, "pki", "issue", "--dir", dir, "--name", "x", "--role", "root"); code != 1 {
		t.Errorf("bad role: exit %d, want 1", code)
	}
}

// Package testenv holds test-only helpers shared by the project's tests:
// the privileged-test gate and lookups of external programs.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequirePrivileged skips t when the process is not root, unless
// D2D_REQUIRE_PRIVILEGED=1 (set by CI), where it fails instead: there a
// skipped privileged test would hide a broken path.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if Required() {
		t.Fatal("test needs root (network namespaces, raw sockets, nftables) and D2D_REQUIRE_PRIVILEGED=1 forbids skipping")
	}
	t.Skip("skipping: needs root (network namespaces, raw sockets, nftables); run as root or set D2D_REQUIRE_PRIVILEGED=1 in CI")
}

// Required reports whether skips of privileged or external-tool tests are
// failures (CI mode).
func Required() bool { return os.Getenv("D2D_REQUIRE_PRIVILEGED") == "1" }

// LookPath returns the path of an external program, skipping t (or failing
// it in CI mode) with the Debian package to install when it is missing.
// `make test` installs all of them through scripts/deps.sh.
func LookPath(t testing.TB, prog, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err == nil {
		return p
	}
	msg := prog + " not found: apt-get install " + debianPackage + " (make deps does this)"
	if Required() {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
	return ""
}

package testenv

import (
	"fmt"
	"os"
	"testing"

	"github.com/d2dmesh/d2d/internal/kernel"
)

// RequireKernel skips t when the running kernel lacks feature f, naming
// the kernel option behind it; this skip is allowed in CI mode too, since
// no package can add a kernel option. Each such skip is also appended to
// the file named by $D2D_SKIP_LOG, so that `make test` can list every
// capability skip in one place at the end of its run. A kernel that
// cannot be probed fails t: that is a broken set-up, not a missing
// feature.
func RequireKernel(t testing.TB, f kernel.Feature) {
	t.Helper()
	RequirePrivileged(t)
	has, err := kernel.Has(f)
	if err != nil {
		t.Fatal(err)
	}
	if has {
		return
	}
	msg := f.Missing()
	LogCapabilitySkip(t, msg)
	t.Skip("skipping: " + msg)
}

// LogCapabilitySkip records that t leaves something out because the
// kernel lacks a feature (msg says which and the option behind it).
func LogCapabilitySkip(t testing.TB, msg string) {
	t.Helper()
	p := os.Getenv("D2D_SKIP_LOG")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("D2D_SKIP_LOG: %v", err)
	}
	defer f.Close()
	// One write per line: O_APPEND keeps lines of parallel test binaries whole.
	if _, err := fmt.Fprintf(f, "%s: %s\n", t.Name(), msg); err != nil {
		t.Fatalf("D2D_SKIP_LOG: %v", err)
	}
}

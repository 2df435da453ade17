package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SharedDir finds a directory of the project's reference data (the IETF
// YANG modules, containerlab's topology schema) that sits in "shared/"
// beside the repository: it walks up from the test's working directory
// looking for shared/<sub>. D2D_SHARED overrides the search. Missing data
// skips the test, or fails it in CI mode.
func SharedDir(t testing.TB, sub string) string {
	t.Helper()
	if d := os.Getenv("D2D_SHARED"); d != "" {
		p := filepath.Join(d, sub)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", sub)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	msg := "reference data shared/" + sub + " not found beside the repository (set D2D_SHARED)"
	if Required() {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
	return ""
}

// ValidateInterfaces checks an RFC 7951 ietf-interfaces document with
// yanglint against the RFC 8343 modules of shared/yang, failing t with
// yanglint's message when it is invalid.
func ValidateInterfaces(t testing.TB, doc []byte) {
	t.Helper()
	if err := CheckInterfaces(t, doc); err != nil {
		t.Error(err)
	}
}

// CheckInterfaces is ValidateInterfaces returning the error, for tests
// that must see a document rejected.
func CheckInterfaces(t testing.TB, doc []byte) error {
	t.Helper()
	yanglint := LookPath(t, "yanglint", "libyang-tools")
	yang := SharedDir(t, "yang")
	f := filepath.Join(t.TempDir(), "interfaces.json")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(yanglint, "-t", "data", "-F", "ietf-interfaces:", "-p", yang,
		filepath.Join(yang, "ietf-interfaces@2018-02-20.yang"),
		filepath.Join(yang, "iana-if-type@2023-01-26.yang"), f).CombinedOutput()
	if err != nil {
		return &yanglintError{out: string(out), err: err}
	}
	return nil
}

type yanglintError struct {
	out string
	err error
}

func (e *yanglintError) Error() string { return "yanglint: " + e.err.Error() + "\n" + e.out }

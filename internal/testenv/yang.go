package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The IETF modules yanglint checks interface documents against come from
// Debian's libyuma-base (scripts/deps.sh installs it): the NMDA revisions
// of ietf-interfaces (RFC 8343) and ietf-ip (RFC 8344), and iana-if-type.
const (
	yangNMDADir   = "/usr/share/yuma/nmda-modules/ietf"
	yangIANADir   = "/usr/share/yuma/modules/ietf"
	yangPackage   = "libyuma-base"
	yangInterface = "ietf-interfaces@2018-02-20.yang"
)

// YANGModules returns the search directories and the module files for
// checking ietf-interfaces documents, skipping t (failing it in CI mode) when
// libyuma-base is not installed.
func YANGModules(t testing.TB) (dirs, modules []string) {
	t.Helper()
	ifs := filepath.Join(yangNMDADir, yangInterface)
	iana, _ := filepath.Glob(filepath.Join(yangIANADir, "iana-if-type@*.yang"))
	if _, err := os.Stat(ifs); err != nil || len(iana) == 0 {
		msg := "IETF YANG modules not found (" + ifs + ", " + yangIANADir + "/iana-if-type@*.yang): apt-get install " + yangPackage + " (make deps does this)"
		if Required() {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	return []string{yangNMDADir, yangIANADir}, []string{ifs, iana[len(iana)-1]}
}

// ValidateInterfaces checks an RFC 7951 ietf-interfaces document with
// yanglint against the RFC 8343 modules, failing t with yanglint's
// message when it is invalid.
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
	dirs, modules := YANGModules(t)
	f := filepath.Join(t.TempDir(), "interfaces.json")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-t", "data", "-F", "ietf-interfaces:"}
	for _, d := range dirs {
		args = append(args, "-p", d)
	}
	args = append(args, modules...)
	out, err := exec.Command(yanglint, append(args, f)...).CombinedOutput()
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

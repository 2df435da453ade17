package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/d2dmesh/d2d/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if err := atomicfile.Write(dir, "f", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(dir, "f", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q, %v; want new", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "f"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		t.Errorf("directory holds %d entries, want only the file: a temporary file was left", len(des))
	}
	// A failed write (no such directory) leaves nothing and says why.
	if err := atomicfile.Write(filepath.Join(dir, "missing"), "f", []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	if !atomicfile.IsTemp(atomicfile.TempPrefix+"f-abc") || atomicfile.IsTemp("f") {
		t.Error("IsTemp does not recognise the temporary names")
	}
}

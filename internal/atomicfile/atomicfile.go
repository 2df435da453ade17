// Package atomicfile replaces files so that a crash at any point leaves
// either the old content or the new, never a torn mix: write a temporary
// file in the same directory, fsync it, rename it over the target, fsync
// the directory (the rename is durable only once the directory is). The
// stores and the nonce file of d2d all write through it.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file Write creates, so
// that whoever opens a directory after a crash can recognise and remove
// what a half-done write left (IsTemp).
const TempPrefix = ".tmp-"

// IsTemp reports whether a file name is one of Write's temporary files.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// Write replaces dir/name with data, created with mode perm.
func Write(dir, name string, data []byte, perm os.FileMode) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, TempPrefix+name+"-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the directory's entries (a rename, a removal) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

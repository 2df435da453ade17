package signing

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/d2dmesh/d2d/internal/atomicfile"
)

// DefaultNonceBlock is how many nonces one reservation covers: one file
// write (two fsyncs) per 1024 signatures keeps signing cheap, and a crash
// skips at most 1024 numbers of a 64-bit space.
const DefaultNonceBlock = 1024

// maxNonce keeps nonces exactly representable as JSON numbers (IEEE 754
// doubles, RFC 8785 §3.2.2.3) in the signed bytes.
const maxNonce = 1<<53 - 1

// ErrNonceFile is wrapped by errors reading or writing the nonce file.
// A file that exists but cannot be parsed is an error, never a reason to
// start again from zero.
var ErrNonceFile = errors.New("signing: nonce file")

// NonceSource hands out strictly increasing nonces that are never reused,
// even across restarts and crashes.
//
// The file holds the reservation high-water mark H: every nonce handed
// out so far is ≤ H. Before handing out numbers above H, the source
// writes H+block to a temporary file, fsyncs it, renames it over the file
// and fsyncs the directory; only then are those numbers used. After a
// crash the source resumes at H+1, above anything used. A torn write can
// only affect the temporary file, which is ignored.
//
// The file layout is one line:
//
//	d2d-nonce/1 <H decimal> <CRC-32C of "d2d-nonce/1 <H>" as 8 hex digits>\n
//
// A lock file (path + ".lock", flock) keeps two processes from sharing
// one source.
type NonceSource struct {
	mu        sync.Mutex
	path      string // empty for an in-memory source
	block     uint64
	next      uint64 // next nonce to hand out
	reserved  uint64 // high-water mark persisted on disk
	lock      *os.File
	closed    bool
	closeOnce sync.Once
}

// OpenNonceSource opens (creating if absent) the nonce file at path. If
// block is zero, DefaultNonceBlock.
func OpenNonceSource(path string, block uint64) (*NonceSource, error) {
	if block == 0 {
		block = DefaultNonceBlock
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNonceFile, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s is in use by another process: %v", ErrNonceFile, path, err)
	}
	// Temporary files left by a crash mid-write are never read; tidy them.
	if stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), atomicfile.TempPrefix+filepath.Base(path)+"-*")); stale != nil {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	hwm, err := readNonceFile(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &NonceSource{path: path, block: block, next: hwm + 1, reserved: hwm, lock: lock}, nil
}

// NewMemoryNonceSource returns a source that starts after start and
// persists nothing. It is for tests and simulations only: after a restart
// it would reuse nonces.
func NewMemoryNonceSource(start uint64) *NonceSource {
	return &NonceSource{next: start + 1, reserved: maxNonce}
}

// Next returns the next nonce, reserving a new block on disk first when
// the current one is used up.
func (n *NonceSource) Next() (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, fmt.Errorf("%w: %w", ErrNonceFile, net.ErrClosed)
	}
	if n.next > maxNonce {
		return 0, fmt.Errorf("%w: nonce space exhausted", ErrNonceFile)
	}
	if n.next > n.reserved {
		h := min(n.reserved+n.block, maxNonce)
		if err := writeNonceFile(n.path, h); err != nil {
			return 0, err
		}
		n.reserved = h
	}
	v := n.next
	n.next++
	return v, nil
}

// Close releases the lock file. Calling it again returns a wrapped
// net.ErrClosed.
func (n *NonceSource) Close() error {
	err := fmt.Errorf("%w: %w", ErrNonceFile, net.ErrClosed)
	n.closeOnce.Do(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.closed = true
		err = nil
		if n.lock != nil {
			err = n.lock.Close()
		}
	})
	return err
}

const nonceMagic = "d2d-nonce/1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func formatNonceFile(h uint64) []byte {
	body := nonceMagic + " " + strconv.FormatUint(h, 10)
	return fmt.Appendf(nil, "%s %08x\n", body, crc32.Checksum([]byte(body), castagnoli))
}

func parseNonceFile(b []byte) (uint64, error) {
	s, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return 0, errors.New("missing final newline (truncated?)")
	}
	f := strings.Split(s, " ")
	if len(f) != 3 || f[0] != nonceMagic {
		return 0, errors.New("not a d2d nonce file")
	}
	body := f[0] + " " + f[1]
	sum, err := strconv.ParseUint(f[2], 16, 32)
	if err != nil || len(f[2]) != 8 || uint32(sum) != crc32.Checksum([]byte(body), castagnoli) {
		return 0, errors.New("checksum mismatch")
	}
	h, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || h > maxNonce {
		return 0, errors.New("bad high-water mark")
	}
	return h, nil
}

func readNonceFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNonceFile, err)
	}
	h, err := parseNonceFile(b)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v; refusing to guess a starting point (restore the file or remove it only if the key is replaced too)", ErrNonceFile, path, err)
	}
	return h, nil
}

func writeNonceFile(path string, h uint64) error {
	if path == "" {
		return nil
	}
	if err := writeFileAtomic(path, formatNonceFile(h), 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrNonceFile, err)
	}
	return nil
}

// writeFileAtomic replaces path with data crash-safely (package
// atomicfile): after a crash path holds its old or its new content.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(filepath.Dir(path), filepath.Base(path), data, perm)
}

package signing_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/atomicfile"
	"github.com/d2dmesh/d2d/signing"
)

func TestNonceMonotonicAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonce")
	var last uint64
	for round := range 4 {
		ns, err := signing.OpenNonceSource(path, 5)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 + round*4 {
			n, err := ns.Next()
			if err != nil {
				t.Fatal(err)
			}
			if n <= last {
				t.Fatalf("round %d: nonce %d after %d", round, n, last)
			}
			last = n
		}
		if err := ns.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ns.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close = %v, want net.ErrClosed", err)
		}
		if _, err := ns.Next(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Next after Close = %v", err)
		}
	}
}

func TestNonceConcurrentUnique(t *testing.T) {
	ns, err := signing.OpenNonceSource(filepath.Join(t.TempDir(), "nonce"), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				n, err := ns.Next()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("nonce %d handed out twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestNonceFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonce")
	ns, err := signing.OpenNonceSource(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if _, err := signing.OpenNonceSource(path, 0); !errors.Is(err, signing.ErrNonceFile) {
		t.Fatalf("second open of a file in use = %v, want ErrNonceFile", err)
	}
}

// TestNonceTornFile: whatever a crash leaves behind, reopening never
// yields a nonce at or below one already handed out. A damaged nonce file
// is refused rather than reset; a half-written temporary file is ignored.
func TestNonceTornFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nonce")
	ns, err := signing.OpenNonceSource(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 15 {
		if last, err = ns.Next(); err != nil {
			t.Fatal(err)
		}
	}
	ns.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A crash between writing the temporary file and renaming it.
	if err := os.WriteFile(filepath.Join(dir, atomicfile.TempPrefix+"nonce-0123ab"), good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err = signing.OpenNonceSource(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ns.Next()
	ns.Close()
	if err != nil || n <= last {
		t.Fatalf("after torn temp file: Next = %d, %v; last was %d", n, err, last)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, atomicfile.TempPrefix+"nonce-*")); len(m) != 0 {
		t.Errorf("stale temporary files left: %v", m)
	}
	// Every truncation and a bit flip of the real file: refuse, never reset.
	good, _ = os.ReadFile(path)
	var damaged [][]byte
	for i := range len(good) {
		damaged = append(damaged, good[:i])
	}
	for i := range len(good) {
		b := append([]byte(nil), good...)
		b[i] ^= 0x04
		damaged = append(damaged, b)
	}
	for i, b := range damaged {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ns, err := signing.OpenNonceSource(path, 10)
		if err == nil {
			n, _ := ns.Next()
			ns.Close()
			if n <= last {
				t.Fatalf("damaged file %d (%q) yielded nonce %d <= %d", i, b, n, last)
			}
			continue
		}
		if !errors.Is(err, signing.ErrNonceFile) {
			t.Fatalf("damaged file %d: %v", i, err)
		}
	}
}

const nonceChildEnv = "D2D_SIGNING_NONCE_CHILD"

// TestNonceCrashChild is the child half of TestNonceSurvivesKill: it hands
// out nonces forever, one per line on stdout, until killed.
func TestNonceCrashChild(t *testing.T) {
	path := os.Getenv(nonceChildEnv)
	if path == "" {
		t.Skip("child process of TestNonceSurvivesKill")
	}
	ns, err := signing.OpenNonceSource(path, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for {
		n, err := ns.Next()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		// One write(2) per nonce: what the parent read was really handed out.
		if _, err := os.Stdout.WriteString(strconv.FormatUint(n, 10) + "\n"); err != nil {
			os.Exit(5)
		}
	}
}

// TestNonceSurvivesKill runs the test binary as a child that hands out
// nonces, SIGKILLs it at a random point, restarts it, and checks that every
// nonce of a later run is above every nonce of the earlier ones.
func TestNonceSurvivesKill(t *testing.T) {
	if os.Getenv(nonceChildEnv) != "" {
		t.Skip("in child")
	}
	path := filepath.Join(t.TempDir(), "nonce")
	var maxSeen uint64
	total := 0
	for run := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNonceCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), nonceChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + rand.IntN(300)
		sc := bufio.NewScanner(out)
		var runMin, runMax, prev uint64
		lines := 0
		for sc.Scan() {
			n, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				t.Fatalf("run %d: child wrote %q", run, sc.Text())
			}
			if lines == 0 {
				runMin = n
			}
			if n <= prev {
				t.Fatalf("run %d: nonce %d after %d", run, n, prev)
			}
			prev, runMax = n, n
			lines++
			if lines == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child ended with %v, want SIGKILL", run, err)
		}
		if lines < killAfter {
			t.Fatalf("run %d: child printed %d nonces before dying, want >= %d", run, lines, killAfter)
		}
		if runMin <= maxSeen {
			t.Fatalf("run %d: first nonce %d not above %d seen before the kill", run, runMin, maxSeen)
		}
		t.Logf("run %d: %d nonces %d..%d (killed after %d)", run, lines, runMin, runMax, killAfter)
		maxSeen = runMax
		total += lines
		time.Sleep(time.Millisecond)
	}
	if total == 0 {
		t.Fatal("no nonces")
	}
}

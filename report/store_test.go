package report_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/report"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func ids(es []report.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func TestStoreBasics(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	f := newFixture(t, now, nodes...)
	f.now = now.Add(2 * time.Hour)
	dir := t.TempDir()
	s, err := report.OpenStore(dir, report.StoreConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := f.small(t, "aaaa0001")
	f.now = now.Add(time.Hour)
	b := f.small(t, "bbbb0002") // older
	for _, r := range []*report.Report{a, b} {
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(a); err != nil {
		t.Fatalf("idempotent Put: %v", err)
	}
	changed := f.small(t, "aaaa0001")
	if err := s.Put(changed); !errors.Is(err, report.ErrExists) {
		t.Fatalf("Put of a different report with the same id: %v", err)
	}
	if diff := cmp.Diff([]string{"bbbb0002", "aaaa0001"}, ids(s.List())); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	got, err := s.Get("aaaa0001")
	if err != nil {
		t.Fatal(err)
	}
	if err := report.VerifyArchived(got, f.trust); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("cccc0003"); !errors.Is(err, report.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	if _, err := s.Get("../../etc/passwd"); !errors.Is(err, report.ErrNotFound) {
		t.Errorf("Get traversal: %v", err)
	}
	if err := s.MarkPulled("bbbb0002", "controller-1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"aaaa0001"}, ids(s.Unpulled())); diff != "" {
		t.Errorf("Unpulled (-want +got):\n%s", diff)
	}
	if _, err := report.OpenStore(dir, report.StoreConfig{}); !errors.Is(err, report.ErrLocked) {
		t.Errorf("second open: %v, want ErrLocked", err)
	}
	ro, err := report.OpenStore(dir, report.StoreConfig{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Put(a); !errors.Is(err, report.ErrReadOnly) {
		t.Errorf("read-only Put: %v", err)
	}
	ro.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}

	// Reopen: marks survive.
	s, err = report.OpenStore(dir, report.StoreConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := s.List()
	if len(l) != 2 || !l[0].Pulled || l[0].PulledBy != "controller-1" || l[1].Pulled {
		t.Errorf("after reopen: %+v", l)
	}
	if err := s.Delete("bbbb0002"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bbbb0002.pulled")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pull mark left after delete: %v", err)
	}
}

func TestStoreRetention(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := now
	f := newFixture(t, now, nodes...)
	s, err := report.OpenStore(t.TempDir(), report.StoreConfig{MaxReports: 3, MaxAge: 24 * time.Hour,
		Logger: testLogger(t), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(id string, age time.Duration) error {
		f.now = now.Add(-age)
		return s.Put(f.small(t, id))
	}
	for i, id := range []string{"000a", "000b", "000c"} {
		if err := put(id, time.Duration(10-i)*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Three unpulled reports: a fourth must not evict any of them.
	if err := put("000d", time.Hour); !errors.Is(err, report.ErrFull) {
		t.Fatalf("Put into a store full of unpulled reports: %v", err)
	}
	// Once one is pulled, it makes room (the oldest pulled goes).
	if err := s.MarkPulled("000b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := put("000d", time.Hour); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"000a", "000c", "000d"}, ids(s.List())); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	// Past the age limit everything goes, pulled or not.
	clock = now.Add(14*time.Hour + time.Minute)
	gone, err := s.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"000a"}, gone); diff != "" {
		t.Errorf("Prune (-want +got):\n%s", diff)
	}
	if err := put("000e", 25*time.Hour+14*time.Hour); !errors.Is(err, report.ErrExpired) {
		t.Errorf("Put of an expired report: %v", err)
	}
}

func TestStoreRecovery(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	dir := t.TempDir()
	s, err := report.OpenStore(dir, report.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"0001", "0002", "0003", "0004"} {
		if err := s.Put(f.small(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-write leaves a temp file; a torn file and a flipped bit
	// stand for disk damage; a report under the wrong name; an orphan mark.
	write(".tmp-0005.json-abcdef", `{"uri":`)
	b, _ := os.ReadFile(filepath.Join(dir, "0001.json"))
	write("0001.json", string(b[:len(b)/2]))
	b, _ = os.ReadFile(filepath.Join(dir, "0002.json"))
	i := strings.Index(string(b), `"summary":"ok"`)
	b[i+11] = 'k' // "ok" -> "kk": decodes, signature breaks
	write("0002.json", string(b))
	b, _ = os.ReadFile(filepath.Join(dir, "0003.json"))
	write("0009.json", string(b))
	write("0007.pulled", `{"by":"x"}`)

	s, err = report.OpenStore(dir, report.StoreConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if diff := cmp.Diff([]string{"0003", "0004"}, ids(s.List())); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	var names []string
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		names = append(names, de.Name())
	}
	want := []string{".lock", "0001.json.corrupt", "0002.json.corrupt", "0003.json", "0004.json", "0009.json.corrupt"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}

	// Damage after open is caught on Get, quarantined, never served.
	b, _ = os.ReadFile(filepath.Join(dir, "0004.json"))
	write("0004.json", string(b[:len(b)-3]))
	if _, err := s.Get("0004"); !errors.Is(err, report.ErrCorrupt) {
		t.Fatalf("Get of a damaged file: %v", err)
	}
	if diff := cmp.Diff([]string{"0003"}, ids(s.List())); diff != "" {
		t.Errorf("List after damage (-want +got):\n%s", diff)
	}
}

const crashChildEnv = "D2D_REPORT_CRASH_CHILD"

// TestStoreCrashChild is the child of TestStoreCrash: it stores reports in
// a loop until killed.
func TestStoreCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("child of TestStoreCrash only")
	}
	src, dir, ok := strings.Cut(spec, "|")
	if !ok {
		t.Fatal("bad spec")
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var reps []*report.Report
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := report.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	s, err := report.OpenStore(dir, report.StoreConfig{MaxReports: 12})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)
	for i := 0; ; i++ {
		r := reps[rand.IntN(len(reps))]
		switch err := s.Put(r); {
		case errors.Is(err, report.ErrFull):
			for _, e := range s.Unpulled()[:4] {
				s.MarkPulled(e.ID, "ctl")
			}
		case err != nil:
			t.Fatal(err)
		}
		if i%7 == 0 {
			if l := s.List(); len(l) > 0 {
				s.Delete(l[rand.IntN(len(l))].ID)
			}
		}
	}
}

// TestStoreCrash kills a child that writes reports with SIGKILL at random
// moments, then checks that every report the reopened store lists decodes
// and verifies and that no debris is left.
func TestStoreCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in child")
	}
	f := newFixture(t, time.Now().UTC(), nodes...)
	src := t.TempDir()
	for i := range 40 {
		f.now = f.now.Add(time.Second)
		r := f.sample(t, fmt.Sprintf("%04x", 0xc000+i))
		b, err := report.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, r.ID+".json"), b, 0o644)
	}
	dir := t.TempDir()
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		os.Remove(filepath.Join(dir, "ready"))
		cmd := exec.Command(os.Args[0], "-test.run=^TestStoreCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+src+"|"+dir)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child never became ready:\n%s", out)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(10+rand.IntN(150)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended by itself (%v):\n%s", round, err, out)
		}

		s, err := report.OpenStore(dir, report.StoreConfig{MaxReports: 12, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		l := s.List()
		for _, e := range l {
			r, err := s.Get(e.ID)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, e.ID, err)
			}
			if err := report.VerifyArchived(r, f.trust); err != nil {
				t.Fatalf("round %d: %s: %v", round, e.ID, err)
			}
		}
		s.Close()
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			n := de.Name()
			if strings.HasPrefix(n, ".tmp-") || strings.HasSuffix(n, ".corrupt") {
				t.Errorf("round %d: debris %s", round, n)
			}
		}
		t.Logf("round %d: %d reports, %d unpulled", round, len(l), countUnpulled(l))
	}
}

func countUnpulled(l []report.Entry) int {
	n := 0
	for _, e := range l {
		if !e.Pulled {
			n++
		}
	}
	return n
}

func BenchmarkStorePut(b *testing.B) {
	f := newFixture(b, time.Now().UTC(), nodes...)
	s, err := report.OpenStore(b.TempDir(), report.StoreConfig{MaxReports: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := f.sample(b, "")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		c := *r
		c.ID = strconv.FormatInt(int64(0x100000+i), 16)
		c.URI = report.URIPrefix + c.ID
		c.Signatures = nil
		if err := c.Sign(f.ids["PE-1"]); err != nil {
			b.Fatal(err)
		}
		if err := s.Put(&c); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStoreUpdate(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	f := newFixture(t, now, nodes...)
	f.now = now.Add(time.Hour)
	dir := t.TempDir()
	s, err := report.OpenStore(dir, report.StoreConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := f.small(t, "aaaa0001")
	if err := s.Update(r); !errors.Is(err, report.ErrNotFound) {
		t.Fatalf("Update of an unknown report: %v, want ErrNotFound", err)
	}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPulled(r.ID, "controller"); err != nil {
		t.Fatal(err)
	}
	// The operator consents: the creator adds the action and re-signs.
	r.Actions = append(r.Actions, report.Action{Tool: "acl-rule-set", Node: r.Creator, Outcome: report.OutcomeConfirmed, At: f.now})
	if err := r.Sign(f.ids[r.Creator]); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Actions) != 1 || report.VerifyArchived(got, f.trust) != nil {
		t.Fatalf("updated report: %d actions, verify %v", len(got.Actions), report.VerifyArchived(got, f.trust))
	}
	if n := len(s.Unpulled()); n != 1 {
		t.Errorf("after Update %d unpulled reports, want 1: the controller must fetch the final version", n)
	}
	// An update that is not signed by its creator is refused.
	got.Hypothesis.Summary = "edited"
	if err := s.Update(got); err == nil {
		t.Error("Update accepted a report whose signature no longer covers it")
	}
	// Reopen: the final version survives.
	s.Close()
	s2, err := report.OpenStore(dir, report.StoreConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again, err := s2.Get(r.ID)
	if err != nil || len(again.Actions) != 1 {
		t.Fatalf("after reopen: %v, %d actions", err, len(again.Actions))
	}
}

package report_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/report"
)

func fixedClock() func() time.Time {
	t := time.Date(2025, 10, 30, 14, 23, 42, 0, time.UTC)
	return func() time.Time { t = t.Add(1500 * time.Microsecond); return t }
}

func appendN(t testing.TB, a *report.Audit, n int) {
	t.Helper()
	for i := range n {
		e := report.AuditEntry{Session: "s-1", Peer: "P-2", Direction: report.DirectionOut,
			Method: "tools/call", Target: "ietf-srv6-ping", Arguments: json.RawMessage(`{"count":100}`),
			Result: json.RawMessage(fmt.Sprintf(`{"lossPercent":%d}`, i))}
		if i%3 == 1 {
			e.Direction, e.Method, e.Target, e.Result = report.DirectionIn, "resources/read", "mcp://PE-1/x", nil
			e.Err = errors.New(`timeout "after" 5s ]`)
		}
		if _, err := a.Append(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditChain(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), "PE-1")
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := report.OpenAudit(path, report.AuditConfig{Identity: f.ids["PE-1"], Now: fixedClock(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, a, 5)
	seq, head := a.Head()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	// Reopen resumes the chain.
	a, err = report.OpenAudit(path, report.AuditConfig{Identity: f.ids["PE-1"]})
	if err != nil {
		t.Fatal(err)
	}
	if s, h := a.Head(); s != seq || h != head {
		t.Fatalf("resumed at %d %s, want %d %s", s, h, seq, head)
	}
	appendN(t, a, 3)
	a.Close()

	b, _ := os.ReadFile(path)
	sum, err := report.CheckAudit(bytes.NewReader(b), f.ids["PE-1"].PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 8 || sum.LastSeq != 8 || sum.Signed != 8 {
		t.Errorf("summary %+v", sum)
	}
	other := newFixture(t, time.Now().UTC(), "PE-1")
	if _, err := report.CheckAudit(bytes.NewReader(b), other.ids["PE-1"].PublicKey()); !errors.Is(err, report.ErrAuditSignature) {
		t.Errorf("foreign key: %v", err)
	}
}

func TestAuditTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := report.OpenAudit(path, report.AuditConfig{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, a, 4)
	a.Close()
	whole, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(whole, []byte("\n"))
	// Every cut inside the last line is a torn write.
	last := lines[3]
	for cut := 1; cut < len(last); cut += 7 {
		b := append(bytes.Join(lines[:3], nil), last[:cut]...)
		os.WriteFile(path, b, 0o640)
		if err := report.VerifyAudit(bytes.NewReader(b)); !errors.Is(err, report.ErrAuditTorn) {
			t.Fatalf("cut %d: VerifyAudit: %v", cut, err)
		}
		a, err := report.OpenAudit(path, report.AuditConfig{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if seq, _ := a.Head(); seq != 3 {
			t.Fatalf("cut %d: resumed at seq %d", cut, seq)
		}
		appendN(t, a, 2)
		a.Close()
		b, _ = os.ReadFile(path)
		if err := report.VerifyAudit(bytes.NewReader(b)); err != nil {
			t.Fatalf("cut %d: after resume: %v", cut, err)
		}
	}
	// A first record torn leaves an empty trail.
	os.WriteFile(path, lines[0][:10], 0o640)
	a, err = report.OpenAudit(path, report.AuditConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := a.Head(); seq != 0 {
		t.Fatalf("seq %d", seq)
	}
	a.Close()
	// A damaged last complete line is not silently dropped.
	bad := bytes.Replace(whole, []byte(`"seq":4`), []byte(`"seq":5`), 1)
	os.WriteFile(path, bad, 0o640)
	if _, err := report.OpenAudit(path, report.AuditConfig{}); !errors.Is(err, report.ErrAuditHash) {
		t.Fatalf("open with damaged last line: %v", err)
	}
}

func TestAuditTamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := report.OpenAudit(path, report.AuditConfig{Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, a, 4)
	a.Close()
	good, _ := os.ReadFile(path)
	if err := report.VerifyAudit(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(good, []byte("\n"))[:4]
	lineOf := func(off int) int { return bytes.Count(good[:off], []byte("\n")) + 1 }

	// Every byte, two different flips each.
	for i := range good {
		for _, m := range []byte{0x01, 0x20} {
			b := bytes.Clone(good)
			b[i] ^= m
			err := report.VerifyAudit(bytes.NewReader(b))
			var ae *report.AuditError
			if !errors.As(err, &ae) {
				t.Fatalf("byte %d ^ %#x undetected: %v", i, m, err)
			}
			// A changed newline moves line boundaries; otherwise the
			// damaged line is named.
			if good[i] != '\n' && b[i] != '\n' && ae.Line != lineOf(i) {
				t.Fatalf("byte %d (line %d) ^ %#x: named line %d: %v", i, lineOf(i), m, ae.Line, err)
			}
		}
	}

	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	tests := []struct {
		name string
		in   []byte
		line int
		is   error
	}{
		{"delete first", join(lines[1], lines[2], lines[3]), 1, report.ErrAuditChain},
		{"delete middle", join(lines[0], lines[2], lines[3]), 2, report.ErrAuditChain},
		{"swap", join(lines[0], lines[2], lines[1], lines[3]), 2, report.ErrAuditChain},
		{"duplicate", join(lines[0], lines[1], lines[1], lines[2]), 3, report.ErrAuditChain},
		{"insert", join(lines[0], lines[1], []byte(strings.Replace(string(lines[1]), `"seq":2`, `"seq":3`, 1)), lines[2]), 3, report.ErrAuditHash},
		{"reformatted", join(lines[0], []byte(" "+string(lines[1]))), 2, report.ErrAuditMalformed},
		{"unknown field", join(lines[0], []byte(strings.Replace(string(lines[1]), `{`, `{"x":1,`, 1))), 2, report.ErrAuditMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := report.VerifyAudit(bytes.NewReader(tt.in))
			var ae *report.AuditError
			if !errors.As(err, &ae) || ae.Line != tt.line || !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want line %d %v", err, tt.line, tt.is)
			}
		})
	}
}

func TestFormatSyslog(t *testing.T) {
	rec := report.Record{Seq: 7, Time: time.Date(2025, 10, 30, 14, 23, 42, 123456789, time.UTC), Session: "s-1",
		Peer: "P-2", Direction: "in", Method: "tools/call", Target: "ietf-srv6-ping",
		Error: `bad "x" ] \`, Prev: strings.Repeat("0", 64), Hash: strings.Repeat("a", 64)}
	got := string(report.SyslogFormatter{Hostname: "PE-1"}.Format(rec))
	want := `<108>1 2025-10-30T14:23:42.123456Z PE-1 d2d - audit [d2d-audit@32473 seq="7" dir="in" session="s-1" peer="P-2" method="tools/call" target="ietf-srv6-ping" error="bad \"x\" \] \\" prev="` +
		strings.Repeat("0", 64) + `" hash="` + strings.Repeat("a", 64) + `"] in tools/call ietf-srv6-ping P-2 error: bad "x" ] \`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if g := string(report.FormatSyslog(report.Record{Seq: 1, Direction: "out", Method: "ping"})); !strings.HasPrefix(g, "<110>1 ") || !strings.Contains(g, " - d2d - audit ") {
		t.Errorf("zero formatter: %s", g)
	}
}

const auditChildEnv = "D2D_AUDIT_CRASH_CHILD"

func TestAuditCrashChild(t *testing.T) {
	path := os.Getenv(auditChildEnv)
	if path == "" {
		t.Skip("child of TestAuditCrash only")
	}
	a, err := report.OpenAudit(path, report.AuditConfig{SyncEvery: 16})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+".ready", nil, 0o644)
	for {
		appendN(t, a, 10)
	}
}

// TestAuditCrash kills an appending child at random moments; each reopen
// must resume a chain that verifies.
func TestAuditCrash(t *testing.T) {
	if os.Getenv(auditChildEnv) != "" {
		t.Skip("in child")
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var last uint64
	for round := range 4 {
		os.Remove(path + ".ready")
		cmd := exec.Command(os.Args[0], "-test.run=^TestAuditCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), auditChildEnv+"="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			if _, err := os.Stat(path + ".ready"); err == nil {
				break
			}
			if i > 4000 {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("child never ready")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(20+round*37) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		a, err := report.OpenAudit(path, report.AuditConfig{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		seq, _ := a.Head()
		a.Close()
		b, _ := os.ReadFile(path)
		sum, err := report.CheckAudit(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if sum.LastSeq != seq || seq <= last {
			t.Fatalf("round %d: head %d, verified %d, previous %d", round, seq, sum.LastSeq, last)
		}
		last = seq
		t.Logf("round %d: %d records", round, seq)
	}
}

func BenchmarkAuditAppend(b *testing.B) {
	for _, every := range []int{1, 64} {
		b.Run(fmt.Sprintf("SyncEvery=%d", every), func(b *testing.B) {
			a, err := report.OpenAudit(filepath.Join(b.TempDir(), "a.jsonl"), report.AuditConfig{SyncEvery: every})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			e := report.AuditEntry{Session: "s", Peer: "P-2", Direction: "out", Method: "tools/call",
				Target: "ietf-srv6-ping", Arguments: json.RawMessage(`{"count":100}`), Result: json.RawMessage(`{"ok":true}`)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Append(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

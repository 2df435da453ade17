package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/d2dmesh/d2d/report"
)

const reportTestdata = "../../report/testdata"

func runD2D(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestReportVerifyCommand(t *testing.T) {
	sample := filepath.Join(reportTestdata, "sample-report.json")
	ca := filepath.Join(reportTestdata, "ca.crt")
	code, out, errs := runD2D(t, "report", "verify", "--ca", ca, sample)
	if code != 0 || !strings.HasPrefix(out, "OK 74e8c0d2a1b3f4e5: 4 evidence items from nodes PE-1, P-2, PE-3; signed by PE-1") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}

	b, _ := os.ReadFile(sample)
	bad := bytes.Replace(b, []byte(`"lossPercent": 0,`), []byte(`"lossPercent": 5,`), 1)
	if bytes.Equal(b, bad) {
		t.Fatal("tamper pattern not found")
	}
	path := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(path, bad, 0o644)
	code, out, errs = runD2D(t, "report", "verify", "--ca", ca, path)
	if code != 1 || !strings.Contains(out, "evidence[1] (P-2 tools/call ietf-srv6-ping): signing: bad signature") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runD2D(t, "report", "verify", sample); code != 2 {
		t.Errorf("missing --ca: exit %d, want 2", code)
	}
}

func TestReportShowListCommands(t *testing.T) {
	sample := filepath.Join(reportTestdata, "sample-report.json")
	code, out, errs := runD2D(t, "report", "show", sample)
	if code != 0 || !strings.Contains(out, "suspect:    egress ACL 2001") || !strings.Contains(out, "P-9: tools/call timed out") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runD2D(t, "report", "show", "--svg", sample); code != 0 || !strings.HasPrefix(out, "<svg") {
		t.Fatalf("svg: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	s, err := report.OpenStore(dir, report.StoreConfig{MaxAge: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(sample)
	r, err := report.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	s.MarkPulled(r.ID, "ctl-1")
	// The agent holds the store open; list and show read it read-only.
	defer s.Close()
	code, out, errs = runD2D(t, "report", "list", "--store", dir)
	if code != 0 || !strings.Contains(out, "74e8c0d2a1b3f4e5") || !strings.Contains(out, "by ctl-1") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runD2D(t, "report", "show", "--store", dir, "74e8c0d2a1b3f4e5")
	if code != 0 || !strings.Contains(out, "Report 74e8c0d2a1b3f4e5") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func TestAuditCommands(t *testing.T) {
	golden := filepath.Join(reportTestdata, "audit.jsonl")
	code, out, errs := runD2D(t, "audit", "verify", golden)
	if code != 0 || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	b, _ := os.ReadFile(golden)
	lines := bytes.SplitAfter(b, []byte("\n"))
	path := filepath.Join(t.TempDir(), "a.jsonl")
	os.WriteFile(path, bytes.Join(append(lines[:2:2], lines[3:]...), nil), 0o644)
	code, out, _ = runD2D(t, "audit", "verify", path)
	if code != 1 || !strings.Contains(out, "line 3 (seq 4)") {
		t.Fatalf("deleted line: exit %d\n%s", code, out)
	}
	code, out, _ = runD2D(t, "audit", "show", "--syslog", "--hostname", "PE-1", golden)
	if code != 0 || !strings.HasPrefix(out, "<110>1 2025-10-30T14:23:42.001500Z PE-1 d2d - audit [d2d-audit@32473 seq=\"1\"") {
		t.Fatalf("syslog: exit %d\n%s", code, out)
	}
	code, out, _ = runD2D(t, "audit", "show", golden)
	if code != 0 || !strings.Contains(out, "resources/read") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
}

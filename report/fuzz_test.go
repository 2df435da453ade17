package report_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/d2dmesh/d2d/report"
)

// FuzzDecode: whatever Decode accepts encodes canonically and decodes to
// the same encoding again.
func FuzzDecode(f *testing.F) {
	rep, _, _, _ := goldenPaths()
	// The golden in its canonical (compact) form: the indented file is
	// three times longer, which only slows minimisation down.
	if b, err := os.ReadFile(rep); err == nil {
		if r, err := report.Decode(b); err == nil {
			if c, err := report.Encode(r); err == nil {
				f.Add(c)
			}
		}
	}
	f.Add([]byte(`{"uri":"urn:ietf:params:xml:ns:yang:ietf-mcp/report/74e8","id":"74e8","creator":"PE-1","created":"2025-10-30T14:23:42Z","intent":"x","hypothesis":{"summary":"","confidence":0},"evidence":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := report.Decode(in)
		if err != nil {
			return
		}
		enc, err := report.Encode(r)
		if err != nil {
			t.Fatalf("accepted input does not encode: %v", err)
		}
		r2, err := report.Decode(enc)
		if err != nil {
			t.Fatalf("own encoding rejected: %v\n%s", err, enc)
		}
		enc2, err := report.Encode(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}

// FuzzAuditLine: an accepted line is its record's canonical form, and the
// record survives marshal and parse unchanged.
func FuzzAuditLine(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "audit.jsonl")); err == nil {
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			if len(l) > 0 {
				f.Add(l)
			}
		}
	}
	f.Add([]byte(`{"direction":"in","hash":"` + zeros + `","method":"m","prev":"` + zeros + `","seq":1,"time":"2025-10-30T14:23:42Z"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := report.ParseAuditLine(line)
		if err != nil {
			return
		}
		out, err := rec.MarshalLine()
		if err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
		if !bytes.Equal(bytes.TrimSuffix(out, []byte("\n")), bytes.TrimSuffix(line, []byte("\n"))) {
			t.Fatalf("accepted a non-canonical line:\n%s\n%s", line, out)
		}
		rec2, err := report.ParseAuditLine(out)
		if err != nil {
			t.Fatalf("own line rejected: %v", err)
		}
		out2, _ := rec2.MarshalLine()
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip differs:\n%s\n%s", out, out2)
		}
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

// TestAuditGolden keeps testdata/audit.jsonl (the fuzz seed) verifying;
// -update regenerates it.
func TestAuditGolden(t *testing.T) {
	path := filepath.Join("testdata", "audit.jsonl")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.Remove(path)
		a, err := report.OpenAudit(path, report.AuditConfig{Now: fixedClock()})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, a, 6)
		a.Close()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.VerifyAudit(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

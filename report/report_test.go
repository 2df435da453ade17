package report_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

var nodes = []string{"PE-1", "P-2", "PE-3", "X-9"}

func TestSignVerify(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	r := f.sample(t, "")
	if err := report.VerifyArchived(r, f.trust); err != nil {
		t.Fatalf("VerifyArchived: %v", err)
	}
	if !strings.HasPrefix(r.URI, report.URIPrefix) || !report.ValidID(r.ID) {
		t.Fatalf("uri %q id %q", r.URI, r.ID)
	}
	if len(r.Certificates) != 3 {
		t.Errorf("certificates for %d nodes, want 3", len(r.Certificates))
	}
	for _, ev := range r.Evidence {
		if len(ev.Envelope.Cert) != 0 {
			t.Errorf("%s: envelope still holds its certificate", ev.Ref)
		}
	}
	b, err := report.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := report.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.VerifyArchived(r2, f.trust); err != nil {
		t.Fatalf("VerifyArchived after round trip: %v", err)
	}
}

func TestVerifyNamesFirstBadElement(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	other := newFixture(t, time.Now().UTC(), "PE-1")
	tests := []struct {
		name    string
		mutate  func(r *report.Report)
		trust   *signing.Trust
		element string
		is      error
	}{
		{
			name: "evidence result edited",
			mutate: func(r *report.Report) {
				r.Evidence[1].Result = json.RawMessage(strings.Replace(string(r.Evidence[1].Result), `"received":100`, `"received":99`, 1))
			},
			element: "evidence[1] (P-2 tools/call ietf-srv6-ping)",
			is:      signing.ErrBadSignature,
		},
		{
			name:    "evidence arguments edited",
			mutate:  func(r *report.Report) { r.Evidence[2].Arguments = json.RawMessage(`{"x":1}`) },
			element: "evidence[2] (PE-3 resources/read urn:ietf:params:xml:ns:yang:ietf-interfaces/interfaces/interface=eth1/statistics)",
		},
		{
			name:    "hypothesis edited",
			mutate:  func(r *report.Report) { r.Hypothesis.Suspect = "P-2" },
			element: `signatures["PE-1"]`,
			is:      report.ErrBadSignature,
		},
		{
			name:    "dangling hypothesis ref",
			mutate:  func(r *report.Report) { r.Hypothesis.EvidenceRefs[1] = "e9" },
			element: `hypothesis.evidenceRefs[1] "e9"`,
			is:      report.ErrNoSuchEvidence,
		},
		{
			name:    "dangling alternative ref",
			mutate:  func(r *report.Report) { r.Alternatives[0].EvidenceRefs = []string{"e7"} },
			element: `alternatives[0].evidenceRefs[0] "e7"`,
			is:      report.ErrNoSuchEvidence,
		},
		{
			name:    "duplicate ref",
			mutate:  func(r *report.Report) { r.Evidence[3].Ref = "e1" },
			element: "evidence[3] (PE-1 tools/call ietf-acl-counters)",
			is:      report.ErrDuplicateRef,
		},
		{
			name:    "evidence moved to another node",
			mutate:  func(r *report.Report) { r.Evidence[1].Node = "PE-3" },
			element: "evidence[1] (PE-3 tools/call ietf-srv6-ping)",
		},
		{
			name:    "creator signature missing",
			mutate:  func(r *report.Report) { delete(r.Signatures, "PE-1") },
			element: `signatures["PE-1"]`,
			is:      report.ErrNoSignature,
		},
		{
			name: "creator certificate of another node",
			mutate: func(r *report.Report) {
				s := r.Signatures["PE-1"]
				s.Cert = f.ids["P-2"].CertDER
				s.KeyID = f.ids["P-2"].Thumbprint()
				r.Signatures["PE-1"] = s
			},
			element: `signatures["PE-1"]`,
			is:      report.ErrSignerMismatch,
		},
		{
			name: "key id not the certificate's",
			mutate: func(r *report.Report) {
				s := r.Signatures["PE-1"]
				s.KeyID = f.ids["P-2"].Thumbprint()
				r.Signatures["PE-1"] = s
			},
			element: `signatures["PE-1"]`,
			is:      report.ErrSignerMismatch,
		},
		{
			name:    "creator changed",
			mutate:  func(r *report.Report) { r.Creator = "P-2"; r.Signatures["P-2"] = r.Signatures["PE-1"] },
			element: `signatures["PE-1"]`, // now a co-signature, covering other bytes
			is:      report.ErrBadSignature,
		},
		{
			name:    "foreign CA",
			trust:   other.trust,
			element: "evidence[0] (PE-1 tools/call ietf-srv6-ping)",
			is:      signing.ErrUnknownAuthority,
		},
		{
			name:    "uri does not match id",
			mutate:  func(r *report.Report) { r.URI += "0" },
			element: "report",
			is:      report.ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.sample(t, "")
			if tt.mutate != nil {
				tt.mutate(r)
			}
			trust := f.trust
			if tt.trust != nil {
				trust = tt.trust
			}
			err := report.VerifyArchived(r, trust)
			var ve *report.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *VerifyError", err)
			}
			if diff := cmp.Diff(tt.element, ve.Element); diff != "" {
				t.Errorf("element (-want +got):\n%s\n(error: %v)", diff, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestCosign(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	r, err := report.Assemble(report.Assembly{Creator: "PE-1", Created: f.now, Intent: "x",
		Evidence: []signing.Evidence{f.evidence(t, "P-2", "d2d", "tools/call", "ping", `{}`, `{"a":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Cosign(f.ids["P-2"]); err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(f.ids["PE-1"]); err != nil {
		t.Fatal(err)
	}
	if err := r.Cosign(f.ids["PE-3"]); err == nil {
		t.Fatal("cosigning a signed report succeeded")
	}
	if err := report.VerifyArchived(r, f.trust); err != nil {
		t.Fatal(err)
	}
	// Swapping in another co-signer's entry breaks that entry first.
	s := r.Signatures["P-2"]
	s.Value[0] ^= 1
	err = report.VerifyArchived(r, f.trust)
	var ve *report.VerifyError
	if !errors.As(err, &ve) || ve.Element != `signatures["P-2"]` {
		t.Fatalf("got %v, want signatures[\"P-2\"]", err)
	}
}

func TestAssembleRejects(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), "PE-1")
	ev := f.evidence(t, "PE-1", "local", "tools/call", "ping", `{}`, `{}`)
	tests := []struct {
		name string
		a    report.Assembly
		is   error
	}{
		{"no creator", report.Assembly{Intent: "x"}, report.ErrMalformed},
		{"bad id", report.Assembly{ID: "XYZ!", Creator: "PE-1"}, report.ErrMalformed},
		{"dangling ref", report.Assembly{Creator: "PE-1", Evidence: []signing.Evidence{ev},
			Hypothesis: report.Hypothesis{EvidenceRefs: []string{"e2"}}}, report.ErrNoSuchEvidence},
		{"duplicate ref", report.Assembly{Creator: "PE-1", Evidence: []signing.Evidence{
			func() signing.Evidence { e := ev; e.Ref = "a"; return e }(),
			func() signing.Evidence { e := ev; e.Ref = "a"; return e }()}}, report.ErrDuplicateRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := report.Assemble(tt.a)
			if !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want %v", err, tt.is)
			}
		})
	}
	// Refs are assigned around the ones given.
	e1, e2 := ev, ev
	e1.Ref = "e1"
	r, err := report.Assemble(report.Assembly{Creator: "PE-1", Evidence: []signing.Evidence{e2, e1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{r.Evidence[0].Ref, r.Evidence[1].Ref}; !cmp.Equal(got, []string{"e2", "e1"}) {
		t.Errorf("refs %v", got)
	}
}

func TestDecodeStrict(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	good, err := report.Encode(f.small(t, "00aa11bb22cc33dd"))
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, good, "", "\t")
	tests := []struct {
		name string
		in   []byte
		is   error
	}{
		{"canonical", good, nil},
		{"indented", pretty.Bytes(), nil},
		{"trailing object", append(append([]byte{}, good...), "{}"...), report.ErrTrailingData},
		{"trailing whitespace", append(append([]byte{}, good...), " \n"...), nil},
		{"unknown member", append([]byte(`{"zzz":1,`), good[1:]...), report.ErrMalformed},
		{"unknown member in evidence", bytes.Replace(good, []byte(`"ref":"e1"`), []byte(`"ref":"e1","x":2`), 1), report.ErrMalformed},
		{"case-variant key", bytes.Replace(good, []byte(`"intent"`), []byte(`"Intent"`), 1), report.ErrNotNormal},
		{"duplicate key", bytes.Replace(good, []byte(`"intent":"ping PE-3"`), []byte(`"intent":"evil","intent":"ping PE-3"`), 1), nil}, // checked below
		{"null member", bytes.Replace(good, []byte(`"evidence":[`), []byte(`"plan":null,"evidence":[`), 1), report.ErrNotNormal},
		{"truncated", good[:len(good)-1], report.ErrMalformed},
		{"empty", nil, report.ErrMalformed},
		{"too large", append(bytes.Repeat([]byte(" "), report.MaxReportSize), good...), report.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := report.Decode(tt.in)
			if tt.name == "duplicate key" {
				// Either rejected, or decoded to what the signature covers.
				if err == nil && r.Intent != "ping PE-3" {
					t.Fatalf("duplicate key decoded to %q", r.Intent)
				}
				return
			}
			if tt.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want %v", err, tt.is)
			}
		})
	}
}

// TestTamperEveryByte flips each bit of each byte of a small signed report:
// every change must fail decoding or verification.
func TestTamperEveryByte(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	good, err := report.Encode(f.small(t, "00aa11bb22cc33dd"))
	if err != nil {
		t.Fatal(err)
	}
	masks := []byte{0x01, 0x20}
	if testing.Short() {
		masks = masks[:1]
	}
	named := map[string]int{}
	for i := range good {
		for _, m := range masks {
			b := bytes.Clone(good)
			b[i] ^= m
			r, err := report.Decode(b)
			if err != nil {
				named["decode"]++
				continue
			}
			err = report.VerifyArchived(r, f.trust)
			var ve *report.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("byte %d ^ %#x (%q→%q) undetected: %v\n%s", i, m, good[i], b[i], err, b)
			}
			named[strings.SplitN(ve.Element, " ", 2)[0]]++
		}
	}
	t.Logf("%d bytes: detections by element %v", len(good), named)
}

func goldenPaths() (rep, ca, txt, svg string) {
	d := "testdata"
	return filepath.Join(d, "sample-report.json"), filepath.Join(d, "ca.crt"),
		filepath.Join(d, "sample-report.txt"), filepath.Join(d, "sample-report.svg")
}

// TestGolden decodes and verifies the committed sample report against the
// committed CA, and checks that rendering reproduces the golden files.
// `go test ./report -run TestGolden -update` regenerates them.
func TestGolden(t *testing.T) {
	repPath, caPath, txtPath, svgPath := goldenPaths()
	if *update {
		f := newFixture(t, time.Now().UTC().Truncate(time.Second), nodes...)
		r := f.sample(t, "74e8c0d2a1b3f4e5")
		var b bytes.Buffer
		if err := report.RenderJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(repPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		f.writeCA(t, caPath)
	}
	in, err := os.ReadFile(repPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := signing.LoadTrust(caPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.VerifyArchived(r, trust); err != nil {
		t.Fatalf("golden report does not verify: %v", err)
	}
	check := func(path string, render func(w io.Writer, r *report.Report) error) []byte {
		var b bytes.Buffer
		if err := render(&b, r); err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), b.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", path, diff)
		}
		return b.Bytes()
	}
	check(repPath, report.RenderJSON)
	txt := check(txtPath, report.RenderText)
	for _, want := range []string{"egress ACL 2001", "loss 3.2% (97/100)", "loss 0% (100/100)", "deny matched 312 pkts", "P-9: tools/call timed out", "rolled-back"} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Errorf("text rendering lacks %q", want)
		}
	}
	svg := check(svgPath, report.RenderSVG)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	if !bytes.Contains(svg, []byte(`fill="#fde0dc" stroke="#d62728"`)) {
		t.Error("SVG does not highlight the suspect node")
	}
}

func TestSVGHighlightsLink(t *testing.T) {
	f := newFixture(t, time.Now().UTC(), nodes...)
	r := f.sample(t, "")
	r.Hypothesis.Location = "PE-1->P-2"
	var b bytes.Buffer
	if err := report.RenderSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte(`stroke="#d62728" stroke-width="6"`)) {
		t.Errorf("link not highlighted:\n%s", b.String())
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, time.Now().UTC(), nodes...)
	r := f.sample(b, "")
	b.ReportAllocs()
	for b.Loop() {
		if err := report.VerifyArchived(r, f.trust); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	f := newFixture(b, time.Now().UTC(), nodes...)
	enc, _ := report.Encode(f.sample(b, ""))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := report.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

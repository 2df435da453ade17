package controller_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

func TestParseMember(t *testing.T) {
	tp := strings.Repeat("ab", 32)
	var want signing.Thumbprint
	_ = want.UnmarshalText([]byte(tp))
	addr := netip.MustParseAddrPort("127.0.0.1:9514")
	tests := []struct {
		name, in string
		want     collab.Member
		err      bool
	}{
		{name: "name and address", in: "PE-1@127.0.0.1:9514",
			want: collab.Member{Name: "PE-1", Peer: collab.Peer{Name: "PE-1", Addr: addr}, Addresses: []string{"127.0.0.1"}}},
		{name: "with thumbprint", in: " PE-1@127.0.0.1:9514=" + strings.ToUpper(tp) + " ",
			want: collab.Member{Name: "PE-1", Peer: collab.Peer{Name: "PE-1", Addr: addr, Thumbprint: want}, Addresses: []string{"127.0.0.1"}}},
		{name: "IPv6", in: "P-2@[::1]:9514",
			want: collab.Member{Name: "P-2", Peer: collab.Peer{Name: "P-2", Addr: netip.MustParseAddrPort("[::1]:9514")}, Addresses: []string{"::1"}}},
		{name: "no name", in: "@127.0.0.1:9514", err: true},
		{name: "no at", in: "127.0.0.1:9514", err: true},
		{name: "host name", in: "PE-1@router:9514", err: true},
		{name: "short thumbprint", in: "PE-1@127.0.0.1:9514=abcd", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := controller.ParseMember(tt.in)
			if tt.err {
				if !errors.Is(err, controller.ErrMemberSpec) {
					t.Fatalf("ParseMember(%q) error = %v, want ErrMemberSpec", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadMembers(t *testing.T) {
	got, err := controller.ReadMembers(strings.NewReader("# domain\n\nPE-1@127.0.0.1:1\nP-2@127.0.0.1:2\n"))
	if err != nil || len(got) != 2 || got[1].Name != "P-2" {
		t.Fatalf("ReadMembers = %+v, %v", got, err)
	}
	if _, err := controller.ReadMembers(strings.NewReader("PE-1@127.0.0.1:1\nbad\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
}

// FuzzParseMember: the member decoder never panics, and what it accepts
// prints back to a form it parses to the same member.
func FuzzParseMember(f *testing.F) {
	f.Add("PE-1@127.0.0.1:9514")
	f.Add("P-2@[::1]:9514=" + strings.Repeat("0f", 32))
	f.Add("@:")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := controller.ParseMember(s)
		if err != nil {
			return
		}
		again := m.Name + "@" + m.Peer.Addr.String()
		if !m.Peer.Thumbprint.IsZero() {
			again += "=" + m.Peer.Thumbprint.String()
		}
		m2, err := controller.ParseMember(again)
		if err != nil || m2.Name != m.Name || m2.Peer.Addr != m.Peer.Addr || m2.Peer.Thumbprint != m.Peer.Thumbprint {
			t.Fatalf("%q -> %q -> %+v, %v", s, again, m2, err)
		}
	})
}

// signed returns a report by creator with n actions, signed.
func signed(t testing.TB, ca *signing.CA, id *signing.Identity, base *report.Report, actions int) *report.Report {
	t.Helper()
	r := *base
	r.Signatures = nil
	r.Actions = nil
	for i := range actions {
		r.Actions = append(r.Actions, report.Action{Tool: "acl-rule-set", Node: id.Name, Outcome: report.OutcomeApplied,
			At: base.Created.Add(time.Duration(i+1) * time.Minute)})
	}
	if err := r.Sign(id); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestStoreVersions(t *testing.T) {
	ca, err := signing.NewCA("ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue("PE-1", signing.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := report.Assemble(report.Assembly{Creator: "PE-1", Intent: "x", Hypothesis: report.Hypothesis{Summary: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	v0, v1, v2 := signed(t, ca, id, base, 0), signed(t, ca, id, base, 1), signed(t, ca, id, base, 2)
	other := signed(t, ca, id, base, 0)
	other.Created = other.Created.Add(time.Hour)
	other.Signatures = nil
	if err := other.Sign(id); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	s, err := controller.OpenStore(dir, controller.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		r       *report.Report
		want    string
		err     error
		current int // actions of the current version after the step
	}{
		{"first version", v1, controller.OutcomeNew, nil, 1},
		{"same again", v1, controller.OutcomeDuplicate, nil, 1},
		{"older arrives late", v0, controller.OutcomeSuperseded, nil, 1},
		{"newer", v2, controller.OutcomeUpdated, nil, 2},
		{"same id, other creation time", other, "", controller.ErrConflict, 2},
	}
	for _, st := range steps {
		got, err := s.Add(st.r, controller.Receipt{Via: "pull", From: "PE-1"})
		if !errors.Is(err, st.err) || got != st.want {
			t.Fatalf("%s: Add = %q, %v; want %q, %v", st.name, got, err, st.want, st.err)
		}
		cur, err := s.Get(base.ID)
		if err != nil || len(cur.Actions) != st.current {
			t.Fatalf("%s: current = %v, %v", st.name, cur, err)
		}
	}
	vs, err := s.Versions(base.ID)
	if err != nil || len(vs) != 3 || !vs[0].Current || vs[0].Actions != 2 {
		t.Fatalf("versions = %+v, %v", vs, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash after archiving a version but before making it current:
	// the next open finishes the job. Simulate it by putting a newer
	// version in the archive behind the store's back.
	v3 := signed(t, ca, id, base, 3)
	b, _ := report.Encode(v3)
	if err := os.WriteFile(filepath.Join(dir, "versions", base.ID, controller.ContentHash(b)+".json"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "versions", base.ID, ".tmp-torn"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err = controller.OpenStore(dir, controller.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cur, err := s.Get(base.ID); err != nil || len(cur.Actions) != 3 {
		t.Fatalf("after reopening: current = %v, %v; want the archived 3-action version", cur, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "versions", base.ID, ".tmp-torn")); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if l := s.List(); len(l) != 1 || l[0].Versions != 4 {
		t.Errorf("list = %+v", l)
	}
}

func BenchmarkStoreAddDuplicate(b *testing.B) {
	ca, _ := signing.NewCA("ca", 0)
	id, _ := ca.Issue("PE-1", signing.IssueOptions{})
	base, _ := report.Assemble(report.Assembly{Creator: "PE-1", Intent: "x", Hypothesis: report.Hypothesis{Summary: "s"}})
	r := signed(b, ca, id, base, 1)
	s, err := controller.OpenStore(b.TempDir(), controller.StoreConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Add(r, controller.Receipt{Via: "pull", From: "PE-1"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		// What a repeated pull after a crash costs per report.
		if out, err := s.Add(r, controller.Receipt{Via: "pull", From: "PE-1"}); err != nil || out != controller.OutcomeDuplicate {
			b.Fatal(out, err)
		}
	}
}

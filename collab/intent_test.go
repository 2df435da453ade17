package collab_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/d2dmesh/d2d/collab"
)

var testNodes = []string{"PE-1", "P-2", "PE-3", "P-4", "PE-5"}

func TestParseIntent(t *testing.T) {
	tests := []struct {
		name string
		text string
		want collab.Intent
	}{
		{"headline", "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}},
		{"headline lower case", "Verify packet loss on the srv6 path from pe-1 to pe-3 via p-2.",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}},
		{"check loss through", "check loss from P-2 to PE-5 through P-4",
			collab.Intent{Kind: collab.PathLoss, Head: "P-2", Tail: "PE-5", Via: []string{"P-4"}}},
		{"via before to", "check loss from PE-1 via P-2 to PE-3",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}},
		{"several vias", "is there packet loss from PE-1 to PE-5 via P-2, PE-3 and P-4?",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-5", Via: []string{"P-2", "PE-3", "P-4"}}},
		{"arrow path", "srv6 path PE-1 -> P-2 -> PE-3 loss",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}},
		{"arrow path without spaces", "check srv6 path PE-1->P-2->P-4->PE-5",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-5", Via: []string{"P-2", "P-4"}}},
		{"unicode arrow", "SRv6 path PE-1 → PE-3",
			collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3"}},
		{"loss without head", "I want to check loss to PE-3 via P-2",
			collab.Intent{Kind: collab.PathLoss, Tail: "PE-3", Via: []string{"P-2"}}},
		{"reachability between", "verify reachability between PE-1 and PE-5",
			collab.Intent{Kind: collab.Reachability, Head: "PE-1", Tail: "PE-5"}},
		{"can reach", "can PE-1 reach PE-3?",
			collab.Intent{Kind: collab.Reachability, Head: "PE-1", Tail: "PE-3"}},
		{"ping from", "ping PE-3 from P-2",
			collab.Intent{Kind: collab.Reachability, Head: "P-2", Tail: "PE-3"}},
		{"ping local", "ping pe-5",
			collab.Intent{Kind: collab.Reachability, Tail: "PE-5"}},
		{"reachable from", "is PE-3 reachable from PE-1",
			collab.Intent{Kind: collab.Reachability, Head: "PE-1", Tail: "PE-3"}},
		{"bgp address", "why is BGP neighbor 1.1.1.1 down",
			collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "1.1.1.1"}},
		{"bgp draft wording", "Diagnose why BGP neighbor 1.1.1.1 is down",
			collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "1.1.1.1"}},
		{"bgp ipv6 on node", "why is BGP neighbour FC00:0:2::1 down on pe-1",
			collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "fc00:0:2::1", Node: "PE-1"}},
		{"bgp node name", "why is BGP neighbor p-2 down on PE-1?",
			collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "P-2", Node: "PE-1"}},
		{"bgp session to", "why is the BGP session to PE-3 down",
			collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "PE-3"}},
		{"interface errors", "interface errors along the path from PE-1 to PE-3 via P-2",
			collab.Intent{Kind: collab.InterfaceErrors, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}},
		{"discards", "look for discards between P-2 and P-4",
			collab.Intent{Kind: collab.InterfaceErrors, Head: "P-2", Tail: "P-4"}},
		{"domain", "show the collaboration domain", collab.Intent{Kind: collab.ShowDomain}},
		{"neighbours", "show neighbours", collab.Intent{Kind: collab.ShowDomain}},
		{"members", "members", collab.Intent{Kind: collab.ShowDomain}},
		{"list reports", "list reports", collab.Intent{Kind: collab.ListReports}},
		{"show all reports", "show all reports", collab.Intent{Kind: collab.ListReports}},
		{"show report", "show report 74e8", collab.Intent{Kind: collab.ShowReport, ReportID: "74e8"}},
		{"show report uri", "show report urn:ietf:params:xml:ns:yang:ietf-mcp/report/74e8",
			collab.Intent{Kind: collab.ShowReport, ReportID: "74e8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collab.ParseIntent(tt.text, testNodes)
			if err != nil {
				t.Fatalf("ParseIntent(%q): %v", tt.text, err)
			}
			if got.Text != tt.text {
				t.Errorf("Text = %q, want %q", got.Text, tt.text)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(collab.Intent{}, "Text"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseIntent(%q) (-want +got):\n%s", tt.text, diff)
			}
			// The canonical rendering reads back to the same intent.
			again, err := collab.ParseIntent(got.String(), testNodes)
			if err != nil {
				t.Fatalf("ParseIntent(String() = %q): %v", got.String(), err)
			}
			if !again.Equal(got) {
				t.Errorf("round trip via %q: got %+v, want %+v", got.String(), again, got)
			}
		})
	}
}

func TestParseIntentErrors(t *testing.T) {
	tests := []struct {
		name        string
		text        string
		unknownNode string // want *UnknownNodeError naming it
		unknown     bool   // want *UnknownIntentError
		invalid     bool   // want ErrInvalidIntent
		suggestion  string // a suggestion that must be offered
	}{
		{name: "unknown head", text: "verify packet loss from PE-9 to PE-3", unknownNode: "PE-9"},
		{name: "unknown via", text: "check loss from PE-1 to PE-3 via X-7", unknownNode: "X-7"},
		{name: "unknown in arrow", text: "srv6 path PE-1 -> Q -> PE-3", unknownNode: "Q"},
		{name: "unknown bgp neighbour", text: "why is BGP neighbor core-9 down", unknownNode: "core-9"},
		{name: "unknown ping target", text: "ping Mars", unknownNode: "Mars"},
		{name: "gibberish", text: "make me a sandwich", unknown: true,
			suggestion: "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"},
		{name: "empty", text: "   ", unknown: true},
		{name: "loss without path", text: "is there packet loss?", unknown: true,
			suggestion: "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"},
		{name: "typo suggests the right form", text: "shwo the colaboration domian", unknown: true,
			suggestion: "show the collaboration domain"},
		{name: "bgp without neighbour", text: "why is bgp down", unknown: true,
			suggestion: "why is BGP neighbor P-2 down on PE-1"},
		{name: "report without id", text: "show report", unknown: true, suggestion: "show report <id>"},
		{name: "head equals tail", text: "check loss from PE-1 to PE-1", invalid: true},
		{name: "repeated via", text: "check loss from PE-1 to PE-3 via P-2, P-2", invalid: true},
		{name: "reachability with via", text: "ping PE-3 from PE-1 via P-2", invalid: true},
		{name: "own neighbour", text: "why is BGP neighbor PE-1 down on PE-1", invalid: true},
		{name: "bad report id", text: "show report ../../etc", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := collab.ParseIntent(tt.text, testNodes)
			if err == nil {
				t.Fatalf("ParseIntent(%q) = %+v, want error", tt.text, in)
			}
			if !strings.HasPrefix(err.Error(), "collab: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			var une *collab.UnknownNodeError
			var uie *collab.UnknownIntentError
			switch {
			case tt.unknownNode != "":
				if !errors.As(err, &une) {
					t.Fatalf("error %v is not *UnknownNodeError", err)
				}
				if une.Name != tt.unknownNode {
					t.Errorf("Name = %q, want %q", une.Name, tt.unknownNode)
				}
				if diff := cmp.Diff(testNodes, une.Known); diff != "" {
					t.Errorf("Known (-want +got):\n%s", diff)
				}
				if !strings.Contains(err.Error(), "PE-1, P-2") {
					t.Errorf("error %q does not list the known nodes", err)
				}
			case tt.unknown:
				if !errors.As(err, &uie) {
					t.Fatalf("error %v is not *UnknownIntentError", err)
				}
				if uie.Text != tt.text {
					t.Errorf("Text = %q, want %q", uie.Text, tt.text)
				}
				if len(uie.Suggestions) == 0 {
					t.Fatal("no suggestions")
				}
				if tt.suggestion != "" && uie.Suggestions[0] != tt.suggestion {
					t.Errorf("first suggestion = %q, want %q (all: %q)", uie.Suggestions[0], tt.suggestion, uie.Suggestions)
				}
			case tt.invalid:
				if !errors.Is(err, collab.ErrInvalidIntent) {
					t.Fatalf("error %v does not wrap ErrInvalidIntent", err)
				}
			}
		})
	}
}

func TestSuggestionsUseKnownNodes(t *testing.T) {
	_, err := collab.ParseIntent("frobnicate", []string{"alpha", "beta", "gamma"})
	var uie *collab.UnknownIntentError
	if !errors.As(err, &uie) {
		t.Fatalf("error %v is not *UnknownIntentError", err)
	}
	joined := strings.Join(uie.Suggestions, "\n")
	for _, n := range []string{"alpha", "beta", "gamma"} {
		if !strings.Contains(joined, n) {
			t.Errorf("suggestions %q do not use node %s", uie.Suggestions, n)
		}
	}
	// Every suggestion with real node names parses.
	for _, s := range uie.Suggestions {
		if _, err := collab.ParseIntent(s, []string{"alpha", "beta", "gamma"}); err != nil && !strings.Contains(s, "<") {
			t.Errorf("suggestion %q does not parse: %v", s, err)
		}
	}
}

func TestIntentJSON(t *testing.T) {
	in := collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"path-loss","head":"PE-1","tail":"PE-3","via":["P-2"]}`
	if string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var got collab.Intent
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"kind":"reboot-everything"}`), &got); err == nil {
		t.Error("unknown kind accepted")
	}
}

func FuzzParseIntent(f *testing.F) {
	for _, s := range []string{
		"verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2",
		"check loss from PE-1 to PE-5 through P-2, P-4",
		"srv6 path PE-1 -> P-2 -> PE-3",
		"verify reachability between PE-1 and P-2",
		"can PE-1 reach PE-3", "ping PE-3 from P-2", "ping PE-5",
		"why is BGP neighbor 1.1.1.1 down on PE-1", "why is BGP neighbor fc00::1 down",
		"interface errors along the path from PE-1 to PE-3 via P-2",
		"show the collaboration domain", "list reports", "show report 74e8",
		"is PE-3 reachable from PE-1", "show report urn:x/report/a.b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		in, err := collab.ParseIntent(text, testNodes)
		if err != nil {
			return
		}
		s := in.String()
		again, err := collab.ParseIntent(s, testNodes)
		if err != nil {
			t.Fatalf("ParseIntent(%q) = %+v renders as %q, which fails: %v", text, in, s, err)
		}
		if !again.Equal(in) {
			t.Fatalf("ParseIntent(%q) = %+v renders as %q, which parses to %+v", text, in, s, again)
		}
	})
}

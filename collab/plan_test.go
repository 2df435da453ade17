package collab_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/collab"
)

// stepLine renders a step compactly for table comparisons.
func stepLine(s collab.Step) string {
	l := fmt.Sprintf("%d %s %s %s", s.Phase, s.Node, s.Method, s.Target)
	if len(s.Arguments) > 0 && string(s.Arguments) != "{}" {
		l += " " + string(s.Arguments)
	}
	if s.Undo {
		l += " undo"
	}
	if s.Local {
		l += " local"
	}
	return l
}

func TestBuildPlan(t *testing.T) {
	members := []string{"P-2", "PE-3", "P-4", "PE-5"}
	tests := []struct {
		name  string
		in    collab.Intent
		local string
		opts  collab.PlanOptions
		want  []string
		nodes []string
	}{
		{
			name:  "headline path loss",
			in:    collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}},
			local: "PE-1",
			nodes: []string{"PE-1", "P-2", "PE-3"},
			want: []string{
				"0 PE-1 tools/call clear-counters undo local",
				"0 P-2 tools/call clear-counters undo",
				`1 PE-1 tools/call ietf-srv6-ping {"head":"PE-1","sidList":["P-2","PE-3"],"tail":"PE-3","count":100} local`,
				`1 P-2 tools/call ietf-srv6-ping {"head":"P-2","sidList":["PE-3"],"tail":"PE-3","count":100}`,
				"2 PE-1 tools/call acl-counters local",
				"2 PE-1 tools/call interface-counters local",
				"2 PE-1 tools/call bfd-sessions local",
				"2 P-2 tools/call acl-counters",
				"2 P-2 tools/call interface-counters",
				"2 P-2 tools/call bfd-sessions",
				"2 PE-3 resources/read mcp://PE-3/ietf-interfaces:interfaces",
			},
		},
		{
			name:  "path loss from the local node, count override",
			in:    collab.Intent{Kind: collab.PathLoss, Tail: "PE-5", Via: []string{"P-4"}},
			local: "PE-1",
			opts:  collab.PlanOptions{Count: 20},
			nodes: []string{"PE-1", "P-4", "PE-5"},
			want: []string{
				"0 PE-1 tools/call clear-counters undo local",
				"0 P-4 tools/call clear-counters undo",
				`1 PE-1 tools/call ietf-srv6-ping {"head":"PE-1","sidList":["P-4","PE-5"],"tail":"PE-5","count":20} local`,
				`1 P-4 tools/call ietf-srv6-ping {"head":"P-4","sidList":["PE-5"],"tail":"PE-5","count":20}`,
				"2 PE-1 tools/call acl-counters local",
				"2 PE-1 tools/call interface-counters local",
				"2 PE-1 tools/call bfd-sessions local",
				"2 P-4 tools/call acl-counters",
				"2 P-4 tools/call interface-counters",
				"2 P-4 tools/call bfd-sessions",
				"2 PE-5 resources/read mcp://PE-5/ietf-interfaces:interfaces",
			},
		},
		{
			name:  "reachability planned on a third node",
			in:    collab.Intent{Kind: collab.Reachability, Head: "P-2", Tail: "PE-5"},
			local: "PE-1",
			opts:  collab.PlanOptions{Count: 5},
			nodes: []string{"P-2", "PE-5"},
			want: []string{
				"0 P-2 tools/call clear-counters undo",
				"0 PE-5 tools/call clear-counters undo",
				`1 P-2 tools/call ping {"destination":"PE-5","count":5}`,
				`1 PE-5 tools/call ping {"destination":"P-2","count":5}`,
				`1 P-2 tools/call traceroute {"destination":"PE-5"}`,
				`1 PE-5 tools/call traceroute {"destination":"P-2"}`,
				"2 P-2 tools/call interface-counters",
				"2 P-2 tools/call acl-counters",
				"2 PE-5 tools/call interface-counters",
				"2 PE-5 tools/call acl-counters",
			},
		},
		{
			name:  "bgp neighbour by address",
			in:    collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "10.0.0.3"},
			local: "PE-1",
			opts:  collab.PlanOptions{Addresses: map[string]string{"10.0.0.3": "PE-3"}},
			nodes: []string{"PE-1", "PE-3"},
			want: []string{
				"0 PE-1 tools/call bgp-neighbors local",
				"0 PE-1 tools/call bfd-sessions local",
				"0 PE-1 tools/call interface-counters local",
				"0 PE-1 tools/call acl-counters local",
				"0 PE-3 tools/call bgp-neighbors",
				"0 PE-3 tools/call bfd-sessions",
				"0 PE-3 tools/call interface-counters",
				"0 PE-3 tools/call acl-counters",
				`1 PE-1 tools/call ping {"destination":"10.0.0.3","count":10} local`,
			},
		},
		{
			name:  "bgp neighbour outside the domain",
			in:    collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "192.0.2.9", Node: "P-2"},
			local: "PE-1",
			nodes: []string{"P-2"},
			want: []string{
				"0 P-2 tools/call bgp-neighbors",
				"0 P-2 tools/call bfd-sessions",
				"0 P-2 tools/call interface-counters",
				"0 P-2 tools/call acl-counters",
				`1 P-2 tools/call ping {"destination":"192.0.2.9","count":10}`,
			},
		},
		{
			name:  "interface errors",
			in:    collab.Intent{Kind: collab.InterfaceErrors, Head: "P-2", Tail: "PE-3"},
			local: "PE-1",
			opts:  collab.PlanOptions{Count: 50},
			nodes: []string{"P-2", "PE-3"},
			want: []string{
				"0 P-2 tools/call clear-counters undo",
				"0 PE-3 tools/call clear-counters undo",
				`1 P-2 tools/call ping {"destination":"PE-3","count":50}`,
				"2 P-2 tools/call interface-counters",
				"2 PE-3 tools/call interface-counters",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := collab.BuildPlan(tt.in, tt.local, members, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			ids := map[string]bool{}
			for _, s := range p.Steps {
				got = append(got, stepLine(s))
				if ids[s.ID] {
					t.Errorf("duplicate step id %s", s.ID)
				}
				ids[s.ID] = true
				wantCap := s.Target
				switch {
				case s.Target == "interface-counters":
					wantCap = "ietf-interface-counters"
				case s.Method == "resources/read":
					wantCap = "ietf-interfaces"
				}
				if s.Capability != wantCap {
					t.Errorf("step %s capability %q, want %q", s.ID, s.Capability, wantCap)
				}
				if s.Purpose == "" {
					t.Errorf("step %s has no purpose", s.ID)
				}
				if s.Method == "tools/call" && !json.Valid(s.Arguments) {
					t.Errorf("step %s arguments %q not JSON", s.ID, s.Arguments)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.nodes, p.Nodes); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildPlanRefuses(t *testing.T) {
	members := []string{"P-2", "PE-3"}
	tests := []struct {
		name string
		in   collab.Intent
		want error
	}{
		{"non-member via", collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-9"}}, collab.ErrNotMember},
		{"non-member head", collab.Intent{Kind: collab.Reachability, Head: "X", Tail: "PE-3"}, collab.ErrNotMember},
		{"non-member bgp node", collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "P-2", Node: "Z"}, collab.ErrNotMember},
		{"no plan for show domain", collab.Intent{Kind: collab.ShowDomain}, collab.ErrNoPlan},
		{"invalid kind", collab.Intent{}, collab.ErrInvalidIntent},
		{"own neighbour", collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "10.1.1.1"}, collab.ErrInvalidIntent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := collab.BuildPlan(tt.in, "PE-1", members, collab.PlanOptions{Addresses: map[string]string{"10.1.1.1": "PE-1"}})
			if !errors.Is(err, tt.want) {
				t.Fatalf("BuildPlan error %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "collab: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	_, err := collab.BuildPlan(collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "P-9"}, "PE-1", members, collab.PlanOptions{})
	if err == nil || !strings.Contains(err.Error(), "P-9") {
		t.Errorf("error %v does not name the non-member", err)
	}
}

func TestPlanPhasesAndUndo(t *testing.T) {
	p, err := collab.BuildPlan(collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}, "PE-1", []string{"P-2", "PE-3"}, collab.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ph := p.Phases()
	if len(ph) != 3 || len(ph[0]) != 2 || len(ph[1]) != 2 {
		t.Fatalf("phases %v", ph)
	}
	clear := ph[0][1]
	u, err := collab.UndoStep(clear, json.RawMessage(`{"content":[{"type":"text","text":"ok"}],"structuredContent":{"node":"P-2","undo":"b-17","interfaces":[],"acls":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.Node != "P-2" || u.Target != "restore-counters" || string(u.Arguments) != `{"undo":"b-17"}` {
		t.Errorf("undo step %+v", u)
	}
	if _, err := collab.UndoStep(clear, json.RawMessage(`{"structuredContent":{"node":"P-2"}}`)); err == nil {
		t.Error("undo without id accepted")
	}
	if _, err := collab.UndoStep(ph[1][0], json.RawMessage(`{"undo":"x"}`)); err == nil {
		t.Error("undo of a probe accepted")
	}
}

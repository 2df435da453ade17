package collab_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// toolResult wraps structured content the way the device registry returns it.
func toolResult(structured string) json.RawMessage {
	b, err := json.Marshal(mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent("summary")}, StructuredContent: json.RawMessage(structured)})
	if err != nil {
		panic(err)
	}
	return b
}

func resourceResult(uri, text string) json.RawMessage {
	b, err := json.Marshal(mcp.ReadResourceResult{Contents: []mcp.ResourceContents{{URI: uri, MimeType: "application/yang-data+json", Text: text}}})
	if err != nil {
		panic(err)
	}
	return b
}

func probeJSON(node string, loss float64, errText string) string {
	sent := 100
	recv := 100 - int(loss+0.5)
	r := map[string]any{"node": node, "sent": sent, "received": recv, "lossPercent": loss, "rttMinMs": 0.2, "rttAvgMs": 0.4, "rttMaxMs": 1.1}
	if errText != "" {
		r["error"] = errText
	}
	b, _ := json.Marshal(r)
	return string(b)
}

const healthyIfaces = `[{"name":"lo","type":"iana-if-type:softwareLoopback","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}},
 {"name":"eth1","type":"iana-if-type:ethernetCsmacd","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z","inUnicastPkts":1000,"outUnicastPkts":1000}}]`

const tailRFC7951 = `{"ietf-interfaces:interfaces":{"interface":[
 {"name":"eth1","type":"iana-if-type:ethernetCsmacd","enabled":true,"oper-status":"up",
  "statistics":{"discontinuity-time":"2025-10-30T14:00:00Z","in-octets":"123456","in-unicast-pkts":"1000","in-errors":"0","in-discards":"0","out-octets":"1","out-unicast-pkts":"1000","out-errors":"0","out-discards":"0"}}]}}`

// scenario builds observations for every step of a plan: healthy defaults,
// overridden per "node/target" key, with some nodes untrusted.
type scenario struct {
	results   map[string]string // "node/target" → structured content
	errs      map[string]string // "node/target" → call error
	toolErrs  map[string]string // "node/target" → tool result with isError
	untrusted map[string]string // node → reason
}

func (sc scenario) observe(p collab.Plan) []collab.Observation {
	var obs []collab.Observation
	for _, s := range p.Steps {
		o := collab.Observation{Step: s, Ref: "ev:" + s.ID}
		key := s.Node + "/" + s.Target
		if s.Method == "resources/read" {
			key = s.Node + "/interfaces"
		}
		if r, ok := sc.untrusted[s.Node]; ok {
			o.Untrusted, o.Ref = r, ""
			obs = append(obs, o)
			continue
		}
		if e, ok := sc.errs[key]; ok {
			o.Err, o.Ref = e, ""
			obs = append(obs, o)
			continue
		}
		if e, ok := sc.toolErrs[key]; ok {
			b, _ := json.Marshal(mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent(e)}, IsError: true})
			o.Result = b
			obs = append(obs, o)
			continue
		}
		body, ok := sc.results[key]
		if !ok {
			switch s.Target {
			case "clear-counters":
				body = fmt.Sprintf(`{"node":%q,"undo":"u-%s","interfaces":["eth1"],"acls":[]}`, s.Node, s.Node)
			case "ietf-srv6-ping", "ping":
				body = probeJSON(s.Node, 0, "")
			case "traceroute":
				body = `{"node":"x","destination":"y","reached":true,"hops":[{"ttl":1,"node":"y"}]}`
			case "interface-counters":
				body = fmt.Sprintf(`{"node":%q,"interfaces":%s}`, s.Node, healthyIfaces)
			case "acl-counters":
				body = fmt.Sprintf(`{"node":%q,"acls":[{"name":"2001","interface":"eth1","direction":"egress","rules":[{"id":"10","action":"deny","match":"udp dport 9","enabled":true,"matchedPackets":0},{"id":"20","action":"permit","enabled":true,"matchedPackets":900}]}]}`, s.Node)
			case "bfd-sessions":
				body = fmt.Sprintf(`{"node":%q,"sessions":[]}`, s.Node)
			case "bgp-neighbors":
				body = fmt.Sprintf(`{"node":%q,"neighbors":[]}`, s.Node)
			default:
				body = tailRFC7951
			}
		}
		if s.Method == "resources/read" {
			o.Result = resourceResult(s.Target, body)
		} else {
			o.Result = toolResult(body)
		}
		obs = append(obs, o)
	}
	return obs
}

func aclDrop(node, acl, dir string, matched int) string {
	return fmt.Sprintf(`{"node":%q,"acls":[{"name":%q,"interface":"eth1","direction":%q,"rules":[{"id":"10","action":"deny","match":"ip dscp 46","enabled":true,"matchedPackets":%d,"matchedBytes":%d},{"id":"20","action":"permit","enabled":true,"matchedPackets":1000}]}]}`,
		node, acl, dir, matched, matched*128)
}

func TestCorrelate(t *testing.T) {
	three := collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}
	five := collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-5", Via: []string{"P-2", "PE-3", "P-4"}}
	bgp := collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "PE-3"}
	tests := []struct {
		name     string
		in       collab.Intent
		sc       scenario
		want     report.Hypothesis // the top hypothesis; Summary checked by wantSays
		wantSays []string          // substrings of the top summary
	}{
		{
			name: "headline: egress ACL on the head",
			in:   three,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping": probeJSON("PE-1", 3.2, ""),
				"PE-1/acl-counters":   aclDrop("PE-1", "2001", "egress", 32),
			}},
			want: report.Hypothesis{Location: "PE-1", Suspect: "egress ACL 2001 rule 10", Confidence: 0.9, Rule: "acl-drop",
				EvidenceRefs: []string{"ev:1/PE-1/ietf-srv6-ping", "ev:1/P-2/ietf-srv6-ping", "ev:2/PE-1/acl-counters"}},
			wantSays: []string{"PE-1 egress ACL 2001 drops 3.2 % towards P-2"},
		},
		{
			name: "loss on the second hop, no counters explain it",
			in:   three,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping": probeJSON("PE-1", 2.5, ""),
				"P-2/ietf-srv6-ping":  probeJSON("P-2", 2.5, ""),
			}},
			want: report.Hypothesis{Location: "P-2->PE-3", Suspect: "link P-2->PE-3 or PE-3 ingress", Confidence: 0.6, Rule: "loss-localisation",
				EvidenceRefs: []string{"ev:1/P-2/ietf-srv6-ping"}},
			wantSays: []string{"2.5 %", "P-2"},
		},
		{
			name: "ACL on the mid-point drops towards the tail",
			in:   three,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping": probeJSON("PE-1", 5, ""),
				"P-2/ietf-srv6-ping":  probeJSON("P-2", 5, ""),
				"P-2/acl-counters":    aclDrop("P-2", "acl-core", "egress", 5),
				"PE-1/acl-counters":   aclDrop("PE-1", "2001", "egress", 0),
			}},
			want: report.Hypothesis{Location: "P-2", Suspect: "egress ACL acl-core rule 10", Confidence: 0.9, Rule: "acl-drop",
				EvidenceRefs: []string{"ev:1/P-2/ietf-srv6-ping", "ev:2/P-2/acl-counters"}},
			wantSays: []string{"P-2 egress ACL acl-core drops 5.0 % towards PE-3"},
		},
		{
			name: "link down between head and mid-point",
			in:   three,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping":     probeJSON("PE-1", 100, ""),
				"PE-1/interface-counters": `{"node":"PE-1","interfaces":[{"name":"eth-P-2","enabled":true,"operUp":false,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}},{"name":"eth-CE","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}}]}`,
				"PE-1/bfd-sessions":       `{"node":"PE-1","sessions":[{"peer":"fc00:12::2","node":"P-2","interface":"eth-P-2","localState":"Down","remoteState":"Down","diagnostic":"neighbor signaled session down"}]}`,
			}},
			want: report.Hypothesis{Location: "PE-1->P-2", Suspect: "interface PE-1 eth-P-2", Confidence: 0.9, Rule: "link-down",
				EvidenceRefs: []string{"ev:1/PE-1/ietf-srv6-ping", "ev:1/P-2/ietf-srv6-ping", "ev:2/PE-1/interface-counters", "ev:2/PE-1/bfd-sessions"}},
			wantSays: []string{"link PE-1-P-2 down"},
		},
		{
			// On a real kernel a node whose link towards the tail is down
			// sends nothing: no route to the first segment. That is a
			// tool error, never a loss figure.
			name: "link down behind the mid-point, mid-point cannot send",
			in:   three,
			sc: scenario{toolErrs: map[string]string{
				"P-2/ietf-srv6-ping": "srv6-ping from P-2 to fc00:0:3::1: no probe sent: no route to first segment fc00:0:3::1",
			}, results: map[string]string{
				"PE-1/ietf-srv6-ping":    probeJSON("PE-1", 100, ""),
				"P-2/interface-counters": `{"node":"P-2","interfaces":[{"name":"eth-PE-3","enabled":true,"operUp":false,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}},{"name":"eth-PE-1","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}}]}`,
			}},
			want: report.Hypothesis{Location: "P-2->PE-3", Suspect: "interface P-2 eth-PE-3", Confidence: 0.85, Rule: "link-down",
				EvidenceRefs: []string{"ev:1/PE-1/ietf-srv6-ping", "ev:2/P-2/interface-counters", "ev:1/P-2/ietf-srv6-ping"}},
			wantSays: []string{"link P-2-PE-3 down"},
		},
		{
			// An old-style result of 0 of 0 is no measurement either:
			// never 0 % loss, so never "no fault" on its strength.
			name: "a probe that sent nothing is missing data",
			in:   three,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping": `{"node":"PE-1","sent":0,"received":0,"lossPercent":0,"error":"no route to first segment fc00:0:2::1"}`,
				"P-2/ietf-srv6-ping":  probeJSON("P-2", 0, ""),
			}},
			want:     report.Hypothesis{Confidence: 0.2, Rule: "inconclusive"},
			wantSays: []string{"no route to first segment"},
		},
		{
			name: "missing SID on the tail",
			in:   three,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping": probeJSON("PE-1", 100, "SID fc00:0:3::100 not instantiated on PE-3"),
				"P-2/ietf-srv6-ping":  probeJSON("P-2", 100, "SID fc00:0:3::100 not instantiated on PE-3"),
			}},
			want: report.Hypothesis{Location: "PE-3", Suspect: "SID fc00:0:3::100", Confidence: 0.85, Rule: "missing-sid",
				EvidenceRefs: []string{"ev:1/PE-1/ietf-srv6-ping", "ev:1/P-2/ietf-srv6-ping"}},
			wantSays: []string{"missing SID fc00:0:3::100 on PE-3"},
		},
		{
			name: "missing SID reported as a call error",
			in:   three,
			sc: scenario{errs: map[string]string{
				"P-2/ietf-srv6-ping": "mcp: invalid params: device: unknown SID or node: SID fc00:0:3::100 on PE-3 (code -32602)",
			}, results: map[string]string{
				"PE-1/ietf-srv6-ping": probeJSON("PE-1", 100, "SID fc00:0:3::100 not instantiated on PE-3"),
			}},
			want: report.Hypothesis{Location: "PE-3", Suspect: "SID fc00:0:3::100", Confidence: 0.85, Rule: "missing-sid",
				// P-2's call failed: there is no evidence of it to cite.
				EvidenceRefs: []string{"ev:1/PE-1/ietf-srv6-ping"}},
			wantSays: []string{"missing SID fc00:0:3::100 on PE-3"},
		},
		{
			name: "five-node path, errors in the middle",
			in:   five,
			sc: scenario{results: map[string]string{
				"PE-1/ietf-srv6-ping":     probeJSON("PE-1", 4, ""),
				"P-2/ietf-srv6-ping":      probeJSON("P-2", 4, ""),
				"PE-3/ietf-srv6-ping":     probeJSON("PE-3", 4, ""),
				"P-4/ietf-srv6-ping":      probeJSON("P-4", 0, ""),
				"PE-3/interface-counters": `{"node":"PE-3","interfaces":[{"name":"eth-P-2","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}},{"name":"eth-P-4","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z","outErrors":4}}]}`,
			}},
			want: report.Hypothesis{Location: "PE-3->P-4", Suspect: "link PE-3->P-4 (PE-3 eth-P-4 out-errors/discards 4)", Confidence: 0.75, Rule: "interface-errors",
				EvidenceRefs: []string{"ev:1/PE-3/ietf-srv6-ping", "ev:1/P-4/ietf-srv6-ping", "ev:2/PE-3/interface-counters"}},
			wantSays: []string{"PE-3->P-4"},
		},
		{
			name: "mid-point untrusted lowers confidence and is named",
			in:   three,
			sc: scenario{untrusted: map[string]string{"P-2": "handshake timeout"}, results: map[string]string{
				"PE-1/ietf-srv6-ping": probeJSON("PE-1", 3.2, ""),
				"PE-1/acl-counters":   aclDrop("PE-1", "2001", "egress", 32),
			}},
			want: report.Hypothesis{Location: "PE-1", Suspect: "egress ACL 2001 rule 10", Confidence: 0.68, Rule: "acl-drop",
				EvidenceRefs: []string{"ev:1/PE-1/ietf-srv6-ping", "ev:2/PE-1/acl-counters"}},
			wantSays: []string{"PE-1 egress ACL 2001 drops 3.2 % towards P-2", "untrusted: P-2 (handshake timeout)"},
		},
		{
			name: "healthy network",
			in:   three,
			sc:   scenario{},
			want: report.Hypothesis{Confidence: 0.7, Rule: "no-fault-found"},
			wantSays: []string{"no fault found", "loss 0.0 % PE-1->PE-3", "loss 0.0 % P-2->PE-3",
				"interfaces on PE-1, P-2, PE-3", "ACLs on PE-1, P-2"},
		},
		{
			name:     "everything downstream untrusted and no loss: inconclusive",
			in:       three,
			sc:       scenario{untrusted: map[string]string{"P-2": "certificate thumbprint mismatch", "PE-3": "timeout"}},
			want:     report.Hypothesis{Confidence: 0.2, Rule: "inconclusive"},
			wantSays: []string{"inconclusive: P-2 (certificate thumbprint mismatch), PE-3 (timeout) untrusted"},
		},
		{
			name: "reachability: one-way ACL on the far end",
			in:   collab.Intent{Kind: collab.Reachability, Head: "P-2", Tail: "PE-5"},
			sc: scenario{results: map[string]string{
				"P-2/ping":          probeJSON("P-2", 12, ""),
				"PE-5/acl-counters": aclDrop("PE-5", "edge-in", "ingress", 12),
			}},
			want: report.Hypothesis{Location: "PE-5", Suspect: "ingress ACL edge-in rule 10", Confidence: 0.85, Rule: "acl-drop",
				EvidenceRefs: []string{"ev:1/P-2/ping", "ev:2/PE-5/acl-counters"}},
			wantSays: []string{"PE-5 ingress ACL edge-in drops 12.0 % from P-2"},
		},
		{
			name: "interface errors without loss",
			in:   collab.Intent{Kind: collab.InterfaceErrors, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}},
			sc: scenario{results: map[string]string{
				"P-2/interface-counters": `{"node":"P-2","interfaces":[{"name":"to-pe-1","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z","inErrors":17}},{"name":"to-pe-3","enabled":true,"operUp":true,"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}}]}`,
			}},
			want: report.Hypothesis{Location: "PE-1->P-2", Suspect: "link PE-1->P-2 (P-2 to-pe-1 in-errors/discards 17)", Confidence: 0.6, Rule: "interface-errors",
				EvidenceRefs: []string{"ev:2/P-2/interface-counters"}},
			wantSays: []string{"interface errors on link PE-1->P-2"},
		},
		{
			name: "bgp neighbour outside the domain",
			in:   collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "192.0.2.7"},
			sc: scenario{results: map[string]string{
				"PE-1/bgp-neighbors": `{"node":"PE-1","neighbors":[{"address":"192.0.2.7","peerAs":64999,"state":"Active","lastError":"connection refused"}]}`,
			}},
			want: report.Hypothesis{Location: "PE-1", Suspect: "BGP neighbor 192.0.2.7", Confidence: 0.4, Rule: "one-sided-session",
				EvidenceRefs: []string{"ev:0/PE-1/bgp-neighbors"}},
			wantSays: []string{"BGP neighbor 192.0.2.7 on PE-1 is Active"},
		},
		{
			name: "one-sided BGP session",
			in:   bgp,
			sc: scenario{results: map[string]string{
				"PE-1/bgp-neighbors": `{"node":"PE-1","neighbors":[{"address":"10.0.0.3","node":"PE-3","localAs":65000,"peerAs":65000,"state":"Idle","lastError":"hold timer expired"}]}`,
				"PE-3/bgp-neighbors": `{"node":"PE-3","neighbors":[{"address":"10.0.0.1","node":"PE-1","localAs":65000,"peerAs":65000,"state":"Established","uptimeSeconds":3600}]}`,
			}},
			want: report.Hypothesis{Location: "PE-1", Suspect: "BGP session towards PE-3", Confidence: 0.8, Rule: "one-sided-session",
				EvidenceRefs: []string{"ev:0/PE-1/bgp-neighbors", "ev:0/PE-3/bgp-neighbors"}},
			wantSays: []string{"one-sided BGP session on PE-1 towards PE-3: PE-1 shows Idle (hold timer expired), PE-3 shows Established"},
		},
		{
			name: "one-sided BFD session found by address",
			in:   bgp,
			sc: scenario{results: map[string]string{
				"PE-1/bfd-sessions": `{"node":"PE-1","sessions":[{"peer":"10.0.0.3","localState":"Up","remoteState":"Up"}]}`,
				"PE-3/bfd-sessions": `{"node":"PE-3","sessions":[{"peer":"10.0.0.1","localState":"Down","remoteState":"Up","diagnostic":"control detection time expired"}]}`,
			}},
			want: report.Hypothesis{Location: "PE-3", Suspect: "BFD session towards PE-1", Confidence: 0.8, Rule: "one-sided-session",
				EvidenceRefs: []string{"ev:0/PE-3/bfd-sessions", "ev:0/PE-1/bfd-sessions"}},
			wantSays: []string{"one-sided BFD session on PE-3 towards PE-1"},
		},
		{
			name: "BGP down on both ends with the link down",
			in:   bgp,
			sc: scenario{results: map[string]string{
				"PE-1/bgp-neighbors":      `{"node":"PE-1","neighbors":[{"address":"10.0.0.3","node":"PE-3","state":"Active"}]}`,
				"PE-3/bgp-neighbors":      `{"node":"PE-3","neighbors":[{"address":"10.0.0.1","node":"PE-1","state":"Active"}]}`,
				"PE-1/interface-counters": `{"node":"PE-1","interfaces":[{"name":"eth1","enabled":true,"operUp":false,"addresses":["10.0.13.1/30"],"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}}]}`,
				"PE-3/interface-counters": `{"node":"PE-3","interfaces":[{"name":"eth3","enabled":true,"operUp":false,"addresses":["10.0.13.2/30"],"statistics":{"discontinuityTime":"2025-10-30T14:00:00Z"}}]}`,
				"PE-1/ping":               probeJSON("PE-1", 100, ""),
			}},
			want: report.Hypothesis{Location: "PE-1->PE-3", Suspect: "interface PE-1 eth1, PE-3 eth3", Confidence: 0.85, Rule: "link-down",
				EvidenceRefs: []string{"ev:1/PE-1/ping", "ev:0/PE-1/interface-counters", "ev:0/PE-3/interface-counters"}},
			wantSays: []string{"link PE-1-PE-3 down"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := collab.BuildPlan(tt.in, "PE-1", []string{"P-2", "PE-3", "P-4", "PE-5"},
				collab.PlanOptions{Addresses: map[string]string{"10.0.0.1": "PE-1", "10.0.0.3": "PE-3"}})
			if err != nil {
				t.Fatal(err)
			}
			hs := collab.Correlate(p, tt.sc.observe(p))
			if len(hs) == 0 {
				t.Fatal("no hypotheses")
			}
			for i := 1; i < len(hs); i++ {
				if hs[i].Confidence > hs[i-1].Confidence {
					t.Errorf("hypotheses not ranked: %v", hs)
				}
			}
			got := hs[0]
			for _, s := range tt.wantSays {
				if !strings.Contains(got.Summary, s) {
					t.Errorf("summary %q does not say %q", got.Summary, s)
				}
			}
			got.Summary = ""
			if tt.want.EvidenceRefs == nil {
				got.EvidenceRefs = nil
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("top hypothesis (-want +got):\n%s\nall: %+v", diff, hs)
			}
		})
	}
}

func TestCorrelateNoObservations(t *testing.T) {
	p, err := collab.BuildPlan(collab.Intent{Kind: collab.Reachability, Head: "PE-1", Tail: "PE-3"}, "PE-1", []string{"PE-3"}, collab.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hs := collab.Correlate(p, nil)
	if len(hs) != 1 || hs[0].Rule != "inconclusive" {
		t.Fatalf("Correlate(no observations) = %+v, want one inconclusive hypothesis", hs)
	}
}

func TestCorrelateGarbageResults(t *testing.T) {
	p, err := collab.BuildPlan(collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}, "PE-1", []string{"P-2", "PE-3"}, collab.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var obs []collab.Observation
	for i, s := range p.Steps {
		obs = append(obs, collab.Observation{Step: s, Result: json.RawMessage([]string{`null`, `"x"`, `{"structuredContent":[1,2]}`, `{"isError":true,"content":[{"type":"text","text":"boom"}]}`, `{]`}[i%5])})
	}
	hs := collab.Correlate(p, obs)
	if len(hs) == 0 {
		t.Fatal("no hypotheses")
	}
}

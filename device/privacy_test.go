package device_test

import (
	"encoding/json"
	"testing"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/google/go-cmp/cmp"
)

func TestRedactJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		red  []device.Redacted
	}{
		{"nothing to redact", `{"node":"P-2","lossPercent":3}`, `{"node":"P-2","lossPercent":3}`, nil},
		{"not JSON", `ping: 3/3`, `ping: 3/3`, nil},
		{"yang interface", `{"ietf-interfaces:interfaces":{"interface":[{"name":"eth1","phys-address":"02:00:00:00:00:01"}]}}`,
			`{"ietf-interfaces:interfaces":{"interface":[{"name":"eth1"}]}}`,
			[]device.Redacted{{Pointer: "/ietf-interfaces:interfaces/interface/0/phys-address", Action: "removed", Level: 3}}},
		{"tool interface", `{"interfaces":[{"name":"eth1","physAddress":"02:00:00:00:00:01","addresses":["10.0.12.1/30","fc00:12::1/64","x"]}]}`,
			`{"interfaces":[{"addresses":["10.0.12.0/30","fc00:12::/64","redacted"],"name":"eth1"}]}`,
			[]device.Redacted{
				{Pointer: "/interfaces/0/addresses/0", Action: "host-bits-zeroed", Level: 3},
				{Pointer: "/interfaces/0/addresses/1", Action: "host-bits-zeroed", Level: 3},
				{Pointer: "/interfaces/0/addresses/2", Action: "host-bits-zeroed", Level: 3},
				{Pointer: "/interfaces/0/physAddress", Action: "removed", Level: 3},
			}},
		{"ietf-ip entry", `{"ietf-ip:ipv6":{"address":[{"ip":"fc00:12::1","prefix-length":64}]},"a/b":{"ip":"keep"}}`,
			`{"a/b":{"ip":"keep"},"ietf-ip:ipv6":{"address":[{"ip":"fc00:12::","prefix-length":64}]}}`,
			[]device.Redacted{{Pointer: "/ietf-ip:ipv6/address/0/ip", Action: "host-bits-zeroed", Level: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, red, err := device.RedactJSON([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.red, red); diff != "" {
				t.Errorf("redactions (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzRedactJSON(f *testing.F) {
	f.Add([]byte(`{"interfaces":[{"physAddress":"02:00:00:00:00:01","addresses":["10.0.12.1/30"]}]}`))
	f.Add([]byte(`{"x":{"ip":"10.1.1.1","prefix-length":"99"}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, red, err := device.RedactJSON(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(red) == 0 {
			return
		}
		// Redaction is idempotent apart from already-zeroed addresses.
		again, _, err := device.RedactJSON(out)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if json.Unmarshal(out, &a) != nil || json.Unmarshal(again, &b) != nil {
			t.Fatal("redacted output is not JSON")
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Fatalf("second redaction changed the document:\n%s", diff)
		}
	})
}

func TestInventoryDigest(t *testing.T) {
	a := mcp.Tool{Name: "ping", InputSchema: json.RawMessage(`{"type":"object"}`)}
	b := mcp.Tool{Name: "acl-list", InputSchema: json.RawMessage(`{"type":"object"}`)}
	d1, err := device.InventoryDigest([]mcp.Tool{a, b})
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := device.InventoryDigest([]mcp.Tool{b, a})
	a.Description = "changed"
	d3, _ := device.InventoryDigest([]mcp.Tool{b, a})
	if d1 != d2 || d1 == d3 {
		t.Errorf("digests %s %s %s: want order-independent and change-sensitive", d1, d2, d3)
	}
}

func BenchmarkRedactJSON(b *testing.B) {
	doc := []byte(`{"ietf-interfaces:interfaces":{"interface":[{"name":"eth1","phys-address":"02:00:00:00:00:01","statistics":{"in-octets":"1"}},{"name":"eth2","phys-address":"02:00:00:00:00:02"}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := device.RedactJSON(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRedactResults: the result-level wrappers redact a copy, list every
// redaction in _meta (with the content's URI for resources), recompute a
// redacted content's id and leave plain text and unredacted results alone.
func TestRedactResults(t *testing.T) {
	doc := `{"interfaces":[{"name":"eth1","addresses":["10.0.12.1/30"]}]}`
	tool := &mcp.CallToolResult{StructuredContent: json.RawMessage(doc), Meta: map[string]any{"k": "v"}}
	rt, err := device.RedactToolResult(tool)
	if err != nil {
		t.Fatal(err)
	}
	if string(tool.StructuredContent) != doc || len(tool.Meta) != 1 {
		t.Error("the tool result given was changed")
	}
	if want := `{"interfaces":[{"addresses":["10.0.12.0/30"],"name":"eth1"}]}`; string(rt.StructuredContent) != want {
		t.Errorf("redacted tool result %s, want %s", rt.StructuredContent, want)
	}
	if red, _ := rt.Meta[device.MetaRedacted].([]device.Redacted); len(red) != 1 || rt.Meta["k"] != "v" {
		t.Errorf("tool result _meta %v", rt.Meta)
	}
	clean := &mcp.CallToolResult{StructuredContent: json.RawMessage(`{"loss":0.03}`)}
	if got, err := device.RedactToolResult(clean); err != nil || got != clean {
		t.Errorf("result without customer data: %p, %v; want it returned as is", got, err)
	}

	uri := "mcp://PE-1/ietf-interfaces:interfaces"
	res := &mcp.ReadResourceResult{Contents: []mcp.ResourceContents{
		{URI: uri, MimeType: "application/yang-data+json", Text: doc, ContentID: device.ContentID([]byte(doc))},
		{URI: uri + "/note", MimeType: "text/plain", Text: "10.0.12.1/30"},
	}}
	rr, err := device.RedactResource(res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Contents[0].Text != doc {
		t.Error("the resource given was changed")
	}
	c := rr.Contents[0]
	if c.Text == doc || c.ContentID != device.ContentID([]byte(c.Text)) {
		t.Errorf("redacted contents %q with id %q", c.Text, c.ContentID)
	}
	if rr.Contents[1].Text != "10.0.12.1/30" {
		t.Error("plain text contents were changed")
	}
	red, _ := rr.Meta[device.MetaRedacted].([]device.Redacted)
	if len(red) != 1 || red[0].URI != uri {
		t.Errorf("resource redactions %+v, want one on %s", red, uri)
	}
}

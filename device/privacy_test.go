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

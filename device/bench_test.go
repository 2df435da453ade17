package device_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/d2dmesh/d2d/device"
)

// BenchmarkCallTool measures the registry's own overhead (lookup, schema
// validation, decoding, result encoding) on a cheap tool.
func BenchmarkCallTool(b *testing.B) {
	r := newRegistry(b, triangle(b), "PE-1", device.RegistryOptions{})
	req := device.ToolRequest{Name: "bgp-neighbors", Arguments: json.RawMessage(`{"neighbor":"PE-3"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.CallTool(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallSRv6Ping(b *testing.B) {
	r := newRegistry(b, triangle(b), "PE-1", device.RegistryOptions{})
	req := device.ToolRequest{Name: "ietf-srv6-ping", Arguments: json.RawMessage(`{"sidList":["P-2","PE-3"],"count":100}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.CallTool(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadInterfaces(b *testing.B) {
	r := newRegistry(b, triangle(b), "PE-1", device.RegistryOptions{})
	uri := device.InterfacesURI("PE-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadResource(context.Background(), uri); err != nil {
			b.Fatal(err)
		}
	}
}

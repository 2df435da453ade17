package collab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/d2dmesh/d2d/internal/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkHandshake measures QUIC+TLS 1.3 mutual authentication plus
// initialize on loopback.
func BenchmarkHandshake(b *testing.B) {
	pki := newPKI(b)
	a, _ := node(b, pki, "PE-1")
	srv, _ := node(b, pki, "P-2")
	p := peerOf(srv)
	b.ReportAllocs()
	for b.Loop() {
		s, err := a.dial(context.Background(), p, []string{"ietf-ping"}, false)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkSignedCall measures signed and verified tools/call round trips
// on one session, from parallel callers.
func BenchmarkSignedCall(b *testing.B) {
	pki := newPKI(b)
	a, _ := node(b, pki, "PE-1")
	srv, _ := node(b, pki, "P-2")
	s, err := a.Session(context.Background(), peerOf(srv), []string{"ietf-ping"})
	if err != nil {
		b.Fatal(err)
	}
	args := json.RawMessage(`{"sidList":["P-2","PE-3"],"count":100}`)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.CallTool(context.Background(), "echo", args, CallOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkFanOut measures one fan-out round to n peers with sessions
// already established.
func BenchmarkFanOut(b *testing.B) {
	pki := newPKI(b)
	a, _ := node(b, pki, "PE-1")
	var peers []Peer
	for i := range 100 {
		e, _ := node(b, pki, fmt.Sprintf("R-%d", i))
		peers = append(peers, peerOf(e))
	}
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			calls := make([]Call, n)
			for i := range calls {
				calls[i] = Call{Peer: peers[i], Method: mcp.MethodToolsCall, Target: "echo",
					Arguments: json.RawMessage(`{"count":100}`), Capabilities: []string{"ietf-ping"}}
			}
			for _, o := range a.FanOut(context.Background(), calls) { // warm-up: sessions
				if o.Err != nil {
					b.Fatal(o.Err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, o := range a.FanOut(context.Background(), calls) {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
		})
	}
}

// BenchmarkSDKStreamableCall is the reference: the official MCP Go SDK
// doing unsigned tools/call over streamable HTTP on loopback, with the
// same parallelism as BenchmarkSignedCall.
func BenchmarkSDKStreamableCall(b *testing.B) {
	server := sdk.NewServer(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
	type in struct {
		Count int `json:"count"`
	}
	sdk.AddTool(server, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, v in) (*sdk.CallToolResult, in, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "echo"}}}, v, nil
	})
	hs := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return server }, nil))
	defer hs.Close()
	client := sdk.NewClient(&sdk.Implementation{Name: "bench-client", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: hs.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	args := map[string]any{"sidList": []string{"P-2", "PE-3"}, "count": 100}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

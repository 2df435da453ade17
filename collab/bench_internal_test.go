package collab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/d2dmesh/d2d/signing"
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
// already established, all endpoints in this process.
//
// What the target ("fan-out to 100 peers ≤ 3× the latency of one peer")
// means is that the caller adds little per extra peer: on a real mesh
// every callee has its own CPU. Here the 100 callees share the machine's
// cores with the caller, so ns/op for n peers is bounded below by n times
// the whole round trip's CPU time (caller and callee) over the core
// count: cpu-ns/op (the process's CPU time per round) shows that bound.
// BenchmarkFanOutRemoteCallees separates the caller's share.
func BenchmarkFanOut(b *testing.B) {
	pki := newPKI(b)
	a, _ := node(b, pki, "PE-1")
	var peers []Peer
	for i := range fanOutPeers {
		e, _ := node(b, pki, fmt.Sprintf("R-%d", i))
		peers = append(peers, peerOf(e))
	}
	benchFanOut(b, a, peers, nil)
}

// BenchmarkFanOutRemoteCallees is BenchmarkFanOut with the callees in a
// child process (TestFanOutCalleeFarm), so that the two sides' CPU times
// can be told apart: caller-cpu-ns/op is this process's, callee-cpu-ns/op
// the child's. The callees do all their work as before; ns/op still has
// them on the same cores. The caller's CPU time per extra peer is what
// fan-out latency grows by when each peer has its own CPU.
func BenchmarkFanOutRemoteCallees(b *testing.B) {
	pki := newPKI(b)
	peers, calleeCPU := startCalleeFarm(b, pki)
	a, _ := node(b, pki, "PE-1")
	benchFanOut(b, a, peers, calleeCPU)
}

// BenchmarkFanOutCryptoFloor measures the part of a fan-out round to n
// peers that no transport or encoding work can remove: each of n callees
// signs its result (one ed25519 signature, with its own key), and the
// caller checks all n in one batch, as FanOut does. Nothing else runs.
// cpu-ns/op is that floor of CPU time; when the n callees and the caller
// share the machine, as in BenchmarkFanOut, a round cannot take less than
// cpu-ns/op over the number of cores.
func BenchmarkFanOutCryptoFloor(b *testing.B) {
	pki := newPKI(b)
	verifier := signing.NewVerifier(pki.trust, signing.VerifierOptions{})
	result := json.RawMessage(`{"content":[{"type":"text","text":"100 sent, 100 received"}],"isError":false}`)
	h, err := signing.HashArgs(json.RawMessage(`{"count":100}`))
	if err != nil {
		b.Fatal(err)
	}
	var signers []*signing.Signer
	for i := range fanOutPeers {
		name := fmt.Sprintf("R-%d", i)
		signers = append(signers, testConfig(b, pki, pki.issue(b, name, signing.IssueOptions{}), nil).Signer)
	}
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			checks := make([]signing.ResultCheck, n)
			b.ReportAllocs()
			cpu0 := testenv.ProcessCPU()
			for b.Loop() {
				for i := range checks {
					want := signing.Binding{Method: mcp.MethodToolsCall, Target: "echo", ArgsHash: h, SessionID: fmt.Sprintf("s-%d", i)}
					env, err := signers[i].SignResult(result, want)
					if err != nil {
						b.Fatal(err)
					}
					checks[i] = signing.ResultCheck{Result: result, Want: want, Envelope: env}
				}
				_, errs := verifier.VerifyResults(checks)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64((testenv.ProcessCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// fanOutPeers is the largest fan-out measured.
const fanOutPeers = 100

func benchFanOut(b *testing.B, a *Endpoint, peers []Peer, calleeCPU func() time.Duration) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			calls := make([]Call, n)
			for i := range calls {
				calls[i] = Call{Peer: peers[i], Method: mcp.MethodToolsCall, Target: "echo",
					Arguments: json.RawMessage(`{"count":100}`), Capabilities: []string{"ietf-ping"}}
			}
			// Warm-up: sessions, ten handshakes at a time with room to
			// spare, for a machine shared with other work.
			for i := 0; i < n; i += 10 {
				warm := slices.Clone(calls[i:min(i+10, n)])
				for j := range warm {
					warm[j].Timeout = 30 * time.Second
				}
				for _, o := range a.FanOut(context.Background(), warm) {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
			b.ReportAllocs()
			var callee0 time.Duration
			if calleeCPU != nil {
				callee0 = calleeCPU()
			}
			cpu0 := testenv.ProcessCPU()
			b.ResetTimer()
			for b.Loop() {
				for _, o := range a.FanOut(context.Background(), calls) {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
			b.StopTimer()
			perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
			if calleeCPU == nil {
				b.ReportMetric(perOp(testenv.ProcessCPU()-cpu0), "cpu-ns/op")
				return
			}
			b.ReportMetric(perOp(testenv.ProcessCPU()-cpu0), "caller-cpu-ns/op")
			b.ReportMetric(perOp(calleeCPU()-callee0), "callee-cpu-ns/op")
		})
	}
}

// calleeFarmEnv, set to a directory holding a saved CA, makes
// TestFanOutCalleeFarm serve fanOutPeers endpoints of that CA's domain.
const calleeFarmEnv = "D2D_FANOUT_CALLEE_FARM"

// startCalleeFarm starts this test binary as TestFanOutCalleeFarm in a
// child process and returns its peers, and a function asking it for its
// CPU time so far.
func startCalleeFarm(b *testing.B, pki *testPKI) ([]Peer, func() time.Duration) {
	dir := b.TempDir()
	if err := pki.ca.Save(dir); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanOutCalleeFarm$", "-test.count=1")
	cmd.Env = append(os.Environ(), calleeFarmEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the farm's end of input: it shuts down
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	next := func(prefix string) []string {
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) > 0 && f[0] == prefix {
				return f[1:]
			}
			if strings.HasPrefix(lines.Text(), "farm-") {
				continue
			}
		}
		b.Fatalf("callee farm: no %q line: %v", prefix, lines.Err())
		return nil
	}
	var peers []Peer
	for range fanOutPeers {
		f := next("farm-peer")
		if len(f) != 3 {
			b.Fatalf("callee farm: bad peer line %q", f)
		}
		p := Peer{Name: f[0]}
		if p.Addr, err = netip.ParseAddrPort(f[1]); err != nil {
			b.Fatal(err)
		}
		if err := p.Thumbprint.UnmarshalText([]byte(f[2])); err != nil {
			b.Fatal(err)
		}
		peers = append(peers, p)
	}
	cpu := func() time.Duration {
		if _, err := fmt.Fprintln(stdin, "cpu"); err != nil {
			b.Fatal(err)
		}
		f := next("farm-cpu")
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return time.Duration(ns)
	}
	return peers, cpu
}

// TestFanOutCalleeFarm is the child process of
// BenchmarkFanOutRemoteCallees, not a test: it serves fanOutPeers
// endpoints, prints one "farm-peer <name> <addr> <thumbprint>" line each,
// answers every input line with "farm-cpu <ns>" (its CPU time so far),
// and returns at the end of its input.
func TestFanOutCalleeFarm(t *testing.T) {
	dir := os.Getenv(calleeFarmEnv)
	if dir == "" {
		t.Skip("helper process of BenchmarkFanOutRemoteCallees; runs only when started by it")
	}
	ca, err := signing.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	pki := &testPKI{ca: ca, trust: signing.NewTrust(ca.Cert)}
	for i := range fanOutPeers {
		e, _ := node(t, pki, fmt.Sprintf("R-%d", i))
		p := peerOf(e)
		fmt.Printf("farm-peer %s %s %s\n", p.Name, p.Addr, p.Thumbprint)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Printf("farm-cpu %d\n", testenv.ProcessCPU().Nanoseconds())
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

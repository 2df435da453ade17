package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/d2dmesh/d2d/signing"
	"github.com/d2dmesh/d2d/simulate"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// execEnv makes the test binary act as the d2d binary: the MCP tests run
// `d2d mcp` as a child process, as an LLM host would.
const execEnv = "D2D_TEST_EXEC_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// d2dCommand returns `d2d args…` as a command running this test binary.
func d2dCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), execEnv+"=1")
	return cmd
}

// sdkSession connects the official MCP Go SDK client through transport.
func sdkSession(t *testing.T, ctx context.Context, tr sdk.Transport) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "d2d-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func textOf(r *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// exerciseEndpoint runs the LLM host's view of node PE-1 of the headline
// domain: tools, a probe, a redacted resource, a refused mutating tool,
// and, when intent is set, the headline intent and its report.
func exerciseEndpoint(t *testing.T, ctx context.Context, cs *sdk.ClientSession, intent bool) {
	t.Helper()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	for _, n := range []string{"ping", "ietf-srv6-ping", "interface-counters", "acl-rule-set", "d2d-intent"} {
		if !names[n] {
			t.Errorf("tools/list lacks %s", n)
		}
	}

	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "ping", Arguments: map[string]any{"destination": "PE-3", "count": 3}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || !strings.Contains(textOf(res), "ping from PE-1 to PE-3: 3/3 received") {
		t.Errorf("ping result: %s", textOf(res))
	}

	rr, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "mcp://PE-1/ietf-interfaces:interfaces"})
	if err != nil {
		t.Fatal(err)
	}
	doc := rr.Contents[0].Text
	if !strings.Contains(doc, `"ietf-interfaces:interfaces"`) || strings.Contains(doc, "phys-address") {
		t.Errorf("interfaces document not redacted: %s", doc)
	}
	if _, ok := rr.Meta["d2d/redacted"]; !ok {
		t.Errorf("redacted document without _meta d2d/redacted: %v", rr.Meta)
	}

	res, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "acl-rule-set", Arguments: map[string]any{"acl": "2001", "rule": "10", "enabled": false, "rollbackSeconds": 60}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(textOf(res), "d2d chat") {
		t.Errorf("mutating tool without consent: isError=%v %q", res.IsError, textOf(res))
	}

	if !intent {
		return
	}
	res, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "d2d-intent", Arguments: map[string]any{"intent": "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"}})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ReportID   string `json:"reportId"`
		ReportURI  string `json:"reportUri"`
		Hypothesis struct {
			Location, Suspect string
		} `json:"hypothesis"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil || res.IsError {
		t.Fatalf("d2d-intent: %v %s", err, textOf(res))
	}
	if out.Hypothesis.Location != "PE-1" || !strings.Contains(out.Hypothesis.Suspect, "2001") || out.ReportID == "" {
		t.Errorf("d2d-intent hypothesis %+v (%s)", out, textOf(res))
	}
	rr, err = cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: out.ReportURI})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rr.Contents[0].Text, `"id":"`+out.ReportID+`"`) {
		t.Errorf("report resource: %.300s", rr.Contents[0].Text)
	}
}

func TestMCPStdioDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := sdkSession(t, ctx, &sdk.CommandTransport{Command: d2dCommand(t, "mcp", "--demo")})
	exerciseEndpoint(t, ctx, cs, true)
}

func TestMCPStreamableHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := d2dCommand(t, "mcp", "--demo", "--http", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	url := ""
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), "streamable HTTP on "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatal("d2d mcp --http did not say where it listens")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cs := sdkSession(t, ctx, &sdk.StreamableClientTransport{Endpoint: url})
	exerciseEndpoint(t, ctx, cs, false)
}

// TestMCPAttach runs `d2d mcp --socket` against a running agent: the mode
// a device uses.
func TestMCPAttach(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Discovery: "static", ProbeCount: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	flt, _ := simulate.ParseFault(simulate.HeadlineFault)
	if _, err := d.Network.Inject(flt); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(d.Dir, "PE-1", "admin.sock")
	cs := sdkSession(t, ctx, &sdk.CommandTransport{Command: d2dCommand(t, "mcp", "--socket", sock)})
	exerciseEndpoint(t, ctx, cs, true)

	// Every request reached the agent's audit trail as the LLM host's.
	b, err := os.ReadFile(filepath.Join(d.Dir, "PE-1", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"llm-host"`) || !strings.Contains(string(b), `"mcp:`) || !strings.Contains(string(b), `"d2d/intent"`) {
		t.Errorf("audit trail has no llm-host session records:\n%.600s", b)
	}
}

// TestMCPInspector drives `d2d mcp --demo` with the MCP inspector's CLI,
// an MCP client written elsewhere (scripts/deps.sh installs it).
func TestMCPInspector(t *testing.T) {
	inspector, err := filepath.Abs("../../.cache/npm/node_modules/.bin/mcp-inspector")
	if err == nil {
		_, err = os.Stat(inspector)
	}
	if err != nil {
		msg := "MCP inspector not installed in .cache/npm: run scripts/deps.sh (make deps)"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	testenv.LookPath(t, "node", "nodejs")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"tools/list", []string{"--method", "tools/list"}, []string{`"name": "ping"`, `"name": "d2d-intent"`, `"d2d/privacy-level"`}},
		{"tools/call ping", []string{"--method", "tools/call", "--tool-name", "ping", "--tool-arg", "destination=PE-3", "count=3"},
			[]string{"ping from PE-1 to PE-3: 3/3 received", `"sent": 3`}},
		{"resources/read", []string{"--method", "resources/read", "--uri", "mcp://PE-1/ietf-interfaces:interfaces/interface=eth1"},
			[]string{`ietf-interfaces:interfaces`, `"d2d/redacted"`}},
		{"prompts/list", []string{"--method", "prompts/list"}, []string{"verify-srv6-path-loss"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--cli", "-e", execEnv + "=1", os.Args[0], "mcp", "--demo"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, inspector, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("mcp-inspector %s: %v\n%s", strings.Join(tt.args, " "), err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%.1500s", w, out)
				}
			}
		})
	}
}

func TestPKITokenCommand(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"pki", "init", "--dir", dir},
		{"pki", "issue", "--dir", dir, "--name", "ctl", "--role", "controller"},
		{"pki", "issue", "--dir", dir, "--name", "PE-1"},
	} {
		if _, stderr, code := runCmd(t, args...); code != 0 {
			t.Fatalf("%v: %s", args, stderr)
		}
	}
	out, stderr, code := runCmd(t, "pki", "token", "--dir", dir, "--issuer", "ctl", "--for", "PE-1", "--scope", "acl-list,privacy:3", "--ttl", "5m")
	if code != 0 {
		t.Fatalf("pki token: %s", stderr)
	}
	tok, err := signing.ParseToken([]byte(strings.TrimSpace(out)))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := signing.LoadTrust(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	holder, err := signing.ReadCertificateFile(filepath.Join(dir, "PE-1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.VerifyToken(tok, signing.ThumbprintOf(holder.Raw), time.Now()); err != nil {
		t.Fatalf("issued token does not verify: %v", err)
	}
	if got := strings.Join(tok.Scopes, ","); got != "acl-list,privacy:3" || tok.NotAfter.Sub(tok.NotBefore) != 5*time.Minute {
		t.Errorf("token scopes %s, lifetime %s", got, tok.NotAfter.Sub(tok.NotBefore))
	}
	// A device identity cannot issue tokens.
	if _, stderr, code := runCmd(t, "pki", "token", "--dir", dir, "--issuer", "PE-1", "--for", "PE-1", "--scope", "ping"); code == 0 || !strings.Contains(stderr, "not a domain controller") {
		t.Errorf("device-issued token: code %d, %s", code, stderr)
	}
}

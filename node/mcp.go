package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The LLM-host endpoint (d2d mcp): a standard MCP server, built on the
// official MCP Go SDK, that LLM hosts (desktop assistants, IDEs, the MCP
// inspector) reach over stdio or streamable HTTP. It serves:
//
//   - the node's tools, with their JSON Schemas, annotations and d2d _meta;
//   - the node's resources — interfaces (RFC 7951) and stored reports
//     urn:ietf:params:xml:ns:yang:ietf-mcp/report/<id> — listed afresh on
//     every resources/list, since reports come and go;
//   - the node's prompts;
//   - the tool "d2d-intent" {intent}, which runs a D2D intent through the
//     workflow and returns the structured hypothesis and the report id.
//
// LLM isolation (draft-zm-rtgwg-mcp-troubleshooting-01 §7.3): the LLM host
// talks only to this endpoint; it never holds a device certificate and
// never opens a D2D session. What it gets passes through the same registry
// as the chat shell, with three restrictions:
//
//   - no consent: a mutating tool answers with an error result telling the
//     operator to approve the change in `d2d chat` (draft 003 §7.1);
//   - privacy level 3 data is redacted (device.RedactJSON) unless the
//     endpoint was started with MCPOptions.CustomerData (draft 003 §7.5);
//   - every request is in the agent's audit trail, caller "llm-host".

// IntentToolName is the tool that runs a D2D intent.
const IntentToolName = "d2d-intent"

// MCPOptions configure NewMCPServer. The zero value works.
type MCPOptions struct {
	// CustomerData serves privacy level 3 data unredacted. If false, it is
	// redacted as for a peer without the "privacy:3" grant.
	CustomerData bool
	// IntentTimeout bounds one d2d-intent run. If zero, 2 minutes: a
	// workflow of three phases with 15 s calls and retries fits.
	IntentTimeout time.Duration
	// Version is reported in serverInfo. If empty, "dev".
	Version string
	// Logger receives the SDK's and the endpoint's logs. If nil, discarded.
	Logger *slog.Logger
}

func (o *MCPOptions) populate() {
	if o.IntentTimeout <= 0 {
		o.IntentTimeout = 2 * time.Minute
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("component", "mcp")
}

// ErrMCP wraps failures to build the LLM-host endpoint.
var ErrMCP = errors.New("node: mcp endpoint")

// mcpServer adapts an MCPSource to the SDK.
type mcpServer struct {
	src MCPSource
	opt MCPOptions
	srv *sdk.Server

	mu   sync.Mutex
	uris map[string]bool // resources currently registered with srv
}

// NewMCPServer builds the SDK server for src. Tools and prompts are read
// once (a device's tool set is fixed); resources on every list and read.
func NewMCPServer(ctx context.Context, src MCPSource, opt MCPOptions) (*sdk.Server, error) {
	opt.populate()
	m := &mcpServer{src: src, opt: opt, uris: map[string]bool{}}
	node := src.Node()
	m.srv = sdk.NewServer(&sdk.Implementation{Name: "d2d", Title: "d2d node " + node, Version: opt.Version}, &sdk.ServerOptions{
		Instructions: "Network troubleshooting tools of node " + node + " of a D2D collaboration domain. " +
			"Use d2d-intent for questions that span several devices (packet loss on a path, reachability, a BGP neighbour down); " +
			"it returns a structured hypothesis and a signed report. Changes to devices need the operator's consent in `d2d chat`.",
		Logger: opt.Logger,
		Capabilities: &sdk.ServerCapabilities{
			Tools:     &sdk.ToolCapabilities{},
			Resources: &sdk.ResourceCapabilities{ListChanged: true},
			Prompts:   &sdk.PromptCapabilities{},
		},
	})
	tools, err := src.ListTools(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: listing tools: %w", ErrMCP, err)
	}
	for _, t := range tools {
		st, err := toSDK[sdk.Tool](t)
		if err != nil {
			return nil, fmt.Errorf("%w: tool %s: %w", ErrMCP, t.Name, err)
		}
		mutating, _ := t.Meta[device.MetaMutating].(bool)
		m.srv.AddTool(st, m.toolHandler(t.Name, mutating))
	}
	m.srv.AddTool(&sdk.Tool{
		Name:  IntentToolName,
		Title: "Run a D2D troubleshooting intent",
		Description: "Run a troubleshooting intent across the devices of the domain, e.g. " +
			"\"verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2\", \"why is BGP neighbor P-2 down on PE-1\", " +
			"\"check reachability from PE-1 to PE-3\". Returns the fault hypothesis (location, suspect, confidence, evidence) " +
			"and the id and URI of the signed report.",
		InputSchema: json.RawMessage(`{"type":"object","additionalProperties":false,"required":["intent"],` +
			`"properties":{"intent":{"type":"string","minLength":1,"maxLength":2000,"description":"the intent in plain words"}}}`),
		Annotations: &sdk.ToolAnnotations{Title: "D2D intent", ReadOnlyHint: true, OpenWorldHint: ptr(true)},
	}, m.intent)
	prompts, err := src.ListPrompts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: listing prompts: %w", ErrMCP, err)
	}
	for _, p := range prompts {
		sp, err := toSDK[sdk.Prompt](p)
		if err != nil {
			return nil, fmt.Errorf("%w: prompt %s: %w", ErrMCP, p.Name, err)
		}
		m.srv.AddPrompt(sp, m.prompt)
	}
	// Templates describe the URI families for hosts that browse them.
	m.srv.AddResourceTemplate(&sdk.ResourceTemplate{
		Name: "report", Title: "Troubleshooting report", MIMEType: "application/json",
		URITemplate: report.URIPrefix + "{id}",
		Description: "A signed D2D troubleshooting report (creator, intent, hypothesis, evidence, signatures).",
	}, m.read)
	m.srv.AddResourceTemplate(&sdk.ResourceTemplate{
		Name: "interface", Title: "Interface of " + node, MIMEType: "application/yang-data+json",
		URITemplate: device.InterfacesURI(node) + "/interface={name}",
		Description: "One interface of the node, ietf-interfaces (RFC 8343) as RFC 7951 JSON.",
	}, m.read)
	m.srv.AddReceivingMiddleware(m.syncResources)
	return m.srv, nil
}

func ptr[T any](v T) *T { return &v }

// toSDK converts a d2d MCP type to the SDK's through JSON: both follow
// the MCP schema, so the wire form is the contract.
func toSDK[T any](v any) (*T, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// syncResources registers the source's current resources with the SDK
// server before it answers resources/list or resources/read.
func (m *mcpServer) syncResources(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if method == "resources/list" || method == "resources/read" {
			if err := m.refresh(ctx); err != nil {
				return nil, err
			}
		}
		return next(ctx, method, req)
	}
}

func (m *mcpServer) refresh(ctx context.Context) error {
	res, err := m.src.ListResources(ctx)
	if err != nil {
		return mcpError(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range res {
		seen[r.URI] = true
		if m.uris[r.URI] {
			continue
		}
		sr, err := toSDK[sdk.Resource](r)
		if err != nil {
			return mcpError(err)
		}
		m.srv.AddResource(sr, m.read)
		m.uris[r.URI] = true
	}
	var gone []string
	for u := range m.uris {
		if !seen[u] {
			gone = append(gone, u)
			delete(m.uris, u)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		m.srv.RemoveResources(gone...)
	}
	return nil
}

// mcpError maps a source error to a JSON-RPC error the SDK passes on.
func mcpError(err error) error {
	var me *mcp.Error
	if errors.As(err, &me) {
		return &jsonrpc.Error{Code: me.Code, Message: me.Message, Data: me.Data}
	}
	return err
}

func (m *mcpServer) toolHandler(name string, mutating bool) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		if mutating {
			// Draft 003 §7.1: consent comes from a person, never from the
			// model. The refusal is a tool error so the model relays it.
			return toolError(fmt.Sprintf("%s changes the device and needs the operator's consent: "+
				"ask the operator to run it from `d2d chat` on %s (for a proposed mitigation: `mitigate <report id>`), "+
				"where the change is shown, approved and signed", name, m.src.Node())), nil
		}
		r, err := m.src.CallTool(ctx, name, req.Params.Arguments)
		if err != nil {
			var me *mcp.Error
			if errors.As(err, &me) && me.Code == mcp.CodeConsentRequired {
				return toolError(me.Message + " — approve the change in `d2d chat`"), nil
			}
			return nil, mcpError(err)
		}
		if !m.opt.CustomerData {
			if r, err = device.RedactToolResult(r); err != nil {
				return nil, err
			}
		}
		return toSDK[sdk.CallToolResult](r)
	}
}

func toolError(msg string) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: msg}}}
}

func (m *mcpServer) read(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	uri := req.Params.URI
	r, err := m.src.ReadResource(ctx, uri)
	if err != nil {
		var me *mcp.Error
		if errors.As(err, &me) && me.Code == mcp.CodeResourceNotFound {
			return nil, sdk.ResourceNotFoundError(uri)
		}
		return nil, mcpError(err)
	}
	if !m.opt.CustomerData {
		if r, err = device.RedactResource(r); err != nil {
			return nil, err
		}
	}
	return toSDK[sdk.ReadResourceResult](r)
}

func (m *mcpServer) prompt(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	r, err := m.src.GetPrompt(ctx, req.Params.Name, req.Params.Arguments)
	if err != nil {
		return nil, mcpError(err)
	}
	return toSDK[sdk.GetPromptResult](r)
}

// intentOutput is d2d-intent's structured result.
type intentOutput struct {
	Intent       string              `json:"intent"`
	ReportID     string              `json:"reportId,omitempty"`
	ReportURI    string              `json:"reportUri,omitempty"`
	Hypothesis   *report.Hypothesis  `json:"hypothesis,omitempty"`
	Alternatives []report.Hypothesis `json:"alternatives,omitempty"`
	Untrusted    []report.Untrusted  `json:"untrusted,omitempty"`
	Stored       bool                `json:"stored"`
	Info         string              `json:"info,omitempty"`
	Mitigation   *Proposal           `json:"mitigation,omitempty"`
}

func (m *mcpServer) intent(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	var in struct {
		Intent string `json:"intent"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || strings.TrimSpace(in.Intent) == "" {
		return nil, &jsonrpc.Error{Code: mcp.CodeInvalidParams, Message: `d2d-intent: "intent" must be a non-empty string`}
	}
	ctx, cancel := context.WithTimeout(ctx, m.opt.IntentTimeout)
	defer cancel()
	tok := req.Params.GetProgressToken()
	var step float64
	events := func(e Event) {
		if tok == nil || req.Session == nil {
			return
		}
		step++
		msg := e.Message
		if msg == "" {
			msg = e.Step
		}
		_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: tok, Progress: step, Message: msg})
	}
	res, err := m.src.RunIntent(ctx, in.Intent, events)
	if err != nil {
		// A workflow that cannot run (unknown node, unparsable intent) is
		// the model's business: it should rephrase.
		return toolError(err.Error()), nil
	}
	out := intentOutput{Intent: res.Intent, Stored: res.Stored, Info: res.Info, Mitigation: res.Mitigation}
	var text strings.Builder
	if r := res.Report; r != nil {
		out.ReportID, out.ReportURI = r.ID, report.URIPrefix+r.ID
		out.Hypothesis, out.Alternatives = &r.Hypothesis, r.Alternatives
		out.Untrusted = r.Untrusted
		for _, h := range append([]report.Hypothesis{r.Hypothesis}, r.Alternatives...) {
			fmt.Fprintf(&text, "%s (location %s, suspect %s, confidence %.2f)\n", h.Summary, h.Location, h.Suspect, h.Confidence)
		}
		for _, u := range r.Untrusted {
			fmt.Fprintf(&text, "untrusted: %s (%s)\n", u.Node, u.Reason)
		}
		fmt.Fprintf(&text, "report: %s\n", out.ReportURI)
	} else if res.Info != "" {
		text.WriteString(res.Info)
	}
	if p := res.Mitigation; p != nil {
		fmt.Fprintf(&text, "proposed mitigation: %s on %s (%s); the operator approves it in `d2d chat` with `mitigate %s`\n", p.Tool, p.Node, p.Reason, p.Report)
	}
	sc, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if !m.opt.CustomerData {
		if red, list, err := device.RedactJSON(sc); err == nil && len(list) > 0 {
			sc = red
		}
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strings.TrimSpace(text.String())}}, StructuredContent: json.RawMessage(sc)}, nil
}

// ServeMCPStdio serves the endpoint on r/w (MCP stdio transport: one JSON
// object per line) until the client disconnects or ctx ends.
func ServeMCPStdio(ctx context.Context, srv *sdk.Server, r io.ReadCloser, w io.WriteCloser) error {
	err := srv.Run(ctx, &sdk.IOTransport{Reader: r, Writer: w})
	if err != nil && (errors.Is(err, io.EOF) || ctx.Err() != nil) {
		return nil
	}
	return err
}

// MCPHTTPHandler serves the endpoint over MCP streamable HTTP.
func MCPHTTPHandler(srv *sdk.Server, log *slog.Logger) http.Handler {
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{Logger: log})
}

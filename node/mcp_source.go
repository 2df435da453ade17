package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// MCPSource is what the LLM-host endpoint (d2d mcp) serves: the node's
// tools, resources and prompts and its troubleshooting workflow. Two
// implementations exist: Agent.MCPSource, in the agent's process, and
// DialMCPSource, which reaches a running agent over its admin socket.
type MCPSource interface {
	// Node names the node.
	Node() string
	ListTools(ctx context.Context) ([]mcp.Tool, error)
	// CallTool runs a tool without consent: mutating tools are refused
	// by the registry (draft 003 §7.1 — an LLM never consents).
	CallTool(ctx context.Context, name string, args json.RawMessage) (*mcp.CallToolResult, error)
	ListResources(ctx context.Context) ([]mcp.Resource, error)
	ReadResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error)
	ListPrompts(ctx context.Context) ([]mcp.Prompt, error)
	GetPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error)
	// RunIntent runs a D2D intent through the workflow.
	RunIntent(ctx context.Context, text string, events func(Event)) (*IntentResult, error)
	// Close releases the source.
	Close() error
}

// mcpCaller is the operator identity recorded for requests that arrive
// through d2d mcp: an LLM host, whoever started it.
const mcpCaller = "llm-host"

// MCPSource returns the agent as an MCPSource. Every request is written
// to the audit trail under a fresh "mcp:<random>" session id, with
// caller "llm-host" (draft 003 §7.4).
func (a *Agent) MCPSource() MCPSource {
	return &agentSource{a: a, session: "mcp:" + randomHex(8), caller: mcpCaller}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// agentSource serves MCP requests from the agent's own registry.
type agentSource struct {
	a       *Agent
	session string
	caller  string
}

func (s *agentSource) Node() string { return s.a.cfg.Node }
func (s *agentSource) Close() error { return nil }

func (s *agentSource) audit(method, target string, err error) {
	e := report.AuditEntry{Session: s.session, Peer: s.caller, Direction: "in", Method: method, Target: target, Err: err}
	if _, aerr := s.a.audit.Append(e); aerr != nil {
		s.a.log.Error("audit trail", "err", aerr)
	}
}

func (s *agentSource) ListTools(context.Context) ([]mcp.Tool, error) {
	s.audit(mcp.MethodToolsList, "", nil)
	return s.a.registry.ListTools(device.AllowAll{}), nil
}

func (s *agentSource) CallTool(ctx context.Context, name string, args json.RawMessage) (*mcp.CallToolResult, error) {
	// No Consent field: a mutating tool fails with CodeConsentRequired.
	r, err := s.a.registry.CallTool(ctx, device.ToolRequest{Name: name, Arguments: args, Caller: s.caller})
	s.audit(mcp.MethodToolsCall, name, err)
	return r, err
}

func (s *agentSource) ListResources(context.Context) ([]mcp.Resource, error) {
	s.audit(mcp.MethodResourcesList, "", nil)
	return s.a.registry.ListResources(device.AllowAll{}), nil
}

func (s *agentSource) ReadResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error) {
	r, err := s.a.registry.ReadResource(ctx, uri)
	s.audit(mcp.MethodResourcesRead, uri, err)
	return r, err
}

func (s *agentSource) ListPrompts(context.Context) ([]mcp.Prompt, error) {
	s.audit(mcp.MethodPromptsList, "", nil)
	return s.a.registry.ListPrompts(device.AllowAll{}), nil
}

func (s *agentSource) GetPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	r, err := s.a.registry.GetPrompt(ctx, name, args)
	s.audit(mcp.MethodPromptsGet, name, err)
	return r, err
}

func (s *agentSource) RunIntent(ctx context.Context, text string, events func(Event)) (*IntentResult, error) {
	r, err := s.a.RunIntent(ctx, Operator{User: s.caller, Role: mcpCaller}, text, events)
	s.audit(intentMethod, text, err)
	return r, err
}

// adminMCPRequest is the "mcp" op's payload on the admin socket: one MCP
// method with its params, answered by an Event whose MCP member holds the
// result.
type adminMCPRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// mcpShell is implemented by *Agent; the admin socket asks for it with a
// type assertion so that test shells need not implement it.
type mcpShell interface {
	mcpSourceFor(ctx context.Context) MCPSource
}

// mcpSessionKey carries an admin connection's audit session id.
type mcpSessionKey struct{}

// mcpSourceFor returns the source of one admin connection, whose audit
// session id handle put in ctx.
func (a *Agent) mcpSourceFor(ctx context.Context) MCPSource {
	id, _ := ctx.Value(mcpSessionKey{}).(string)
	if id == "" {
		id = "mcp:" + randomHex(8)
	}
	return &agentSource{a: a, session: id, caller: mcpCaller}
}

// doMCP serves the admin op "mcp" (d2d mcp attached to the agent). Each
// admin connection gets its own source, hence its own audit session id.
func (s *adminServer) doMCP(ctx context.Context, src MCPSource, req Request, send func(Event)) {
	fail := func(err error) {
		ev := Event{ID: req.ID, Kind: "error", Error: err.Error()}
		var me *mcp.Error
		if errors.As(err, &me) {
			ev.Code = me.Code
			ev.Error = me.Message
		}
		send(ev)
	}
	var r adminMCPRequest
	if len(req.MCP) == 0 || json.Unmarshal(req.MCP, &r) != nil {
		fail(errors.New("node: op mcp needs {method, params}"))
		return
	}
	var res any
	var err error
	switch r.Method {
	case mcp.MethodToolsList:
		res, err = src.ListTools(ctx)
	case mcp.MethodToolsCall:
		var p mcp.CallToolParams
		if err = json.Unmarshal(r.Params, &p); err == nil {
			res, err = src.CallTool(ctx, p.Name, p.Arguments)
		}
	case mcp.MethodResourcesList:
		res, err = src.ListResources(ctx)
	case mcp.MethodResourcesRead:
		var p mcp.ReadResourceParams
		if err = json.Unmarshal(r.Params, &p); err == nil {
			res, err = src.ReadResource(ctx, p.URI)
		}
	case mcp.MethodPromptsList:
		res, err = src.ListPrompts(ctx)
	case mcp.MethodPromptsGet:
		var p mcp.GetPromptParams
		if err = json.Unmarshal(r.Params, &p); err == nil {
			res, err = src.GetPrompt(ctx, p.Name, p.Arguments)
		}
	case intentMethod:
		// Runs as the LLM host, audited as such, with progress streamed
		// like the shell's intents.
		var p struct {
			Intent string `json:"intent"`
		}
		if err = json.Unmarshal(r.Params, &p); err == nil {
			var ir *IntentResult
			ir, err = src.RunIntent(ctx, p.Intent, func(e Event) {
				e.ID = req.ID
				send(e)
			})
			if err == nil {
				send(Event{ID: req.ID, Kind: "result", Result: ir})
				return
			}
		}
	default:
		err = fmt.Errorf("node: mcp method %q not served on the admin socket", r.Method)
	}
	if err != nil {
		fail(err)
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		fail(err)
		return
	}
	send(Event{ID: req.ID, Kind: "result", MCP: b})
}

// adminSource is an MCPSource over the agent's admin socket. Requests are
// serialised: the admin protocol runs one request per connection at a time.
type adminSource struct {
	node string
	c    net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	id   atomic.Int64
	once sync.Once
}

// DialMCPSource attaches to the agent listening on the admin socket path.
// The socket is mode 0600: only the agent's user (or root) gets in, and
// the agent records the caller as "llm-host" under that user.
func DialMCPSource(ctx context.Context, path string) (MCPSource, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("node: admin socket %s (is `d2d agent` running?): %w", path, err)
	}
	s := &adminSource{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	// Learn the node name from its inventory: every tool result names it,
	// but the resources list is cheaper to interpret.
	res, err := s.ListResources(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	for _, r := range res {
		if n, ok := strings.CutPrefix(r.URI, "mcp://"); ok {
			s.node, _, _ = strings.Cut(n, "/")
			break
		}
	}
	return s, nil
}

func (s *adminSource) Node() string { return s.node }

// Close closes the connection; a second call returns net.ErrClosed.
func (s *adminSource) Close() error {
	err := fmt.Errorf("node: admin source: %w", net.ErrClosed)
	s.once.Do(func() { err = s.c.Close() })
	return err
}

// do sends one request and reads events up to its result.
func (s *adminSource) do(ctx context.Context, req Request, events func(Event)) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.ID = s.id.Add(1)
	b, _ := json.Marshal(req)
	stop := context.AfterFunc(ctx, func() { s.c.Close() })
	defer stop()
	if _, err := s.c.Write(append(b, '\n')); err != nil {
		return Event{}, s.ioErr(ctx, err)
	}
	for {
		line, err := readLimitedLine(s.r, 64<<20)
		if err != nil {
			return Event{}, s.ioErr(ctx, err)
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return Event{}, fmt.Errorf("node: admin socket: bad event: %w", err)
		}
		if ev.ID != req.ID && ev.ID != 0 {
			continue
		}
		switch ev.Kind {
		case "result":
			return ev, nil
		case "error":
			if ev.Code != 0 {
				return ev, &mcp.Error{Code: ev.Code, Message: ev.Error}
			}
			return ev, errors.New(ev.Error)
		default:
			if events != nil {
				events(ev)
			}
		}
	}
}

func (s *adminSource) ioErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		// The connection was closed to abandon the request; the agent
		// cancels what it started when its shell goes away.
		return fmt.Errorf("node: admin socket: %w", context.Cause(ctx))
	}
	return fmt.Errorf("node: admin socket: %w", err)
}

func (s *adminSource) mcpCall(ctx context.Context, method string, params, out any) error {
	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	m, _ := json.Marshal(adminMCPRequest{Method: method, Params: p})
	ev, err := s.do(ctx, Request{Op: "mcp", MCP: m}, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(ev.MCP, out); err != nil {
		return fmt.Errorf("node: admin socket: %s result: %w", method, err)
	}
	return nil
}

func (s *adminSource) ListTools(ctx context.Context) ([]mcp.Tool, error) {
	var out []mcp.Tool
	return out, s.mcpCall(ctx, mcp.MethodToolsList, struct{}{}, &out)
}

func (s *adminSource) CallTool(ctx context.Context, name string, args json.RawMessage) (*mcp.CallToolResult, error) {
	var out mcp.CallToolResult
	if err := s.mcpCall(ctx, mcp.MethodToolsCall, mcp.CallToolParams{Name: name, Arguments: args}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *adminSource) ListResources(ctx context.Context) ([]mcp.Resource, error) {
	var out []mcp.Resource
	return out, s.mcpCall(ctx, mcp.MethodResourcesList, struct{}{}, &out)
}

func (s *adminSource) ReadResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error) {
	var out mcp.ReadResourceResult
	if err := s.mcpCall(ctx, mcp.MethodResourcesRead, mcp.ReadResourceParams{URI: uri}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *adminSource) ListPrompts(ctx context.Context) ([]mcp.Prompt, error) {
	var out []mcp.Prompt
	return out, s.mcpCall(ctx, mcp.MethodPromptsList, struct{}{}, &out)
}

func (s *adminSource) GetPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	var out mcp.GetPromptResult
	if err := s.mcpCall(ctx, mcp.MethodPromptsGet, mcp.GetPromptParams{Name: name, Arguments: args}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// intentMethod is the op "mcp" method that runs an intent.
const intentMethod = "d2d/intent"

func (s *adminSource) RunIntent(ctx context.Context, text string, events func(Event)) (*IntentResult, error) {
	p, _ := json.Marshal(map[string]string{"intent": text})
	m, _ := json.Marshal(adminMCPRequest{Method: intentMethod, Params: p})
	ev, err := s.do(ctx, Request{Op: "mcp", MCP: m}, events)
	if err != nil {
		return nil, err
	}
	if ev.Result == nil {
		return nil, errors.New("node: admin socket: intent answered without a result")
	}
	return ev.Result, nil
}

// peerRateLimit is the requests per second one peer may send to this
// agent: a troubleshooting run issues a few dozen calls per peer, a
// controller's bulk pull a few hundred reports; more than that from one
// certificate is a loop or an attack (draft 003 §7).
const peerRateLimit = 200

// inventory returns the tool inventory that sessions check peers
// against, pinned with this node's own tools: every device runs the same
// tool set, so a peer's same-named tool with another definition is
// shadowing (draft-yang-nmrg-mcp-nm-02 §4).
func (a *Agent) inventory() *collab.Inventory {
	inv := collab.NewInventory()
	if err := inv.PinTools(a.cfg.Node, a.registry.ListTools(device.AllowAll{})); err != nil {
		a.log.Warn("pinning own tools", "err", err)
	}
	return inv
}

// TokenFile is the capability token this agent presents to every peer in
// initialize, if present in the state directory (draft 003 §7.2): a
// controller issues it with `d2d pki token --for NODE --out
// STATE_DIR/token.json`. It is read at every session set-up, so a
// renewed token takes effect without a restart.
const TokenFile = "token.json"

// capabilityToken implements collab.Config.Tokens.
func (a *Agent) capabilityToken(string) json.RawMessage {
	b, err := os.ReadFile(filepath.Join(a.cfg.StateDir, TokenFile))
	if err != nil {
		return nil
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	return b
}

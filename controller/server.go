package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// provider is what `d2d controller serve` offers nodes: report-push and
// poll. It implements device.Provider so that collab.Endpoint serves,
// negotiates, signs and audits it like any device.
type provider struct{ c *Controller }

var _ device.Provider = (*provider)(nil)

var controllerTools = []mcp.Tool{
	{
		Name:        ToolPush,
		Title:       "Push a report",
		Description: "Hand the controller one signed report. It is verified against the domain CA and stored; the same content pushed twice is stored once.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"report":{"type":"object"}},"required":["report"]}`),
		Meta:        map[string]any{"d2d/capability": ToolPush, "d2d/mutating": false},
	},
	{
		Name:  ToolPoll,
		Title: "Poll a node on the caller's behalf",
		Description: "Run one tools/call or resources/read on a node the caller cannot reach and return the node's signed result verbatim " +
			"(draft-zm-rtgwg-mcp-troubleshooting §5.3.1 failure handling).",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"node":{"type":"string"},"method":{"enum":["tools/call","resources/read"]},` +
			`"target":{"type":"string"},"arguments":{"type":"object"},"capability":{"type":"string"},"addr":{"type":"string"}},"required":["node","method","target"]}`),
		Meta: map[string]any{"d2d/capability": ToolPoll, "d2d/mutating": false},
	},
}

func (p *provider) Node() string      { return p.c.cfg.Identity.Name }
func (p *provider) Offered() []string { return []string{ToolPoll, ToolPush} }

func (p *provider) Capability(method, target string) (string, bool) {
	if method == mcp.MethodToolsCall && (target == ToolPush || target == ToolPoll) {
		return target, true
	}
	return "", false
}

func (p *provider) ListTools(g device.Grant) []mcp.Tool {
	var out []mcp.Tool
	for _, t := range controllerTools {
		if g != nil && g.Allows(t.Name) {
			out = append(out, t)
		}
	}
	return out
}

func (p *provider) CallTool(ctx context.Context, req device.ToolRequest) (*mcp.CallToolResult, error) {
	var v any
	var err error
	switch req.Name {
	case ToolPush:
		v, err = p.c.receive(req.Caller, req.Arguments)
	case ToolPoll:
		v, err = p.c.poll(ctx, req.Caller, req.Arguments)
	default:
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown tool %q", req.Name)
	}
	if err != nil {
		var me *mcp.Error
		if errors.As(err, &me) {
			return nil, me
		}
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "%v", err)
	}
	sc, err := json.Marshal(v)
	if err != nil {
		return nil, mcp.Errorf(mcp.CodeInternalError, "%v", err)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent(summary(v))}, StructuredContent: sc}, nil
}

func summary(v any) string {
	switch r := v.(type) {
	case PushResult:
		return fmt.Sprintf("report %s: %s", r.ID, r.Outcome)
	case PollResult:
		return fmt.Sprintf("%s %s on %s relayed", r.Evidence.Method, r.Evidence.Target, r.Evidence.Node)
	}
	return ""
}

func (p *provider) ListResources(device.Grant) []mcp.Resource { return []mcp.Resource{} }

func (p *provider) ReadResource(_ context.Context, uri string) (*mcp.ReadResourceResult, error) {
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "unknown resource %q", uri)
}

func (p *provider) Subscribe(_ context.Context, uri string, _ func(string)) (func(), error) {
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "unknown resource %q", uri)
}

func (p *provider) ListPrompts(device.Grant) []mcp.Prompt { return []mcp.Prompt{} }

func (p *provider) GetPrompt(_ context.Context, name string, _ map[string]string) (*mcp.GetPromptResult, error) {
	return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown prompt %q", name)
}

// receive verifies and stores a pushed report. A node pushes only the
// reports it created: the creator's signature already proves origin, and
// the rule keeps one node from flooding the controller with another's.
func (c *Controller) receive(caller string, args json.RawMessage) (PushResult, error) {
	var a PushArgs
	if err := json.Unmarshal(args, &a); err != nil || len(a.Report) == 0 {
		return PushResult{}, mcp.Errorf(mcp.CodeInvalidParams, "report-push needs {\"report\": {…}}")
	}
	r, err := report.Decode(a.Report)
	if err != nil {
		return PushResult{}, c.refuse(caller, "", a.Report, err)
	}
	if r.Creator != caller {
		return PushResult{}, c.refuse(caller, r.ID, a.Report, fmt.Errorf("%w: created by %s, pushed by %s", report.ErrSignerMismatch, r.Creator, caller))
	}
	if err := c.verify(caller, r); err != nil {
		return PushResult{}, c.refuse(caller, r.ID, a.Report, err)
	}
	out, err := c.store.Add(r, Receipt{Via: "push", From: caller})
	if err != nil {
		return PushResult{}, mcp.Errorf(mcp.CodeInternalError, "storing report %s: %v", r.ID, err)
	}
	c.log.Info("report pushed", "from", caller, "report", r.ID, "outcome", out)
	return PushResult{ID: r.ID, Outcome: out}, nil
}

// poll runs one call on a node for caller and returns the node's signed
// result. The controller's session with the node is negotiated by the
// node's own policy for the controller role, and no consent is relayed,
// so a poll can never do more than the controller itself may: read-only
// tools and temporary counter baselines.
func (c *Controller) poll(ctx context.Context, caller string, args json.RawMessage) (PollResult, error) {
	var a PollArgs
	if err := json.Unmarshal(args, &a); err != nil {
		return PollResult{}, mcp.Errorf(mcp.CodeInvalidParams, "poll: %v", err)
	}
	if a.Method != mcp.MethodToolsCall && a.Method != mcp.MethodResourcesRead {
		return PollResult{}, mcp.Errorf(mcp.CodeInvalidParams, "poll: method %q (want tools/call or resources/read)", a.Method)
	}
	m, ok := c.member(a.Node)
	if !ok {
		ap, err := netip.ParseAddrPort(a.Addr)
		if err != nil {
			return PollResult{}, mcp.Errorf(mcp.CodeInvalidParams, "%v %q", ErrUnknownNode, a.Node)
		}
		// The name is still checked against the node's certificate.
		m = collab.Member{Name: a.Node, Peer: collab.Peer{Name: a.Node, Addr: ap}}
	}
	capability := a.Capability
	if capability == "" {
		capability = collab.CapabilityFor(a.Target)
	}
	c.log.Info("polling on behalf of a node", "for", caller, "node", a.Node, "method", a.Method, "target", a.Target)
	outs := c.ep.FanOut(ctx, []collab.Call{{Peer: m.Peer, Method: a.Method, Target: a.Target, Arguments: a.Arguments,
		Capabilities: []string{capability}, Timeout: c.cfg.CallTimeout}})
	o := outs[0]
	if o.Err != nil {
		return PollResult{}, mcp.Errorf(mcp.CodeInternalError, "poll %s on %s: %v", a.Target, a.Node, o.Err)
	}
	return PollResult{Evidence: *o.Evidence}, nil
}

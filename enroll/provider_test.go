package enroll_test

import (
	"context"
	"encoding/json"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
)

// echoProvider serves one tool, echo.
type echoProvider struct{ node string }

func (p *echoProvider) Node() string      { return p.node }
func (p *echoProvider) Offered() []string { return []string{"echo"} }
func (p *echoProvider) Capability(method, target string) (string, bool) {
	return "echo", method == mcp.MethodToolsCall && target == "echo"
}
func (p *echoProvider) ListTools(device.Grant) []mcp.Tool {
	return []mcp.Tool{{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)}}
}
func (p *echoProvider) CallTool(_ context.Context, req device.ToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent("echo from " + p.node + " to " + req.Caller)}}, nil
}
func (p *echoProvider) ListResources(device.Grant) []mcp.Resource { return []mcp.Resource{} }
func (p *echoProvider) ReadResource(context.Context, string) (*mcp.ReadResourceResult, error) {
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "none")
}
func (p *echoProvider) Subscribe(context.Context, string, func(string)) (func(), error) {
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "none")
}
func (p *echoProvider) ListPrompts(device.Grant) []mcp.Prompt { return []mcp.Prompt{} }
func (p *echoProvider) GetPrompt(context.Context, string, map[string]string) (*mcp.GetPromptResult, error) {
	return nil, mcp.Errorf(mcp.CodeInvalidParams, "none")
}

package mcp

import (
	"encoding/json"
	"fmt"
)

// Protocol revisions this implementation speaks. The first is preferred;
// an initialize that names another listed revision is answered with that
// revision, anything else with the preferred one (MCP lifecycle, "Version
// Negotiation").
var ProtocolVersions = []string{"2025-11-25", "2025-06-18"}

// LatestProtocolVersion is the revision offered by d2d clients.
const LatestProtocolVersion = "2025-11-25"

// Method names (MCP 2025-06-18 / 2025-11-25).
const (
	MethodInitialize         = "initialize"
	MethodDraftInitialize    = "mcp/initialize" // draft-zm-rtgwg-mcp-troubleshooting-01 §5.3.1 step 2
	NotifyInitialized        = "notifications/initialized"
	MethodPing               = "ping"
	MethodToolsList          = "tools/list"
	MethodToolsCall          = "tools/call"
	MethodResourcesList      = "resources/list"
	MethodResourcesRead      = "resources/read"
	MethodResourcesSubscribe = "resources/subscribe"
	MethodResourcesUnsub     = "resources/unsubscribe"
	MethodPromptsList        = "prompts/list"
	MethodPromptsGet         = "prompts/get"
	NotifyProgress           = "notifications/progress"
	NotifyCancelled          = "notifications/cancelled"
	NotifyResourcesUpdated   = "notifications/resources/updated"
)

// JSON-RPC 2.0 and MCP error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeResourceNotFound is MCP's code for an unknown resource URI.
	CodeResourceNotFound = -32002
	// d2d-specific codes live in the implementation-defined server error
	// range (-32000 to -32099) that JSON-RPC 2.0 reserves for servers.
	CodeNotGranted      = -32010 // capability outside the negotiated grant
	CodeNotInitialized  = -32011 // request before a successful initialize
	CodeConsentRequired = -32012 // mutating tool called without valid consent
	CodeRateLimited     = -32013 // per-peer rate limit exceeded
	CodeUnauthorized    = -32014 // token missing, expired, out of scope or on another channel
	CodeTooLarge        = -32015 // message over the configured size limit
)

// Error is a JSON-RPC error object with an MCP/d2d code.
type Error struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("mcp: %s (code %d)", e.Message, e.Code) }

// Errorf returns an *Error with the given code.
func Errorf(code int64, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Implementation names a client or server.
type Implementation struct {
	Name    string `json:"name"`
	Title   string `json:"title,omitempty"`
	Version string `json:"version"`
}

// D2DCapabilityKey is the key under capabilities.experimental that carries
// the D2D capability list (docs/ARCHITECTURE.md §3.2).
const D2DCapabilityKey = "d2d"

// D2DCapabilities is the value stored under capabilities.experimental["d2d"].
// In a request, Requested lists what the caller asks for; in a reply,
// Granted lists requested ∩ offered ∩ policy(peer) and Offered what the
// callee would offer anybody.
type D2DCapabilities struct {
	Requested []string `json:"requested,omitempty"`
	Granted   []string `json:"granted,omitempty"`
	Offered   []string `json:"offered,omitempty"`
	// Node is the sender's node name.
	Node string `json:"node,omitempty"`
	// Token is an optional capability token (controller-issued).
	Token json.RawMessage `json:"token,omitempty"`
}

// ClientCapabilities as sent in initialize.
type ClientCapabilities struct {
	Roots        *struct{}                  `json:"roots,omitempty"`
	Sampling     *struct{}                  `json:"sampling,omitempty"`
	Elicitation  *struct{}                  `json:"elicitation,omitempty"`
	Experimental map[string]json.RawMessage `json:"experimental,omitempty"`
}

// ServerCapabilities as returned by initialize.
type ServerCapabilities struct {
	Tools        *ListChanged               `json:"tools,omitempty"`
	Resources    *ResourcesCapability       `json:"resources,omitempty"`
	Prompts      *ListChanged               `json:"prompts,omitempty"`
	Logging      *struct{}                  `json:"logging,omitempty"`
	Experimental map[string]json.RawMessage `json:"experimental,omitempty"`
}

// ListChanged is the capability object for tools and prompts.
type ListChanged struct {
	ListChanged bool `json:"listChanged,omitempty"`
}

// ResourcesCapability is the capability object for resources.
type ResourcesCapability struct {
	Subscribe   bool `json:"subscribe,omitempty"`
	ListChanged bool `json:"listChanged,omitempty"`
}

// InitializeParams is the params object of initialize.
type InitializeParams struct {
	ProtocolVersion string             `json:"protocolVersion"`
	Capabilities    ClientCapabilities `json:"capabilities"`
	ClientInfo      Implementation     `json:"clientInfo"`
}

// DraftInitializeParams is the params object of the draft's mcp/initialize,
// whose capabilities are a plain list of capability names.
type DraftInitializeParams struct {
	ProtocolVersion string   `json:"protocolVersion"`
	Capabilities    []string `json:"capabilities"`
}

// InitializeResult is the result of initialize.
type InitializeResult struct {
	ProtocolVersion string             `json:"protocolVersion"`
	Capabilities    ServerCapabilities `json:"capabilities"`
	ServerInfo      Implementation     `json:"serverInfo"`
	Instructions    string             `json:"instructions,omitempty"`
	Meta            map[string]any     `json:"_meta,omitempty"`
}

// ToolAnnotations are MCP's behavioural hints for a tool.
type ToolAnnotations struct {
	Title           string `json:"title,omitempty"`
	ReadOnlyHint    bool   `json:"readOnlyHint,omitempty"`
	DestructiveHint *bool  `json:"destructiveHint,omitempty"`
	IdempotentHint  bool   `json:"idempotentHint,omitempty"`
	OpenWorldHint   *bool  `json:"openWorldHint,omitempty"`
}

// Tool describes one tool in tools/list.
type Tool struct {
	Name         string           `json:"name"`
	Title        string           `json:"title,omitempty"`
	Description  string           `json:"description,omitempty"`
	InputSchema  json.RawMessage  `json:"inputSchema"`
	OutputSchema json.RawMessage  `json:"outputSchema,omitempty"`
	Annotations  *ToolAnnotations `json:"annotations,omitempty"`
	Meta         map[string]any   `json:"_meta,omitempty"`
}

// Cursor-paginated list params.
type ListParams struct {
	Cursor string `json:"cursor,omitempty"`
}

// ListToolsResult is the result of tools/list.
type ListToolsResult struct {
	Tools      []Tool         `json:"tools"`
	NextCursor string         `json:"nextCursor,omitempty"`
	Meta       map[string]any `json:"_meta,omitempty"`
}

// RequestMeta is the _meta object of a request; ProgressToken asks the
// server for notifications/progress.
type RequestMeta struct {
	ProgressToken any `json:"progressToken,omitempty"`
	// Consent carries a signed consent object for a mutating tool
	// (draft 003 §7.1); its shape is defined by package device.
	Consent json.RawMessage `json:"d2d/consent,omitempty"`
	// Token carries a capability token (draft 003 §7.2).
	Token json.RawMessage `json:"d2d/token,omitempty"`
}

// CallToolParams is the params object of tools/call.
type CallToolParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Meta      *RequestMeta    `json:"_meta,omitempty"`
}

// Content is one content block of a tool result or prompt message.
type Content struct {
	Type     string `json:"type"` // "text", "image", "resource", ...
	Text     string `json:"text,omitempty"`
	MimeType string `json:"mimeType,omitempty"`
	Data     string `json:"data,omitempty"`
}

// TextContent returns a text content block.
func TextContent(s string) Content { return Content{Type: "text", Text: s} }

// CallToolResult is the result of tools/call. Signed results carry their
// signature envelope in Meta["d2d/signature"].
type CallToolResult struct {
	Content           []Content       `json:"content"`
	StructuredContent json.RawMessage `json:"structuredContent,omitempty"`
	IsError           bool            `json:"isError,omitempty"`
	Meta              map[string]any  `json:"_meta,omitempty"`
}

// SignatureMetaKey is the _meta key holding a result's signature envelope
// (docs/ARCHITECTURE.md §3.3).
const SignatureMetaKey = "d2d/signature"

// SignedArtifactMetaKey marks, in a resources/read result's _meta, content
// that carries its own signatures (a stored report): it is served
// verbatim, never redacted, since any change would break them.
const SignedArtifactMetaKey = "d2d/signed-artifact"

// Resource describes one resource in resources/list.
type Resource struct {
	URI         string         `json:"uri"`
	Name        string         `json:"name"`
	Title       string         `json:"title,omitempty"`
	Description string         `json:"description,omitempty"`
	MimeType    string         `json:"mimeType,omitempty"`
	Meta        map[string]any `json:"_meta,omitempty"`
}

// ListResourcesResult is the result of resources/list.
type ListResourcesResult struct {
	Resources  []Resource `json:"resources"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// ReadResourceParams is the params object of resources/read and
// resources/subscribe.
type ReadResourceParams struct {
	URI string `json:"uri"`
	// ContentID is the draft's "content-id" (ETag) of the copy the client
	// holds (draft 003 §3.1, Appendix A.2).
	ContentID string       `json:"content-id,omitempty"`
	Meta      *RequestMeta `json:"_meta,omitempty"`
}

// ResourceContents is one item of a resources/read result.
type ResourceContents struct {
	URI       string `json:"uri"`
	MimeType  string `json:"mimeType,omitempty"`
	Text      string `json:"text,omitempty"`
	Blob      string `json:"blob,omitempty"`
	ContentID string `json:"content-id,omitempty"`
}

// ReadResourceResult is the result of resources/read.
type ReadResourceResult struct {
	Contents []ResourceContents `json:"contents"`
	Meta     map[string]any     `json:"_meta,omitempty"`
}

// SubscribeResult is the result of resources/subscribe. MCP returns an
// empty object; the draft's Appendix A.2 adds a subscription id and the
// initial state, which d2d fills in as well.
type SubscribeResult struct {
	SubscriptionID string          `json:"subscription-id,omitempty"`
	Initial        json.RawMessage `json:"initial,omitempty"`
}

// ResourceUpdatedParams is the params of notifications/resources/updated.
type ResourceUpdatedParams struct {
	URI       string `json:"uri"`
	ContentID string `json:"content-id,omitempty"`
}

// PromptArgument describes one prompt placeholder.
type PromptArgument struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required,omitempty"`
}

// Prompt describes one prompt in prompts/list.
type Prompt struct {
	Name        string           `json:"name"`
	Title       string           `json:"title,omitempty"`
	Description string           `json:"description,omitempty"`
	Arguments   []PromptArgument `json:"arguments,omitempty"`
}

// ListPromptsResult is the result of prompts/list.
type ListPromptsResult struct {
	Prompts    []Prompt `json:"prompts"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// GetPromptParams is the params object of prompts/get.
type GetPromptParams struct {
	Name      string            `json:"name"`
	Arguments map[string]string `json:"arguments,omitempty"`
}

// PromptMessage is one message of a prompt.
type PromptMessage struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
}

// GetPromptResult is the result of prompts/get.
type GetPromptResult struct {
	Description string          `json:"description,omitempty"`
	Messages    []PromptMessage `json:"messages"`
}

// ProgressParams is the params of notifications/progress.
type ProgressParams struct {
	ProgressToken any     `json:"progressToken"`
	Progress      float64 `json:"progress"`
	Total         float64 `json:"total,omitempty"`
	Message       string  `json:"message,omitempty"`
}

// CancelledParams is the params of notifications/cancelled.
type CancelledParams struct {
	RequestID any    `json:"requestId"`
	Reason    string `json:"reason,omitempty"`
}

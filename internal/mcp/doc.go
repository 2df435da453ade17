// Package mcp holds the Model Context Protocol message types d2d speaks
// (MCP 2025-06-18 and 2025-11-25: lifecycle, tools, resources, prompts,
// progress, cancellation), the draft's mcp/initialize with a capability
// list (draft-zm-rtgwg-mcp-troubleshooting-01 §5.3.1 step 2), the
// capability-negotiation object carried in capabilities.experimental["d2d"],
// and the JSON-RPC and d2d error codes. Every package that reads or writes
// MCP messages uses these types, so there is one definition of the wire.
package mcp

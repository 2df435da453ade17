// Package node is the collaboration agent of draft-zm-rtgwg-mcp-
// troubleshooting-01 §5.2: on every device, one process that is at once
// the MCP server of the device and the MCP client of its neighbours.
//
// New wires an Agent from a Config (node.yaml, see Config for every
// default) and Options (what a file cannot name: the device backend, or
// identities and sockets made elsewhere): the device's identity and the
// domain CA, the tool registry in front of the backend, the D2D endpoint
// (package collab) with the neighbour-callable whitelist as its policy,
// the on-box report store and the signed audit trail (package report),
// discovery and membership (package discovery), and the troubleshooting
// workflow. Run keeps it in the domain; Close stops it and rolls back
// unconfirmed changes.
//
// The operator reaches the agent through a Unix admin socket (mode 0600)
// that speaks newline-delimited JSON requests and event streams; the
// operator's identity for consent objects comes from the socket's peer
// credentials, never from what the client says. Chat is the shell on the
// other side: line editing and history on a terminal, progress while
// probes run, the hypothesis and its evidence as tables, and consent
// prompts before any mitigation. The same socket carries `d2d mcp`
// (mcp.go), which serves the node to LLM hosts with the official MCP SDK.
//
// A consent object (device.Consent) is accepted only when it is signed by a
// certificate of the domain CA whose thumbprint is its key id, names this
// node, exactly this tool and these arguments, an operator, and is at most
// five minutes old.
package node

// Package device is the MCP face of one network element: the registry of
// its tools, resources and prompts (draft-zm-rtgwg-mcp-troubleshooting-01
// §3), built on a [Backend] that does the actual work (package simulate or
// the real kernel of package device/linux).
//
// # Tools
//
// Every tool has a JSON Schema for its input (validated before the tool
// runs; a violation is an *mcp.Error with code CodeInvalidParams naming the
// field), an output schema, MCP annotations, and three _meta entries:
// "d2d/mutating" (bool), "d2d/privacy-level" (1..3, draft §7.5) and
// "d2d/capability" (the capability name a peer must be granted).
//
//	tool                capability               kind
//	ietf-srv6-ping      ietf-srv6-ping           read-only probe, reports progress
//	ping                ping                     read-only probe, reports progress
//	traceroute          traceroute               read-only probe, reports progress
//	interface-counters  ietf-interface-counters  read-only, relative to a baseline
//	acl-list            acl-list                 read-only
//	acl-counters        acl-counters             read-only, relative to a baseline
//	bgp-neighbors       bgp-neighbors            read-only
//	bfd-sessions        bfd-sessions             read-only
//	clear-counters      clear-counters           temporary state (a baseline), undoable
//	restore-counters    restore-counters         removes a baseline
//	acl-rule-set        acl-rule-set             mutating: needs consent, auto rollback
//	change-confirm      change-confirm           confirms a pending change
//
// clear-counters never touches the device: it records the current counters
// as a baseline and later reads subtract it, so that the workflow can roll
// the "cleared counters" back (draft §5.3.1, Failure Handling) by removing
// the baseline with restore-counters.
//
// # Consent and change confirmation
//
// A mutating tool runs only with a [Consent] (draft §7.1) in
// ToolRequest.Consent whose tool, node, arguments and rollback timer match
// the call, whose timestamp is fresh, which has not been used before, and
// which the injected RegistryOptions.ConsentVerifier accepts (it checks the
// signature and the operator's role). Without a verifier every mutating
// call is refused. An accepted change is applied at once and armed with a
// rollback timer in the style of a commit-confirmed: unless change-confirm
// names it before the timer fires, the registry restores the previous
// state. Close rolls back every change that is still pending.
//
// # Resources
//
// The interfaces of the device are served as RFC 7951 JSON of
// ietf-interfaces (RFC 8343):
//
//	mcp://<node>/ietf-interfaces:interfaces
//	mcp://<node>/ietf-interfaces:interfaces/interface=<name>
//
// Both return the whole-tree form {"ietf-interfaces:interfaces":{"interface":[...]}}
// (the second with one entry), so each document validates on its own with
// yanglint. Only leaves of the module without features are produced:
// admin-status and if-index belong to the if-mib feature and are left out.
// 64-bit counters and speed are JSON strings (RFC 7951 §6.1), 32-bit
// counters (discards, errors) numbers. Every read
// carries a content-id (draft §3.1 E-tag): a hash of the document, so it
// changes exactly when the data changes. Subscribe polls the backend and
// reports a new content-id. Further resources (reports) are added with
// AddResourceProvider.
//
// # Prompts
//
// diagnose-bgp-down {{neighbor}}, verify-srv6-path-loss {{head}} {{via}}
// {{tail}} and interface-errors {{interface}}: troubleshooting workflows
// as templates (draft §3.3). Prompts need the capability "prompts".
package device

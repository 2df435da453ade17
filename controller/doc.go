// Package controller is the controller of a d2d domain: it pulls and
// receives the nodes' signed reports, verifies and archives them, polls
// devices for nodes that cannot reach a peer, and runs intents against
// devices directly (draft-zm-rtgwg-mcp-troubleshooting-01 §4, §5.3.1
// step 5 and Failure Handling; docs/ARCHITECTURE.md §2).
//
// The controller is a d2d endpoint like any node (collab.Endpoint, mutual
// TLS over QUIC, ALPN d2d/1) with a certificate of role "controller"
// (`d2d pki issue --name ctl --role controller`). Nodes grant that role,
// by default, the read-only tools, the report resources
// (CapReports, "ietf-mcp-report") and ToolMarkPulled.
//
// # Pull
//
// For each node: resources/list, keep the report URIs
// urn:ietf:params:xml:ns:yang:ietf-mcp/report/<id>; for each report the
// node does not mark pulled (or that the controller lacks):
//
//	resources/read  → result signed by the node, bound to this session
//	report.Decode   → strict, canonical
//	report.VerifyArchived against the domain CA (batch-verified evidence)
//	Store.Add       → archived version + receipt (with the read's signed
//	                  evidence), then the current copy
//	tools/call report-mark-pulled {id, sha256}
//
// A report is marked pulled only after it is stored durably, and only if
// the node still holds exactly the content read (the sha256): a version
// updated on the node in between stays unpulled. Storing identical
// content again is a no-op. So a pull may die at any instant (controller
// crash, dropped connection, node offline) and the next pull completes
// it without losing or duplicating a report. A report that fails
// verification is refused with the element that failed (a
// *RefusedError wrapping *report.VerifyError), kept under Dir/refused
// for inspection, and neither stored nor marked.
//
// # Push
//
// `d2d controller serve` listens (UDP 9515 by default) with a small
// device.Provider offering two tools to peers of role "device":
//
//	report-push {report}        verify and store one report of the caller
//	poll {node, method, target, arguments, capability, addr}
//
// A node whose Config.Controller is set pushes every report it stores or
// updates; the same verification and store apply. A push that fails
// leaves the report on the node, unpulled, for the next pull.
//
// # Versions
//
// A report gains actions after the operator's consent and is re-signed
// with the same id (report.Store.Update). The controller keeps every
// distinct verified version (Dir/store/versions/<id>/<sha256>.json, with
// receipts saying how and from whom each came) and serves the newest as
// current: the one with more actions, then the later last action. An
// older version that arrives late (a pull racing a push) is archived but
// does not replace the current one.
//
// # Poll (failure handling)
//
// A node that times out or fails to authenticate a peer asks the
// controller to run the call (collab.WorkflowConfig.Fallback). The
// controller calls the peer in its own session, negotiated by the peer's
// policy for the controller role, relays no consent (so nothing mutating
// can pass), and returns the peer's signed result verbatim. The signature
// binds the controller's session, so the requesting node checks the
// weaker binding documented at Client.Poll: signer = the peer (and its
// advertised thumbprint), exactly the requested method, target and
// arguments, a fresh timestamp and an unseen nonce. Such evidence carries
// Via "controller" in the report, and the plan step says why.
//
// # Controller-to-device
//
// Run plans and runs an intent like an agent (collab.Workflow) with the
// controller as the planning node and no device of its own: every step
// is a remote call, so the intent must name its head node.
package controller

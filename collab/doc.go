// Package collab is the session layer of the D2D mesh: MCP over mutual-TLS
// QUIC between collaboration agents (draft-zm-rtgwg-mcp-troubleshooting-01
// §5.3.1 steps 2–3, §6 and §7; docs/ARCHITECTURE.md §3.2 and §3.3), plus the
// troubleshooting workflow built on top of it.
//
// # Transport
//
// One UDP socket (default port 9514) carries a quic-go Transport used both
// to listen and to dial. TLS 1.3 only, ALPN "d2d/1", client certificates
// required and verified against the domain CA (crypto/tls with the CA
// pool, then signing.Trust.VerifyCert for the domain's own rules, which
// also yields the peer's node name and role). A client checks the server
// with Trust.VerifyCert, the expected node name and, when discovery
// advertised one, the certificate thumbprint; a mismatch aborts with
// ErrThumbprintMismatch. Because a TLS 1.3 client finishes its handshake
// before the server has judged the client's certificate, a Session exists
// only once the initialize reply has arrived. Each handshake presents the
// identity's current certificate, so a renewed one applies to new
// connections while open ones keep theirs; results signed after a
// renewal carry the new certificate, which the caller accepts as its
// session peer's when name, role and key are the handshake's. Role key
// usages are checked in both directions (signing.Trust.VerifyPeer), and
// Endpoint.CloseRevoked ends the sessions of peers a new revocation list
// names.
//
// # Framing
//
// Each QUIC bidirectional stream is one MCP session carrying JSON-RPC 2.0
// (sourcegraph/jsonrpc2) with the MCP stdio framing, one object per line:
//
//	{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{…}}\n
//	{"jsonrpc":"2.0","id":1,"result":{…,"_meta":{"d2d/signature":{…}}}}\n
//
// A line longer than Config.MaxMessageBytes is never buffered beyond that
// limit: the reader stops, answers with an id-null error (mcp.CodeTooLarge)
// and closes the connection, since the request id cannot be known.
//
// # Negotiation
//
// The caller lists the capabilities it wants in initialize
// capabilities.experimental["d2d"].requested (or in the draft's literal
// mcp/initialize as a plain list). The callee grants requested ∩ offered ∩
// Policy.Allowed(peer) and returns the grant, and a random 128-bit session
// id in _meta["d2d/session"]. A call outside the grant fails with
// mcp.CodeNotGranted before reaching the Provider; tools/list and
// resources/list show granted entries only. Prompts the Provider does not
// map to a capability are plain templates and are always listed.
//
// # Signed results
//
// Every tools/call and resources/read result is signed by the callee: the
// signed "result" is the result object without _meta, bound to {method,
// tool name or URI, SHA-256 of the canonical arguments, session id}. For
// tools/call the arguments are the call's "arguments"; for resources/read
// they are the request params without _meta ({"uri":…}). The envelope goes
// into _meta["d2d/signature"], without the signer's certificate: the
// caller takes that from the session's TLS handshake. The caller verifies
// against its own request binding and the session peer's certificate
// before returning evidence, which then carries the certificate.
// Local calls (Endpoint.Local) sign with the node's own key under a
// "local:<random>" session id.
//
// # Limits
//
// Defaults (Config): 1 MiB per message, 64 concurrent requests per session
// (more fail with mcp.CodeRateLimited), 4 streams per connection, 8
// connections per peer, 5 s handshake+initialize, 30 s idle, 10 s per call
// and per message write. A stream without initialize 5 s after it opened
// is closed, and so is a connection none of whose streams initialized;
// a peer at its connection limit has its longest-silent idle connection
// replaced by its new one instead of being refused. Every wait of a caller is bounded by its context
// or CallTimeout, so a slow, silent or hostile peer cannot hang it;
// cancelling a call sends notifications/cancelled, which cancels the
// Provider's context on the callee. A send that local netfilter refuses
// (EPERM, an egress ACL on the box itself) counts as a lost datagram, not
// as a dead session.
//
// # The troubleshooting workflow
//
// ParseIntent turns the operator's text into an Intent over the domain's
// node names (unknown text gets the closest known forms as suggestions,
// never a guess). BuildPlan turns it into phased Steps: counter baselines
// (temporary state, always undone), probes from every path node, then
// counters and resources. Workflow runs the phases — local steps against
// the node's own Provider, remote ones in one FanOut — verifies every
// result, and hands the Observations to Correlate, whose data-driven rules
// (loss localisation, ACL drop, interface errors, missing SID, link down,
// one-sided session) rank the hypotheses. The best one and the evidence go
// into a signed report (package report), stored and pushed. A proposed
// mitigation runs only through Workflow.Mitigate with a consent object the
// node signs for the authenticated operator (draft 003 §7.1); the device
// arms a rollback timer, the workflow re-probes, and Confirm or Rollback
// settle it, each step recorded in the re-signed report. An optional LLM
// may plan free text and phrase the summary; the structured hypothesis
// always comes from the rules.
package collab

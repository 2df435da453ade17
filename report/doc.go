// Package report is d2d's fault report: the model, its assembly from
// verified evidence, signing and offline verification, a crash-safe on-box
// store, rendering (text, JSON, SVG picture) and the hash-chained audit
// trail of every JSON-RPC exchange (draft-zm-rtgwg-mcp-troubleshooting-01
// §5.3.1 step 5 and §7.4; docs/ARCHITECTURE.md §3.4).
//
// # Report
//
// A report is one JSON object, served as the MCP resource
// urn:ietf:params:xml:ns:yang:ietf-mcp/report/<id>:
//
//	{
//	  "uri": "urn:ietf:params:xml:ns:yang:ietf-mcp/report/9f2c…",
//	  "id": "9f2c…",                      4–64 lower-case hex digits
//	  "creator": "PE-1",
//	  "created": "2025-10-30T14:23:42Z",  RFC 3339
//	  "intent": "verify packet loss …",
//	  "plan": [{node, method, target, arguments, evidence, status}],
//	  "hypothesis": {summary, location, suspect, confidence, evidenceRefs, rule},
//	  "alternatives": [hypothesis…],
//	  "evidence": [signed results verbatim, signing.Evidence],
//	  "untrusted": [{node, reason}],
//	  "actions": [{tool, node, arguments, consent, outcome, at, detail}],
//	  "certificates": {node: DER (base64)},   optional, for offline checks
//	  "signatures": {node: {keyId, alg, value, cert}}
//	}
//
// Hypothesis.Location names a node ("PE-1") or a directed link
// ("PE-1->P-2"); Suspect names the object on it ("egress ACL 2001").
//
// # Signatures
//
// The creator signs (ed25519) the RFC 8785 canonical form of the whole
// report with its own entry of "signatures" removed; entries of other
// nodes stay in and are covered. A co-signature (any other entry) covers the
// canonical form with the "signatures" member removed entirely, so a report
// is co-signed first and signed by its creator last. The certificate in a
// signature entry is not itself signed: keyId (its SHA-256) binds it.
// Evidence items keep the envelopes their signers made; an envelope without
// a certificate is checked with "certificates"[node]. Assemble moves
// envelope certificates there so that each appears once.
//
// Verification is offline: everything needed but the CA certificate is in
// the report. Certificates are short-lived, so an archived report is checked
// against the CA as of its creation time (VerifyArchived).
//
// # Decoding
//
// Decode is strict and closed: input over MaxReportSize fails with
// ErrTooLarge, unknown members (at any depth outside evidence results and
// consent objects) and trailing data fail with ErrMalformed and
// ErrTrailingData, and the decoded report must encode back to the same RFC
// 8785 canonical form as the input (ErrNotNormal). That last rule rejects
// encodings whose meaning Go's decoder would quietly change — keys in other
// letter case, duplicate keys, null members, non-canonical base64 or time
// forms — so that what is shown and verified is always exactly what was
// signed. Whitespace, member order and number spelling are free.
//
// # Store
//
// Store keeps one file per report, <id>.json, holding the canonical
// encoding. Every write goes to a temporary file that is fsynced, renamed
// into place and followed by an fsync of the directory, so a crash at any
// point leaves either the old state or the new one. A pull mark is a
// separate <id>.pulled file written the same way. On open, temporary files
// are removed, a report that does not decode, is filed under the wrong name
// or whose creator signature does not match its own certificate is renamed
// to *.corrupt with a logged reason and never served, and pull marks
// without a report are removed.
//
// Retention (applied on open, on Put and by Prune):
//  1. a report created more than MaxAge ago is deleted, pulled or not;
//  2. while more than MaxReports are held, the oldest pulled report is
//     deleted;
//  3. an unpulled report younger than MaxAge is never deleted: when
//     MaxReports are held and none of them is pulled, Put fails with
//     ErrFull rather than lose a report nobody has seen.
//
// # Audit trail
//
// The audit trail (draft §7.4) is an append-only JSON Lines file, one
// record per JSON-RPC exchange:
//
//	{"argsHash":"…","direction":"in","hash":"…","method":"tools/call",
//	 "peer":"P-2","prev":"…","resultHash":"…","seq":42,
//	 "session":"…","sig":"…","target":"ietf-srv6-ping",
//	 "time":"2025-10-30T14:23:42.123Z"}
//
// Each line is the RFC 8785 canonical form of its record. hash is the
// SHA-256 of the canonical record without hash and sig; prev is the hash of
// the previous record (64 zeros for seq 1); seq counts from 1 without gaps.
// An edit breaks a hash, a deletion, insertion or reordering breaks prev
// or seq, and a non-canonical re-encoding of a line is itself an error, so
// VerifyAudit detects every change but the removal of the newest lines (to
// catch that, export the head hash, e.g. through FormatSyslog). With an
// identity, sig is its ed25519 signature over "d2d-audit-v1\n" + hash.
//
// Each record is written with one write(2), so a process crash (kill -9)
// loses nothing already appended; fsync after every record (the default)
// or every AuditConfig.SyncEvery records bounds what a power loss can take.
// OpenAudit truncates a torn last line (one without its newline), logging
// it, and resumes the chain from the last complete record.
package report

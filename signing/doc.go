// Package signing provides d2d's device identities, RFC 8785 canonical
// JSON, signed-result envelopes, crash-safe nonces and signature
// verification, single and batched (docs/ARCHITECTURE.md §3.3; draft-zm-rtgwg-mcp-
// troubleshooting §5 step 3 "ed25519 signature covering the result body
// and a monotonic nonce", §7.1 "short-lived device certificates").
//
// # Identities
//
// A domain CA (ed25519, self-signed, 10 years by default) certifies each
// node's ed25519 key, 24 hours by default: subject CN and the only DNS SAN
// are the node name, the role is the subject OrganizationalUnit, and the
// extended key usages are exactly the role's:
//
//	device, controller   TLS server + TLS client   (serve and call D2D)
//	operator             TLS client                (call only)
//	ca                   TLS server                (the CA service, package enroll)
//
// No certificate carries "any". The verifier insists on the role's set
// (ErrWrongUsage) and, for a TLS peer, on the use at hand
// (Trust.VerifyPeer): an operator's certificate cannot serve, a CA
// service's cannot call. A certificate's thumbprint is the SHA-256 of its
// DER; it is the key id of envelopes and what discovery advertises.
//
// Keys are born on the node: GenerateKey makes the key there,
// Key.CertificateRequest a PKCS#10 request naming the node, and the CA
// signs the request (CA.SignRequest; ParseRequest refuses any request
// that is not exactly one node name and an ed25519 key with a valid
// self-signature). The CA decides the role and lifetime, never the
// request. CA.Issue, which makes the key on the CA's host, is for tests
// and labs. Private keys are stored as PEM PKCS#8 with mode 0600 and
// format as a redaction marker.
//
// Renewal keeps the key and replaces the certificate: Identity.Renew
// installs the new one, and Identity.Current, which the endpoint's TLS,
// the result signer and report signatures ask each time, returns it from
// then on. Keeping the key keeps the audit trail verifiable with one key
// and costs nothing in safety: a key in doubt is revoked, and the node
// onboards again with a new one.
//
// # Revocation
//
// The CA publishes an X.509 CRL (RFC 5280 §5) signed with its ed25519 key
// (RevocationList): serials, CRL number as the version, next update, and
// per entry the revocation time, the reason and, as invalidityDate
// (§5.3.2), since when the key is in doubt ("since"; the revocation time
// unless the operator knows better). Trust.SetRevocations installs a
// list only if a trusted root signed it and it is not older than the one
// in force; every copy of the Trust and every verifier over it then sees
// it. A list past its next update still applies (an unreachable CA
// service must not lock every node out); package enroll warns about it.
//
// The rule for signatures made with a revoked certificate:
//
//   - A TLS handshake, a capability token, a live result: refused
//     (ErrRevoked), since they happen now, after the revocation.
//   - Evidence (a signed result kept for offline checks) dated at or
//     after "since": refused.
//   - Evidence dated before "since": the date is the signer's own claim,
//     and whoever holds a stolen key can backdate. It is accepted only
//     when another node, not revoked, witnessed it before "since": the
//     creator of the report that holds it, which verified it live (within
//     VerifierOptions.MaxSkew of its own clock) before it signed the
//     report, and whose signed creation time is before "since"
//     (Verifier.VerifyEvidenceWitnessed, report.Verify). Without such a
//     witness it is refused.
//   - A report signed by a revoked certificate is refused whatever its
//     date, for the same reason: nobody but the signer vouches for the
//     date. (The controller's archive keeps the copy it verified on
//     receipt, with the receipt's time.)
//
// # Envelope
//
// A signed result carries, in _meta["d2d/signature"]:
//
//	{
//	  "signer":    "P-2",                  node name = certificate DNS SAN
//	  "keyId":     "<64 hex>",             SHA-256 of the certificate DER
//	  "alg":       "ed25519",
//	  "nonce":     4711,                   per signer, strictly increasing
//	  "sessionId": "…",                    MCP session of the request
//	  "timestamp": "2025-11-03T10:00:00.123456789Z",
//	  "signature": "<base64, 64 bytes>",
//	  "cert":      "<base64 DER>"          not signed; bound by keyId
//	}
//
// On a live D2D session the callee leaves "cert" out and the caller puts
// back the certificate the session's TLS handshake verified; evidence
// kept for offline checks (reports, relayed polls) always carries it.
//
// The signature covers SignedBytes: the RFC 8785 canonical JSON of
//
//	{"argsHash":"<hex SHA-256 of canonical arguments, {} if none>",
//	 "method":"tools/call","nonce":4711,"result":{…canonical…},
//	 "sessionId":"…","signer":"P-2","target":"ietf-srv6-ping",
//	 "timestamp":"2025-11-03T10:00:00.123456789Z"}
//
// Method, target and arguments are not repeated in the envelope: the
// online verifier rebuilds them from its own request, so a result answering
// any other request fails to verify. The offline verifier (reports)
// rebuilds them from the stored evidence.
//
// # Nonces
//
// NonceSource persists a reservation high-water mark with write to a
// temporary file, fsync, rename, fsync of the directory, before handing
// out any number of the reserved block; after a crash it resumes above the
// mark. Verifiers keep, per signer, the highest nonce and a bitmap of the
// window below it (RFC 4303 §3.4.3 style) and reject a nonce already seen
// or older than the window.
//
// # Verification rules: ZIP-215
//
// Ed25519 implementations disagree on edge cases RFC 8032 leaves loose, and
// a batch verifier can only agree with a single verifier that uses the same
// equation. Both paths here follow ZIP-215 (Zcash, 2020):
//
//   - A and R may be any encoding of a curve point, including
//     non-canonical ones (y ≥ p, or x = 0 with the sign bit set);
//   - S must be canonical, S < L;
//   - k = SHA-512(R ‖ A ‖ M) over the encodings as received;
//   - the cofactored equation [8](S·B − R − k·A) = 0 decides.
//
// With these rules VerifyZIP215 and VerifyBatch accept exactly the same
// signatures, whatever the batch composition. Honest signatures (the
// only kind d2d produces) are valid under every rule set; crypto/ed25519
// (cofactorless, canonical encodings only) rejects some small-order edge
// cases that ZIP-215 accepts, so it is used only as a benchmark reference.
//
// VerifyBatch checks [8](Σ z_i·R_i + Σ_A (Σ z_i·k_i)·A − (Σ z_i·S_i)·B) = 0
// with random 128-bit z_i. The multi-scalar multiplication is
// edwards25519's (Straus) below 192 points and a Pippenger bucket method
// of our own above (batch_msm.go): for 1024 signatures from 1024 signers
// that is about 3× faster per signature than crypto/ed25519 one by one.
// Signatures by the same key share one term and
// decompressed keys are cached, so a domain of a few signers verifies at a
// fraction of the one-by-one cost. On failure it falls back to one-by-one
// checks to name the bad items.
package signing

// Package enroll is the domain's certificate service (role "ca"): it
// onboards new devices with one-time codes over SPAKE2+ (RFC 9383;
// draft-zm-rtgwg-mcp-troubleshooting-01 §6, zero-touch onboarding),
// renews certificates without restarts, and signs and distributes the
// revocation list. The CA's key stays with the Authority; every node's
// key is made on the node and never leaves it.
//
// # Authority
//
// Authority is the CA directory of `d2d pki init` (ca.crt, ca.key) plus
// authority.json: the certificates issued, the revocations, and the
// pending onboarding codes, each code kept only as its SPAKE2+
// registration record (w0, L = w1·P), never in clear. Every change is
// written (temporary file, fsync, rename, fsync of the directory) before
// it has an effect outside, under an exclusive lock on authority.lock
// that `d2d ca serve` and the `d2d pki`/`d2d ca` commands share. So a
// crash at any instruction never reuses a code, forgets an attempt or a
// revocation, or hands out a certificate it did not record. crl.pem is
// the signed revocation list in force (signing.RevocationList, an X.509
// CRL); a new one, with the next number, is signed at each revocation
// and when half of its validity (7 days) has passed.
//
// # Onboarding
//
// The operator makes a code bound to a node name and a role (`d2d ca
// code --node PE-7`): 20 symbols, 100 bits, 30 minutes, 3 attempts by
// default. The device makes its key, derives the SPAKE2+ secret from the
// code (scrypt, N=32768 r=8 p=1, over code, node name and "d2d-ca", as
// RFC 9383 §3.2 recommends) and runs, over TCP to the service (port
// 9516):
//
//	device                                        CA service
//	hello {v1, node, shareP}            ────────▶  counts an attempt on disk
//	                                    ◀────────  challenge {shareV, confirmV}
//	checks confirmV (else: refused)
//	finish {confirmP, seal(request)}    ────────▶  checks confirmP, opens the
//	                                               request, marks the code used
//	                                               on disk, issues
//	                                    ◀────────  result {seal(cert, CA, CRL)}
//
// Frames are a type byte, a 4-byte length and the payload; each type has
// a bound checked before anything is read (wire.go draws each message).
// seal is AES-256-GCM under a key derived from SPAKE2+'s K_shared with
// HKDF (one key per direction, one message per key). The SPAKE2+ context
// binds the protocol, its version, the suite and the scrypt parameters;
// the identities are the node name and "d2d-ca".
//
// What a failed attempt teaches: nothing about the code. Whether the code
// is wrong, expired, used, out of attempts, or the node has none, the
// service answers with a challenge of the same size, computed the same
// way (over a dummy record nobody knows the password of when there is no
// usable code); the device finds the service's confirmation does not
// verify, and reports ErrRefused, the only error for all of these. The
// reason is in the service's log only. An online guess costs one attempt,
// counted on disk before the challenge is sent; an offline dictionary
// attack on a recorded run is impossible, since the code enters the
// transcript only through SPAKE2+. The device also learns that it talks
// to the CA that holds its code's record before it sends its request, and
// the CA certificate it receives comes under the same seal: zero-touch
// needs no CA certificate on the device beforehand.
//
// # Renewal and revocation
//
// The service's D2D endpoint (collab over QUIC, mutual TLS, UDP 9516)
// offers authenticated nodes two tools: pki-renew {request} issues a new
// certificate for the caller's own name with the role of the last
// certificate it was issued (a node cannot renew into another role), and
// pki-revocations returns the list in force. Reusing the D2D transport
// gives the service mutual TLS with role key usages, size and rate limits
// and signed results for free; only onboarding, where the device has no
// certificate yet, needs its own channel, and SPAKE2+ authenticates it.
//
// Renewer runs on each agent: it renews at two thirds of the lifetime
// (retrying with backoff; a warning is logged on each retry once a sixth
// of the lifetime or less is left, and Status carries the figures for a
// metrics exporter), installs the certificate in place
// (signing.Identity.Renew: new handshakes use it, open sessions keep
// theirs) and writes it to disk; and it fetches the revocation list every
// RevocationInterval (5 minutes by default), installs it if newer and
// lets the agent close its sessions with revoked peers
// (collab.Endpoint.CloseRevoked). The list is distributed by every agent
// pulling it from the CA service, the one party that signs it, rather
// than by gossip: the CA service is already each agent's renewal
// partner, a pull needs no new trust relation, and a revoked node is
// refused by every peer within one interval. An agent that cannot reach
// the service keeps the last list it had, past its next update too
// (Status.ListStale), so a CA outage locks nobody out.
package enroll

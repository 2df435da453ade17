// Package spake2plus implements SPAKE2+ (RFC 9383), the augmented
// password-authenticated key exchange, with the ciphersuite
// P256-SHA256-HKDF-SHA256-HMAC-SHA256 (RFC 9383 §4), for d2d's zero-touch
// onboarding (draft-zm-rtgwg-mcp-troubleshooting-01 §6).
//
// # Why an implementation of our own
//
// The Go module proxy serves no maintained SPAKE2+ module. The group
// arithmetic comes from filippo.io/nistec, the standalone copy of the
// standard library's constant-time P-256 (crypto/internal/fips140/nistec):
// crypto/ecdh does not expose point addition, and crypto/elliptic is
// deprecated and variable-time. Scalars are reduced modulo the group order
// with math/big, once per registration or session, from values that are
// either random or the output of a memory-hard password hash; the point
// multiplications, which handle the secrets on every run, are nistec's.
//
// # The protocol (RFC 9383 §3)
//
//	registration:  w0 = w0s mod p, w1 = w1s mod p   (w0s ‖ w1s = PBKDF output, 2×40 bytes)
//	               the verifier stores (w0, L = w1·P)
//	prover:        x random, shareP = X = x·P + w0·M            ──shareP──▶
//	verifier:      y random, shareV = Y = y·P + w0·N
//	               Z = y·(X − w0·M), V = y·L
//	               confirmV = HMAC(K_confirmV, shareP)           ◀──shareV, confirmV──
//	prover:        Z = x·(Y − w0·N), V = w1·(Y − w0·N)
//	               checks confirmV, confirmP = HMAC(K_confirmP, shareV) ──confirmP──▶
//	verifier:      checks confirmP
//
//	TT = len(Context)‖Context ‖ len(idProver)‖idProver ‖ len(idVerifier)‖idVerifier
//	   ‖ len(M)‖M ‖ len(N)‖N ‖ len(shareP)‖shareP ‖ len(shareV)‖shareV
//	   ‖ len(Z)‖Z ‖ len(V)‖V ‖ len(w0)‖w0          (len = 8-byte little-endian)
//	K_main = SHA-256(TT)
//	K_confirmP ‖ K_confirmV = HKDF(salt nil, K_main, "ConfirmationKeys"), 64 bytes
//	K_shared = HKDF(salt nil, K_main, "SharedKey"), 32 bytes
//
// Points travel SEC1-uncompressed (65 bytes, 0x04 ‖ x ‖ y); any other
// encoding, a point off the curve and the identity are refused
// (ErrInvalidShare), as RFC 9383 §6 requires (P-256 has cofactor 1). The
// confirmation MACs are compared in constant time. The RFC's test vectors
// (Appendix C) are in the tests, every intermediate value of them.
package spake2plus

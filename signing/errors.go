package signing

import (
	"errors"
	"fmt"
)

// Verification failure reasons. Each is reachable with errors.Is through
// the *VerifyError that wraps it.
var (
	ErrBadSignature     = errors.New("signing: bad signature")
	ErrReplay           = errors.New("signing: replayed nonce")
	ErrBindingMismatch  = errors.New("signing: signature not bound to this request")
	ErrKeyIDMismatch    = errors.New("signing: key id does not match certificate thumbprint")
	ErrSignerMismatch   = errors.New("signing: signer does not match certificate name")
	ErrUnknownAuthority = errors.New("signing: certificate not issued by a trusted authority")
	ErrCertExpired      = errors.New("signing: certificate expired")
	ErrCertNotYetValid  = errors.New("signing: certificate not yet valid")
	ErrBadAlgorithm     = errors.New("signing: unsupported signature algorithm")
	ErrMalformed        = errors.New("signing: malformed envelope or certificate")
	ErrClockSkew        = errors.New("signing: timestamp outside the allowed clock skew")
	// ErrWrongUsage: the certificate's extended key usages are not exactly
	// its role's, or lack the one this use needs (a server certificate
	// for a client, an operator's certificate serving).
	ErrWrongUsage = errors.New("signing: certificate key usage does not fit its role or use")
	// ErrRevoked: the certificate is on the CA's revocation list and the
	// signature or handshake is not older than the revocation.
	ErrRevoked = errors.New("signing: certificate revoked")
)

// VerifyError is the error every verification failure returns. Reason is
// one of the Err* sentinels above.
type VerifyError struct {
	Signer string
	Reason error
	Detail string
}

func (e *VerifyError) Error() string {
	s := e.Reason.Error()
	if e.Signer != "" {
		s += " (signer " + fmt.Sprintf("%q", e.Signer) + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the reason, so errors.Is(err, ErrReplay) works.
func (e *VerifyError) Unwrap() error { return e.Reason }

func verr(signer string, reason error, format string, args ...any) *VerifyError {
	return &VerifyError{Signer: signer, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

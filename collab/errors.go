package collab

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/quic-go/quic-go"
	"github.com/sourcegraph/jsonrpc2"
)

// Errors returned by sessions, reachable with errors.Is.
var (
	// ErrTimeout: the peer did not complete the handshake, initialize or a
	// call before the deadline. It also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("collab: timeout")
	// ErrTLS: the TLS handshake or certificate authentication failed in
	// either direction; *TLSError carries the reason.
	ErrTLS = errors.New("collab: TLS authentication failed")
	// ErrThumbprintMismatch: the peer's certificate chains to the CA but is
	// not the one discovery advertised.
	ErrThumbprintMismatch = errors.New("collab: certificate thumbprint mismatch")
	// ErrNotGranted: the capability is outside the negotiated grant
	// (mcp.CodeNotGranted).
	ErrNotGranted = errors.New("collab: capability not granted")
	// ErrBadSignature: a result's signature failed verification;
	// *SignatureError wraps the signing error.
	ErrBadSignature = errors.New("collab: bad signature")
	// ErrPeerGone: the connection to the peer was lost or refused.
	ErrPeerGone = errors.New("collab: peer gone")
	// ErrTooLarge: a message exceeded Config.MaxMessageBytes
	// (mcp.CodeTooLarge).
	ErrTooLarge = errors.New("collab: message too large")
	// ErrNotInitialized: a request arrived before initialize
	// (mcp.CodeNotInitialized).
	ErrNotInitialized = errors.New("collab: session not initialized")
)

// QUIC application error codes used when closing a connection.
const (
	codeClose          quic.ApplicationErrorCode = 0
	codeTooLarge       quic.ApplicationErrorCode = 1
	codeProtocol       quic.ApplicationErrorCode = 2
	codeTooMany        quic.ApplicationErrorCode = 3
	codeShutdown       quic.ApplicationErrorCode = 4
	codeInitTimeout    quic.ApplicationErrorCode = 5
	codeReplaced       quic.ApplicationErrorCode = 6
	codeRevoked        quic.ApplicationErrorCode = 7
	streamCodeCancel   quic.StreamErrorCode      = 0
	streamCodeRejected quic.StreamErrorCode      = 3
)

// TLSError is a failed handshake or certificate check. Reason is short and
// stable ("tls: unknown authority", "tls: certificate expired", …).
type TLSError struct {
	Peer   string
	Reason string
	Err    error
}

func (e *TLSError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("collab: %s: %s", e.Peer, e.Reason)
	}
	return fmt.Sprintf("collab: %s: %s: %v", e.Peer, e.Reason, e.Err)
}

// Unwrap returns ErrTLS and the underlying error.
func (e *TLSError) Unwrap() []error { return []error{ErrTLS, e.Err} }

// SignatureError is a signed result that failed verification.
type SignatureError struct {
	Peer   string
	Method string
	Target string
	Err    error // usually a *signing.VerifyError
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("collab: %s %s %s: bad signature: %v", e.Peer, e.Method, e.Target, e.Err)
}

// Unwrap returns ErrBadSignature and the signing error.
func (e *SignatureError) Unwrap() []error { return []error{ErrBadSignature, e.Err} }

// RemoteError is a JSON-RPC error reply from a peer. Its code maps to the
// package sentinels (mcp.CodeNotGranted → ErrNotGranted, …).
type RemoteError struct {
	Peer   string
	Method string
	Err    *mcp.Error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("collab: %s %s: %s (code %d)", e.Peer, e.Method, e.Err.Message, e.Err.Code)
}

// Unwrap returns the *mcp.Error and the matching sentinel, if any.
func (e *RemoteError) Unwrap() []error {
	errs := []error{e.Err}
	switch e.Err.Code {
	case mcp.CodeNotGranted:
		errs = append(errs, ErrNotGranted)
	case mcp.CodeTooLarge:
		errs = append(errs, ErrTooLarge)
	case mcp.CodeNotInitialized:
		errs = append(errs, ErrNotInitialized)
	case mcp.CodeUnauthorized:
		errs = append(errs, ErrUnauthorized)
	case mcp.CodeRateLimited:
		errs = append(errs, ErrRateLimited)
	}
	return errs
}

// UntrustedReason returns the short reason for which err makes a peer
// untrusted (draft 003 §5.3.1 "Failure Handling": a time-out or an
// authentication error), or "" when err is nil or says nothing about the
// peer's trustworthiness (a refused capability, a tool error, a cancelled
// caller).
func UntrustedReason(err error) string {
	var tlsErr *TLSError
	var sigErr *SignatureError
	var invErr *InventoryError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrThumbprintMismatch):
		return "thumbprint mismatch"
	case errors.As(err, &tlsErr):
		return tlsErr.Reason
	case errors.Is(err, ErrTLS):
		return "tls: handshake failed"
	case errors.As(err, &sigErr):
		return "bad signature: " + shortReason(sigErr.Err)
	case errors.Is(err, ErrBadSignature):
		return "bad signature"
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrPeerGone):
		return "peer gone"
	case errors.As(err, &invErr):
		return invErr.Reason()
	}
	return ""
}

// shortReason turns a signing error into its sentinel text without the
// package prefix: "replayed nonce", "signature not bound to this request".
func shortReason(err error) string {
	var ve *signing.VerifyError
	if errors.As(err, &ve) && ve.Reason != nil {
		err = ve.Reason
	}
	if err == nil {
		return "unknown"
	}
	if errors.Is(err, signing.ErrBadSignature) {
		// The signature covers the caller's binding: a result replayed for
		// other arguments, tool or URI fails here, not as a binding error.
		return "does not verify for this request"
	}
	return strings.TrimPrefix(err.Error(), "signing: ")
}

// tlsAlertReason names a TLS alert (RFC 8446 §6) the peer sent.
func tlsAlertReason(alert uint8) string {
	switch alert {
	case 42:
		return "tls: bad certificate"
	case 43:
		return "tls: unsupported certificate"
	case 44:
		return "tls: certificate revoked"
	case 45:
		return "tls: certificate expired"
	case 46:
		return "tls: certificate unknown"
	case 48:
		return "tls: unknown authority"
	case 116:
		return "tls: certificate required"
	case 120:
		return "tls: no application protocol"
	case 70:
		return "tls: protocol version"
	}
	return fmt.Sprintf("tls: alert %d", alert)
}

// certReason names a local certificate verification failure.
func certReason(err error) string {
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	switch {
	case errors.Is(err, signing.ErrUnknownAuthority), errors.As(err, &ua):
		return "tls: unknown authority"
	case errors.Is(err, signing.ErrCertExpired), errors.Is(err, signing.ErrCertNotYetValid):
		return "tls: certificate expired"
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "tls: certificate expired"
	case errors.Is(err, errNameMismatch):
		return "tls: peer name mismatch"
	}
	return "tls: bad certificate"
}

var errNameMismatch = errors.New("collab: certificate name differs from the expected peer")

// connError maps why a QUIC connection ended (its context cause) to the
// package errors. peer names the other side in messages.
func connError(peer string, cause error) error {
	if cause == nil {
		return fmt.Errorf("collab: %s: %w", peer, ErrPeerGone)
	}
	var te *quic.TransportError
	var ae *quic.ApplicationError
	var ite *quic.IdleTimeoutError
	var hte *quic.HandshakeTimeoutError
	switch {
	case errors.Is(cause, ErrThumbprintMismatch), errors.Is(cause, ErrTLS):
		return cause
	case errors.As(cause, &hte):
		return fmt.Errorf("collab: %s: handshake: %w: %w", peer, ErrTimeout, context.DeadlineExceeded)
	case errors.As(cause, &te) && te.ErrorCode >= 0x100 && te.ErrorCode < 0x200:
		if !te.Remote {
			// Our own verification failed; the wrapped error says why.
			if inner := localCause(te); inner != nil {
				return tlsFromLocal(peer, inner)
			}
		}
		return &TLSError{Peer: peer, Reason: tlsAlertReason(uint8(te.ErrorCode - 0x100)), Err: cause}
	case errors.As(cause, &ae) && ae.ErrorCode == codeTooLarge:
		return fmt.Errorf("collab: %s closed the connection: %w", peer, ErrTooLarge)
	case errors.As(cause, &ae) && ae.Remote && ae.ErrorCode == codeTooMany:
		return fmt.Errorf("collab: %s: too many sessions: %w", peer, ErrPeerGone)
	case errors.As(cause, &ite):
		return fmt.Errorf("collab: %s: idle timeout: %w", peer, ErrPeerGone)
	case errors.Is(cause, context.DeadlineExceeded):
		return fmt.Errorf("collab: %s: %w: %w", peer, ErrTimeout, context.DeadlineExceeded)
	case errors.Is(cause, context.Canceled):
		return fmt.Errorf("collab: %s: %w", peer, cause)
	}
	return fmt.Errorf("collab: %s: %w: %v", peer, ErrPeerGone, cause)
}

// localCause returns the error a local TLS failure wraps (quic-go's
// TransportError unwraps to net.ErrClosed and that error).
func localCause(te *quic.TransportError) error {
	for _, e := range te.Unwrap() {
		if e != nil && e != net.ErrClosed {
			return e
		}
	}
	return nil
}

func tlsFromLocal(peer string, err error) error {
	if errors.Is(err, ErrThumbprintMismatch) {
		return fmt.Errorf("collab: %s: %w", peer, err)
	}
	var tlsErr *TLSError
	if errors.As(err, &tlsErr) {
		return tlsErr
	}
	return &TLSError{Peer: peer, Reason: certReason(err), Err: err}
}

// rpcError converts an error returned by jsonrpc2 into a package error.
func rpcError(peer, method string, err error) error {
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		me := &mcp.Error{Code: je.Code, Message: je.Message}
		if je.Data != nil {
			me.Data = *je.Data
		}
		return &RemoteError{Peer: peer, Method: method, Err: me}
	}
	return err
}

// toRPCError converts a handler error into a JSON-RPC error object.
func toRPCError(err error) *jsonrpc2.Error {
	var me *mcp.Error
	if errors.As(err, &me) {
		je := &jsonrpc2.Error{Code: me.Code, Message: me.Message}
		if len(me.Data) > 0 {
			d := me.Data
			je.Data = &d
		}
		return je
	}
	return &jsonrpc2.Error{Code: mcp.CodeInternalError, Message: err.Error()}
}

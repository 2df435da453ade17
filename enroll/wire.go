package enroll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/d2dmesh/d2d/internal/spake2plus"
)

// Message types of the onboarding protocol.
const (
	typeHello     byte = 1 // device → CA: version, node name, shareP
	typeChallenge byte = 2 // CA → device: shareV, confirmV
	typeFinish    byte = 3 // device → CA: confirmP, sealed certificate request
	typeResult    byte = 4 // CA → device: sealed grant
	typeFailure   byte = 5 // CA → device: nothing more
)

// protocolVersion is the onboarding protocol's version; it is also bound
// into the SPAKE2+ context.
const protocolVersion = 1

// Size limits. Every frame is read against its type's bound before any
// buffer is allocated.
const (
	frameHeader    = 5 // type (1) + length (4, big-endian)
	maxHello       = 1 + 1 + 253 + spake2plus.ShareSize
	maxChallenge   = spake2plus.ShareSize + spake2plus.ConfirmSize
	maxFinish      = spake2plus.ConfirmSize + sealOverhead + 4<<10
	maxResult      = sealOverhead + 3*4 + 2*(16<<10) + 1<<20 // two certificates, one revocation list
	maxGrantFields = 3
	sealOverhead   = 16 // AES-GCM tag; the nonce is implicit (one message per key)
)

// Errors of the wire codec.
var (
	// ErrMalformed: a complete frame or message that is not valid.
	ErrMalformed = errors.New("enroll: malformed onboarding message")
	// ErrTooLarge: a frame longer than its type allows.
	ErrTooLarge = errors.New("enroll: onboarding message too large")
)

// hello opens a run: the protocol version, the node name the code is
// bound to, and the prover's SPAKE2+ share.
//
//	0      1      2          2+n
//	+------+------+----------+-----------------------------+
//	| ver  | n    | name (n) | shareP (65, SEC1 uncompr.)  |
//	+------+------+----------+-----------------------------+
type hello struct {
	Version uint8
	Node    string
	Share   []byte
}

func (h *hello) Len() int { return 2 + len(h.Node) + spake2plus.ShareSize }

func (h *hello) AppendBinary(b []byte) ([]byte, error) {
	if len(h.Node) == 0 || len(h.Node) > 253 || len(h.Share) != spake2plus.ShareSize {
		return b, fmt.Errorf("%w: hello with a %d-byte name and a %d-byte share", ErrMalformed, len(h.Node), len(h.Share))
	}
	b = append(b, h.Version, byte(len(h.Node)))
	b = append(b, h.Node...)
	return append(b, h.Share...), nil
}

func (h *hello) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("enroll: hello: %w", io.ErrUnexpectedEOF)
	}
	n := int(b[1])
	if len(b) < 2+n+spake2plus.ShareSize {
		return fmt.Errorf("enroll: hello: %w", io.ErrUnexpectedEOF)
	}
	if len(b) > 2+n+spake2plus.ShareSize || n == 0 {
		return fmt.Errorf("%w: hello of %d bytes with a %d-byte name", ErrMalformed, len(b), n)
	}
	h.Version = b[0]
	h.Node = string(b[2 : 2+n])
	h.Share = append([]byte(nil), b[2+n:]...)
	return nil
}

// challenge is the CA's answer: shareV and confirmV, fixed sizes.
type challenge struct {
	Share   []byte
	Confirm []byte
}

func (c *challenge) Len() int { return maxChallenge }

func (c *challenge) AppendBinary(b []byte) ([]byte, error) {
	if len(c.Share) != spake2plus.ShareSize || len(c.Confirm) != spake2plus.ConfirmSize {
		return b, fmt.Errorf("%w: challenge sizes %d, %d", ErrMalformed, len(c.Share), len(c.Confirm))
	}
	return append(append(b, c.Share...), c.Confirm...), nil
}

func (c *challenge) UnmarshalBinary(b []byte) error {
	if len(b) < maxChallenge {
		return fmt.Errorf("enroll: challenge: %w", io.ErrUnexpectedEOF)
	}
	if len(b) > maxChallenge {
		return fmt.Errorf("%w: challenge of %d bytes", ErrMalformed, len(b))
	}
	c.Share = append([]byte(nil), b[:spake2plus.ShareSize]...)
	c.Confirm = append([]byte(nil), b[spake2plus.ShareSize:]...)
	return nil
}

// finish is the device's confirmation and its sealed certificate
// request.
//
//	+---------------+----------------------------------------+
//	| confirmP (32) | AES-256-GCM(request DER) ‖ tag (16)    |
//	+---------------+----------------------------------------+
type finish struct {
	Confirm []byte
	Sealed  []byte
}

func (f *finish) Len() int { return spake2plus.ConfirmSize + len(f.Sealed) }

func (f *finish) AppendBinary(b []byte) ([]byte, error) {
	if len(f.Confirm) != spake2plus.ConfirmSize || len(f.Sealed) < sealOverhead || f.Len() > maxFinish {
		return b, fmt.Errorf("%w: finish sizes %d, %d", ErrMalformed, len(f.Confirm), len(f.Sealed))
	}
	return append(append(b, f.Confirm...), f.Sealed...), nil
}

func (f *finish) UnmarshalBinary(b []byte) error {
	if len(b) < spake2plus.ConfirmSize+sealOverhead {
		return fmt.Errorf("enroll: finish: %w", io.ErrUnexpectedEOF)
	}
	if len(b) > maxFinish {
		return fmt.Errorf("%w: finish of %d bytes", ErrTooLarge, len(b))
	}
	f.Confirm = append([]byte(nil), b[:spake2plus.ConfirmSize]...)
	f.Sealed = append([]byte(nil), b[spake2plus.ConfirmSize:]...)
	return nil
}

// grant is what the sealed result carries: the device's certificate, the
// domain CA certificate and the revocation list in force, each DER with
// a 4-byte big-endian length.
type grant struct {
	Cert, CA, CRL []byte
}

func (g *grant) Len() int { return 3*4 + len(g.Cert) + len(g.CA) + len(g.CRL) }

func (g *grant) AppendBinary(b []byte) ([]byte, error) {
	if len(g.Cert) == 0 || len(g.CA) == 0 || g.Len() > maxResult-sealOverhead {
		return b, fmt.Errorf("%w: grant of %d bytes", ErrMalformed, g.Len())
	}
	for _, f := range [maxGrantFields][]byte{g.Cert, g.CA, g.CRL} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

func (g *grant) UnmarshalBinary(b []byte) error {
	if len(b) > maxResult-sealOverhead {
		return fmt.Errorf("%w: grant of %d bytes", ErrTooLarge, len(b))
	}
	var fields [maxGrantFields][]byte
	for i := range fields {
		if len(b) < 4 {
			return fmt.Errorf("enroll: grant: %w", io.ErrUnexpectedEOF)
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return fmt.Errorf("enroll: grant: %w", io.ErrUnexpectedEOF)
		}
		fields[i] = append([]byte(nil), b[4:4+n]...)
		b = b[4+n:]
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after the grant", ErrMalformed, len(b))
	}
	if len(fields[0]) == 0 || len(fields[1]) == 0 {
		return fmt.Errorf("%w: grant without a certificate", ErrMalformed)
	}
	if len(fields[2]) == 0 {
		fields[2] = nil // one spelling for "no list"
	}
	g.Cert, g.CA, g.CRL = fields[0], fields[1], fields[2]
	return nil
}

// maxPayload is the largest payload each message type may have.
func maxPayload(typ byte) (int, bool) {
	switch typ {
	case typeHello:
		return maxHello, true
	case typeChallenge:
		return maxChallenge, true
	case typeFinish:
		return maxFinish, true
	case typeResult:
		return maxResult, true
	case typeFailure:
		return 0, true
	}
	return 0, false
}

// appendFrame writes one frame:
//
//	+--------+------------------+-----------------+
//	| type   | length (4, BE)   | payload         |
//	+--------+------------------+-----------------+
func appendFrame(b []byte, typ byte, payload []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// readFrame reads one frame whose type is want (or a failure), bounded
// by the type's limit before anything is allocated.
func readFrame(r io.Reader, want byte) (byte, []byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("enroll: frame header: %w", err)
	}
	typ, n := h[0], binary.BigEndian.Uint32(h[1:])
	if typ != want && typ != typeFailure {
		return 0, nil, fmt.Errorf("%w: message type %d, want %d", ErrMalformed, typ, want)
	}
	max, _ := maxPayload(typ)
	if uint64(n) > uint64(max) {
		return 0, nil, fmt.Errorf("%w: type %d, %d bytes over %d", ErrTooLarge, typ, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("enroll: frame payload: %w", err)
	}
	return typ, b, nil
}

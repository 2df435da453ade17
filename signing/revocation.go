package signing

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"time"
)

// Revocation reasons (RFC 5280 §5.3.1), by the names the CLI takes.
var reasonCodes = map[string]int{
	"unspecified":            0,
	"key-compromise":         1,
	"superseded":             4,
	"cessation-of-operation": 5,
}

// oidInvalidityDate is the CRL entry extension invalidityDate (RFC 5280
// §5.3.2): when the key is known or suspected to have become unsafe.
var oidInvalidityDate = asn1.ObjectIdentifier{2, 5, 29, 24}

// MaxRevocationListBytes bounds an encoded list: 1 MiB holds about
// 25,000 entries, far more than a domain has certificates alive.
const MaxRevocationListBytes = 1 << 20

// ErrRevocationList is wrapped by every revocation-list error.
var ErrRevocationList = errors.New("signing: revocation list")

// Revocation is one revoked certificate.
type Revocation struct {
	// Serial is the certificate's serial number.
	Serial *big.Int
	// RevokedAt is when the CA revoked it.
	RevokedAt time.Time
	// Since is when the certificate stopped being trustworthy
	// (invalidityDate): RevokedAt unless the operator knows the key was
	// compromised earlier. Signatures dated at or after Since are refused;
	// for older ones see the rule in the package documentation.
	Since time.Time
	// Reason is "unspecified", "key-compromise", "superseded" or
	// "cessation-of-operation".
	Reason string
}

// RevocationList is the domain CA's list of revoked certificates: an
// X.509 CRL (RFC 5280 §5) signed with the CA's ed25519 key, so that any
// X.509 tool can read it. Number is the list's version (CRL number,
// RFC 5280 §5.2.3); a verifier never goes back to a lower one.
type RevocationList struct {
	Number     uint64
	ThisUpdate time.Time
	NextUpdate time.Time
	Revoked    []Revocation
	// Raw is the DER encoding.
	Raw []byte

	crl      *x509.RevocationList
	bySerial map[string]Revocation
}

// NewRevocationList signs a list of version number, valid from now for
// validity (the agents fetch a fresh one long before: see package
// enroll). Entries are sorted by serial.
func (ca *CA) NewRevocationList(number uint64, revoked []Revocation, now time.Time, validity time.Duration) (*RevocationList, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("%w: validity %v", ErrRevocationList, validity)
	}
	tmpl := &x509.RevocationList{
		Number:     new(big.Int).SetUint64(number),
		ThisUpdate: now.UTC().Truncate(time.Second),
		NextUpdate: now.Add(validity).UTC().Truncate(time.Second),
	}
	revoked = slices.Clone(revoked)
	slices.SortFunc(revoked, func(a, b Revocation) int { return a.Serial.Cmp(b.Serial) })
	for _, r := range revoked {
		code, ok := reasonCodes[r.Reason]
		if !ok {
			return nil, fmt.Errorf("%w: unknown reason %q", ErrRevocationList, r.Reason)
		}
		if r.Serial == nil || r.Serial.Sign() <= 0 {
			return nil, fmt.Errorf("%w: bad serial", ErrRevocationList)
		}
		e := x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.RevokedAt.UTC().Truncate(time.Second), ReasonCode: code}
		since := r.Since
		if since.IsZero() {
			since = r.RevokedAt
		}
		if since.After(r.RevokedAt) {
			return nil, fmt.Errorf("%w: serial %x invalid since %s, after its revocation", ErrRevocationList, r.Serial, since)
		}
		v, err := asn1.MarshalWithParams(since.UTC().Truncate(time.Second), "generalized")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRevocationList, err)
		}
		e.ExtraExtensions = []pkix.Extension{{Id: oidInvalidityDate, Value: v}}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, e)
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key.k)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRevocationList, err)
	}
	return ParseRevocationList(der)
}

// ParseRevocationList decodes a DER (or PEM "X509 CRL") list and checks
// its shape: a CRL number that fits 64 bits, a next update after this
// update, every entry with a positive serial, a known reason and an
// invalidity date no later than its revocation. It does not check the
// signature: Trust.SetRevocations does.
func ParseRevocationList(b []byte) (*RevocationList, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("%w: PEM block is %q, want X509 CRL", ErrRevocationList, blk.Type)
		}
		b = blk.Bytes
	}
	if len(b) == 0 || len(b) > MaxRevocationListBytes {
		return nil, fmt.Errorf("%w: %d bytes (1..%d)", ErrRevocationList, len(b), MaxRevocationListBytes)
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRevocationList, err)
	}
	if len(crl.Raw) != len(b) {
		return nil, fmt.Errorf("%w: trailing data", ErrRevocationList)
	}
	if crl.Number == nil || crl.Number.Sign() < 0 || !crl.Number.IsUint64() {
		return nil, fmt.Errorf("%w: CRL number missing or not a 64-bit version", ErrRevocationList)
	}
	if crl.NextUpdate.IsZero() || !crl.NextUpdate.After(crl.ThisUpdate) {
		return nil, fmt.Errorf("%w: next update %s not after this update %s", ErrRevocationList, crl.NextUpdate, crl.ThisUpdate)
	}
	l := &RevocationList{
		Number: crl.Number.Uint64(), ThisUpdate: crl.ThisUpdate, NextUpdate: crl.NextUpdate,
		Raw: crl.Raw, crl: crl, bySerial: make(map[string]Revocation, len(crl.RevokedCertificateEntries)),
	}
	for _, e := range crl.RevokedCertificateEntries {
		r := Revocation{Serial: e.SerialNumber, RevokedAt: e.RevocationTime, Since: e.RevocationTime}
		if r.Serial == nil || r.Serial.Sign() <= 0 {
			return nil, fmt.Errorf("%w: entry without a positive serial", ErrRevocationList)
		}
		for name, code := range reasonCodes {
			if code == e.ReasonCode {
				r.Reason = name
			}
		}
		if r.Reason == "" {
			return nil, fmt.Errorf("%w: serial %x: unknown reason code %d", ErrRevocationList, r.Serial, e.ReasonCode)
		}
		for _, ext := range e.Extensions {
			if !ext.Id.Equal(oidInvalidityDate) {
				continue
			}
			var t time.Time
			rest, err := asn1.UnmarshalWithParams(ext.Value, &t, "generalized")
			if err != nil || len(rest) != 0 {
				return nil, fmt.Errorf("%w: serial %x: bad invalidity date", ErrRevocationList, r.Serial)
			}
			r.Since = t
		}
		if r.Since.After(r.RevokedAt) {
			return nil, fmt.Errorf("%w: serial %x invalid since %s, after its revocation", ErrRevocationList, r.Serial, r.Since)
		}
		key := r.Serial.Text(16)
		if _, dup := l.bySerial[key]; dup {
			return nil, fmt.Errorf("%w: serial %x listed twice", ErrRevocationList, r.Serial)
		}
		l.bySerial[key] = r
		l.Revoked = append(l.Revoked, r)
	}
	return l, nil
}

// PEM returns the list PEM-encoded ("X509 CRL").
func (l *RevocationList) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: l.Raw})
}

// Save writes the list PEM-encoded, atomically.
func (l *RevocationList) Save(file string) error {
	if err := writeFileAtomic(file, l.PEM(), 0o644); err != nil {
		return fmt.Errorf("%w: %v", ErrRevocationList, err)
	}
	return nil
}

// LoadRevocationList reads and parses a list file; the signature is
// checked when it is given to Trust.SetRevocations.
func LoadRevocationList(file string) (*RevocationList, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRevocationList, err)
	}
	return ParseRevocationList(b)
}

// Lookup returns the entry for serial.
func (l *RevocationList) Lookup(serial *big.Int) (Revocation, bool) {
	if l == nil || serial == nil {
		return Revocation{}, false
	}
	r, ok := l.bySerial[serial.Text(16)]
	return r, ok
}

// Stale reports whether now is past the list's next update: the CA
// service has not been reached for a while. The list still applies.
func (l *RevocationList) Stale(now time.Time) bool { return l != nil && now.After(l.NextUpdate) }

// SetRevocations installs l after checking that a trusted root signed it
// and that it is not older than the list in force (a lower Number is
// refused with ErrRevocationList, the same Number is a no-op). Every copy
// of t (WithClock) and every verifier over it sees the new list at once.
func (t *Trust) SetRevocations(l *RevocationList) error {
	if l == nil || l.crl == nil {
		return fmt.Errorf("%w: no list", ErrRevocationList)
	}
	var signed bool
	for _, root := range t.certs {
		if l.crl.CheckSignatureFrom(root) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return fmt.Errorf("%w: not signed by a trusted CA", ErrRevocationList)
	}
	for {
		cur := t.rev.Load()
		if cur != nil && l.Number <= cur.Number {
			if l.Number == cur.Number {
				return nil
			}
			return fmt.Errorf("%w: version %d is older than version %d in force", ErrRevocationList, l.Number, cur.Number)
		}
		if t.rev.CompareAndSwap(cur, l) {
			return nil
		}
	}
}

// Revocations returns the list in force, nil if none.
func (t *Trust) Revocations() *RevocationList { return t.rev.Load() }

// Revoked reports whether c, issued by the list's CA, is revoked.
func (t *Trust) Revoked(c *x509.Certificate) (Revocation, bool) {
	l := t.rev.Load()
	if l == nil || c == nil || !slices.Equal(c.RawIssuer, l.crl.RawIssuer) {
		return Revocation{}, false
	}
	return l.Lookup(c.SerialNumber)
}

package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Roles a certificate can carry in its subject OrganizationalUnit.
const (
	RoleDevice     = "device"
	RoleController = "controller"
	RoleOperator   = "operator"
	// RoleCA is the CA service (package enroll): it serves renewals and
	// the revocation list and is never a client.
	RoleCA = "ca"
)

// roleUsages are the extended key usages each role's certificate carries,
// exactly: devices and controllers both serve and call (TLS server and
// client), an operator only calls, the CA service only serves. The
// verifier insists on them (Trust.VerifyPeer), so an operator's
// certificate cannot serve a D2D endpoint and a CA service's cannot call
// one.
var roleUsages = map[string][]x509.ExtKeyUsage{
	RoleDevice:     {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	RoleController: {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	RoleOperator:   {x509.ExtKeyUsageClientAuth},
	RoleCA:         {x509.ExtKeyUsageServerAuth},
}

// Defaults, with their reasons.
const (
	// DefaultCertValidity is short so that a stolen device key is useful
	// for a day at most (draft §7.1 "short-lived device certificates").
	DefaultCertValidity = 24 * time.Hour
	// DefaultCAValidity outlives every device certificate by far; the CA
	// key stays offline on the operator's machine.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// backdate absorbs clock differences between issuer and verifier.
	backdate = time.Minute
)

// ErrIdentity is wrapped by every identity, CA and key-file error.
var ErrIdentity = errors.New("signing: identity")

// IssueOptions controls a certificate issued by a CA.
type IssueOptions struct {
	// Validity is the certificate lifetime. If zero, 24h.
	Validity time.Duration
	// Role is "device" (default), "controller", "operator" or "ca"; it is
	// carried in the subject's OrganizationalUnit and decides the extended
	// key usages.
	Role string
	// NotBefore is the start of validity. If zero, now-1m.
	NotBefore time.Time
	// Addresses are added as IP subject alternative names.
	Addresses []netip.Addr
}

func (o *IssueOptions) populate(now time.Time) error {
	if o.Validity == 0 {
		o.Validity = DefaultCertValidity
	}
	if o.Validity < 0 {
		return fmt.Errorf("%w: negative validity %v", ErrIdentity, o.Validity)
	}
	if o.Role == "" {
		o.Role = RoleDevice
	}
	if _, ok := roleUsages[o.Role]; !ok {
		return fmt.Errorf("%w: unknown role %q (want device, controller, operator or ca)", ErrIdentity, o.Role)
	}
	if o.NotBefore.IsZero() {
		// At most a tenth of the lifetime, so that a short-lived
		// certificate (tests, labs) is not mostly in the past.
		o.NotBefore = now.Add(-min(backdate, o.Validity/10))
	}
	return nil
}

// secretKey holds an ed25519 private key. It is kept behind a pointer so
// that printing a struct holding it shows an address, and it formats itself
// as a redaction marker in every verb.
type secretKey struct{ k ed25519.PrivateKey }

const redacted = "[REDACTED ed25519 private key]"

func (*secretKey) String() string             { return redacted }
func (*secretKey) GoString() string           { return redacted }
func (*secretKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// CA is a domain certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *secretKey
}

// String identifies the CA without its key.
func (ca *CA) String() string { return "CA(" + ca.Cert.Subject.CommonName + ")" }

// Format prints ca.String for every verb, so the key never leaks.
func (ca *CA) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(ca.String())) }

// GoString prints ca.String.
func (ca *CA) GoString() string { return ca.String() }

// NewCA creates a self-signed ed25519 domain CA. If validity is zero, 10
// years.
func NewCA(name string, validity time.Duration) (*CA, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty CA name", ErrIdentity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"d2d"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: create CA certificate: %v", ErrIdentity, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return &CA{Cert: cert, key: &secretKey{priv}}, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("%w: serial: %v", ErrIdentity, err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// ValidName reports whether name can be a node name: 1–253 letters,
// digits, '-', '_' and '.', not starting with '.' or '-'.
func ValidName(name string) error { return validName(name) }

// KnownRole reports whether role is one a certificate can carry.
func KnownRole(role string) bool { _, ok := roleUsages[role]; return ok }

// validName accepts node names usable both as a DNS SAN and as a file
// name: 1–253 characters of letters, digits, '-', '_' and '.', not
// starting with '.' or '-'.
func validName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%w: node name must be 1-253 characters", ErrIdentity)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: node name %q must not start with %q", ErrIdentity, name, name[0])
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("%w: node name %q contains %q", ErrIdentity, name, c)
		}
	}
	return nil
}

// Issue creates a key pair and a certificate for name. It is for tests
// and labs, where the CA's host makes every key: a real node makes its
// own key and asks for a certificate with a request (Key,
// CA.SignRequest), so that its key never leaves it.
func (ca *CA) Issue(name string, opt IssueOptions) (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	der, err := ca.certify(name, pub, opt)
	if err != nil {
		return nil, err
	}
	return newIdentity(der, priv)
}

// certify issues a certificate for pub: subject CN and the only DNS SAN
// are name, the role is the subject OrganizationalUnit, the extended key
// usages are the role's (roleUsages). The certificate never outlives the
// CA.
func (ca *CA) certify(name string, pub ed25519.PublicKey, opt IssueOptions) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := opt.populate(time.Now()); err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := opt.NotBefore.Add(opt.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         name,
			Organization:       ca.Cert.Subject.Organization,
			OrganizationalUnit: []string{opt.Role},
		},
		DNSNames:              []string{name},
		NotBefore:             opt.NotBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           roleUsages[opt.Role],
		BasicConstraintsValid: true,
	}
	for _, a := range opt.Addresses {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.Unmap().AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key.k)
	if err != nil {
		return nil, fmt.Errorf("%w: issue %q: %v", ErrIdentity, name, err)
	}
	return der, nil
}

func newIdentity(der []byte, priv ed25519.PrivateKey) (*Identity, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parse certificate: %v", ErrIdentity, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: certificate key is %T, not ed25519", ErrIdentity, cert.PublicKey)
	}
	if !pub.Equal(priv.Public()) {
		return nil, fmt.Errorf("%w: private key does not match certificate", ErrIdentity)
	}
	name, err := certName(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	id := &Identity{
		Name:    name,
		Role:    certRole(cert),
		Cert:    cert,
		CertDER: der,
		key:     &secretKey{priv},
		thumb:   ThumbprintOf(der),
		slot:    new(atomic.Pointer[Identity]),
	}
	id.slot.Store(id)
	return id, nil
}

// certName is the node name: the first DNS SAN.
func certName(c *x509.Certificate) (string, error) {
	if len(c.DNSNames) == 0 || c.DNSNames[0] == "" {
		return "", errors.New("certificate has no DNS subject alternative name")
	}
	return c.DNSNames[0], nil
}

// certRole is the subject OU, defaulting to device.
func certRole(c *x509.Certificate) string {
	if len(c.Subject.OrganizationalUnit) > 0 {
		return c.Subject.OrganizationalUnit[0]
	}
	return RoleDevice
}

// Save writes dir/ca.crt (PEM) and dir/ca.key (PEM PKCS#8, mode 0600).
func (ca *CA) Save(dir string) error {
	if err := writePair(dir, "ca", ca.Cert.Raw, ca.key.k); err != nil {
		return err
	}
	return nil
}

// LoadCA reads what Save wrote.
func LoadCA(dir string) (*CA, error) {
	cert, _, err := readCert(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrIdentity, filepath.Join(dir, "ca.crt"))
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: CA key does not match CA certificate", ErrIdentity)
	}
	return &CA{Cert: cert, key: &secretKey{key}}, nil
}

// Identity is a node's (or controller's, operator's) key pair and
// certificate.
type Identity struct {
	Name, Role string
	Cert       *x509.Certificate
	CertDER    []byte
	key        *secretKey
	thumb      Thumbprint
	// slot holds the newest identity of the same holder (Current, Renew),
	// shared by every identity renewed from one another.
	slot *atomic.Pointer[Identity]
}

// String identifies the holder without the key.
func (id *Identity) String() string {
	return fmt.Sprintf("Identity(%s, %s, %s)", id.Name, id.Role, id.Thumbprint())
}

// Format prints id.String for every verb, so the key never leaks.
func (id *Identity) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(id.String())) }

// GoString prints id.String.
func (id *Identity) GoString() string { return id.String() }

// Thumbprint is the SHA-256 of the certificate DER: the key id of every
// envelope this identity signs.
func (id *Identity) Thumbprint() Thumbprint {
	if id.thumb.IsZero() {
		return ThumbprintOf(id.CertDER)
	}
	return id.thumb
}

// PublicKey returns the ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.key.k.Public().(ed25519.PublicKey) }

// Sign returns the raw ed25519 signature of msg.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.key.k, msg) }

// TLSCertificate returns the certificate and key for crypto/tls.
func (id *Identity) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{id.CertDER}, PrivateKey: id.key.k, Leaf: id.Cert}
}

// Save writes dir/<name>.crt (PEM) and dir/<name>.key (PEM PKCS#8, 0600).
func (id *Identity) Save(dir string) error {
	return writePair(dir, id.Name, id.CertDER, id.key.k)
}

// LoadIdentity reads a PEM certificate and PEM PKCS#8 ed25519 key.
func LoadIdentity(certFile, keyFile string) (*Identity, error) {
	_, der, err := readCert(certFile)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	return newIdentity(der, key)
}

func writePair(dir, name string, der []byte, key ed25519.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	if err := writeFileAtomic(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return nil
}

// readCert reads the first CERTIFICATE block of a PEM file (or a raw DER
// file).
func readCert(file string) (*x509.Certificate, []byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("%w: %s: PEM block is %q, want CERTIFICATE", ErrIdentity, file, blk.Type)
		}
		der = blk.Bytes
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrIdentity, file, err)
	}
	return c, der, nil
}

// WriteCertificateFile writes a DER certificate as PEM, atomically, mode
// 0644.
func WriteCertificateFile(file string, der []byte) error {
	if err := writeFileAtomic(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return nil
}

// ReadCertificateFile reads a PEM (or DER) certificate file.
func ReadCertificateFile(file string) (*x509.Certificate, error) {
	c, _, err := readCert(file)
	return c, err
}

// readKey reads a PEM PKCS#8 ed25519 private key. Errors never include the
// file's contents.
func readKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s: no PKCS#8 PRIVATE KEY PEM block", ErrIdentity, file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not a PKCS#8 private key", ErrIdentity, file)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: key is %T, not ed25519", ErrIdentity, file, k)
	}
	return ek, nil
}

// Trust is the set of CA roots a verifier accepts, with the clock used for
// validity checks of live peers.
type Trust struct {
	roots *x509.CertPool
	certs []*x509.Certificate
	now   func() time.Time
	cache *chainCache
	// rev is the current revocation list, shared by every copy of the
	// Trust (WithClock), so that one SetRevocations reaches them all.
	rev *atomic.Pointer[RevocationList]
}

// NewTrust trusts the given CA certificates.
func NewTrust(roots ...*x509.Certificate) *Trust {
	p := x509.NewCertPool()
	for _, r := range roots {
		p.AddCert(r)
	}
	return &Trust{roots: p, certs: roots, now: time.Now, cache: newChainCache(), rev: new(atomic.Pointer[RevocationList])}
}

// LoadTrust trusts every certificate in a PEM file.
func LoadTrust(caCertFile string) (*Trust, error) {
	b, err := os.ReadFile(caCertFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	var roots []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrIdentity, caCertFile, err)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: %s: no CERTIFICATE PEM block", ErrIdentity, caCertFile)
	}
	return NewTrust(roots...), nil
}

// WithClock returns a copy of t that checks validity at now() (tests and
// simulations inject their clock here).
func (t *Trust) WithClock(now func() time.Time) *Trust {
	c := *t
	c.now = now
	return &c
}

// Roots returns the CA pool, for tls.Config.RootCAs and ClientCAs.
func (t *Trust) Roots() *x509.CertPool { return t.roots }

// Peer is what a verified certificate says about its holder.
type Peer struct {
	Name, Role string
	Thumbprint Thumbprint
	PublicKey  ed25519.PublicKey
	Cert       *x509.Certificate
}

// VerifyCert checks that der chains to a root, is valid now, carries an
// ed25519 key, names its holder in a DNS SAN, has exactly its role's
// extended key usages and is not revoked. Failures are *VerifyError with
// ErrMalformed, ErrUnknownAuthority, ErrCertExpired, ErrCertNotYetValid,
// ErrBadAlgorithm, ErrWrongUsage or ErrRevoked.
func (t *Trust) VerifyCert(der []byte) (*Peer, error) {
	return t.verifyCertAt(der, t.now())
}

// VerifyPeer is VerifyCert for a TLS peer: the certificate must also allow
// usage (x509.ExtKeyUsageClientAuth for a client, ServerAuth for a
// server).
func (t *Trust) VerifyPeer(der []byte, usage x509.ExtKeyUsage) (*Peer, error) {
	p, err := t.verifyCertAt(der, t.now())
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.Cert.ExtKeyUsage, usage) {
		return nil, verr(p.Name, ErrWrongUsage, "role %s certificate is not for %s", p.Role, usageName(usage))
	}
	return p, nil
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "TLS server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "TLS client authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

// checkUsages insists on exactly the role's extended key usages: no
// "any", no unknown ones, none missing.
func checkUsages(name string, c *x509.Certificate) error {
	role := certRole(c)
	want, ok := roleUsages[role]
	if !ok {
		return verr(name, ErrWrongUsage, "unknown role %q", role)
	}
	got := slices.Clone(c.ExtKeyUsage)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) || len(c.UnknownExtKeyUsage) > 0 {
		return verr(name, ErrWrongUsage, "role %s certificate has extended key usages %v, want %v", role, c.ExtKeyUsage, want)
	}
	return nil
}

// verifyCertAt verifies der as of time at. Chains are cached by
// thumbprint; a cached chain is re-checked only for validity at at.
func (t *Trust) verifyCertAt(der []byte, at time.Time) (*Peer, error) {
	tp := ThumbprintOf(der)
	e, ok := t.cache.get(tp)
	if !ok {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, verr("", ErrMalformed, "certificate: %v", err)
		}
		name, nerr := certName(cert)
		if nerr != nil {
			return nil, verr(cert.Subject.CommonName, ErrMalformed, "%v", nerr)
		}
		if err := checkWindow(name, "certificate", cert, at); err != nil {
			return nil, err
		}
		pub, isEd := cert.PublicKey.(ed25519.PublicKey)
		if !isEd {
			return nil, verr(name, ErrBadAlgorithm, "certificate key is %s, want ed25519", cert.PublicKeyAlgorithm)
		}
		if err := checkUsages(name, cert); err != nil {
			return nil, err
		}
		chains, err := cert.Verify(x509.VerifyOptions{
			Roots:       t.roots,
			CurrentTime: at,
			KeyUsages:   roleUsages[certRole(cert)],
		})
		if err != nil {
			return nil, mapX509Error(name, err, at)
		}
		e = &chainEntry{
			peer:   Peer{Name: name, Role: certRole(cert), Thumbprint: tp, PublicKey: pub, Cert: cert},
			chains: chains,
		}
		t.cache.put(tp, e)
	}
	if err := e.validAt(at); err != nil {
		return nil, err
	}
	if r, ok := t.Revoked(e.peer.Cert); ok && !at.Before(r.Since) {
		return nil, verr(e.peer.Name, ErrRevoked, "serial %x revoked at %s (invalid since %s, %s), checked at %s",
			e.peer.Cert.SerialNumber, r.RevokedAt.UTC().Format(time.RFC3339), r.Since.UTC().Format(time.RFC3339), r.Reason, at.UTC().Format(time.RFC3339))
	}
	p := e.peer
	return &p, nil
}

func mapX509Error(name string, err error, at time.Time) error {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return verr(name, ErrUnknownAuthority, "%v", err)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired && ci.Cert != nil {
		what := "certificate " + ci.Cert.Subject.CommonName
		if at.Before(ci.Cert.NotBefore) {
			return verr(name, ErrCertNotYetValid, "%s valid from %s, checked at %s", what, ci.Cert.NotBefore.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
		return verr(name, ErrCertExpired, "%s expired at %s, checked at %s", what, ci.Cert.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	var ia x509.InsecureAlgorithmError
	if errors.As(err, &ia) {
		return verr(name, ErrBadAlgorithm, "%v", err)
	}
	// Wrong key usage, bad CA signature and the like: the certificate is
	// not one our authority vouches for.
	return verr(name, ErrUnknownAuthority, "%v", err)
}

func checkWindow(name, what string, c *x509.Certificate, at time.Time) error {
	if at.Before(c.NotBefore) {
		return verr(name, ErrCertNotYetValid, "%s valid from %s, checked at %s", what, c.NotBefore.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339Nano))
	}
	if at.After(c.NotAfter) {
		return verr(name, ErrCertExpired, "%s expired at %s, checked at %s", what, c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

type chainEntry struct {
	peer   Peer
	chains [][]*x509.Certificate
}

// validAt reports whether the leaf and at least one verified chain are
// within their validity windows at at.
func (e *chainEntry) validAt(at time.Time) error {
	var first error
	for _, ch := range e.chains {
		var err error
		for i, c := range ch {
			what := "certificate"
			if i > 0 {
				what = "CA certificate " + c.Subject.CommonName
			}
			if err = checkWindow(e.peer.Name, what, c, at); err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return verr(e.peer.Name, ErrUnknownAuthority, "no chain to a trusted root")
	}
	return first
}

// chainCache remembers verified chains by leaf thumbprint. It is bounded:
// when full it starts over, which costs only re-verification.
type chainCache struct {
	mu sync.Mutex
	m  map[Thumbprint]*chainEntry
}

const chainCacheMax = 4096

func newChainCache() *chainCache { return &chainCache{m: make(map[Thumbprint]*chainEntry)} }

func (c *chainCache) get(tp Thumbprint) (*chainEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tp]
	return e, ok
}

func (c *chainCache) put(tp Thumbprint, e *chainEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= chainCacheMax {
		clear(c.m)
	}
	c.m[tp] = e
}

// DescribeCert renders the fields `d2d pki show` prints.
func DescribeCert(c *x509.Certificate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "subject:     %s\n", c.Subject)
	fmt.Fprintf(&b, "issuer:      %s\n", c.Issuer)
	if len(c.DNSNames) > 0 {
		fmt.Fprintf(&b, "san dns:     %s\n", strings.Join(c.DNSNames, ", "))
	}
	for _, ip := range c.IPAddresses {
		fmt.Fprintf(&b, "san ip:      %s\n", ip)
	}
	if c.IsCA {
		fmt.Fprintf(&b, "role:        CA\n")
	} else {
		fmt.Fprintf(&b, "role:        %s\n", certRole(c))
	}
	fmt.Fprintf(&b, "key:         %s\n", c.PublicKeyAlgorithm)
	fmt.Fprintf(&b, "not before:  %s\n", c.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "not after:   %s\n", c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "serial:      %x\n", c.SerialNumber)
	fmt.Fprintf(&b, "thumbprint:  %s\n", ThumbprintOf(c.Raw))
	return b.String()
}

package enroll

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/d2dmesh/d2d/internal/atomicfile"
	"github.com/d2dmesh/d2d/internal/spake2plus"
	"github.com/d2dmesh/d2d/signing"
)

// Files in the authority's directory, beside the CA's ca.crt and ca.key.
const (
	stateFile = "authority.json" // codes, issued and revoked certificates
	lockFile  = "authority.lock" // serializes processes sharing the directory
	crlFile   = "crl.pem"        // the revocation list in force
)

// Defaults, with their reasons.
const (
	// DefaultCodeTTL: long enough to walk to the rack and type the code,
	// short enough that a code on a sticky note soon stops mattering.
	DefaultCodeTTL = 30 * time.Minute
	// DefaultCodeAttempts: an online guess costs one attempt; three allow
	// two typing mistakes and give a guesser 3 in 2^100.
	DefaultCodeAttempts = 3
	// DefaultCRLValidity is a revocation list's next update; the service
	// re-signs it at half of that, and agents fetch it far more often.
	DefaultCRLValidity = 7 * 24 * time.Hour
)

// Errors.
var (
	// ErrRefused is the only error onboarding reports for a code: wrong,
	// expired, used, unknown node, or out of attempts look the same to the
	// device (see the package documentation).
	ErrRefused = errors.New("enroll: onboarding refused (wrong, expired or used code)")
	// ErrUnknownNode: a renewal from a node this authority never issued a
	// certificate to.
	ErrUnknownNode = errors.New("enroll: no certificate issued to this node")
	// ErrAuthority wraps state and CA errors.
	ErrAuthority = errors.New("enroll: authority")
)

// Issued records one certificate the authority issued.
type Issued struct {
	Serial     string    `json:"serial"` // hex
	Node       string    `json:"node"`
	Role       string    `json:"role"`
	NotAfter   time.Time `json:"notAfter"`
	Thumbprint string    `json:"thumbprint"`
	// Key is the SHA-256 of the certified ed25519 public key, hex.
	Key string    `json:"key"`
	Via string    `json:"via"` // "onboard", "renew", "sign", "issue"
	At  time.Time `json:"at"`
}

// revoked records one revocation.
type revoked struct {
	Serial    string    `json:"serial"`
	Node      string    `json:"node"`
	RevokedAt time.Time `json:"revokedAt"`
	Since     time.Time `json:"since"`
	Reason    string    `json:"reason"`
	NotAfter  time.Time `json:"notAfter"`
}

// codeRecord is a one-time onboarding code as the authority keeps it:
// the SPAKE2+ registration record (w0, L), never the code itself.
type codeRecord struct {
	Node        string    `json:"node"`
	Role        string    `json:"role"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"maxAttempts"`
	Used        bool      `json:"used"`
	W0          []byte    `json:"w0"`
	L           []byte    `json:"L"`
}

type authorityState struct {
	CRLNumber uint64       `json:"crlNumber"`
	Issued    []Issued     `json:"issued"`
	Revoked   []revoked    `json:"revoked"`
	Codes     []codeRecord `json:"codes"`
}

// AuthorityConfig configures an Authority. The zero value works.
type AuthorityConfig struct {
	// Validity of the certificates issued. If zero, 24h
	// (signing.DefaultCertValidity).
	Validity time.Duration
	// CRLValidity is the next update of the revocation lists it signs. If
	// zero, DefaultCRLValidity.
	CRLValidity time.Duration
	// Now is the clock. If nil, time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *AuthorityConfig) populate() {
	if c.Validity == 0 {
		c.Validity = signing.DefaultCertValidity
	}
	if c.CRLValidity == 0 {
		c.CRLValidity = DefaultCRLValidity
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Authority is the domain CA with its records: the certificates it
// issued, the revocations, the pending onboarding codes and the signed
// revocation list. Every change is written to dir/authority.json
// (write-temporary, fsync, rename, fsync directory) before it takes
// effect outside, so a crash at any instant loses no issued certificate,
// reuses no code and forgets no revocation. It is safe for concurrent
// use; one process opens a directory at a time.
type Authority struct {
	dir   string
	ca    *signing.CA
	cfg   AuthorityConfig
	dummy spake2plus.Record // answers runs that have no usable code

	mu    sync.Mutex
	state authorityState
	crl   *signing.RevocationList
}

// OpenAuthority opens the CA in dir (ca.crt, ca.key, as `d2d pki init`
// writes them) and its records.
func OpenAuthority(dir string, cfg AuthorityConfig) (*Authority, error) {
	cfg.populate()
	ca, err := signing.LoadCA(dir)
	if err != nil {
		return nil, err
	}
	a := &Authority{dir: dir, ca: ca, cfg: cfg}
	// The dummy record: a registration for a random password nobody
	// knows, so that a run without a usable code costs and looks the same.
	var seed [spake2plus.PBKDFSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	sec, err := spake2plus.NewSecret(seed[:])
	if err != nil {
		return nil, err
	}
	a.dummy = sec.Record()
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	end()
	return a, nil
}

// CA returns the certificate authority.
func (a *Authority) CA() *signing.CA { return a.ca }

// begin takes the authority for one operation: the in-process mutex and
// an exclusive lock on dir/authority.lock, so that `d2d pki revoke` or
// `d2d ca code` run beside a running `d2d ca serve` do not lose each
// other's changes; then it re-reads the state (and the list, if another
// process signed a newer one). end releases both.
func (a *Authority) begin() (end func(), err error) {
	a.mu.Lock()
	f, err := os.OpenFile(filepath.Join(a.dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrAuthority, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: lock: %v", ErrAuthority, err)
	}
	end = func() {
		f.Close() // releases the flock
		a.mu.Unlock()
	}
	if err := a.loadLocked(); err != nil {
		end()
		return nil, err
	}
	return end, nil
}

// loadLocked re-reads the state and, when its number changed, the list.
func (a *Authority) loadLocked() error {
	b, err := os.ReadFile(filepath.Join(a.dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		a.state = authorityState{}
	case err != nil:
		return fmt.Errorf("%w: %v", ErrAuthority, err)
	default:
		var st authorityState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrAuthority, stateFile, err)
		}
		a.state = st
	}
	if a.crl == nil || a.crl.Number != a.state.CRLNumber {
		if l, err := signing.LoadRevocationList(filepath.Join(a.dir, crlFile)); err == nil && l.Number == a.state.CRLNumber {
			a.crl = l
		} else {
			// No list, or one a crash left behind the state: sign anew.
			return a.resignLocked()
		}
	}
	return nil
}

// saveLocked writes the state; a.mu is held.
func (a *Authority) saveLocked() error {
	now := a.cfg.Now()
	// Forget what no longer matters: expired certificates (a revoked one
	// stays listed until it expires, RFC 5280 §3.3), codes a day past
	// their expiry.
	a.state.Issued = slices.DeleteFunc(a.state.Issued, func(i Issued) bool { return now.After(i.NotAfter) })
	a.state.Revoked = slices.DeleteFunc(a.state.Revoked, func(r revoked) bool { return now.After(r.NotAfter.Add(24 * time.Hour)) })
	a.state.Codes = slices.DeleteFunc(a.state.Codes, func(c codeRecord) bool { return now.After(c.Expires.Add(24 * time.Hour)) })
	b, err := json.MarshalIndent(&a.state, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAuthority, err)
	}
	if err := atomicfile.Write(a.dir, stateFile, b, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrAuthority, err)
	}
	return nil
}

// resignLocked signs a new revocation list from the state, with the next
// number, and writes both; a.mu is held.
func (a *Authority) resignLocked() error {
	a.state.CRLNumber++
	if err := a.saveLocked(); err != nil {
		return err
	}
	var rs []signing.Revocation
	for _, r := range a.state.Revoked {
		s, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return fmt.Errorf("%w: bad serial %q in state", ErrAuthority, r.Serial)
		}
		rs = append(rs, signing.Revocation{Serial: s, RevokedAt: r.RevokedAt, Since: r.Since, Reason: r.Reason})
	}
	l, err := a.ca.NewRevocationList(a.state.CRLNumber, rs, a.cfg.Now(), a.cfg.CRLValidity)
	if err != nil {
		return err
	}
	if err := l.Save(filepath.Join(a.dir, crlFile)); err != nil {
		return err
	}
	a.crl = l
	return nil
}

// RevocationList returns the list in force, re-signed with a new number
// once half its validity has passed.
func (a *Authority) RevocationList() (*signing.RevocationList, error) {
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	if a.cfg.Now().After(a.crl.ThisUpdate.Add(a.cfg.CRLValidity / 2)) {
		if err := a.resignLocked(); err != nil {
			return nil, err
		}
	}
	return a.crl, nil
}

// codeAlphabet has 32 symbols without 0/O and 1/I, which people confuse.
const codeAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// codeSymbols × 5 bits = 100 bits: unguessable within DefaultCodeAttempts.
const codeSymbols = 20

// Code is a new one-time onboarding code.
type Code struct {
	// Code is what the operator hands to the device: 20 symbols in groups
	// of four, e.g. "K7QF-2XD9-M4TA-8RWP-H3NC". Case and dashes do not
	// matter.
	Code    string
	Node    string
	Role    string
	Expires time.Time
}

// CodeOptions shape a new code.
type CodeOptions struct {
	// Role of the certificate the code yields. If empty, device.
	Role string
	// TTL of the code. If zero, DefaultCodeTTL.
	TTL time.Duration
	// Attempts is how many runs may try the code. If zero,
	// DefaultCodeAttempts.
	Attempts int
}

// NewCode makes a one-time code for node, replacing any pending code for
// it, and stores only its SPAKE2+ registration record.
func (a *Authority) NewCode(node string, opt CodeOptions) (*Code, error) {
	if err := signing.ValidName(node); err != nil {
		return nil, err
	}
	if opt.Role == "" {
		opt.Role = signing.RoleDevice
	}
	if !signing.KnownRole(opt.Role) || opt.Role == signing.RoleCA {
		return nil, fmt.Errorf("%w: role %q cannot be onboarded", ErrAuthority, opt.Role)
	}
	if opt.TTL == 0 {
		opt.TTL = DefaultCodeTTL
	}
	if opt.Attempts == 0 {
		opt.Attempts = DefaultCodeAttempts
	}
	var raw [codeSymbols]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	var sb strings.Builder
	for i, r := range raw {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(codeAlphabet[r&31])
	}
	code := sb.String()
	sec, err := deriveSecret(code, node)
	if err != nil {
		return nil, err
	}
	rec := sec.Record()
	now := a.cfg.Now()
	cr := codeRecord{Node: node, Role: opt.Role, Created: now, Expires: now.Add(opt.TTL), MaxAttempts: opt.Attempts,
		W0: rec.W0[:], L: rec.L[:]}
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	a.state.Codes = slices.DeleteFunc(a.state.Codes, func(c codeRecord) bool { return c.Node == node })
	a.state.Codes = append(a.state.Codes, cr)
	if err := a.saveLocked(); err != nil {
		return nil, err
	}
	a.cfg.Logger.Info("onboarding code created", "node", node, "role", opt.Role, "expires", cr.Expires.UTC().Format(time.RFC3339))
	return &Code{Code: code, Node: node, Role: opt.Role, Expires: cr.Expires}, nil
}

// spakeContext binds the protocol, its version, the suite and the
// password hash's parameters into every run (RFC 9383 §3.3).
func spakeContext(node string) spake2plus.Context {
	return spake2plus.Context{
		Context:    []byte("d2d onboarding v1 P256-SHA256-HKDF-SHA256-HMAC-SHA256 scrypt(32768,8,1)"),
		IDProver:   []byte(node),
		IDVerifier: []byte(verifierID),
	}
}

// verifierID names the CA service in the transcript. The device cannot
// know the CA's name before it is onboarded, so it is a constant.
const verifierID = "d2d-ca"

// normalizeCode drops dashes and spaces and upper-cases.
func normalizeCode(code string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
}

// deriveSecret is the registration of RFC 9383 §3.2 with scrypt at the
// RFC's recommended parameters (N=32768, r=8, p=1):
// w0s ‖ w1s = scrypt(len(pw)‖pw‖len(idProver)‖idProver‖len(idVerifier)‖idVerifier).
func deriveSecret(code, node string) (*spake2plus.Secret, error) {
	var in []byte
	for _, part := range []string{normalizeCode(code), node, verifierID} {
		in = binary.LittleEndian.AppendUint64(in, uint64(len(part)))
		in = append(in, part...)
	}
	out, err := scrypt.Key(in, []byte("d2d onboarding v1"), 32768, 8, 1, spake2plus.PBKDFSize)
	if err != nil {
		return nil, err
	}
	return spake2plus.NewSecret(out)
}

// attempt starts a run for node: if it has a usable code (not used, not
// expired, attempts left) the attempt is counted durably, before the CA
// answers, and its record returned; otherwise the dummy record. Either
// way the caller does the same work with it.
func (a *Authority) attempt(node string) (spake2plus.Record, bool) {
	end, err := a.begin()
	if err != nil {
		a.cfg.Logger.Warn("onboarding attempt", "node", node, "err", err)
		return a.dummy, false
	}
	defer end()
	now := a.cfg.Now()
	for i := range a.state.Codes {
		c := &a.state.Codes[i]
		if c.Node != node {
			continue
		}
		if c.Used || !now.Before(c.Expires) || c.Attempts >= c.MaxAttempts {
			break
		}
		c.Attempts++
		if err := a.saveLocked(); err != nil {
			c.Attempts--
			a.cfg.Logger.Warn("onboarding attempt not recorded", "node", node, "err", err)
			break
		}
		var r spake2plus.Record
		copy(r.W0[:], c.W0)
		copy(r.L[:], c.L)
		return r, true
	}
	return a.dummy, false
}

// redeem uses node's code for the request csr: it marks the code used
// and records the certificate, durably, before returning it.
func (a *Authority) redeem(node string, csr []byte) ([]byte, error) {
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	now := a.cfg.Now()
	i := slices.IndexFunc(a.state.Codes, func(c codeRecord) bool { return c.Node == node })
	if i < 0 {
		return nil, ErrRefused
	}
	c := &a.state.Codes[i]
	if c.Used || !now.Before(c.Expires) {
		return nil, ErrRefused
	}
	der, err := a.ca.SignRequest(csr, node, signing.IssueOptions{Role: c.Role, Validity: a.cfg.Validity})
	if err != nil {
		return nil, err
	}
	c.Used = true
	if err := a.recordLocked(der, "onboard"); err != nil {
		c.Used = false
		return nil, err
	}
	a.cfg.Logger.Info("node onboarded", "node", node, "role", c.Role)
	return der, nil
}

// recordLocked adds an issued certificate to the state and saves it.
func (a *Authority) recordLocked(der []byte, via string) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAuthority, err)
	}
	pub, _ := cert.PublicKey.(ed25519.PublicKey)
	a.state.Issued = append(a.state.Issued, Issued{
		Serial: cert.SerialNumber.Text(16), Node: cert.DNSNames[0], Role: roleOf(cert),
		NotAfter: cert.NotAfter, Thumbprint: signing.ThumbprintOf(der).String(), Key: keyHash(pub), Via: via, At: a.cfg.Now(),
	})
	return a.saveLocked()
}

func roleOf(c *x509.Certificate) string {
	if len(c.Subject.OrganizationalUnit) > 0 {
		return c.Subject.OrganizationalUnit[0]
	}
	return signing.RoleDevice
}

// Sign issues a certificate for a request made on a node (`d2d pki
// sign`): the operator has checked out of band that the request comes
// from node, and chooses the role.
func (a *Authority) Sign(csr []byte, node, role string, validity time.Duration) ([]byte, error) {
	if validity == 0 {
		validity = a.cfg.Validity
	}
	der, err := a.ca.SignRequest(csr, node, signing.IssueOptions{Role: role, Validity: validity})
	if err != nil {
		return nil, err
	}
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	if err := a.recordLocked(der, "sign"); err != nil {
		return nil, err
	}
	return der, nil
}

func keyHash(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Renew issues a new certificate to an authenticated node for its
// request. The request's key must be the key of a certificate this
// authority issued to the node that is neither expired nor revoked (a
// renewal keeps the key), and the new certificate gets that
// certificate's role: a node cannot renew into another role, and the
// holder of a revoked key cannot renew at all, even before every peer has
// the new list.
func (a *Authority) Renew(node string, csr []byte) ([]byte, error) {
	req, name, err := signing.ParseRequest(csr)
	if err != nil {
		return nil, err
	}
	if name != node {
		return nil, fmt.Errorf("%w: request for %q from %q", ErrAuthority, name, node)
	}
	key := keyHash(req.PublicKey.(ed25519.PublicKey))
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	now := a.cfg.Now()
	var last *Issued
	for i := range a.state.Issued {
		is := &a.state.Issued[i]
		if is.Node != node || is.Key != key || !now.Before(is.NotAfter) {
			continue
		}
		if slices.ContainsFunc(a.state.Revoked, func(r revoked) bool { return r.Serial == is.Serial }) {
			continue
		}
		if last == nil || is.At.After(last.At) {
			last = is
		}
	}
	if last == nil {
		return nil, fmt.Errorf("%w: no valid, unrevoked certificate of %q for this key", ErrUnknownNode, node)
	}
	der, err := a.ca.SignRequest(csr, node, signing.IssueOptions{Role: last.Role, Validity: a.cfg.Validity})
	if err != nil {
		return nil, err
	}
	if err := a.recordLocked(der, "renew"); err != nil {
		return nil, err
	}
	return der, nil
}

// RevokeOptions say what to revoke and why.
type RevokeOptions struct {
	// Node revokes every unexpired certificate issued to it.
	Node string
	// Serial (hex) revokes one certificate.
	Serial string
	// Since is when the key became unsafe, if known to be before now.
	Since time.Time
	// Reason: "key-compromise" (default), "superseded",
	// "cessation-of-operation" or "unspecified".
	Reason string
}

// Revoke adds revocations and signs a new list; it returns the list and
// the serials it added.
func (a *Authority) Revoke(opt RevokeOptions) (*signing.RevocationList, []string, error) {
	if opt.Reason == "" {
		opt.Reason = "key-compromise"
	}
	end, err := a.begin()
	if err != nil {
		return nil, nil, err
	}
	defer end()
	now := a.cfg.Now().UTC().Truncate(time.Second)
	since := opt.Since
	if since.IsZero() || since.After(now) {
		since = now
	}
	var added []string
	for _, is := range a.state.Issued {
		if (opt.Node != "" && is.Node == opt.Node) || (opt.Serial != "" && strings.EqualFold(is.Serial, strings.TrimPrefix(opt.Serial, "0x"))) {
			if slices.ContainsFunc(a.state.Revoked, func(r revoked) bool { return r.Serial == is.Serial }) {
				continue
			}
			a.state.Revoked = append(a.state.Revoked, revoked{Serial: is.Serial, Node: is.Node, RevokedAt: now, Since: since, Reason: opt.Reason, NotAfter: is.NotAfter})
			added = append(added, is.Serial)
		}
	}
	if len(added) == 0 {
		return nil, nil, fmt.Errorf("%w: no unexpired certificate matches node %q serial %q", ErrAuthority, opt.Node, opt.Serial)
	}
	if err := a.resignLocked(); err != nil {
		return nil, nil, err
	}
	a.cfg.Logger.Info("revoked", "node", opt.Node, "serials", added, "list", a.state.CRLNumber)
	return a.crl, added, nil
}

// IssuedCertificates lists the unexpired certificates issued.
func (a *Authority) IssuedCertificates() ([]Issued, error) {
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	return slices.Clone(a.state.Issued), nil
}

// IssueWithKey makes a key and a certificate for name on the CA's host
// and records it (`d2d pki issue`, for labs: a real node makes its own
// key and onboards or sends a request).
func (a *Authority) IssueWithKey(name string, opt signing.IssueOptions) (*signing.Identity, error) {
	if opt.Validity == 0 {
		opt.Validity = a.cfg.Validity
	}
	id, err := a.ca.Issue(name, opt)
	if err != nil {
		return nil, err
	}
	end, err := a.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	if err := a.recordLocked(id.CertDER, "issue"); err != nil {
		return nil, err
	}
	return id, nil
}

package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// Key is a node's ed25519 private key, made on the node itself
// (GenerateKey) so that it never has to leave it: the CA sees only the
// certificate request the key signs. It formats as a redaction marker.
type Key struct{ k *secretKey }

// GenerateKey makes a new ed25519 key.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return &Key{&secretKey{priv}}, nil
}

// LoadKey reads a PEM PKCS#8 ed25519 key.
func LoadKey(file string) (*Key, error) {
	k, err := readKey(file)
	if err != nil {
		return nil, err
	}
	return &Key{&secretKey{k}}, nil
}

// Save writes the key as PEM PKCS#8 with mode 0600, atomically; the
// directory is created 0700 if missing.
func (k *Key) Save(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k.k.k)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	if err := writeFileAtomic(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return nil
}

// Public returns the public key.
func (k *Key) Public() ed25519.PublicKey { return k.k.k.Public().(ed25519.PublicKey) }

func (*Key) String() string             { return redacted }
func (*Key) GoString() string           { return redacted }
func (*Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// CertificateRequest returns a PKCS#10 request (DER) for name, signed by
// k: subject CN and the only DNS SAN are name. The role is not asked for:
// the CA decides it (from the onboarding code, or the certificate being
// renewed).
func (k *Key) CertificateRequest(name string) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name},
		DNSNames: []string{name},
	}, k.k.k)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate request: %v", ErrIdentity, err)
	}
	return der, nil
}

// MaxRequestBytes bounds a certificate request: a real one is about 200
// bytes.
const MaxRequestBytes = 4 << 10

// ParseRequest decodes and checks a PKCS#10 request: its self-signature
// verifies, the key is ed25519, and CN and the only DNS SAN are one valid
// node name, which it returns. A request with IP or e-mail SANs,
// extensions other than the SAN, or trailing data is refused.
func ParseRequest(der []byte) (*x509.CertificateRequest, string, error) {
	if len(der) == 0 || len(der) > MaxRequestBytes {
		return nil, "", fmt.Errorf("%w: certificate request of %d bytes (1..%d)", ErrIdentity, len(der), MaxRequestBytes)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, "", fmt.Errorf("%w: certificate request: %v", ErrIdentity, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("%w: certificate request signature: %v", ErrIdentity, err)
	}
	if _, ok := csr.PublicKey.(ed25519.PublicKey); !ok {
		return nil, "", fmt.Errorf("%w: certificate request key is %s, want Ed25519", ErrIdentity, csr.PublicKeyAlgorithm)
	}
	if len(csr.DNSNames) != 1 || csr.DNSNames[0] != csr.Subject.CommonName {
		return nil, "", fmt.Errorf("%w: certificate request must name its node in CN and one DNS SAN", ErrIdentity)
	}
	if len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) != 0 {
		return nil, "", fmt.Errorf("%w: certificate request asks for other names than the node name", ErrIdentity)
	}
	if err := validName(csr.Subject.CommonName); err != nil {
		return nil, "", err
	}
	return csr, csr.Subject.CommonName, nil
}

// SignRequest issues a certificate for the key of a checked request, to
// the name the request carries, which must be want. The role, validity and
// addresses come from opt, never from the request.
func (ca *CA) SignRequest(der []byte, want string, opt IssueOptions) ([]byte, error) {
	csr, name, err := ParseRequest(der)
	if err != nil {
		return nil, err
	}
	if name != want {
		return nil, fmt.Errorf("%w: certificate request is for %q, not %q", ErrIdentity, name, want)
	}
	return ca.certify(name, csr.PublicKey.(ed25519.PublicKey), opt)
}

// NewIdentity pairs a certificate (DER) with the key it certifies.
func NewIdentity(certDER []byte, key *Key) (*Identity, error) {
	return newIdentity(certDER, key.k.k)
}

// Key returns the identity's private key, for writing it to disk.
func (id *Identity) Key() *Key { return &Key{id.key} }

// Current returns the newest certificate of this identity's holder: id
// itself until Renew installs a successor, then the successor (for every
// identity of the chain). Long-lived users (the D2D endpoint's TLS, the
// result signer, report signatures) ask Current each time, so a renewal
// takes effect without a restart; sessions already open keep the
// certificate they were authenticated with.
func (id *Identity) Current() *Identity {
	if id.slot == nil {
		return id
	}
	if c := id.slot.Load(); c != nil {
		return c
	}
	return id
}

// Renew installs certDER, a new certificate for the same key, name and
// role, as the current one of id's holder and returns it. A certificate
// that expires before the current one is refused: renewal moves forward.
func (id *Identity) Renew(certDER []byte) (*Identity, error) {
	next, err := newIdentity(certDER, id.key.k)
	if err != nil {
		return nil, err
	}
	cur := id.Current()
	if next.Name != cur.Name || next.Role != cur.Role {
		return nil, fmt.Errorf("%w: renewal for %s (%s), identity is %s (%s)", ErrIdentity, next.Name, next.Role, cur.Name, cur.Role)
	}
	if next.Cert.NotAfter.Before(cur.Cert.NotAfter) {
		return nil, fmt.Errorf("%w: renewal expires %s, before the current certificate", ErrIdentity, next.Cert.NotAfter.UTC())
	}
	if id.slot == nil {
		return nil, fmt.Errorf("%w: identity was not made by this package", ErrIdentity)
	}
	next.slot = id.slot
	id.slot.Store(next)
	return next, nil
}

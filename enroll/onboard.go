package enroll

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/d2dmesh/d2d/internal/spake2plus"
	"github.com/d2dmesh/d2d/signing"
)

// Info strings of the two sealing keys derived from K_shared: one per
// direction, each sealing a single message, so a fixed nonce is safe.
const (
	infoRequest = "d2d onboarding v1 request"
	infoGrant   = "d2d onboarding v1 grant"
)

func aead(shared []byte, info string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, shared, nil, info, 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var zeroNonce = make([]byte, 12)

func seal(shared []byte, info string, typ byte, plain []byte) ([]byte, error) {
	g, err := aead(shared, info)
	if err != nil {
		return nil, err
	}
	return g.Seal(nil, zeroNonce, plain, []byte{typ}), nil
}

func open(shared []byte, info string, typ byte, sealed []byte) ([]byte, error) {
	g, err := aead(shared, info)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, zeroNonce, sealed, []byte{typ})
}

// onboard runs the CA side of one onboarding on conn and returns the node
// name the device gave and the outcome. Whatever is wrong with the code —
// wrong, expired, used, out of attempts, or no code for that node — the
// CA answers the same way: a challenge computed with a registration
// record (the node's, or a dummy one nobody knows the password of),
// whose confirmation the device cannot verify, then a failure frame. An
// attempt on a real code is counted durably before the challenge goes
// out, so a guess costs an attempt even if the device hangs up after it.
func (a *Authority) onboard(conn net.Conn, timeout time.Duration) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	fail := func(err error) error {
		_, _ = conn.Write(appendFrame(nil, typeFailure, nil))
		return err
	}
	_, payload, err := readFrame(r, typeHello)
	if err != nil {
		return "", err
	}
	var h hello
	if err := h.UnmarshalBinary(payload); err != nil {
		return "", fail(err)
	}
	if h.Version != protocolVersion {
		return h.Node, fail(fmt.Errorf("%w: protocol version %d", ErrMalformed, h.Version))
	}
	if err := signing.ValidName(h.Node); err != nil {
		return "", fail(err)
	}
	rec, real := a.attempt(h.Node)
	v, shareV, confirmV, err := spake2plus.NewVerifier(spakeContext(h.Node), rec, h.Share, rand.Reader)
	if err != nil {
		return h.Node, fail(err)
	}
	ch := challenge{Share: shareV, Confirm: confirmV}
	out, _ := ch.AppendBinary(nil)
	if _, err := conn.Write(appendFrame(nil, typeChallenge, out)); err != nil {
		return h.Node, err
	}
	_, payload, err = readFrame(r, typeFinish)
	if err != nil {
		return h.Node, err
	}
	var f finish
	if err := f.UnmarshalBinary(payload); err != nil {
		return h.Node, fail(err)
	}
	shared, err := v.Finish(f.Confirm)
	if err != nil {
		return h.Node, fail(ErrRefused)
	}
	if !real {
		// Only a device that knows the dummy's random password gets here.
		return h.Node, fail(ErrRefused)
	}
	csr, err := open(shared, infoRequest, typeFinish, f.Sealed)
	if err != nil {
		return h.Node, fail(fmt.Errorf("%w: sealed request: %v", ErrMalformed, err))
	}
	der, err := a.redeem(h.Node, csr)
	if err != nil {
		return h.Node, fail(err)
	}
	crl, err := a.RevocationList()
	if err != nil {
		return h.Node, fail(err)
	}
	g := grant{Cert: der, CA: a.ca.Cert.Raw, CRL: crl.Raw}
	plain, err := g.AppendBinary(nil)
	if err != nil {
		return h.Node, fail(err)
	}
	sealed, err := seal(shared, infoGrant, typeResult, plain)
	if err != nil {
		return h.Node, fail(err)
	}
	if _, err := conn.Write(appendFrame(nil, typeResult, sealed)); err != nil {
		return h.Node, err
	}
	return h.Node, nil
}

// Onboarded is what a device receives: its identity (its own key with
// the new certificate), the domain CA and the revocation list in force.
type Onboarded struct {
	Identity    *signing.Identity
	CA          *x509.Certificate
	Revocations *signing.RevocationList
}

// Onboard runs the device side: it derives the SPAKE2+ secret from code
// and node, proves knowledge of it to the CA service at addr (TCP), and
// sends a certificate request signed by key, sealed under the run's
// shared key; it returns the certificate, checked against the CA
// certificate that came under the same seal. Every refusal of the code is
// ErrRefused; the device cannot tell why, and neither can anyone who
// guesses.
func Onboard(ctx context.Context, addr, node, code string, key *signing.Key) (*Onboarded, error) {
	csr, err := key.CertificateRequest(node)
	if err != nil {
		return nil, err
	}
	sec, err := deriveSecret(code, node)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("enroll: onboarding: %w", err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultOnboardTimeout)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	p, shareP, err := spake2plus.NewProver(spakeContext(node), sec, rand.Reader)
	if err != nil {
		return nil, err
	}
	h := hello{Version: protocolVersion, Node: node, Share: shareP}
	hb, err := h.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(appendFrame(nil, typeHello, hb)); err != nil {
		return nil, fmt.Errorf("enroll: onboarding: %w", err)
	}
	r := bufio.NewReader(conn)
	typ, payload, err := readFrame(r, typeChallenge)
	if err != nil {
		return nil, fmt.Errorf("enroll: onboarding: %w", err)
	}
	if typ == typeFailure {
		return nil, ErrRefused
	}
	var ch challenge
	if err := ch.UnmarshalBinary(payload); err != nil {
		return nil, err
	}
	confirmP, shared, err := p.Finish(ch.Share, ch.Confirm)
	if err != nil {
		// The CA did not prove it holds this code's record: wrong code,
		// or not our CA. Nothing of the request is sent.
		return nil, ErrRefused
	}
	sealed, err := seal(shared, infoRequest, typeFinish, csr)
	if err != nil {
		return nil, err
	}
	f := finish{Confirm: confirmP, Sealed: sealed}
	fb, err := f.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(appendFrame(nil, typeFinish, fb)); err != nil {
		return nil, fmt.Errorf("enroll: onboarding: %w", err)
	}
	typ, payload, err = readFrame(r, typeResult)
	if err != nil {
		return nil, fmt.Errorf("enroll: onboarding: %w", err)
	}
	if typ == typeFailure {
		return nil, ErrRefused
	}
	plain, err := open(shared, infoGrant, typeResult, payload)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed grant: %v", ErrMalformed, err)
	}
	var g grant
	if err := g.UnmarshalBinary(plain); err != nil {
		return nil, err
	}
	return acceptGrant(g, node, key)
}

// acceptGrant checks what the CA sent: a CA certificate, a certificate
// for node and key that chains to it, and a list that CA signed.
func acceptGrant(g grant, node string, key *signing.Key) (*Onboarded, error) {
	ca, err := x509.ParseCertificate(g.CA)
	if err != nil || !ca.IsCA {
		return nil, fmt.Errorf("%w: grant: no CA certificate", ErrMalformed)
	}
	trust := signing.NewTrust(ca)
	peer, err := trust.VerifyCert(g.Cert)
	if err != nil {
		return nil, fmt.Errorf("enroll: granted certificate: %w", err)
	}
	if peer.Name != node {
		return nil, fmt.Errorf("%w: granted certificate is for %q", ErrMalformed, peer.Name)
	}
	id, err := signing.NewIdentity(g.Cert, key)
	if err != nil {
		return nil, err
	}
	out := &Onboarded{Identity: id, CA: ca}
	if g.CRL != nil {
		l, err := signing.ParseRevocationList(g.CRL)
		if err != nil {
			return nil, err
		}
		if err := trust.SetRevocations(l); err != nil {
			return nil, err
		}
		out.Revocations = l
	}
	return out, nil
}

// DefaultOnboardTimeout bounds one onboarding run on either side: the
// device's scrypt and two round trips take well under a second.
const DefaultOnboardTimeout = 20 * time.Second

// errClosed reports a listener closed on purpose.
func errClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

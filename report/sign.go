package report

import (
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

// VerifyError names the first element of a report that failed
// verification, e.g. `evidence[2] (P-2 tools/call ietf-srv6-ping)`.
type VerifyError struct {
	// Element is a path into the report: `signatures["PE-1"]`,
	// `evidence[2] (P-2 tools/call ietf-srv6-ping)`,
	// `hypothesis.evidenceRefs[1] "e9"`.
	Element string
	Err     error
}

func (e *VerifyError) Error() string { return e.Element + ": " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

func verr(elem string, err error) error { return &VerifyError{Element: elem, Err: err} }

// signedBytes returns what the signature of node covers.
func (r *Report) signedBytes(node string) ([]byte, error) {
	c := *r
	if node == r.Creator {
		c.Signatures = maps.Clone(r.Signatures)
		delete(c.Signatures, node)
	} else {
		c.Signatures = nil
	}
	return c.canonical()
}

// Sign adds the creator's signature. id must be the creator (an empty
// Creator is set to id.Name). Co-signatures must be added before.
func (r *Report) Sign(id *signing.Identity) error {
	if r.Creator == "" {
		r.Creator = id.Name
	}
	if r.Creator != id.Name {
		return fmt.Errorf("%w: creator is %q, identity is %q", ErrSignerMismatch, r.Creator, id.Name)
	}
	return r.addSignature(id)
}

// Cosign adds the signature of a node other than the creator, endorsing
// the report's content. It must come before the creator's Sign, which
// covers it; cosigning a report the creator has signed fails.
func (r *Report) Cosign(id *signing.Identity) error {
	if id.Name == r.Creator {
		return fmt.Errorf("%w: the creator signs with Sign", ErrSignerMismatch)
	}
	if _, signed := r.Signatures[r.Creator]; signed {
		return fmt.Errorf("%w: already signed by its creator", ErrInvalid)
	}
	return r.addSignature(id)
}

func (r *Report) addSignature(id *signing.Identity) error {
	// The newest certificate of a renewed identity signs.
	id = id.Current()
	if err := r.checkShape(); err != nil {
		return err
	}
	msg, err := r.signedBytes(id.Name)
	if err != nil {
		return err
	}
	if r.Signatures == nil {
		r.Signatures = map[string]Signature{}
	}
	r.Signatures[id.Name] = Signature{
		KeyID: id.Thumbprint(),
		Alg:   signing.AlgEd25519,
		Value: id.Sign(msg),
		Cert:  id.CertDER,
	}
	return nil
}

// Verify checks r offline: every evidence ref is unique, every evidence
// item verifies with v (certificates missing from envelopes are taken from
// r.Certificates), every hypothesis ref resolves, every co-signature and
// the creator's signature verify, and their certificates chain to trust
// and name the signing node. It returns a *VerifyError naming the first
// bad element in that order, so that tampered evidence is named as such
// rather than as the creator signature it also breaks.
//
// Certificates are checked at trust's clock; see VerifyArchived for
// reports older than their certificates.
func Verify(r *Report, v *signing.Verifier, trust *signing.Trust) error {
	if err := r.checkShape(); err != nil {
		return verr("report", err)
	}
	if _, ok := r.Signatures[r.Creator]; !ok {
		return verr(fmt.Sprintf("signatures[%q]", r.Creator), ErrNoSignature)
	}

	refs := make(map[string]int, len(r.Evidence))
	evs := make([]signing.Evidence, len(r.Evidence))
	for i, ev := range r.Evidence {
		elem := evidenceElem(i, ev)
		if ev.Ref == "" {
			return verr(elem, fmt.Errorf("%w: empty ref", ErrInvalid))
		}
		if j, dup := refs[ev.Ref]; dup {
			return verr(elem, fmt.Errorf("%w %q (also evidence[%d])", ErrDuplicateRef, ev.Ref, j))
		}
		refs[ev.Ref] = i
		if len(ev.Envelope.Cert) == 0 {
			ev.Envelope.Cert = r.Certificates[ev.Node]
		}
		evs[i] = ev
	}
	// The creator gathered and checked the evidence live before it
	// signed the report: it witnesses evidence whose signer was revoked
	// afterwards (signing.Witness; the revocation rule in package
	// signing's documentation).
	for i, err := range v.VerifyEvidenceWitnessed(evs, signing.Witness{Name: r.Creator, At: r.Created}) {
		if err != nil {
			return verr(evidenceElem(i, r.Evidence[i]), err)
		}
	}

	checkRefs := func(path string, h Hypothesis) error {
		for i, ref := range h.EvidenceRefs {
			if _, ok := refs[ref]; !ok {
				return verr(fmt.Sprintf("%s.evidenceRefs[%d] %q", path, i, ref), ErrNoSuchEvidence)
			}
		}
		return nil
	}
	if err := checkRefs("hypothesis", r.Hypothesis); err != nil {
		return err
	}
	for i, h := range r.Alternatives {
		if err := checkRefs(fmt.Sprintf("alternatives[%d]", i), h); err != nil {
			return err
		}
	}
	for i, s := range r.Plan {
		if _, ok := refs[s.Evidence]; s.Evidence != "" && !ok {
			return verr(fmt.Sprintf("plan[%d].evidence %q", i, s.Evidence), ErrNoSuchEvidence)
		}
	}

	for _, node := range slices.Sorted(maps.Keys(r.Signatures)) {
		if node == r.Creator {
			continue
		}
		if err := r.verifySignature(node, trust); err != nil {
			return verr(fmt.Sprintf("signatures[%q]", node), err)
		}
	}
	if err := r.verifySignature(r.Creator, trust); err != nil {
		return verr(fmt.Sprintf("signatures[%q]", r.Creator), err)
	}
	return nil
}

// VerifyArchived verifies r against trust as of r's creation time, with a
// fresh verifier: what `d2d report verify` does. Short-lived certificates
// have usually expired by the time a report is examined.
func VerifyArchived(r *Report, trust *signing.Trust) error {
	t := trust.WithClock(func() time.Time { return r.Created })
	return Verify(r, signing.NewVerifier(t, signing.VerifierOptions{}), t)
}

func evidenceElem(i int, ev signing.Evidence) string {
	return fmt.Sprintf("evidence[%d] (%s %s %s)", i, ev.Node, ev.Method, ev.Target)
}

func (r *Report) verifySignature(node string, trust *signing.Trust) error {
	sig := r.Signatures[node]
	if sig.Alg != signing.AlgEd25519 {
		return fmt.Errorf("%w: algorithm %q", ErrBadSignature, sig.Alg)
	}
	if len(sig.Cert) == 0 {
		return fmt.Errorf("%w: no certificate", ErrNoSignature)
	}
	if !signing.ThumbprintOf(sig.Cert).Equal(sig.KeyID) {
		return fmt.Errorf("%w: keyId is not the certificate's thumbprint", ErrSignerMismatch)
	}
	peer, err := trust.VerifyCert(sig.Cert)
	if err != nil {
		return err
	}
	// A report signature carries no witness but its signer's own word
	// for its date: once the signer's certificate is revoked, whoever
	// holds the key could have backdated it.
	if rv, revoked := trust.Revoked(peer.Cert); revoked {
		return &signing.VerifyError{Signer: node, Reason: signing.ErrRevoked,
			Detail: fmt.Sprintf("report signed by a certificate revoked at %s (invalid since %s); its creation date is its signer's own claim",
				rv.RevokedAt.UTC().Format(time.RFC3339), rv.Since.UTC().Format(time.RFC3339))}
	}
	if peer.Name != node {
		return fmt.Errorf("%w: certificate names %q", ErrSignerMismatch, peer.Name)
	}
	pub := peer.PublicKey
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: certificate key is not ed25519", ErrBadSignature)
	}
	msg, err := r.signedBytes(node)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig.Value) {
		return ErrBadSignature
	}
	return nil
}

// checkSelf verifies the creator's signature against the certificate it
// carries, without a CA: the store's test that a file is what was written.
func (r *Report) checkSelf() error {
	sig, ok := r.Signatures[r.Creator]
	if !ok {
		return fmt.Errorf("%w by creator %q", ErrNoSignature, r.Creator)
	}
	cert, err := x509.ParseCertificate(sig.Cert)
	if err != nil {
		return fmt.Errorf("%w: creator certificate: %w", ErrBadSignature, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("%w: creator key is not ed25519", ErrBadSignature)
	}
	msg, err := r.signedBytes(r.Creator)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig.Value) {
		return fmt.Errorf("%w by creator %q", ErrBadSignature, r.Creator)
	}
	return nil
}

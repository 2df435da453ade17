package main

import (
	"context"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/d2dmesh/d2d/enroll"
	"github.com/d2dmesh/d2d/signing"
)

func init() {
	register(command{name: "pki request", summary: "make a key on this node and a certificate request for the CA", run: runPKIRequest})
	register(command{name: "pki sign", summary: "sign a node's certificate request (the key stays on the node)", run: runPKISign})
	register(command{name: "pki install", summary: "install a signed certificate next to this node's key", run: runPKIInstall})
	register(command{name: "pki revoke", summary: "revoke a node's certificates and sign a new revocation list", run: runPKIRevoke})
	register(command{name: "pki revocations", summary: "print a revocation list (the CA's, or a file)", run: runPKIRevocations})
	register(command{name: "ca code", summary: "make a one-time onboarding code for a node", run: runCACode})
	register(command{name: "ca serve", summary: "run the CA service: onboarding, renewals, revocation list", run: runCAServe})
	register(command{name: "enroll", summary: "onboard this node with a one-time code (SPAKE2+)", run: runEnroll})
}

// keyFingerprint is the SHA-256 of the public key, for comparing a
// request with the node it came from over another channel.
func keyFingerprint(k *signing.Key) string {
	sum := sha256.Sum256(k.Public())
	return fmt.Sprintf("%x", sum[:])
}

func runPKIRequest(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki request")
	name := fs.String("name", "", "this node's name (required)")
	dir := fs.String("dir", "", "directory for NAME.key (0600) and NAME.csr (required)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *name == "" || *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --name and --dir are required", errUsage)
	}
	keyFile := filepath.Join(*dir, *name+".key")
	key, err := signing.LoadKey(keyFile)
	if err != nil {
		// No key yet (or none readable): make one here. An existing key
		// is kept, so that a request can be made again for renewal.
		if _, statErr := os.Stat(keyFile); statErr == nil {
			return err
		}
		if key, err = signing.GenerateKey(); err != nil {
			return err
		}
		if err := key.Save(keyFile); err != nil {
			return err
		}
	}
	csr, err := key.CertificateRequest(*name)
	if err != nil {
		return err
	}
	csrFile := filepath.Join(*dir, *name+".csr")
	if err := os.WriteFile(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "key:         %s (0600, stays here)\nrequest:     %s\nkey sha256:  %s\n", keyFile, csrFile, keyFingerprint(key))
	return nil
}

func readPEMOrDER(file, typ string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != typ {
			return nil, fmt.Errorf("%s: PEM block is %q, want %q", file, blk.Type, typ)
		}
		return blk.Bytes, nil
	}
	return b, nil
}

func openAuthority(env *cmdEnv, dir string) (*enroll.Authority, error) {
	return enroll.OpenAuthority(dir, enroll.AuthorityConfig{Logger: slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
}

func runPKISign(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki sign")
	dir := fs.String("dir", "", "CA directory (required)")
	name := fs.String("name", "", "the node the request must be for (required)")
	role := fs.String("role", signing.RoleDevice, "device, controller, operator or ca")
	validity := fs.Duration("validity", signing.DefaultCertValidity, "certificate lifetime")
	out := fs.String("out", "", "certificate file (default: the request's name with .crt)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || *name == "" || fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: pki sign --dir CA --name NODE REQUEST.csr", errUsage)
	}
	csr, err := readPEMOrDER(fs.Arg(0), "CERTIFICATE REQUEST")
	if err != nil {
		return err
	}
	a, err := openAuthority(env, *dir)
	if err != nil {
		return err
	}
	der, err := a.Sign(csr, *name, *role, *validity)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(filepath.Dir(fs.Arg(0)), *name+".crt")
	}
	if err := signing.WriteCertificateFile(*out, der); err != nil {
		return err
	}
	c, _ := signing.ReadCertificateFile(*out)
	fmt.Fprintf(env.stdout, "signed %s (%s) valid until %s\ncertificate: %s\nthumbprint:  %s\n",
		*name, *role, c.NotAfter.UTC().Format(time.RFC3339), *out, signing.ThumbprintOf(der))
	return nil
}

func runPKIInstall(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki install")
	dir := fs.String("dir", "", "this node's pki directory, holding NAME.key (required)")
	caFile := fs.String("ca", "", "domain CA certificate to check against and install as ca.crt (required)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || *caFile == "" || fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: pki install --dir DIR --ca ca.crt NODE.crt", errUsage)
	}
	der, err := readPEMOrDER(fs.Arg(0), "CERTIFICATE")
	if err != nil {
		return err
	}
	trust, err := signing.LoadTrust(*caFile)
	if err != nil {
		return err
	}
	peer, err := trust.VerifyCert(der)
	if err != nil {
		return err
	}
	key, err := signing.LoadKey(filepath.Join(*dir, peer.Name+".key"))
	if err != nil {
		return err
	}
	id, err := signing.NewIdentity(der, key)
	if err != nil {
		return err
	}
	caDER, err := readPEMOrDER(*caFile, "CERTIFICATE")
	if err != nil {
		return err
	}
	if err := signing.WriteCertificateFile(filepath.Join(*dir, "ca.crt"), caDER); err != nil {
		return err
	}
	if err := signing.WriteCertificateFile(filepath.Join(*dir, id.Name+".crt"), der); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "installed %s (%s) valid until %s in %s\n", id.Name, id.Role, id.Cert.NotAfter.UTC().Format(time.RFC3339), *dir)
	return nil
}

func runPKIRevoke(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki revoke")
	dir := fs.String("dir", "", "CA directory (required)")
	node := fs.String("node", "", "revoke every unexpired certificate of this node")
	serial := fs.String("serial", "", "revoke the certificate with this serial (hex)")
	reason := fs.String("reason", "key-compromise", "key-compromise, superseded, cessation-of-operation or unspecified")
	since := fs.String("since", "", "RFC 3339 time since which the key is in doubt (default: now)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || (*node == "") == (*serial == "") || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --dir and one of --node, --serial are required", errUsage)
	}
	opt := enroll.RevokeOptions{Node: *node, Serial: *serial, Reason: *reason}
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
		opt.Since = t
	}
	a, err := openAuthority(env, *dir)
	if err != nil {
		return err
	}
	l, serials, err := a.Revoke(opt)
	if err != nil {
		return err
	}
	for _, s := range serials {
		fmt.Fprintf(env.stdout, "revoked serial %s\n", s)
	}
	fmt.Fprintf(env.stdout, "revocation list %d signed (%d entries), next update %s; agents fetch it from the CA service\n",
		l.Number, len(l.Revoked), l.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

func runPKIRevocations(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki revocations")
	dir := fs.String("dir", "", "CA directory: print its list in force")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var l *signing.RevocationList
	var err error
	switch {
	case *dir != "" && fs.NArg() == 0:
		var a *enroll.Authority
		if a, err = openAuthority(env, *dir); err == nil {
			l, err = a.RevocationList()
		}
	case *dir == "" && fs.NArg() == 1:
		l, err = signing.LoadRevocationList(fs.Arg(0))
	default:
		return fmt.Errorf("%w: pki revocations --dir CA | FILE", errUsage)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "number:      %d\nthis update: %s\nnext update: %s\nrevoked:     %d\n", l.Number,
		l.ThisUpdate.UTC().Format(time.RFC3339), l.NextUpdate.UTC().Format(time.RFC3339), len(l.Revoked))
	for _, r := range l.Revoked {
		fmt.Fprintf(env.stdout, "  serial %x  revoked %s  since %s  %s\n", r.Serial, r.RevokedAt.UTC().Format(time.RFC3339), r.Since.UTC().Format(time.RFC3339), r.Reason)
	}
	return nil
}

func runCACode(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "ca code")
	dir := fs.String("dir", "", "CA directory (required)")
	node := fs.String("node", "", "the node the code onboards (required)")
	role := fs.String("role", signing.RoleDevice, "role of its certificate: device, controller or operator")
	ttl := fs.Duration("ttl", enroll.DefaultCodeTTL, "how long the code is valid")
	attempts := fs.Int("attempts", enroll.DefaultCodeAttempts, "how many runs may try it")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || *node == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --dir and --node are required", errUsage)
	}
	a, err := openAuthority(env, *dir)
	if err != nil {
		return err
	}
	c, err := a.NewCode(*node, enroll.CodeOptions{Role: *role, TTL: *ttl, Attempts: *attempts})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "code:     %s\nnode:     %s (%s)\nexpires:  %s (single use, %d attempts)\non the node: d2d enroll --service CA-HOST:%d --name %s --code %s --dir STATE/pki\n",
		c.Code, c.Node, c.Role, c.Expires.UTC().Format(time.RFC3339), *attempts, enroll.DefaultPort, c.Node, c.Code)
	return nil
}

func runCAServe(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "ca serve")
	dir := fs.String("dir", "", "CA directory (required)")
	listen := fs.String("listen", fmt.Sprintf(":%d", enroll.DefaultPort), "UDP (renewals, revocation list) and TCP (onboarding) address")
	name := fs.String("name", "ca", "the service's node name (its certificate, role ca)")
	validity := fs.Duration("validity", signing.DefaultCertValidity, "lifetime of the certificates it issues")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	log := slog.New(slog.NewTextHandler(env.stderr, nil))
	a, err := enroll.OpenAuthority(*dir, enroll.AuthorityConfig{Validity: *validity, Logger: log})
	if err != nil {
		return err
	}
	s, err := enroll.Serve(ctx, enroll.ServiceConfig{Authority: a, Name: *name, Listen: *listen, Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "CA service %s: D2D %s (udp), onboarding %s (tcp); nodes set pki.service: %s@HOST:%d\n",
		*name, s.Addr(), s.OnboardAddr(), *name, s.Addr().Port())
	<-ctx.Done()
	return s.Close()
}

func runEnroll(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "enroll")
	service := fs.String("service", "", "the CA service's onboarding address, HOST:PORT (tcp, 9516) (required)")
	name := fs.String("name", "", "this node's name, as the code was made for (required)")
	code := fs.String("code", "", "the one-time code (required; or D2D_ENROLL_CODE)")
	dir := fs.String("dir", "", "directory for NAME.key, NAME.crt, ca.crt, crl.pem (required)")
	timeout := fs.Duration("timeout", enroll.DefaultOnboardTimeout, "give up after")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *code == "" {
		*code = os.Getenv("D2D_ENROLL_CODE")
	}
	if *service == "" || *name == "" || *code == "" || *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --service, --name, --code and --dir are required", errUsage)
	}
	key, err := signing.GenerateKey()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ob, err := enroll.Onboard(ctx, *service, *name, *code, key)
	if err != nil {
		return err
	}
	if err := ob.Identity.Save(*dir); err != nil {
		return err
	}
	if err := signing.WriteCertificateFile(filepath.Join(*dir, "ca.crt"), ob.CA.Raw); err != nil {
		return err
	}
	if ob.Revocations != nil {
		if err := ob.Revocations.Save(filepath.Join(*dir, "crl.pem")); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "enrolled %s (%s) valid until %s\nkey:         %s (made here, 0600)\ncertificate: %s\nCA:          %s (%s)\nthumbprint:  %s\n",
		ob.Identity.Name, ob.Identity.Role, ob.Identity.Cert.NotAfter.UTC().Format(time.RFC3339),
		filepath.Join(*dir, *name+".key"), filepath.Join(*dir, *name+".crt"), filepath.Join(*dir, "ca.crt"),
		ob.CA.Subject.CommonName, ob.Identity.Thumbprint())
	return nil
}

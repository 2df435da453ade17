package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

func init() {
	register(command{name: "pki token", summary: "issue a short-lived capability token bound to a node's certificate", run: runPKIToken})
}

// runPKIToken issues a capability token (draft 003 §7.2) signed by a
// controller identity for one node's certificate.
func runPKIToken(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki token")
	dir := fs.String("dir", "", "directory holding ISSUER.crt/.key and NODE.crt (required unless the file flags are given)")
	issuer := fs.String("issuer", "", "controller identity name: DIR/ISSUER.crt and .key (required)")
	issuerCert := fs.String("issuer-cert", "", "issuer certificate file (default DIR/ISSUER.crt)")
	issuerKey := fs.String("issuer-key", "", "issuer key file (default DIR/ISSUER.key)")
	holder := fs.String("for", "", "node name the token is for (required)")
	holderCert := fs.String("cert", "", "the node's certificate, whose thumbprint binds the token (default DIR/NODE.crt)")
	thumb := fs.String("thumbprint", "", "the node's certificate thumbprint (64 hex), instead of --cert")
	var scopes stringList
	fs.Var(&scopes, "scope", "capability, resource:URI-PREFIX or privacy:3; repeatable or comma-separated (required)")
	ttl := fs.Duration("ttl", signing.DefaultTokenTTL, "lifetime (at most 24h)")
	out := fs.String("out", "", "write the token to this file (default: stdout)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *issuer == "" || *holder == "" || len(scopes) == 0 || fs.NArg() != 0 {
		fs.Usage()
		return usageErr("--issuer, --for and --scope are required")
	}
	def := func(f *string, name string) {
		if *f == "" {
			*f = filepath.Join(*dir, name)
		}
	}
	def(issuerCert, *issuer+".crt")
	def(issuerKey, *issuer+".key")
	id, err := signing.LoadIdentity(*issuerCert, *issuerKey)
	if err != nil {
		return err
	}
	var tp signing.Thumbprint
	if *thumb != "" {
		if err := tp.UnmarshalText([]byte(*thumb)); err != nil {
			return usageErr(err.Error())
		}
	} else {
		def(holderCert, *holder+".crt")
		c, err := signing.ReadCertificateFile(*holderCert)
		if err != nil {
			return err
		}
		tp = signing.ThumbprintOf(c.Raw)
	}
	var list []string
	for _, s := range scopes {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
	}
	tok, err := signing.IssueToken(id, signing.TokenRequest{Subject: *holder, Thumbprint: tp, Scopes: list, TTL: *ttl})
	if err != nil {
		return err
	}
	b, err := tok.Marshal()
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = env.stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "token for %s (%s) valid until %s written to %s\n", *holder, strings.Join(tok.Scopes, ","), tok.NotAfter.Format(time.RFC3339), *out)
	return nil
}

package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

func init() {
	register(command{name: "pki init", summary: "create a domain CA (ca.crt, ca.key)", run: runPKIInit})
	register(command{name: "pki issue", summary: "issue a key and certificate on the CA host (labs; nodes use pki request or enroll)", run: runPKIIssue})
	register(command{name: "pki show", summary: "print a certificate's subject, SAN, role, validity, thumbprint", run: runPKIShow})
}

func runPKIInit(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki init")
	dir := fs.String("dir", "", "directory for ca.crt and ca.key (required)")
	name := fs.String("name", "d2d domain CA", "CA common name")
	validity := fs.Duration("validity", signing.DefaultCAValidity, "CA lifetime")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --dir is required and no arguments are taken", errUsage)
	}
	if _, err := signing.LoadCA(*dir); err == nil {
		return fmt.Errorf("a CA already exists in %s; refusing to overwrite it", *dir)
	}
	ca, err := signing.NewCA(*name, *validity)
	if err != nil {
		return err
	}
	if err := ca.Save(*dir); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "CA %q written to %s (ca.crt, ca.key 0600)\n", *name, *dir)
	fmt.Fprint(env.stdout, signing.DescribeCert(ca.Cert))
	return nil
}

func runPKIIssue(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki issue")
	dir := fs.String("dir", "", "CA directory (required)")
	name := fs.String("name", "", "node name, the certificate's DNS SAN (required)")
	role := fs.String("role", signing.RoleDevice, "device, controller, operator or ca")
	validity := fs.Duration("validity", signing.DefaultCertValidity, "certificate lifetime")
	out := fs.String("out", "", "output directory for NAME.crt and NAME.key (default: --dir)")
	addrs := fs.String("addr", "", "comma-separated IP addresses to add as SANs")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *dir == "" || *name == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --dir and --name are required", errUsage)
	}
	opt := signing.IssueOptions{Validity: *validity, Role: *role}
	if *addrs != "" {
		for _, a := range strings.Split(*addrs, ",") {
			ip, err := netip.ParseAddr(strings.TrimSpace(a))
			if err != nil {
				return fmt.Errorf("%w: --addr: %v", errUsage, err)
			}
			opt.Addresses = append(opt.Addresses, ip)
		}
	}
	// Recorded by the authority, so that the CA service renews it.
	a, err := openAuthority(env, *dir)
	if err != nil {
		return err
	}
	id, err := a.IssueWithKey(*name, opt)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = *dir
	}
	if err := id.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "issued %s (%s) valid until %s\n", id.Name, id.Role, id.Cert.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(env.stdout, "certificate: %s\nkey:         %s (0600)\nthumbprint:  %s\n",
		filepath.Join(*out, id.Name+".crt"), filepath.Join(*out, id.Name+".key"), id.Thumbprint())
	return nil
}

func runPKIShow(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "pki show")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: pki show FILE.crt", errUsage)
	}
	c, err := signing.ReadCertificateFile(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprint(env.stdout, signing.DescribeCert(c))
	return nil
}

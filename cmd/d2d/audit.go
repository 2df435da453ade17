package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/report"
)

func init() {
	register(command{name: "audit verify", summary: "verify an audit trail's hash chain (and signatures with --cert)", run: runAuditVerify})
	register(command{name: "audit show", summary: "show an audit trail (table, --json or --syslog)", run: runAuditShow})
}

func auditOpenArg(env *cmdEnv, path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(env.stdin), nil
	}
	return os.Open(path)
}

// certPublicKey reads the ed25519 key of a PEM (or DER) certificate.
func auditCertPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 certificate", path)
	}
	return pub, nil
}

func runAuditVerify(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "audit verify")
	certFile := fs.String("cert", "", "node certificate (PEM); when given, every record must carry its signature")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.stderr, "usage: d2d audit verify [--cert node.crt] [--json] FILE")
		return fmt.Errorf("%w: one FILE is required", errUsage)
	}
	var pub ed25519.PublicKey
	if *certFile != "" {
		var err error
		if pub, err = auditCertPublicKey(*certFile); err != nil {
			return err
		}
	}
	f, err := auditOpenArg(env, fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := report.CheckAudit(f, pub)
	if *asJSON {
		out := struct {
			File string `json:"file"`
			OK   bool   `json:"ok"`
			report.AuditSummary
			Error string `json:"error,omitempty"`
		}{File: fs.Arg(0), OK: err == nil, AuditSummary: sum}
		if err != nil {
			out.Error = err.Error()
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(env.stdout, "%s\n", b)
	}
	if err != nil {
		if !*asJSON {
			fmt.Fprintf(env.stdout, "FAIL %s: %v\n", fs.Arg(0), err)
		}
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", fs.Arg(0), err)}
	}
	if !*asJSON {
		signed := ""
		if pub != nil {
			signed = fmt.Sprintf(", %d signatures", sum.Signed)
		}
		fmt.Fprintf(env.stdout, "OK %s: %d records (seq %d-%d)%s, head %s\n",
			fs.Arg(0), sum.Records, sum.FirstSeq, sum.LastSeq, signed, sum.Head)
	}
	return nil
}

func runAuditShow(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "audit show")
	asJSON := fs.Bool("json", false, "print records as a JSON array")
	asSyslog := fs.Bool("syslog", false, "print records as RFC 5424 syslog messages")
	hostname := fs.String("hostname", "", "HOSTNAME for --syslog (default: the NILVALUE \"-\")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*asJSON && *asSyslog) {
		fmt.Fprintln(env.stderr, "usage: d2d audit show [--json|--syslog [--hostname H]] FILE")
		return fmt.Errorf("%w: one FILE and at most one of --json, --syslog", errUsage)
	}
	f, err := auditOpenArg(env, fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	recs, readErr := report.ReadAudit(f)
	switch {
	case *asJSON:
		if recs == nil {
			recs = []report.Record{}
		}
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(recs); err != nil {
			return err
		}
	case *asSyslog:
		sf := report.SyslogFormatter{Hostname: *hostname}
		for _, r := range recs {
			fmt.Fprintf(env.stdout, "%s\n", sf.Format(r))
		}
	default:
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tDIR\tPEER\tSESSION\tMETHOD\tTARGET\tRESULT")
		for _, r := range recs {
			res := "ok " + auditShort(r.ResultHash, 12)
			if r.Error != "" {
				res = "error: " + r.Error
			} else if r.ResultHash == "" {
				res = "ok"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano),
				r.Direction, r.Peer, auditShort(r.Session, 12), r.Method, r.Target, res)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if readErr != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), readErr)
	}
	return nil
}

func auditShort(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

func init() {
	register(command{name: "report verify", summary: "verify a report's signatures offline against the CA", run: runReportVerify})
	register(command{name: "report show", summary: "show a report (text, --json or --svg)", run: runReportShow})
	register(command{name: "report list", summary: "list the reports in an on-box store", run: runReportList})
}

// readReport reads and decodes one report file ("-" is stdin).
func reportRead(env *cmdEnv, path string) (*report.Report, error) {
	var rd io.Reader = env.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rd = f
	}
	b, err := io.ReadAll(io.LimitReader(rd, report.MaxReportSize+1))
	if err != nil {
		return nil, err
	}
	return report.Decode(b)
}

type reportVerifyResult struct {
	File     string   `json:"file"`
	ID       string   `json:"id,omitempty"`
	OK       bool     `json:"ok"`
	Evidence int      `json:"evidence"`
	Nodes    []string `json:"nodes,omitempty"`
	Signers  []string `json:"signers,omitempty"`
	Element  string   `json:"element,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func runReportVerify(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "report verify")
	caFile := fs.String("ca", "", "domain CA certificate (PEM); required")
	asJSON := fs.Bool("json", false, "print one JSON object per file")
	atNow := fs.Bool("now", false, "check certificates at the current time instead of the report's creation time")
	crlFile := fs.String("crl", "", "revocation list (PEM or DER X.509 CRL from the CA) to apply; see the rule in package signing")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: d2d report verify --ca ca.crt [--crl crl.pem] [--json] [--now] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *caFile == "" || fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: --ca and at least one FILE are required", errUsage)
	}
	trust, err := signing.LoadTrust(*caFile)
	if err != nil {
		return err
	}
	if *crlFile != "" {
		l, err := signing.LoadRevocationList(*crlFile)
		if err != nil {
			return err
		}
		if err := trust.SetRevocations(l); err != nil {
			return err
		}
	}
	var firstErr error
	for _, file := range fs.Args() {
		res := reportVerifyResult{File: file}
		r, err := reportRead(env, file)
		if err == nil {
			res.ID = r.ID
			res.Evidence = len(r.Evidence)
			res.Nodes = reportEvidenceNodes(r)
			if *atNow {
				err = report.Verify(r, signing.NewVerifier(trust, signing.VerifierOptions{}), trust)
			} else {
				err = report.VerifyArchived(r, trust)
			}
		}
		if err != nil {
			res.Error = err.Error()
			var ve *report.VerifyError
			if errors.As(err, &ve) {
				res.Element = ve.Element
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", file, err)
			}
		} else {
			res.OK = true
			for n := range r.Signatures {
				res.Signers = append(res.Signers, n)
			}
		}
		switch {
		case *asJSON:
			b, _ := json.Marshal(res)
			fmt.Fprintf(env.stdout, "%s\n", b)
		case res.OK:
			fmt.Fprintf(env.stdout, "OK %s: %d evidence items from nodes %s; signed by %s\n",
				res.ID, res.Evidence, strings.Join(res.Nodes, ", "), r.Creator)
		default:
			fmt.Fprintf(env.stdout, "FAIL %s: %s\n", file, res.Error)
		}
	}
	if firstErr != nil {
		return &exitError{code: 1, err: firstErr}
	}
	return nil
}

// evidenceNodes lists the nodes that supplied evidence, in order.
func reportEvidenceNodes(r *report.Report) []string {
	var out []string
	seen := map[string]bool{}
	for _, ev := range r.Evidence {
		if !seen[ev.Node] {
			seen[ev.Node] = true
			out = append(out, ev.Node)
		}
	}
	return out
}

func runReportShow(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "report show")
	asJSON := fs.Bool("json", false, "print the report as indented JSON")
	asSVG := fs.Bool("svg", false, "print an SVG picture of the nodes with the suspect highlighted")
	storeDir := fs.String("store", "", "read report ID from this store directory instead of a FILE")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: d2d report show [--json|--svg] FILE | --store DIR ID")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*asJSON && *asSVG) {
		fs.Usage()
		return fmt.Errorf("%w: one FILE (or ID with --store) and at most one of --json, --svg", errUsage)
	}
	var r *report.Report
	var err error
	if *storeDir != "" {
		var s *report.Store
		s, err = report.OpenStore(*storeDir, report.StoreConfig{ReadOnly: true})
		if err != nil {
			return err
		}
		defer s.Close()
		r, err = s.Get(fs.Arg(0))
	} else {
		r, err = reportRead(env, fs.Arg(0))
	}
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		return report.RenderJSON(env.stdout, r)
	case *asSVG:
		return report.RenderSVG(env.stdout, r)
	}
	if err := report.RenderText(env.stdout, r); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "\n(signatures not checked here: d2d report verify --ca CA FILE)")
	return nil
}

func runReportList(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "report list")
	storeDir := fs.String("store", "", "store directory; required")
	asJSON := fs.Bool("json", false, "print JSON")
	unpulled := fs.Bool("unpulled", false, "only reports no controller has pulled")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *storeDir == "" || fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("%w: --store DIR is required", errUsage)
	}
	s, err := report.OpenStore(*storeDir, report.StoreConfig{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	entries := s.List()
	if *unpulled {
		entries = s.Unpulled()
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if entries == nil {
			entries = []report.Entry{}
		}
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tCREATOR\tPULLED\tINTENT")
	for _, e := range entries {
		pulled := "no"
		if e.Pulled {
			pulled = "by " + e.PulledBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Created.UTC().Format(time.RFC3339), e.Creator, pulled, auditShort(e.Intent, 60))
	}
	return tw.Flush()
}

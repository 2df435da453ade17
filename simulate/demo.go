package simulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/collab"
	agent "github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// DemoOptions configure Demo. The zero value runs the headline scenario
// of draft-zm-rtgwg-mcp-troubleshooting-01 §5.3.1 on Triangle().
type DemoOptions struct {
	// Topology is a topology file; if empty, Triangle().
	Topology string
	// Faults to inject (ParseFault syntax). If nil and Topology is empty,
	// the headline fault "acl-drop:PE-1:2001:P-2:3%".
	Faults []string
	// Intent typed on the shell. If empty and Topology is empty, the
	// headline intent; with a topology file it is required.
	Intent string
	// From is the node whose shell the intent is typed on. If empty, the
	// intent's head (or its node, for node-scoped intents).
	From string
	// Consent to the proposed mitigation: "approve" (default: the demo
	// plays the operator and says yes, then keeps the change) or "deny".
	Consent string
	// Out is where the CA certificate and the report are written so they
	// can be verified afterwards. If empty, ./d2d-demo.
	Out  string
	Seed int64
	// Stdout receives the transcript. If nil, os.Stdout.
	Stdout io.Writer
}

// The headline scenario (docs/ARCHITECTURE.md §1).
const (
	HeadlineFault  = "acl-drop:PE-1:2001:P-2:3%"
	HeadlineIntent = "verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2"
)

// DemoResult is what the demo produced.
type DemoResult struct {
	ReportFile string
	CAFile     string
	Report     *report.Report
}

// Demo starts an in-process domain whose agents talk over real loopback
// QUIC with real certificates, injects the faults, types the intent on
// one node's chat shell (through its admin socket, as an operator would),
// lets the operator consent to the mitigation, writes the report, and
// verifies it offline against the CA as a controller would.
func Demo(ctx context.Context, opt DemoOptions) (*DemoResult, error) {
	w := opt.Stdout
	if w == nil {
		w = os.Stdout
	}
	if opt.Out == "" {
		opt.Out = "d2d-demo"
	}
	if opt.Consent == "" {
		opt.Consent = "approve"
	}
	topo := Triangle()
	if opt.Topology != "" {
		var err error
		if topo, err = LoadTopology(opt.Topology); err != nil {
			return nil, err
		}
		if opt.Intent == "" {
			return nil, errors.New("simulate: a topology file needs an intent (--intent)")
		}
	} else {
		if opt.Faults == nil {
			opt.Faults = []string{HeadlineFault}
		}
		if opt.Intent == "" {
			opt.Intent = HeadlineIntent
		}
	}
	in, err := collab.ParseIntent(opt.Intent, nodeNames(topo))
	if err != nil {
		return nil, err
	}
	if opt.From == "" {
		opt.From = firstNonEmpty(in.Head, in.Node, topo.Nodes[0].Name)
	}

	start := time.Now()
	d, err := StartDomain(ctx, DomainConfig{Topology: topo, Seed: opt.Seed})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fmt.Fprintf(w, "d2d demo: domain %q, %d agents on loopback QUIC, certificates from one domain CA\n\n", topo.Name, len(d.Nodes()))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tD2D ENDPOINT\tGOSSIP\tCERT THUMBPRINT")
	for _, n := range d.Nodes() {
		a := d.Agent(n)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.16s…\n", n, a.Addr(), a.GossipAddr(), a.Identity().Thumbprint())
	}
	tw.Flush()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = d.WaitConverged(cctx)
	cancel()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "\nmembership: every agent knows the other %d (%v after start)\n", len(d.Nodes())-1, time.Since(start).Round(time.Millisecond))
	for _, f := range opt.Faults {
		flt, err := ParseFault(f)
		if err != nil {
			return nil, err
		}
		if _, err := d.Network.Inject(flt); err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "fault injected: %s\n", f)
	}

	fmt.Fprintf(w, "\n%s> %s\n", opt.From, opt.Intent)
	from := d.Agent(opt.From)
	if from == nil {
		return nil, fmt.Errorf("simulate: no node %q", opt.From)
	}
	if err := agent.Chat(ctx, agent.ChatOptions{
		Socket:  filepath.Join(d.Dir, opt.From, "admin.sock"),
		Command: opt.Intent,
		Consent: opt.Consent,
		Confirm: true,
		In:      strings.NewReader(""),
		Out:     w,
	}); err != nil {
		return nil, err
	}

	// The newest report on the shell's node is the one just made.
	entries := from.Store().List()
	if len(entries) == 0 {
		return nil, errors.New("simulate: the workflow stored no report")
	}
	latest := entries[len(entries)-1]
	raw, err := from.Store().Raw(latest.ID)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	// Each run has its own CA: reports of earlier runs would no longer
	// verify against the new ca.crt, so they go.
	if old, err := filepath.Glob(filepath.Join(opt.Out, "report-*.json")); err == nil {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	res := &DemoResult{
		ReportFile: filepath.Join(opt.Out, "report-"+latest.ID+".json"),
		CAFile:     filepath.Join(opt.Out, "ca.crt"),
	}
	if err := os.WriteFile(res.ReportFile, raw, 0o644); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	ca, err := os.ReadFile(d.CAFile())
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	if err := os.WriteFile(res.CAFile, ca, 0o644); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}

	// Verify as a controller would: offline, from the file, with only
	// the CA certificate.
	r, err := report.Decode(raw)
	if err != nil {
		return nil, err
	}
	trust := signing.NewTrust(d.CA.Cert)
	if err := report.VerifyArchived(r, trust); err != nil {
		return nil, fmt.Errorf("simulate: report does not verify: %w", err)
	}
	res.Report = r
	fmt.Fprintf(w, "\nreport %s written to %s\n", r.ID, res.ReportFile)
	fmt.Fprintf(w, "verified offline against the domain CA: %d evidence items from %s, %d action(s), signed by %s\n",
		len(r.Evidence), strings.Join(r.Nodes(), ", "), len(r.Actions), r.Creator)
	fmt.Fprintf(w, "check it yourself: d2d report verify --ca %s %s\n", res.CAFile, res.ReportFile)
	return res, nil
}

func nodeNames(t Topology) []string {
	out := make([]string, 0, len(t.Nodes))
	for _, n := range t.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

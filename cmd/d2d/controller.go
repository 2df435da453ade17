package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

func init() {
	register(command{name: "controller pull", summary: "pull, verify and store the reports of one or many nodes", run: runControllerPull})
	register(command{name: "controller serve", summary: "receive pushed reports and poll devices for nodes", run: runControllerServe})
	register(command{name: "controller reports", summary: "list|show|export the controller's stored reports", run: runControllerReports})
	register(command{name: "controller run", summary: "run an intent from the controller against devices directly", run: runControllerRun})
}

// ctlFlags are the flags every controller command shares.
type ctlFlags struct {
	dir, pki, name, ca, cert, key string
	nodes, nodesFile              string
	listen                        string
	timeout                       time.Duration
	verbose                       bool
}

func (f *ctlFlags) register(fs *flag.FlagSet, network bool) {
	fs.StringVar(&f.dir, "dir", "/var/lib/d2d-controller", "controller state directory (store, nonces)")
	if !network {
		return
	}
	fs.StringVar(&f.pki, "pki", "", "directory holding ca.crt, NAME.crt and NAME.key (default: DIR/pki)")
	fs.StringVar(&f.name, "name", "ctl", "controller name (its certificate: d2d pki issue --name ctl --role controller)")
	fs.StringVar(&f.ca, "ca", "", "domain CA certificate (default: PKI/ca.crt)")
	fs.StringVar(&f.cert, "cert", "", "controller certificate (default: PKI/NAME.crt)")
	fs.StringVar(&f.key, "key", "", "controller key (default: PKI/NAME.key)")
	fs.StringVar(&f.nodes, "nodes", "", "comma-separated nodes NAME@HOST:PORT[=THUMBPRINT]")
	fs.StringVar(&f.nodesFile, "nodes-file", "", "file with one NAME@HOST:PORT[=THUMBPRINT] per line")
	fs.StringVar(&f.listen, "listen", "", "UDP address (default :9515 for serve, any port otherwise)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "bound on each call to a node")
	fs.BoolVar(&f.verbose, "v", false, "log to stderr")
}

func (f *ctlFlags) config(env *cmdEnv, serve bool) (controller.Config, error) {
	pki := f.pki
	if pki == "" {
		pki = filepath.Join(f.dir, "pki")
	}
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	id, err := signing.LoadIdentity(or(f.cert, filepath.Join(pki, f.name+".crt")), or(f.key, filepath.Join(pki, f.name+".key")))
	if err != nil {
		return controller.Config{}, fmt.Errorf("controller identity (d2d pki issue --name %s --role controller): %w", f.name, err)
	}
	trust, err := signing.LoadTrust(or(f.ca, filepath.Join(pki, "ca.crt")))
	if err != nil {
		return controller.Config{}, err
	}
	members, err := controller.ParseMembers(f.nodes)
	if err != nil {
		return controller.Config{}, fmt.Errorf("%w: --nodes: %v", errUsage, err)
	}
	if f.nodesFile != "" {
		fh, err := os.Open(f.nodesFile)
		if err != nil {
			return controller.Config{}, err
		}
		more, err := controller.ReadMembers(fh)
		fh.Close()
		if err != nil {
			return controller.Config{}, fmt.Errorf("%s: %w", f.nodesFile, err)
		}
		members = append(members, more...)
	}
	cfg := controller.Config{Identity: id, Trust: trust, Dir: f.dir, Members: members, Serve: serve, Listen: f.listen, CallTimeout: f.timeout}
	if f.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

func runControllerPull(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "controller pull")
	var f ctlFlags
	f.register(fs, true)
	all := fs.Bool("all", false, "re-read reports the nodes already mark pulled")
	asJSON := fs.Bool("json", false, "print one JSON object per node")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (f.nodes == "" && f.nodesFile == "") {
		fs.Usage()
		return usageErr("--nodes or --nodes-file is required")
	}
	cfg, err := f.config(env, false)
	if err != nil {
		return err
	}
	c, err := controller.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	res := c.Pull(ctx, nil, controller.PullOptions{All: *all, OnReport: func(ev controller.ReportEvent) {
		if *asJSON {
			return
		}
		switch {
		case ev.Err != nil:
			fmt.Fprintf(env.stdout, "%s %s: %v\n", ev.Node, ev.ID, ev.Err)
		default:
			fmt.Fprintf(env.stdout, "%s %s: %s, verified%s\n", ev.Node, ev.ID, ev.Outcome, map[bool]string{true: ", marked pulled", false: ""}[ev.Marked])
		}
	}})
	printPull(env, res, *asJSON)
	if err := res.Err(); err != nil {
		return &exitError{code: 1, err: errors.New("some reports were not pulled (see above)")}
	}
	return nil
}

func printPull(env *cmdEnv, res *controller.PullResult, asJSON bool) {
	for _, n := range res.Nodes {
		if asJSON {
			v := map[string]any{"node": n.Node, "listed": n.Listed, "skipped": n.Skipped, "outcomes": n.Outcomes, "marked": n.Marked, "stale": n.Stale}
			if n.Err != nil {
				v["error"] = n.Err.Error()
			}
			var refused []string
			for _, r := range n.Refused {
				refused = append(refused, r.Error())
			}
			v["refused"] = refused
			b, _ := json.Marshal(v)
			fmt.Fprintf(env.stdout, "%s\n", b)
			continue
		}
		if n.Err != nil {
			fmt.Fprintf(env.stdout, "%s: unreachable: %v (reports stay on the node)\n", n.Node, n.Err)
			continue
		}
		fmt.Fprintf(env.stdout, "%s: %d listed, %d already pulled, %d new, %d updated, %d duplicate, %d refused\n", n.Node, n.Listed, n.Skipped,
			n.Outcomes[controller.OutcomeNew], n.Outcomes[controller.OutcomeUpdated], n.Outcomes[controller.OutcomeDuplicate], len(n.Refused))
	}
}

func runControllerServe(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "controller serve")
	var f ctlFlags
	f.register(fs, true)
	every := fs.Duration("pull-every", 0, "also pull from the known nodes at this interval (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErr("no arguments")
	}
	cfg, err := f.config(env, true)
	if err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, nil))
	}
	c, err := controller.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(env.stdout, "controller %s listening on %s (thumbprint %s)\n", cfg.Identity.Name, c.Addr(), cfg.Identity.Thumbprint())
	if *every <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		printPull(env, c.Pull(ctx, nil, controller.PullOptions{}), false)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func runControllerReports(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usageErr("controller reports list|show|export [flags]")
	}
	sub, args := args[0], args[1:]
	fs := newFlags(env, "controller reports "+sub)
	var f ctlFlags
	f.register(fs, false)
	asJSON := fs.Bool("json", false, "JSON output (list, show)")
	out := fs.String("out", "", "export: directory to write ID.json files to (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Read-only: usable while `controller serve` holds the store.
	s, err := controller.OpenStore(filepath.Join(f.dir, "store"), controller.StoreConfig{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	switch sub {
	case "list":
		entries := s.List()
		if *asJSON {
			if entries == nil {
				entries = []controller.Entry{}
			}
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(entries)
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tCREATOR\tVERSIONS\tHYPOTHESIS")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.ID, e.Created.UTC().Format(time.RFC3339), e.Creator, e.Versions, e.Summary)
		}
		return tw.Flush()
	case "show":
		if fs.NArg() != 1 {
			return usageErr("controller reports show [--json] ID")
		}
		r, err := s.Get(fs.Arg(0))
		if err != nil {
			return err
		}
		if *asJSON {
			return report.RenderJSON(env.stdout, r)
		}
		if err := report.RenderText(env.stdout, r); err != nil {
			return err
		}
		vs, err := s.Versions(r.ID)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "\nversions:")
		for _, v := range vs {
			cur := ""
			if v.Current {
				cur = " (current)"
			}
			fmt.Fprintf(env.stdout, "  %.16s… %d actions%s: %s\n", v.SHA256, v.Actions, cur, strings.Join(v.Receipts, "; "))
		}
		return nil
	case "export":
		if *out == "" {
			return usageErr("controller reports export --out DIR [ID...]")
		}
		if err := os.MkdirAll(*out, 0o750); err != nil {
			return err
		}
		ids := fs.Args()
		if len(ids) == 0 {
			for _, e := range s.List() {
				ids = append(ids, e.ID)
			}
		}
		for _, id := range ids {
			b, err := s.Raw(id)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, id+".json"), b, 0o640); err != nil {
				return err
			}
		}
		fmt.Fprintf(env.stdout, "exported %d reports to %s (check with: d2d report verify --ca CA %s/*.json)\n", len(ids), *out, *out)
		return nil
	}
	return usageErr("controller reports list|show|export")
}

func runControllerRun(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "controller run")
	var f ctlFlags
	f.register(fs, true)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || (f.nodes == "" && f.nodesFile == "") {
		fs.Usage()
		return usageErr(`controller run --nodes NAME@HOST:PORT,… "intent"`)
	}
	cfg, err := f.config(env, false)
	if err != nil {
		return err
	}
	c, err := controller.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Run(ctx, strings.Join(fs.Args(), " "), func(e collab.Event) {
		if e.Kind == "step" && !*asJSON {
			fmt.Fprintf(env.stderr, "[%s] %s\n", e.Node, e.Message)
		}
	})
	if err != nil {
		return err
	}
	if res.Report == nil {
		return fmt.Errorf("intent %q needs no calls; nothing to run", res.Intent.String())
	}
	if *asJSON {
		return report.RenderJSON(env.stdout, res.Report)
	}
	if err := report.RenderText(env.stdout, res.Report); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "\nstored in %s as %s\n", filepath.Join(f.dir, "store"), res.Report.ID)
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/simulate"
)

func init() {
	register(command{name: "lab up", summary: "run a containerlab topology in network namespaces with real agents (root)", run: runLabUp})
	register(command{name: "lab down", summary: "remove a lab: agents, namespaces, links, lab directory (also after a crash)", run: runLabDown})
	register(command{name: "lab status", summary: "show a lab's nodes, agents and faults", run: runLabStatus})
	register(command{name: "lab exec", summary: "run a command inside a lab node: lab exec [FILE] NODE -- CMD...", run: runLabExec})
	register(command{name: "lab fault", summary: "inject or clear a real fault: acl-drop, link-down, agent-stop, clear", run: runLabFault})
}

// labFlags are the flags every lab command takes.
type labFlags struct {
	fs   *flag.FlagSet
	name *string
	dir  *string
}

func newLabFlags(env *cmdEnv, cmd, usage string) labFlags {
	fs := newFlags(env, cmd)
	f := labFlags{fs: fs,
		name: fs.String("name", "", "lab name (default: the topology file's name)"),
		dir:  fs.String("dir", simulate.DefaultLabDir, "parent directory of lab directories"),
	}
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: d2d %s\n", usage)
		fs.PrintDefaults()
	}
	return f
}

// parse accepts flags before and after the positional arguments.
func (f labFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		args = f.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (f labFlags) config(topology string) simulate.LabConfig {
	return simulate.LabConfig{Topology: topology, Name: *f.name, Dir: *f.dir}
}

// isTopology tells a topology file argument from a node name.
func isTopology(s string) bool {
	if strings.HasSuffix(s, ".yml") || strings.HasSuffix(s, ".yaml") {
		return true
	}
	st, err := os.Stat(s)
	return err == nil && !st.IsDir()
}

func runLabUp(ctx context.Context, env *cmdEnv, args []string) error {
	f := newLabFlags(env, "lab up", "lab up [--name LAB] [--dir DIR] [--wait 60s] FILE.clab.yml")
	wait := f.fs.Duration("wait", time.Minute, "wait this long for every agent to see every other (0: do not wait)")
	level := f.fs.String("log-level", "debug", "agents' log level (logs are in the lab directory)")
	schema := f.fs.String("schema", "", "containerlab's clab.schema.json to validate against (default: $D2D_CLAB_SCHEMA, if set)")
	pos, err := f.parse(args)
	if err != nil {
		return errUsage
	}
	if len(pos) != 1 {
		f.fs.Usage()
		return usageErr("one topology file")
	}
	cfg := f.config(pos[0])
	cfg.LogLevel, cfg.Schema = *level, *schema
	lab, err := simulate.LabUp(ctx, cfg)
	if err != nil {
		return err
	}
	for _, g := range omittedByReason(lab) {
		fmt.Fprintf(env.stderr, "warning: %s: left out %d exec line(s): %s\n", g.reason, len(g.lines), strings.Join(g.lines, "; "))
	}
	if *wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, *wait)
		err := lab.WaitConverged(wctx)
		cancel()
		if err != nil {
			fmt.Fprintf(env.stderr, "warning: %v\n", err)
		}
	}
	fmt.Fprintf(env.stdout, "lab %s is up (state in %s, CA %s)\n", lab.Name(), lab.Dir(), lab.CAFile())
	printLabStatus(env, lab)
	first := lab.Status()[0].Name
	fmt.Fprintf(env.stdout, "\nchat:  d2d lab exec %s -- d2d chat\ndown:  d2d lab down %s\n", first, pos[0])
	return nil
}

func runLabDown(ctx context.Context, env *cmdEnv, args []string) error {
	f := newLabFlags(env, "lab down", "lab down [--name LAB] [--dir DIR] FILE.clab.yml")
	pos, err := f.parse(args)
	if err != nil {
		return errUsage
	}
	if len(pos) > 1 {
		f.fs.Usage()
		return usageErr("one topology file")
	}
	if len(pos) == 1 {
		return simulate.LabDown(ctx, f.config(pos[0]))
	}
	lab, err := simulate.OpenLab(f.config(""))
	if err != nil {
		return err
	}
	return lab.Down(ctx)
}

// openLab opens the lab named by an optional leading topology argument.
func openLab(f labFlags, pos []string) (*simulate.Lab, []string, error) {
	topo := ""
	if len(pos) > 0 && isTopology(pos[0]) {
		topo, pos = pos[0], pos[1:]
	}
	lab, err := simulate.OpenLab(f.config(topo))
	return lab, pos, err
}

func runLabStatus(_ context.Context, env *cmdEnv, args []string) error {
	f := newLabFlags(env, "lab status", "lab status [--name LAB] [--dir DIR] [FILE.clab.yml]")
	pos, err := f.parse(args)
	if err != nil {
		return errUsage
	}
	lab, pos, err := openLab(f, pos)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("unexpected " + strings.Join(pos, " "))
	}
	fmt.Fprintf(env.stdout, "lab %s (state in %s, CA %s)\n", lab.Name(), lab.Dir(), lab.CAFile())
	printLabStatus(env, lab)
	return nil
}

func printLabStatus(env *cmdEnv, lab *simulate.Lab) {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tD2D NAME\tNAMESPACE\tAGENT\tINTERFACES\tMGMT (eth0)\tADMIN SOCKET")
	for _, n := range lab.Status() {
		agent := "stopped"
		if n.Running {
			agent = fmt.Sprintf("pid %d", n.PID)
		}
		ns := n.NetNS
		if !simulate.NamespaceExists(ns) {
			ns += " (missing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\t%s\n", n.Name, n.D2D, ns, agent, strings.Join(n.Interfaces, ","), n.MgmtIPv4, n.MgmtIPv6, n.AdminSocket())
	}
	tw.Flush()
	if ns, v4, v6 := lab.Mgmt(); ns != "" {
		fmt.Fprintf(env.stdout, "\nmanagement network: namespace %s, bridge mgmt0 %s %s (d2d lab exec %s -- CMD runs there)\n", ns, v4, v6, simulate.MgmtNode)
	}
	for _, g := range omittedByReason(lab) {
		fmt.Fprintf(env.stdout, "\nleft out, %s:\n", g.reason)
		for _, l := range g.lines {
			fmt.Fprintf(env.stdout, "  %s\n", l)
		}
	}
	if fs := lab.Faults(); len(fs) > 0 {
		fmt.Fprintln(env.stdout, "\nfaults:")
		for _, f := range fs {
			fmt.Fprintf(env.stdout, "  %s\n", f)
		}
	}
}

func runLabExec(ctx context.Context, env *cmdEnv, args []string) error {
	f := newLabFlags(env, "lab exec", "lab exec [--name LAB] [--dir DIR] [FILE.clab.yml] NODE -- CMD [ARG...]")
	// Everything after "--" is the command's, flags included.
	var cmd []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, cmd = args[:i], args[i+1:]
	}
	pos, err := f.parse(args)
	if err != nil {
		return errUsage
	}
	lab, pos, err := openLab(f, pos)
	if err != nil {
		return err
	}
	if len(pos) > 1 && cmd == nil {
		cmd, pos = pos[1:], pos[:1]
	}
	if len(pos) != 1 || len(cmd) == 0 {
		f.fs.Usage()
		return usageErr("a node and a command")
	}
	code, err := lab.Exec(ctx, pos[0], cmd, env.stdin, env.stdout, env.stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code, err: fmt.Errorf("%s exited with status %d", cmd[0], code)}
	}
	return nil
}

func runLabFault(ctx context.Context, env *cmdEnv, args []string) error {
	f := newLabFlags(env, "lab fault", `lab fault [--name LAB] [--dir DIR] [FILE.clab.yml] FAULT
  acl-drop NODE ACL PEER RATE [RULE]  nftables drop of RATE ("3%") as rule RULE (10) of egress ACL ACL towards PEER
  link-down NODE PEER                 set NODE's interface towards PEER down
  agent-stop NODE                     kill NODE's agent as a crash would (clear restarts it)
  clear [NODE]                        undo every fault (of NODE)
  list                                list the faults in force`)
	pos, err := f.parse(args)
	if err != nil {
		return errUsage
	}
	lab, pos, err := openLab(f, pos)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		f.fs.Usage()
		return usageErr("a fault")
	}
	switch pos[0] {
	case "list":
		for _, fl := range lab.Faults() {
			fmt.Fprintln(env.stdout, fl)
		}
		return nil
	case "clear":
		if len(pos) > 2 {
			return usageErr("clear [NODE]")
		}
		node := ""
		if len(pos) == 2 {
			node = pos[1]
		}
		cleared, err := lab.ClearFaults(ctx, node)
		for _, fl := range cleared {
			fmt.Fprintf(env.stdout, "cleared %s\n", fl)
		}
		return err
	}
	fault, err := simulate.ParseLabFault(pos)
	if err != nil {
		if errors.Is(err, simulate.ErrLab) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	if err := lab.Inject(ctx, fault); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "injected %s\n", lab.Faults()[len(lab.Faults())-1])
	return nil
}

type omitted struct {
	reason string
	lines  []string // "node: line"
}

// omittedByReason groups the exec lines the lab left out by the kernel
// feature they need, in the order first met.
func omittedByReason(lab *simulate.Lab) []omitted {
	var out []omitted
	for _, o := range lab.Omitted() {
		i := slices.IndexFunc(out, func(g omitted) bool { return g.reason == o.Missing })
		if i < 0 {
			out = append(out, omitted{reason: o.Missing})
			i = len(out) - 1
		}
		out[i].lines = append(out[i].lines, o.Node+": "+o.Line)
	}
	return out
}

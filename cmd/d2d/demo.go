package main

import (
	"context"
	"flag"

	"github.com/d2dmesh/d2d/simulate"
)

func init() {
	register(command{
		name:    "demo",
		summary: "run the headline scenario on an in-process simulated domain",
		run:     runDemo,
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return "" }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runDemo(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "demo")
	topo := fs.String("topology", "", "topology file (YAML or JSON); default: the PE-1/P-2/PE-3 triangle")
	intent := fs.String("intent", "", "intent to type (default: the headline SRv6 loss intent)")
	from := fs.String("from", "", "node whose shell the intent is typed on (default: the intent's head)")
	consent := fs.String("consent", "approve", "answer to the mitigation prompt: approve or deny")
	out := fs.String("out", "d2d-demo", "directory for the report and the CA certificate")
	seed := fs.Int64("seed", 1, "simulation seed (same seed, same measurements)")
	var faults stringList
	fs.Var(&faults, "fault", "fault to inject, repeatable: acl-drop:NODE:ACL:TOWARDS:RATE, link-loss:FROM:TO:RATE,\nlink-down:A:B, missing-sid:NODE[:SID], session-down:NODE:PEER:bgp|bfd (default: acl-drop:PE-1:2001:P-2:3%)")
	noFault := fs.Bool("no-fault", false, "inject no fault (a healthy network)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if *consent != "approve" && *consent != "deny" {
		return usageErr("--consent must be approve or deny")
	}
	opt := simulate.DemoOptions{Topology: *topo, Intent: *intent, From: *from, Consent: *consent, Out: *out, Seed: *seed, Stdout: env.stdout}
	if len(faults) > 0 {
		opt.Faults = faults
	}
	if *noFault {
		opt.Faults = []string{}
	}
	_, err := simulate.Demo(ctx, opt)
	return err
}

package simulate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/internal/memnet"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// The scale harness: the same fault localisation done two ways on one
// domain, so that their times can be set side by side.
//
//   - D2D (Domain.Localise): the intent is typed on a node; that node's
//     workflow plans, calls its own device locally and the other path
//     nodes over D2D sessions, correlates and signs the report.
//   - Controller polling (Poller.Localise): a controller outside the
//     domain, with a certificate of role "controller" from the same CA,
//     runs the same intent but calls every device over the network, the
//     head included, then correlates with the same rules and signs and
//     stores the report. By default this is package controller's own
//     Controller.Run; PollerConfig.Builtin selects the harness's own
//     polling loop instead (a client-only collab.Endpoint running the
//     plan collab.BuildPlan makes for the head node, then collab.Correlate),
//     which needs nothing but collab. The controller's path to the devices
//     can be impaired (PollerConfig.Impairment) while the devices' paths
//     to each other stay healthy, which is the situation the comparison is
//     about: the controller is far away or its link is degraded during the
//     fault.
//
// Both stop the clock once the report verifies offline against the domain
// CA (report.VerifyArchived): "time to a verified report". Simulated
// probes take no wall-clock time unless the network's realtime mode is
// on, so the figure is the collaboration machinery's own cost.

// ErrScale is wrapped by harness errors that are not a component's own.
var ErrScale = errors.New("simulate: scale harness")

// Localisation is one fault localisation and how long it took.
type Localisation struct {
	// Elapsed runs from the intent being handed over to the report
	// verifying against the domain CA.
	Elapsed time.Duration
	Report  *report.Report
	// Calls is the number of tool calls and resource reads made
	// (undo calls included).
	Calls int
}

// Localise types intent on node from's workflow, as the chat shell does,
// and verifies the report it stores.
func (d *Domain) Localise(ctx context.Context, from, intent string) (*Localisation, error) {
	a := d.Agent(from)
	if a == nil {
		return nil, fmt.Errorf("simulate: %w: %q", ErrUnknownNode, from)
	}
	trust := signing.NewTrust(d.CA.Cert)
	start := time.Now()
	res, err := a.Workflow().Run(ctx, intent, func(collab.Event) {})
	if err != nil {
		return nil, err
	}
	return localised(res, trust, start, intent)
}

// localised checks that a run produced a report that verifies against the
// CA and counts its calls (an undone step counts twice).
func localised(res *collab.RunResult, trust *signing.Trust, start time.Time, intent string) (*Localisation, error) {
	if res.Report == nil {
		return nil, fmt.Errorf("%w: %q produced no report", ErrScale, intent)
	}
	if err := report.VerifyArchived(res.Report, trust); err != nil {
		return nil, fmt.Errorf("%w: report does not verify: %w", ErrScale, err)
	}
	calls := len(res.Plan.Steps)
	for _, s := range res.Plan.Steps {
		if s.Undo {
			calls++
		}
	}
	return &Localisation{Elapsed: time.Since(start), Report: res.Report, Calls: calls}, nil
}

// Impairment degrades a path: added one-way delay and loss probability.
type Impairment struct {
	Delay time.Duration
	Loss  float64
}

// PollerConfig configures a polling controller.
type PollerConfig struct {
	// Name of the controller's certificate. If empty, "controller".
	Name string
	// Impairment of every datagram to or from the controller: on the
	// in-memory network for TransportMemory, by wrapping the
	// controller's loopback socket otherwise.
	Impairment Impairment
	// CallTimeout per call including session set-up. If zero, 10s: an
	// impaired path needs several retransmission rounds for a handshake.
	CallTimeout time.Duration
	// ProbeCount per measurement of the built-in loop. If zero, the
	// domain's (the agent default when the domain has none).
	ProbeCount int
	// Builtin selects the harness's own polling loop instead of package
	// controller.
	Builtin bool
}

// Poller is the controller-polling baseline: a controller that reaches
// every device over the domain's transport and does the troubleshooting
// itself.
type Poller struct {
	d    *Domain
	cfg  PollerConfig
	id   *signing.Identity
	ep   *collab.Endpoint       // Builtin
	ctl  *controller.Controller // otherwise
	dir  string
	once sync.Once
}

// NewPoller starts a controller endpoint on the domain's transport.
func (d *Domain) NewPoller(ctx context.Context, cfg PollerConfig) (*Poller, error) {
	if cfg.Name == "" {
		cfg.Name = "controller"
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.ProbeCount == 0 {
		cfg.ProbeCount = d.cfg.ProbeCount
	}
	id, err := d.CA.Issue(cfg.Name, signing.IssueOptions{Role: "controller"})
	if err != nil {
		return nil, err
	}
	pc, err := d.ListenPacket(ctx)
	if err != nil {
		return nil, err
	}
	if imp := (memnet.Impairment{Delay: cfg.Impairment.Delay, Loss: cfg.Impairment.Loss}); imp != (memnet.Impairment{}) {
		if mc, ok := pc.(*memnet.Conn); ok {
			d.packets.Impair(mc.AddrPort().Addr(), imp)
		} else {
			pc = memnet.Impaired(pc, imp, uint64(d.cfg.Seed))
		}
	}
	p := &Poller{d: d, cfg: cfg, id: id}
	if !cfg.Builtin {
		if p.dir, err = os.MkdirTemp(d.Dir, "controller-"); err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("simulate: %w", err)
		}
		var members []collab.Member
		for _, m := range p.inventory() {
			members = append(members, m)
		}
		p.ctl, err = controller.New(ctx, controller.Config{
			Identity:    id,
			Trust:       signing.NewTrust(d.CA.Cert),
			Dir:         p.dir,
			Members:     members,
			PacketConn:  pc,
			CallTimeout: cfg.CallTimeout,
			Logger:      d.cfg.Logger,
		})
		if err != nil {
			_ = pc.Close()
			return nil, err
		}
		return p, nil
	}
	p.ep, err = collab.Listen(ctx, collab.Config{
		Identity:    id,
		Trust:       signing.NewTrust(d.CA.Cert),
		PacketConn:  pc,
		CallTimeout: cfg.CallTimeout,
		Logger:      d.cfg.Logger,
	})
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	return p, nil
}

// Close closes the controller's endpoint. A second call returns a
// wrapped net.ErrClosed.
func (p *Poller) Close() error {
	err := fmt.Errorf("simulate: poller already closed: %w", net.ErrClosed)
	p.once.Do(func() {
		if p.ctl != nil {
			err = p.ctl.Close()
			_ = os.RemoveAll(p.dir)
			return
		}
		err = p.ep.Close()
	})
	return err
}

// inventory is what a controller knows of the devices: every agent's
// endpoint, thumbprint and capabilities.
func (p *Poller) inventory() map[string]collab.Member {
	out := map[string]collab.Member{}
	for _, n := range p.d.Nodes() {
		a := p.d.Agent(n)
		if a == nil {
			continue
		}
		out[n] = collab.Member{
			Name:         n,
			Peer:         collab.Peer{Name: n, Addr: a.Addr(), Thumbprint: a.Identity().Thumbprint()},
			Capabilities: a.Registry().Offered(),
			Addresses:    []string{a.Addr().Addr().String()},
		}
	}
	return out
}

// Localise has the controller localise the fault of intent, whose head
// must be node from. The built-in loop runs the plan that node from would
// run, but calls every step from the controller, phase by phase with the
// steps of a phase in parallel (the fairest polling controller), undoes
// temporary state, correlates and signs a report.
func (p *Poller) Localise(ctx context.Context, from, intent string) (*Localisation, error) {
	trust := signing.NewTrust(p.d.CA.Cert)
	start := time.Now()
	if p.ctl != nil {
		res, err := p.ctl.Run(ctx, intent, func(collab.Event) {})
		if err != nil {
			return nil, err
		}
		return localised(res, trust, start, intent)
	}
	inv := p.inventory()
	names := make([]string, 0, len(inv))
	addrs := map[string]string{}
	for n, m := range inv {
		names = append(names, n)
		for _, a := range m.Addresses {
			addrs[a] = n
		}
	}
	slices.Sort(names)
	in, err := collab.ParseIntent(intent, names)
	if err != nil {
		return nil, err
	}
	in.Text = intent
	count := p.cfg.ProbeCount
	if count == 0 {
		count = collab.DefaultProbeCount
	}
	plan, err := collab.BuildPlan(in, from, names, collab.PlanOptions{Count: count, Addresses: addrs})
	if err != nil {
		return nil, err
	}
	caps := map[string][]string{}
	for _, s := range plan.Steps {
		if !slices.Contains(caps[s.Node], s.Capability) {
			caps[s.Node] = append(caps[s.Node], s.Capability)
		}
		if s.Undo && !slices.Contains(caps[s.Node], "restore-counters") {
			caps[s.Node] = append(caps[s.Node], "restore-counters")
		}
	}
	var (
		obs       []collab.Observation
		evidence  []signing.Evidence
		untrusted = map[string]string{}
		steps     []report.PlanStep
		undos     []collab.Step
		calls     int
	)
	for _, phase := range plan.Phases() {
		cs := make([]collab.Call, len(phase))
		for i, s := range phase {
			cs[i] = collab.Call{Peer: inv[s.Node].Peer, Method: s.Method, Target: s.Target, Arguments: s.Arguments, Capabilities: caps[s.Node], Timeout: p.cfg.CallTimeout}
		}
		calls += len(cs)
		for i, o := range p.ep.FanOut(ctx, cs) {
			s := phase[i]
			ps := report.PlanStep{Node: s.Node, Method: s.Method, Target: s.Target, Arguments: s.Arguments}
			switch {
			case o.Untrusted != "":
				untrusted[s.Node] = o.Untrusted
				obs = append(obs, collab.Observation{Step: s, Untrusted: o.Untrusted})
				ps.Status = "untrusted: " + o.Untrusted
			case o.Err != nil:
				obs = append(obs, collab.Observation{Step: s, Err: o.Err.Error()})
				ps.Status = "failed: " + o.Err.Error()
			default:
				ev := *o.Evidence
				ev.Via = "controller"
				ev.Ref = fmt.Sprintf("e%d", len(evidence)+1)
				evidence = append(evidence, ev)
				obs = append(obs, collab.Observation{Step: s, Result: ev.Result, Ref: ev.Ref})
				ps.Status, ps.Evidence = "ok", ev.Ref
				if s.Undo {
					if u, err := collab.UndoStep(s, ev.Result); err == nil {
						undos = append(undos, u)
					}
				}
			}
			steps = append(steps, ps)
		}
	}
	if len(undos) > 0 {
		cs := make([]collab.Call, len(undos))
		for i, u := range undos {
			cs[i] = collab.Call{Peer: inv[u.Node].Peer, Method: u.Method, Target: u.Target, Arguments: u.Arguments, Capabilities: caps[u.Node], Timeout: p.cfg.CallTimeout}
		}
		calls += len(cs)
		p.ep.FanOut(context.WithoutCancel(ctx), cs)
	}
	hyps := collab.Correlate(plan, obs)
	var ut []report.Untrusted
	for _, n := range slices.Sorted(maps.Keys(untrusted)) {
		ut = append(ut, report.Untrusted{Node: n, Reason: untrusted[n]})
	}
	a := report.Assembly{Creator: p.cfg.Name, Intent: intent, Plan: steps, Hypothesis: hyps[0], Evidence: evidence, Untrusted: ut}
	if len(hyps) > 1 {
		a.Alternatives = hyps[1:]
	}
	rep, err := report.Assemble(a)
	if err != nil {
		return nil, err
	}
	if err := rep.Sign(p.id); err != nil {
		return nil, err
	}
	if err := report.VerifyArchived(rep, trust); err != nil {
		return nil, fmt.Errorf("%w: controller report does not verify: %w", ErrScale, err)
	}
	return &Localisation{Elapsed: time.Since(start), Report: rep, Calls: calls}, nil
}

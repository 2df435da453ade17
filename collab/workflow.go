package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// Member is one collaboration-domain member as the workflow needs it:
// where to reach it and what it offers (from discovery).
type Member struct {
	Name         string
	Peer         Peer
	Capabilities []string
	// Addresses identify the member in tool arguments and results (e.g. a
	// BGP neighbour address), used to map addresses to node names.
	Addresses []string
	// LastSeen is when discovery last listed the member; zero when the
	// domain is static. A member gone quiet is still planned for, and its
	// calls fail and mark it untrusted with the reason.
	LastSeen time.Time
}

// ErrPushQueued is returned by a WorkflowConfig.Push that queues the
// report to be pushed later (RunResult.PushQueued).
var ErrPushQueued = errors.New("collab: report queued for the controller")

// WorkflowConfig wires a Workflow. Endpoint, Identity and Members are
// required.
type WorkflowConfig struct {
	// Node is the local node name. If empty, Identity.Name.
	Node     string
	Endpoint *Endpoint
	// Identity signs reports and consent objects.
	Identity *signing.Identity
	// Members returns the current domain (including the local node or not).
	Members func() []Member
	// Store keeps reports on the box; nil keeps none.
	Store *report.Store
	// Push hands a report to the controller; nil when none is configured.
	// A failed push is not an error: the report stays on the box until
	// pulled (draft 003 §5.3.1 step 5). A Push that only queues the
	// report for later returns ErrPushQueued.
	Push func(ctx context.Context, r *report.Report) error
	// Fallback, if set, runs a step on a member this node could not
	// reach or authenticate (a time-out or an authentication failure),
	// through the controller (draft 003 §5.3.1 Failure Handling: "falls
	// back to controller-based polling if available"). It returns the
	// member's own signed result, verified by the caller; the workflow
	// records it with Via "controller" and sends the member's further
	// steps, and the undo of its temporary state, the same way.
	Fallback func(ctx context.Context, m Member, s Step) (signing.Evidence, error)
	// Via labels evidence from remote calls. If empty, "d2d"; a
	// controller running intents against devices (draft 003 §4) sets
	// "controller".
	Via string
	// CallTimeout bounds each call. If zero, 15s.
	CallTimeout time.Duration
	// ProbeCount is the probes per measurement. If zero, 100.
	ProbeCount int
	// RollbackSeconds is the default rollback timer of a mitigation. If zero, 120.
	RollbackSeconds int
	// LLM, if set, plans free text the parser does not know and phrases
	// summaries; it never decides the structured hypothesis.
	LLM *LLM
	// Now is the clock. If nil, time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *WorkflowConfig) populate() error {
	if c.Endpoint == nil || c.Identity == nil || c.Members == nil {
		return errors.New("collab: workflow needs an Endpoint, an Identity and Members")
	}
	if c.Node == "" {
		c.Node = c.Identity.Name
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 15 * time.Second
	}
	if c.Via == "" {
		c.Via = "d2d"
	}
	if c.ProbeCount == 0 {
		c.ProbeCount = 100
	}
	if c.RollbackSeconds == 0 {
		c.RollbackSeconds = 120
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Event reports the workflow's progress to the shell.
type Event struct {
	// Kind is "step" (a step started or finished) or "progress".
	Kind     string
	Node     string
	Step     string
	Message  string
	Progress float64
	Total    float64
}

// RunResult is the answer to one intent.
type RunResult struct {
	Intent Intent
	Plan   Plan
	// Report is nil for intents that only show information.
	Report *report.Report
	// Stored, Pushed, PushQueued and PushErr say where the report went:
	// stored on the box, then handed to the controller, queued for it,
	// or not (why in PushErr; it stays on the box until pulled).
	Stored     bool
	Pushed     bool
	PushQueued bool
	PushErr    error
	// Mitigation is the proposed change, if the hypothesis has one.
	Mitigation *Mitigation
}

// Workflow runs intents from one node: plan, resolve members, open
// sessions with capability negotiation, call local and remote tools in
// parallel, verify every result, correlate, and store a signed report
// (draft 003 §5.3.1 steps 0–5 and failure handling). It also applies a
// proposed mitigation once the operator consents (§7.1).
type Workflow struct {
	cfg WorkflowConfig

	mu       sync.Mutex
	proposed map[string]*pending // by report id
	changes  map[string]*pending // by change id
}

// pending is a proposal and, once applied, its change.
type pending struct {
	outcome *RunResult
	change  string
	action  int // index in the report's Actions
	loss    *float64
}

// NewWorkflow returns a workflow.
func NewWorkflow(cfg WorkflowConfig) (*Workflow, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	return &Workflow{cfg: cfg, proposed: map[string]*pending{}, changes: map[string]*pending{}}, nil
}

// memberMap returns the domain by name, always including the local node.
func (w *Workflow) memberMap() map[string]Member {
	m := map[string]Member{w.cfg.Node: {Name: w.cfg.Node}}
	for _, mb := range w.cfg.Members() {
		if mb.Name == w.cfg.Node {
			continue
		}
		m[mb.Name] = mb
	}
	return m
}

// Members returns the current domain, without the local node.
func (w *Workflow) Members() []Member {
	var out []Member
	m := w.memberMap()
	for _, n := range sortedNames(m) {
		if n != w.cfg.Node {
			out = append(out, m[n])
		}
	}
	return out
}

// Parse turns text into an intent over the current domain, with the LLM as
// a fallback when one is configured.
func (w *Workflow) Parse(ctx context.Context, text string) (Intent, error) {
	names := sortedNames(w.memberMap())
	in, err := ParseIntent(text, names)
	if err == nil || w.cfg.LLM == nil {
		return in, err
	}
	var unknown *UnknownIntentError
	if !errors.As(err, &unknown) {
		return in, err
	}
	llmIn, lerr := w.cfg.LLM.PlanFromText(ctx, text, names, nil)
	if lerr != nil {
		return in, fmt.Errorf("%w (the LLM could not plan it either: %v)", err, lerr)
	}
	return llmIn, nil
}

// Run parses and runs one intent.
func (w *Workflow) Run(ctx context.Context, text string, events func(Event)) (*RunResult, error) {
	if events == nil {
		events = func(Event) {}
	}
	in, err := w.Parse(ctx, text)
	if err != nil {
		return nil, err
	}
	switch in.Kind {
	case ShowDomain, ListReports, ShowReport:
		return &RunResult{Intent: in}, nil
	}
	return w.RunIntent(ctx, in, events)
}

// RunIntent runs a parsed intent through the whole workflow.
func (w *Workflow) RunIntent(ctx context.Context, in Intent, events func(Event)) (*RunResult, error) {
	members := w.memberMap()
	addrs := map[string]string{}
	for _, m := range members {
		for _, a := range m.Addresses {
			addrs[a] = m.Name
		}
	}
	plan, err := BuildPlan(in, w.cfg.Node, sortedNames(members), PlanOptions{Count: w.cfg.ProbeCount, Addresses: addrs})
	if err != nil {
		return nil, err
	}
	run := &run{w: w, plan: plan, members: members, events: events, untrusted: map[string]string{}, status: map[string]string{}, evRef: map[string]string{}, viaController: map[string]string{}}
	// Temporary state (counter baselines) is undone whatever happens,
	// also when ctx is cancelled: the undo gets its own deadline.
	defer run.undo(context.WithoutCancel(ctx))

	for _, phase := range plan.Phases() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("collab: workflow cancelled: %w", err)
		}
		run.phase(ctx, phase)
	}
	run.undo(context.WithoutCancel(ctx))

	hyps := Correlate(plan, run.obs)
	if len(hyps) == 0 {
		return nil, errors.New("collab: correlation produced no hypothesis")
	}
	if w.cfg.LLM != nil {
		if s, err := w.cfg.LLM.Phrase(ctx, hyps[0]); err == nil && s != "" {
			hyps[0].Summary = s
		}
	}
	events(Event{Kind: "step", Message: "hypothesis: " + hyps[0].Summary})

	rep, err := w.assemble(in, run, hyps)
	if err != nil {
		return nil, err
	}
	out := &RunResult{Intent: in, Plan: plan, Report: rep}
	if m, ok := ProposeMitigation(hyps[0], plan, run.obs); ok {
		if ProposedRollback(m, 0) == 0 {
			m.Arguments = setArg(m.Arguments, "rollbackSeconds", w.cfg.RollbackSeconds)
		}
		out.Mitigation = m
		w.mu.Lock()
		w.proposed[rep.ID] = &pending{outcome: out, loss: run.headLoss()}
		w.mu.Unlock()
	}
	w.save(ctx, out)
	return out, nil
}

// save stores and pushes the (re-)signed report.
func (w *Workflow) save(ctx context.Context, out *RunResult) {
	if w.cfg.Store != nil {
		put := w.cfg.Store.Put
		if out.Stored {
			// A later version of the same report (actions added).
			put = w.cfg.Store.Update
		}
		if err := put(out.Report); err != nil {
			w.cfg.Logger.Error("storing report", "report", out.Report.ID, "err", err)
		} else {
			out.Stored = true
		}
	}
	if w.cfg.Push != nil {
		pctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		err := w.cfg.Push(pctx, out.Report)
		cancel()
		out.Pushed, out.PushQueued, out.PushErr = false, false, nil
		switch {
		case err == nil:
			out.Pushed = true
		case errors.Is(err, ErrPushQueued):
			out.PushQueued = true
		default:
			out.PushErr = err
			w.cfg.Logger.Warn("controller unreachable; report kept on the box until pulled", "report", out.Report.ID, "err", err)
		}
	}
}

func (w *Workflow) assemble(in Intent, r *run, hyps []report.Hypothesis) (*report.Report, error) {
	var steps []report.PlanStep
	for _, s := range r.plan.Steps {
		steps = append(steps, report.PlanStep{Node: s.Node, Method: s.Method, Target: s.Target, Arguments: s.Arguments, Evidence: r.evRef[s.ID], Status: r.status[s.ID]})
	}
	var untrusted []report.Untrusted
	for _, n := range sortedKeys(r.untrusted) {
		untrusted = append(untrusted, report.Untrusted{Node: n, Reason: r.untrusted[n]})
	}
	a := report.Assembly{
		Creator:    w.cfg.Node,
		Created:    w.cfg.Now(),
		Intent:     in.Text,
		Plan:       steps,
		Hypothesis: hyps[0],
		Evidence:   r.evidence,
		Untrusted:  untrusted,
	}
	if len(hyps) > 1 {
		a.Alternatives = hyps[1:]
	}
	rep, err := report.Assemble(a)
	if err != nil {
		return nil, fmt.Errorf("collab: assembling report: %w", err)
	}
	if err := rep.Sign(w.cfg.Identity); err != nil {
		return nil, fmt.Errorf("collab: signing report: %w", err)
	}
	return rep, nil
}

// run is the state of one workflow execution.
type run struct {
	w       *Workflow
	plan    Plan
	members map[string]Member
	events  func(Event)

	mu        sync.Mutex
	obs       []Observation
	evidence  []signing.Evidence
	untrusted map[string]string
	status    map[string]string // step id → "ok", "failed: …", "skipped: …"
	evRef     map[string]string // step id → evidence ref
	undos     []undoItem
	undone    bool
	// viaController holds the members reached through Fallback, with
	// the reason the direct session failed.
	viaController map[string]string
}

type undoItem struct {
	node, id string
}

// capsFor lists every capability the plan needs on node, so one session
// per peer is negotiated for the whole run.
func (r *run) capsFor(node string) []string {
	var caps []string
	for _, s := range r.plan.Steps {
		if s.Node == node && !slices.Contains(caps, s.Capability) {
			caps = append(caps, s.Capability)
		}
	}
	// Undo tools ride on the capability of the step they undo.
	if slices.Contains(caps, "clear-counters") && !slices.Contains(caps, "restore-counters") {
		caps = append(caps, "restore-counters")
	}
	return caps
}

// phase runs one phase's steps in parallel: local ones against the local
// provider, remote ones through one fan-out.
func (r *run) phase(ctx context.Context, steps []Step) {
	var calls []Call
	var remote []Step
	var wg sync.WaitGroup
	for _, s := range steps {
		if reason, bad := r.untrustedReason(s.Node); bad {
			r.record(s, Observation{Step: s, Untrusted: reason}, nil, "skipped: node untrusted ("+reason+")")
			continue
		}
		if s.Node == r.w.cfg.Node {
			wg.Add(1)
			go func(s Step) {
				defer wg.Done()
				r.events(Event{Kind: "step", Node: s.Node, Step: s.ID, Message: s.Purpose})
				cctx, cancel := context.WithTimeout(ctx, r.w.cfg.CallTimeout)
				ev, err := r.w.cfg.Endpoint.Local(cctx, s.Method, s.Target, s.Arguments, r.progress(s))
				cancel()
				if err != nil {
					r.record(s, Observation{Step: s, Err: err.Error()}, nil, "failed: "+err.Error())
					return
				}
				ev.Via = "local"
				r.record(s, Observation{Step: s, Result: ev.Result}, &ev, "ok")
			}(s)
			continue
		}
		m, ok := r.members[s.Node]
		if !ok {
			r.markUntrusted(s.Node, "not a member of the domain")
			r.record(s, Observation{Step: s, Untrusted: "not a member"}, nil, "skipped: not a member")
			continue
		}
		r.events(Event{Kind: "step", Node: s.Node, Step: s.ID, Message: s.Purpose})
		if reason, ok := r.fallbackReason(s.Node); ok {
			wg.Add(1)
			go func(s Step) {
				defer wg.Done()
				r.fallback(ctx, m, s, reason)
			}(s)
			continue
		}
		calls = append(calls, Call{Peer: m.Peer, Method: s.Method, Target: s.Target, Arguments: s.Arguments, Capabilities: r.capsFor(s.Node), Timeout: r.w.cfg.CallTimeout, Progress: r.progress(s)})
		remote = append(remote, s)
	}
	if len(calls) > 0 {
		outs := r.w.cfg.Endpoint.FanOut(ctx, calls)
		for i, o := range outs {
			s := remote[i]
			switch {
			case o.Untrusted != "" && r.w.cfg.Fallback != nil:
				r.setFallback(s.Node, o.Untrusted)
				wg.Add(1)
				go func(s Step, reason string) {
					defer wg.Done()
					r.fallback(ctx, r.members[s.Node], s, reason)
				}(s, o.Untrusted)
			case o.Untrusted != "":
				r.markUntrusted(s.Node, o.Untrusted)
				r.record(s, Observation{Step: s, Untrusted: o.Untrusted}, nil, "untrusted: "+o.Untrusted)
			case o.Err != nil:
				r.record(s, Observation{Step: s, Err: o.Err.Error()}, nil, "failed: "+o.Err.Error())
			default:
				ev := *o.Evidence
				ev.Via = r.w.cfg.Via
				r.record(s, Observation{Step: s, Result: ev.Result}, &ev, "ok")
			}
		}
	}
	wg.Wait()
}

func (r *run) fallbackReason(node string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reason, ok := r.viaController[node]
	return reason, ok
}

func (r *run) setFallback(node, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.viaController[node]; !ok {
		r.viaController[node] = reason
		r.events(Event{Kind: "step", Node: node, Message: "unreachable directly (" + reason + "): asking the controller to poll it"})
	}
}

// fallback runs s on m through the controller. The member counts as
// untrusted only if the controller cannot reach it either.
func (r *run) fallback(ctx context.Context, m Member, s Step, reason string) {
	cctx, cancel := context.WithTimeout(ctx, r.w.cfg.CallTimeout)
	ev, err := r.w.cfg.Fallback(cctx, m, s)
	cancel()
	if err != nil {
		why := reason + "; controller fallback failed: " + err.Error()
		r.markUntrusted(s.Node, why)
		r.record(s, Observation{Step: s, Untrusted: why}, nil, "untrusted: "+why)
		return
	}
	ev.Via = "controller"
	r.record(s, Observation{Step: s, Result: ev.Result}, &ev, "ok via controller (direct: "+reason+")")
}

func (r *run) progress(s Step) device.Progress {
	last := -1.0
	var mu sync.Mutex
	return func(done, total float64, msg string) {
		// Quarter steps: enough to show life without flooding the shell.
		mu.Lock()
		defer mu.Unlock()
		if total > 0 {
			q := float64(int(4 * done / total))
			if q == last || q == 0 {
				return
			}
			last = q
		}
		if msg == "" {
			msg = s.Target
		}
		r.events(Event{Kind: "progress", Node: s.Node, Step: s.ID, Message: msg, Progress: done, Total: total})
	}
}

func (r *run) untrustedReason(node string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reason, ok := r.untrusted[node]
	return reason, ok
}

func (r *run) markUntrusted(node, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.untrusted[node]; !ok {
		r.untrusted[node] = reason
		r.events(Event{Kind: "step", Node: node, Message: "untrusted: " + reason})
	}
}

// record files one step's observation and evidence.
func (r *run) record(s Step, o Observation, ev *signing.Evidence, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[s.ID] = status
	if ev != nil {
		ev.Ref = fmt.Sprintf("e%d", len(r.evidence)+1)
		o.Ref = ev.Ref
		r.evRef[s.ID] = ev.Ref
		r.evidence = append(r.evidence, *ev)
		if s.Target == "clear-counters" {
			if id := undoID(ev.Result); id != "" {
				r.undos = append(r.undos, undoItem{node: s.Node, id: id})
			}
		}
	}
	r.obs = append(r.obs, o)
}

// undoID extracts the undo record id of a clear-counters result.
func undoID(result json.RawMessage) string {
	var res mcp.CallToolResult
	if json.Unmarshal(result, &res) != nil {
		return ""
	}
	var v struct {
		Undo string `json:"undo"`
	}
	if json.Unmarshal(res.StructuredContent, &v) != nil {
		return ""
	}
	return v.Undo
}

// undo removes every temporary state the run created. It runs once.
func (r *run) undo(ctx context.Context) {
	r.mu.Lock()
	if r.undone {
		r.mu.Unlock()
		return
	}
	r.undone = true
	undos := r.undos
	r.mu.Unlock()
	for _, u := range undos {
		args, _ := json.Marshal(map[string]string{"undo": u.id})
		cctx, cancel := context.WithTimeout(ctx, r.w.cfg.CallTimeout)
		var err error
		if u.node == r.w.cfg.Node {
			_, err = r.w.cfg.Endpoint.Local(cctx, mcp.MethodToolsCall, "restore-counters", args, nil)
		} else if _, via := r.fallbackReason(u.node); via {
			_, err = r.w.cfg.Fallback(cctx, r.members[u.node], Step{Node: u.node, Method: mcp.MethodToolsCall, Target: ToolRestoreCounters,
				Arguments: args, Capability: CapabilityFor(ToolRestoreCounters)})
		} else {
			outs := r.w.cfg.Endpoint.FanOut(cctx, []Call{{Peer: r.members[u.node].Peer, Method: mcp.MethodToolsCall, Target: "restore-counters", Arguments: args, Capabilities: r.capsFor(u.node), Timeout: r.w.cfg.CallTimeout}})
			err = outs[0].Err
		}
		cancel()
		if err != nil {
			r.w.cfg.Logger.Warn("could not undo counter baseline", "node", u.node, "undo", u.id, "err", err)
		}
	}
}

// headLoss is the loss the first probe of the plan measured, for the
// before/after figures of a mitigation.
func (r *run) headLoss() *float64 {
	for _, o := range r.obs {
		if o.Step.Target != "ietf-srv6-ping" && o.Step.Target != "ping" || o.Result == nil {
			continue
		}
		if l, ok := lossOf(o.Result); ok {
			return &l
		}
	}
	return nil
}

// lossOf reads lossPercent from a probe's tools/call result.
func lossOf(result json.RawMessage) (float64, bool) {
	var res mcp.CallToolResult
	if json.Unmarshal(result, &res) != nil || res.IsError {
		return 0, false
	}
	var p device.ProbeResult
	if json.Unmarshal(res.StructuredContent, &p) != nil || p.Sent == 0 {
		return 0, false
	}
	return p.LossPercent, true
}

func sortedNames(m map[string]Member) []string {
	return sortedKeys(m)
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// Approval is an operator's consent to a proposed mitigation. Operator and
// Role come from how the operator authenticated (the admin socket's peer
// credentials), never from what they typed.
type Approval struct {
	Operator string
	Role     string
	// RollbackSeconds overrides the proposal's rollback timer.
	RollbackSeconds int
}

// ChangeOutcome is the result of applying, confirming or rolling back a
// consented change.
type ChangeOutcome struct {
	Change          string
	Node            string
	Outcome         string // report.Outcome*
	Detail          string
	LossBefore      *float64
	LossAfter       *float64
	RollbackSeconds int
	Report          *report.Report
}

// Errors of the consent flow.
var (
	ErrNoProposal = errors.New("collab: no mitigation proposed for that report")
	ErrNoChange   = errors.New("collab: no such pending change")
)

// Mitigate applies the mitigation proposed with report reportID, carrying
// a consent object signed by this node for the operator (draft 003 §7.1:
// tool, parameters, rollback timer, identity and role, signed timestamp).
// The device arms its rollback timer; the change stays only if confirmed.
// It re-probes to show whether the mitigation worked and records the
// action in the report, which is signed and stored again.
func (w *Workflow) Mitigate(ctx context.Context, reportID string, a Approval, events func(Event)) (*ChangeOutcome, error) {
	if events == nil {
		events = func(Event) {}
	}
	w.mu.Lock()
	p := w.proposed[reportID]
	w.mu.Unlock()
	if p == nil || p.outcome.Mitigation == nil {
		return nil, fmt.Errorf("%w %q", ErrNoProposal, reportID)
	}
	m := p.outcome.Mitigation
	rollback := a.RollbackSeconds
	if rollback <= 0 {
		rollback = ProposedRollback(m, w.cfg.RollbackSeconds)
	}
	args := setArg(m.Arguments, "rollbackSeconds", rollback)
	consent := device.Consent{
		Tool:            m.Tool,
		Arguments:       args,
		Node:            m.Node,
		RollbackSeconds: rollback,
		Operator:        a.Operator,
		Role:            a.Role,
		Timestamp:       w.cfg.Now().UTC(),
		KeyID:           w.cfg.Identity.Thumbprint().String(),
		Cert:            w.cfg.Identity.CertDER,
	}
	payload, err := consent.Payload()
	if err != nil {
		return nil, err
	}
	consent.Signature = w.cfg.Identity.Sign(payload)
	consentJSON, err := json.Marshal(consent)
	if err != nil {
		return nil, fmt.Errorf("collab: consent: %w", err)
	}

	events(Event{Kind: "step", Node: m.Node, Message: fmt.Sprintf("applying %s with consent of %s (%s)", m.Tool, a.Operator, a.Role)})
	res, err := w.call(ctx, m.Node, mcp.MethodToolsCall, m.Tool, args, consentJSON, p.outcome.Plan)
	act := report.Action{Tool: m.Tool, Node: m.Node, Arguments: args, Consent: consentJSON, At: w.cfg.Now()}
	out := &ChangeOutcome{Node: m.Node, LossBefore: p.loss}
	if err != nil {
		act.Outcome, act.Detail = report.OutcomeFailed, err.Error()
		var me *mcp.Error
		if errors.As(err, &me) && me.Code == mcp.CodeConsentRequired {
			act.Outcome = report.OutcomeRefused
		}
		out.Outcome, out.Detail = act.Outcome, act.Detail
		w.addAction(ctx, p, act)
		out.Report = p.outcome.Report
		return out, nil
	}
	var applied device.Change
	_ = json.Unmarshal(structured(res), &applied)
	out.Change = applied.ID
	out.Outcome = report.OutcomeApplied
	out.RollbackSeconds = rollback

	// Re-probe: does the loss go away?
	if v := m.Verify; v.Target != "" {
		events(Event{Kind: "step", Node: v.Node, Message: "re-probing to confirm the mitigation"})
		if vr, err := w.call(ctx, v.Node, v.Method, v.Target, v.Arguments, nil, p.outcome.Plan); err == nil {
			if l, ok := lossOf(vr); ok {
				out.LossAfter = &l
			}
		} else {
			out.Detail = "re-probe failed: " + err.Error()
		}
	}
	act.Outcome = report.OutcomeApplied
	act.Detail = fmt.Sprintf("change %s; rolls back in %ds unless confirmed", out.Change, rollback)
	if out.LossBefore != nil && out.LossAfter != nil {
		act.Detail += fmt.Sprintf("; loss %.1f %% before, %.1f %% after", *out.LossBefore, *out.LossAfter)
	}
	w.mu.Lock()
	p.change = out.Change
	w.changes[out.Change] = p
	w.mu.Unlock()
	w.addAction(ctx, p, act)
	out.Report = p.outcome.Report

	// The device rolls the change back by itself when the timer fires;
	// record that in the report too if nobody confirmed it.
	time.AfterFunc(time.Duration(rollback)*time.Second, func() {
		w.mu.Lock()
		q := w.changes[out.Change]
		delete(w.changes, out.Change)
		w.mu.Unlock()
		if q != nil {
			w.setOutcome(context.Background(), q, report.OutcomeRolledBack, "rollback timer expired without confirmation")
		}
	})
	return out, nil
}

// Confirm keeps a change made by Mitigate.
func (w *Workflow) Confirm(ctx context.Context, change string, a Approval) (*ChangeOutcome, error) {
	return w.finish(ctx, change, a, "change-confirm", report.OutcomeConfirmed)
}

// Rollback undoes a change made by Mitigate before its timer fires.
func (w *Workflow) Rollback(ctx context.Context, change string, a Approval) (*ChangeOutcome, error) {
	return w.finish(ctx, change, a, "change-rollback", report.OutcomeRolledBack)
}

func (w *Workflow) finish(ctx context.Context, change string, a Approval, tool, outcome string) (*ChangeOutcome, error) {
	w.mu.Lock()
	p := w.changes[change]
	w.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("%w %q", ErrNoChange, change)
	}
	node := p.outcome.Mitigation.Node
	args, _ := json.Marshal(map[string]string{"change": change})
	if _, err := w.call(ctx, node, mcp.MethodToolsCall, tool, args, nil, p.outcome.Plan); err != nil {
		return nil, fmt.Errorf("collab: %s %s on %s: %w", tool, change, node, err)
	}
	w.mu.Lock()
	delete(w.changes, change)
	w.mu.Unlock()
	w.setOutcome(ctx, p, outcome, fmt.Sprintf("change %s %s by %s (%s)", change, outcome, a.Operator, a.Role))
	return &ChangeOutcome{Change: change, Node: node, Outcome: outcome, Report: p.outcome.Report}, nil
}

// ProposedRollback is the rollback timer a proposal carries, or def.
func ProposedRollback(m *Mitigation, def int) int {
	var a struct {
		RollbackSeconds int `json:"rollbackSeconds"`
	}
	if json.Unmarshal(m.Arguments, &a) == nil && a.RollbackSeconds > 0 {
		return a.RollbackSeconds
	}
	return def
}

// Call runs one tool on node (this node or a member) with an optional
// consent object and returns the verified result.
func (w *Workflow) Call(ctx context.Context, node, tool string, args, consent json.RawMessage) (json.RawMessage, error) {
	return w.call(ctx, node, mcp.MethodToolsCall, tool, args, consent, Plan{})
}

// call runs one tool locally or on a peer, with an optional consent.
func (w *Workflow) call(ctx context.Context, node, method, target string, args, consent json.RawMessage, plan Plan) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	if node == w.cfg.Node {
		ev, err := w.cfg.Endpoint.LocalCall(ctx, method, target, args, CallOptions{Consent: consent})
		if err != nil {
			return nil, err
		}
		return ev.Result, nil
	}
	m, ok := w.memberMap()[node]
	if !ok {
		return nil, fmt.Errorf("collab: %s is not a member of the domain", node)
	}
	caps := []string{target}
	s, err := w.cfg.Endpoint.Session(ctx, m.Peer, caps)
	if err != nil {
		return nil, err
	}
	if method == mcp.MethodResourcesRead {
		ev, _, err := s.ReadResource(ctx, target)
		if err != nil {
			return nil, err
		}
		return ev.Result, nil
	}
	ev, _, err := s.CallTool(ctx, target, args, CallOptions{Consent: consent})
	if err != nil {
		return nil, err
	}
	return ev.Result, nil
}

// addAction appends an action to the proposal's report, re-signs and saves it.
func (w *Workflow) addAction(ctx context.Context, p *pending, act report.Action) {
	w.mu.Lock()
	r := p.outcome.Report
	r.Actions = append(r.Actions, act)
	p.action = len(r.Actions) - 1
	w.mu.Unlock()
	w.resign(ctx, p)
}

func (w *Workflow) setOutcome(ctx context.Context, p *pending, outcome, detail string) {
	w.mu.Lock()
	r := p.outcome.Report
	if p.action < len(r.Actions) {
		r.Actions[p.action].Outcome = outcome
		r.Actions[p.action].Detail = detail
		r.Actions[p.action].At = w.cfg.Now().UTC().Truncate(time.Millisecond)
	}
	w.mu.Unlock()
	w.resign(ctx, p)
}

func (w *Workflow) resign(ctx context.Context, p *pending) {
	w.mu.Lock()
	err := p.outcome.Report.Sign(w.cfg.Identity)
	w.mu.Unlock()
	if err != nil {
		w.cfg.Logger.Error("re-signing report", "report", p.outcome.Report.ID, "err", err)
		return
	}
	w.save(ctx, p.outcome)
}

// structured returns a tools/call result's structuredContent.
func structured(result json.RawMessage) json.RawMessage {
	var res mcp.CallToolResult
	if json.Unmarshal(result, &res) != nil {
		return nil
	}
	return res.StructuredContent
}

// setArg sets one top-level argument.
func setArg(args json.RawMessage, key string, v any) json.RawMessage {
	m := map[string]any{}
	_ = json.Unmarshal(args, &m)
	m[key] = v
	b, err := json.Marshal(m)
	if err != nil {
		return args
	}
	return b
}

package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/report"
)

// ErrHeadRequired: in controller-to-device mode an intent must name the
// node it starts from; the controller is not on any path.
var ErrHeadRequired = errors.New("controller: the intent must name the node it starts from (the controller is not on the path)")

// Run runs one intent in the controller-to-device model (draft 003 §4,
// e.g. §4.4.1 "Controller issues MCP calls"): the same planner,
// correlation and report as an agent's, with the controller as the
// planning node. The controller has no device of its own, so every step
// is a remote call to a member: the intent must name its head node
// ("from PE-1 to PE-3 via P-2") or, for BGP, the node. Evidence carries
// Via "controller"; the report is created and signed by the controller
// and stored in its store.
func (c *Controller) Run(ctx context.Context, text string, events func(collab.Event)) (*collab.RunResult, error) {
	var stored string
	w, err := collab.NewWorkflow(collab.WorkflowConfig{
		Node:        c.cfg.Identity.Name,
		Endpoint:    c.ep,
		Identity:    c.cfg.Identity,
		Members:     c.Members,
		Via:         ViaController,
		CallTimeout: c.cfg.CallTimeout,
		Now:         c.cfg.Now,
		Logger:      c.log,
		// The workflow's Store is a report.Store; the controller keeps
		// its own reports with versions, so they arrive through Push.
		Push: func(_ context.Context, r *report.Report) error {
			out, err := c.store.Add(r, Receipt{Via: "run", From: c.cfg.Identity.Name})
			stored = out
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	in, err := w.Parse(ctx, text)
	if err != nil {
		return nil, err
	}
	switch in.Kind {
	case collab.ShowDomain, collab.ListReports, collab.ShowReport:
		return &collab.RunResult{Intent: in}, nil
	case collab.BGPNeighborDown:
		if in.Node == "" || in.Node == c.cfg.Identity.Name {
			return nil, ErrHeadRequired
		}
	default:
		if in.Head == "" || in.Head == c.cfg.Identity.Name {
			return nil, ErrHeadRequired
		}
	}
	if events == nil {
		events = func(collab.Event) {}
	}
	res, err := w.RunIntent(ctx, in, events)
	if err != nil {
		return nil, err
	}
	if res.PushErr != nil {
		return res, fmt.Errorf("controller: storing the report: %w", res.PushErr)
	}
	res.Stored = stored != ""
	return res, nil
}

package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// withReportTools adds the node's side of the controller's pull to the
// device's provider: the tool report-mark-pulled. It wraps the provider
// rather than the device registry because the tool is about the node's
// report store, not the device (the registry serves the reports as
// resources through a ResourceSource, which cannot add tools).
type withReportTools struct {
	device.Provider
	store *report.Store
}

var markPulledTool = mcp.Tool{
	Name:  controller.ToolMarkPulled,
	Title: "Mark a report pulled",
	Description: "Record that the caller (a controller) has stored report {id} whose canonical encoding hashes to {sha256}. " +
		"A report updated since is not marked. Marked reports may be reclaimed by the store's retention.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string","pattern":"^[0-9a-f]{4,64}$"},` +
		`"sha256":{"type":"string","pattern":"^[0-9a-f]{64}$"}},"required":["id","sha256"]}`),
	Meta: map[string]any{device.MetaMutating: false, "d2d/capability": controller.ToolMarkPulled},
}

func (p withReportTools) Offered() []string {
	out := append(p.Provider.Offered(), controller.ToolMarkPulled)
	slices.Sort(out)
	return slices.Compact(out)
}

func (p withReportTools) Capability(method, target string) (string, bool) {
	if method == mcp.MethodToolsCall && target == controller.ToolMarkPulled {
		return controller.ToolMarkPulled, true
	}
	return p.Provider.Capability(method, target)
}

func (p withReportTools) ListTools(g device.Grant) []mcp.Tool {
	out := p.Provider.ListTools(g)
	if g != nil && g.Allows(controller.ToolMarkPulled) {
		out = append(out, markPulledTool)
		slices.SortFunc(out, func(a, b mcp.Tool) int {
			switch {
			case a.Name < b.Name:
				return -1
			case a.Name > b.Name:
				return 1
			}
			return 0
		})
	}
	return out
}

func (p withReportTools) CallTool(ctx context.Context, req device.ToolRequest) (*mcp.CallToolResult, error) {
	if req.Name != controller.ToolMarkPulled {
		return p.Provider.CallTool(ctx, req)
	}
	var a controller.MarkPulledArgs
	if err := json.Unmarshal(req.Arguments, &a); err != nil || !report.ValidID(a.ID) || len(a.SHA256) != 64 {
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "%s needs {id, sha256}", controller.ToolMarkPulled)
	}
	by := req.Caller
	if by == "" {
		by = "local"
	}
	res, err := markPulled(p.store, a.ID, a.SHA256, by)
	if err != nil {
		if errors.Is(err, report.ErrNotFound) {
			return nil, mcp.Errorf(mcp.CodeResourceNotFound, "report %s: %v", a.ID, err)
		}
		return nil, mcp.Errorf(mcp.CodeInternalError, "%v", err)
	}
	sc, _ := json.Marshal(res)
	msg := fmt.Sprintf("report %s marked pulled by %s", a.ID, by)
	if !res.Marked {
		msg = fmt.Sprintf("report %s changed since it was read; not marked", a.ID)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent(msg)}, StructuredContent: sc}, nil
}

// markPulled marks report id pulled by by if its stored content still
// hashes to sha. Should an update land between the check and the mark,
// re-storing the current version clears the mark again (Store.Update
// drops a pull mark), so a version nobody read is never left marked.
func markPulled(s *report.Store, id, sha, by string) (controller.MarkPulledResult, error) {
	res := controller.MarkPulledResult{ID: id}
	raw, err := s.Raw(id)
	if err != nil {
		return res, err
	}
	if controller.ContentHash(raw) != sha {
		res.Stale = true
		return res, nil
	}
	if err := s.MarkPulled(id, by); err != nil {
		return res, err
	}
	if raw, err = s.Raw(id); err == nil && controller.ContentHash(raw) != sha {
		if r, gerr := report.Decode(raw); gerr == nil {
			err = s.Update(r)
		}
		res.Stale = true
		return res, err
	}
	res.Marked, res.By = true, by
	return res, nil
}

// controllerHooks wires Config.Controller: every stored report is pushed
// there (and marked pulled by it once accepted), and a peer this node
// cannot reach is polled through it (draft 003 §5.3.1 step 5 and Failure
// Handling). Options.Push, when set, replaces the push.
func (a *Agent) controllerHooks(v *signing.Verifier) (push func(context.Context, *report.Report) error,
	fallback func(context.Context, collab.Member, collab.Step) (signing.Evidence, error), err error) {
	push = a.opt.Push
	if a.cfg.Controller == "" {
		return push, nil, nil
	}
	peer, err := controller.ParsePeer(a.cfg.Controller)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: controller: %v", ErrConfig, err)
	}
	cl := &controller.Client{Endpoint: a.endpoint, Controller: peer, Verifier: v, Timeout: a.cfg.CallTimeout}
	if push == nil {
		push = func(ctx context.Context, r *report.Report) error {
			if _, err := cl.Push(ctx, r); err != nil {
				return err
			}
			b, err := report.Encode(r)
			if err != nil {
				return nil
			}
			if _, err := markPulled(a.store, r.ID, controller.ContentHash(b), peer.Name); err != nil && !errors.Is(err, report.ErrNotFound) {
				a.log.Warn("marking pushed report pulled", "report", r.ID, "err", err)
			}
			return nil
		}
	}
	fallback = func(ctx context.Context, m collab.Member, s collab.Step) (signing.Evidence, error) {
		return cl.Poll(ctx, controller.PollRequest{Peer: m.Peer, Method: s.Method, Target: s.Target, Arguments: s.Arguments, Capability: s.Capability})
	}
	return push, fallback, nil
}

package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/report"
)

// PullOptions tune Pull. The zero value pulls what no controller has.
type PullOptions struct {
	// All re-reads reports the node already marks pulled, also when this
	// controller holds them (after restoring the controller's store from
	// a backup, say). Without it such reports are read only when missing
	// here.
	All bool
	// OnReport, if set, is called after each report is handled, from the
	// goroutine pulling that node.
	OnReport func(ReportEvent)
}

// ReportEvent is what happened to one report of a pull.
type ReportEvent struct {
	Node    string
	ID      string
	Outcome string // an Outcome* constant, "" on error
	// Marked is true once the node recorded the pull.
	Marked bool
	Err    error
}

// NodeResult is the pull from one node.
type NodeResult struct {
	Node string
	// Listed counts the node's report resources; Skipped those already
	// pulled and held here.
	Listed, Skipped int
	// Outcomes counts stored reports by Outcome* constant.
	Outcomes map[string]int
	// Marked counts reports the node marked pulled; Stale those that
	// changed on the node between read and mark (pulled again next time).
	Marked int
	Stale  []string
	// Refused are reports that failed verification: not stored, not
	// marked, kept on the node for inspection.
	Refused []*RefusedError
	// Failed are reports that could not be read or stored.
	Failed []error
	// Err is set when the node could not be reached or listed.
	Err error
}

// PullResult is the outcome of one Pull.
type PullResult struct {
	Nodes []NodeResult
}

// Err joins every node error, refusal and failure; nil when every
// listed report was stored.
func (r *PullResult) Err() error {
	var errs []error
	for _, n := range r.Nodes {
		if n.Err != nil {
			errs = append(errs, n.Err)
		}
		for _, e := range n.Refused {
			errs = append(errs, e)
		}
		errs = append(errs, n.Failed...)
	}
	return errors.Join(errs...)
}

// Pull reads every report the nodes hold that this controller lacks,
// verifies each signature, stores each verified report and then marks it
// pulled on its node (draft 003 §5.3.1 step 5: "it remains on-box until
// the next controller sync"). Nodes are pulled in parallel, each node's
// reports one after the other. nil nodes means every known member.
//
// The order makes a pull restartable at any point: a report is marked
// pulled only after it is durably stored, and storing the same content
// twice changes nothing, so a pull interrupted by a crash or a dropped
// connection is completed by the next one without loss or duplicate.
func (c *Controller) Pull(ctx context.Context, nodes []collab.Member, opt PullOptions) *PullResult {
	if nodes == nil {
		nodes = c.Members()
	}
	res := &PullResult{Nodes: make([]NodeResult, len(nodes))}
	var wg sync.WaitGroup
	for i, m := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Nodes[i] = c.pullNode(ctx, m, opt)
		}()
	}
	wg.Wait()
	return res
}

func (c *Controller) pullNode(ctx context.Context, m collab.Member, opt PullOptions) NodeResult {
	nr := NodeResult{Node: m.Name, Outcomes: map[string]int{}}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	// privacy:3: a report redacted in transit (draft 003 §7.5) would no
	// longer verify; nodes grant it to the controller role by default.
	s, err := c.ep.Session(cctx, m.Peer, []string{CapReports, ToolMarkPulled, device.CapPrivacy3})
	var list []mcpResource
	if err == nil {
		list, err = listReports(cctx, s)
	}
	cancel()
	if err != nil {
		nr.Err = fmt.Errorf("controller: pull from %s: %w", m.Name, err)
		return nr
	}
	nr.Listed = len(list)
	for _, res := range list {
		if ctx.Err() != nil {
			nr.Err = fmt.Errorf("controller: pull from %s: %w", m.Name, ctx.Err())
			return nr
		}
		if res.pulled && !opt.All && c.store.Has(res.id) {
			nr.Skipped++
			continue
		}
		ev := c.pullOne(ctx, s, m.Name, res.id, &nr)
		if opt.OnReport != nil {
			opt.OnReport(ev)
		}
	}
	return nr
}

type mcpResource struct {
	id     string
	pulled bool
}

func listReports(ctx context.Context, s *collab.Session) ([]mcpResource, error) {
	all, err := s.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	var out []mcpResource
	for _, r := range all {
		id, ok := strings.CutPrefix(r.URI, report.URIPrefix)
		if !ok || !report.ValidID(id) {
			continue
		}
		pulled, _ := r.Meta["d2d/pulled"].(bool)
		out = append(out, mcpResource{id: id, pulled: pulled})
	}
	return out, nil
}

// pullOne reads, verifies, stores and marks one report.
func (c *Controller) pullOne(ctx context.Context, s *collab.Session, node, id string, nr *NodeResult) ReportEvent {
	ev := ReportEvent{Node: node, ID: id}
	fail := func(err error) ReportEvent {
		ev.Err = err
		var re *RefusedError
		if errors.As(err, &re) {
			nr.Refused = append(nr.Refused, re)
		} else {
			nr.Failed = append(nr.Failed, err)
		}
		c.log.Warn("pull", "node", node, "report", id, "err", err)
		return ev
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	proof, rr, err := s.ReadResource(cctx, report.URIPrefix+id)
	if err != nil {
		return fail(fmt.Errorf("controller: read report %s on %s: %w", id, node, err))
	}
	if len(rr.Contents) != 1 {
		return fail(c.refuse(node, id, nil, fmt.Errorf("%w: %d contents, want one report", report.ErrMalformed, len(rr.Contents))))
	}
	raw := []byte(rr.Contents[0].Text)
	r, err := report.Decode(raw)
	if err != nil {
		return fail(c.refuse(node, id, raw, err))
	}
	if r.ID != id {
		return fail(c.refuse(node, id, raw, fmt.Errorf("%w: resource %s holds report %s", report.ErrInvalid, id, r.ID)))
	}
	if err := c.verify(node, r); err != nil {
		return fail(c.refuse(node, id, raw, err))
	}
	proof.Via = "d2d"
	ev.Outcome, err = c.store.Add(r, Receipt{Via: "pull", From: node, Evidence: &proof})
	if err != nil {
		return fail(fmt.Errorf("controller: store report %s from %s: %w", id, node, err))
	}
	nr.Outcomes[ev.Outcome]++
	canon, _ := report.Encode(r)
	args, _ := json.Marshal(MarkPulledArgs{ID: id, SHA256: ContentHash(canon)})
	_, mr, err := s.CallTool(cctx, ToolMarkPulled, args, collab.CallOptions{})
	if err != nil {
		// Stored: the next pull reads it again (a duplicate, no harm)
		// and marks it then.
		c.log.Warn("marking pulled", "node", node, "report", id, "err", err)
		return ev
	}
	var m MarkPulledResult
	_ = json.Unmarshal(mr.StructuredContent, &m)
	switch {
	case m.Marked:
		ev.Marked = true
		nr.Marked++
	case m.Stale:
		nr.Stale = append(nr.Stale, id)
	}
	return ev
}

// refuse wraps err as a *RefusedError and keeps the refused bytes under
// Dir/refused for inspection.
func (c *Controller) refuse(node, id string, raw []byte, err error) error {
	var re *RefusedError
	if !errors.As(err, &re) {
		re = &RefusedError{Node: node, ID: id, Err: err}
	}
	dir := filepath.Join(c.cfg.Dir, "refused")
	rec, _ := json.Marshal(struct {
		Node     string          `json:"node"`
		ID       string          `json:"id"`
		Reason   string          `json:"reason"`
		Received time.Time       `json:"received"`
		Report   json.RawMessage `json:"report,omitempty"`
	}{node, id, re.Err.Error(), c.cfg.Now().UTC(), validJSON(raw)})
	if mkErr := os.MkdirAll(dir, 0o750); mkErr == nil {
		name := fmt.Sprintf("%s-%s-%s.json", node, id, ContentHash(raw)[:16])
		if werr := writeOnce(dir, name, rec); werr != nil {
			c.log.Warn("keeping refused report", "err", werr)
		}
	}
	return re
}

func validJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	return nil
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// Client is a node's side of the controller channel: it pushes reports
// and asks for polls over the node's own endpoint.
type Client struct {
	// Endpoint is the node's D2D endpoint. Required.
	Endpoint *collab.Endpoint
	// Controller is where the controller listens. Required.
	Controller collab.Peer
	// Verifier checks relayed evidence; it should be the node's own, so
	// that replay state is shared with results received directly.
	// Required for Poll.
	Verifier *signing.Verifier
	// Timeout bounds one push or poll. If zero, 15s.
	Timeout time.Duration
}

// ParsePeer parses the "name@host:port" of node.Config.Controller, with an
// optional "=thumbprint".
func ParsePeer(s string) (collab.Peer, error) {
	m, err := ParseMember(s)
	if err != nil {
		return collab.Peer{}, err
	}
	return m.Peer, nil
}

func (c *Client) session(ctx context.Context, capability string) (*collab.Session, context.Context, context.CancelFunc, error) {
	t := c.Timeout
	if t <= 0 {
		t = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	s, err := c.Endpoint.Session(ctx, c.Controller, []string{capability})
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	// Reports go to, and calls are relayed through, a controller only:
	// a device of the domain at the configured address (misconfigured,
	// or an address taken over) is refused before anything is sent.
	if r := s.Remote(); r.Role != signing.RoleController {
		cancel()
		return nil, nil, nil, fmt.Errorf("%w: %s authenticated as %s with role %q", ErrNotController, c.Controller, r.Name, r.Role)
	}
	return s, ctx, cancel, nil
}

// Push hands r to the controller and returns the controller's outcome.
// The result is signed by the controller and verified by the session.
func (c *Client) Push(ctx context.Context, r *report.Report) (PushResult, error) {
	b, err := report.Encode(r)
	if err != nil {
		return PushResult{}, err
	}
	args, err := json.Marshal(PushArgs{Report: b})
	if err != nil {
		return PushResult{}, fmt.Errorf("controller: push: %w", err)
	}
	s, ctx, cancel, err := c.session(ctx, ToolPush)
	if err != nil {
		return PushResult{}, err
	}
	defer cancel()
	_, res, err := s.CallTool(ctx, ToolPush, args, collab.CallOptions{})
	if err != nil {
		return PushResult{}, err
	}
	var out PushResult
	if err := json.Unmarshal(res.StructuredContent, &out); err != nil || out.ID != r.ID {
		return PushResult{}, fmt.Errorf("controller: push of %s: unexpected answer %s", r.ID, res.StructuredContent)
	}
	return out, nil
}

// PollRequest is one call a node could not make itself.
type PollRequest struct {
	// Peer is the node to call: its name, the address the requester
	// knows and, if discovery advertised one, its thumbprint.
	Peer       collab.Peer
	Method     string
	Target     string
	Arguments  json.RawMessage
	Capability string
}

// Poll asks the controller to run req on req.Peer and verifies what comes
// back before returning it as evidence with Via "controller".
//
// The node's signature binds the controller's session with that node,
// not a session of the requester: the requester cannot check the session
// binding and accepts instead evidence that (1) is signed by a
// certificate of the domain CA naming req.Peer.Name (and with its
// advertised thumbprint, when known), (2) covers exactly the requested
// method, target and arguments, (3) has a timestamp within the
// verifier's clock skew and (4) a nonce the requester has not seen from
// that signer. A controller can therefore delay a fresh result or
// withhold it, but not forge, alter or re-target one, nor replay one
// beyond the skew window and the replay window. The report marks such
// evidence with Via "controller" so that a reader knows which binding it
// carries.
func (c *Client) Poll(ctx context.Context, req PollRequest) (signing.Evidence, error) {
	if c.Verifier == nil {
		return signing.Evidence{}, fmt.Errorf("controller: poll: %w: no verifier", ErrRelay)
	}
	args := req.Arguments
	if req.Method == mcp.MethodResourcesRead {
		args, _ = json.Marshal(mcp.ReadResourceParams{URI: req.Target})
	} else if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	pa := PollArgs{Node: req.Peer.Name, Method: req.Method, Target: req.Target, Capability: req.Capability}
	if req.Method == mcp.MethodToolsCall {
		pa.Arguments = args
	}
	if req.Peer.Addr.IsValid() {
		pa.Addr = req.Peer.Addr.String()
	}
	raw, err := json.Marshal(pa)
	if err != nil {
		return signing.Evidence{}, fmt.Errorf("controller: poll: %w", err)
	}
	s, cctx, cancel, err := c.session(ctx, ToolPoll)
	if err != nil {
		return signing.Evidence{}, err
	}
	defer cancel()
	_, res, err := s.CallTool(cctx, ToolPoll, raw, collab.CallOptions{})
	if err != nil {
		return signing.Evidence{}, err
	}
	var pr PollResult
	if err := json.Unmarshal(res.StructuredContent, &pr); err != nil {
		return signing.Evidence{}, fmt.Errorf("controller: poll: %w: %v", ErrRelay, err)
	}
	ev := pr.Evidence
	bad := func(format string, a ...any) (signing.Evidence, error) {
		return signing.Evidence{}, fmt.Errorf("controller: poll %s %s on %s: %w: %s", req.Method, req.Target, req.Peer.Name, ErrRelay, fmt.Sprintf(format, a...))
	}
	switch {
	case ev.Node != req.Peer.Name || ev.Envelope.Signer != req.Peer.Name:
		return bad("evidence from %q signed by %q", ev.Node, ev.Envelope.Signer)
	case ev.Method != req.Method || ev.Target != req.Target:
		return bad("evidence answers %s %s", ev.Method, ev.Target)
	case strings.HasPrefix(ev.Envelope.SessionID, "local:"):
		return bad("evidence signed outside a session")
	case !req.Peer.Thumbprint.IsZero() && !req.Peer.Thumbprint.Equal(ev.Envelope.KeyID):
		return bad("signed with key %s, discovery advertised %s", ev.Envelope.KeyID, req.Peer.Thumbprint)
	}
	h, err := signing.HashArgs(args)
	if err != nil {
		return bad("%v", err)
	}
	b := signing.Binding{Method: req.Method, Target: req.Target, ArgsHash: h, SessionID: ev.Envelope.SessionID}
	peer, err := c.Verifier.VerifyResult(ev.Result, b, ev.Envelope)
	if err != nil {
		return signing.Evidence{}, fmt.Errorf("controller: poll %s %s on %s: %w: %w", req.Method, req.Target, req.Peer.Name, ErrRelay, err)
	}
	if peer.Name != req.Peer.Name {
		return bad("certificate names %q", peer.Name)
	}
	ev.Arguments = args
	ev.Via = ViaController
	return ev, nil
}

// Reachable reports whether the controller answers a ping within ctx.
func (c *Client) Reachable(ctx context.Context) bool {
	s, cctx, cancel, err := c.session(ctx, ToolPush)
	if err != nil {
		return false
	}
	defer cancel()
	return s.Ping(cctx) == nil
}

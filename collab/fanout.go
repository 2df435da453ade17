package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
)

// Call is one operation of a fan-out: a tools/call or resources/read on a
// peer, or on this node when Peer.Name is the endpoint's own node name.
type Call struct {
	Peer Peer
	// Method is mcp.MethodToolsCall or mcp.MethodResourcesRead.
	Method string
	// Target is the tool name or resource URI.
	Target string
	// Arguments of a tools/call; ignored for resources/read.
	Arguments json.RawMessage
	// Capabilities to request when a session must be opened.
	Capabilities []string
	// Timeout of this call including any session setup. If zero,
	// Config.CallTimeout.
	Timeout  time.Duration
	Progress device.Progress
}

// Outcome is the result of one Call: evidence or a reason, never both
// missing.
type Outcome struct {
	Call     Call
	Evidence *signing.Evidence
	// Result is the verified result JSON (without _meta).
	Result json.RawMessage
	Err    error
	// Untrusted is the reason the peer is untrusted (timeout, failed
	// authentication, wrong thumbprint, bad signature), "" if trusted.
	Untrusted string
	Elapsed   time.Duration
}

// FanOut runs calls in parallel, each under its own deadline, and returns
// one Outcome per call in the same order. Cancelling ctx cancels the
// calls on the peers (notifications/cancelled).
func (e *Endpoint) FanOut(ctx context.Context, calls []Call) []Outcome {
	out := make([]Outcome, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.runCall(ctx, c)
		}()
	}
	wg.Wait()
	return out
}

func (e *Endpoint) runCall(ctx context.Context, c Call) Outcome {
	start := time.Now()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = e.cfg.CallTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	o := Outcome{Call: c}
	var ev signing.Evidence
	var err error
	if c.Peer.Name == e.cfg.Identity.Name && (!c.Peer.Addr.IsValid() || c.Peer.Addr == e.addr) {
		ev, err = e.Local(ctx, c.Method, c.Target, c.Arguments, c.Progress)
	} else {
		ev, err = e.remoteCall(ctx, c)
	}
	o.Elapsed = time.Since(start)
	if err != nil {
		o.Err = err
		o.Untrusted = UntrustedReason(err)
		return o
	}
	o.Evidence = &ev
	o.Result = ev.Result
	return o
}

func (e *Endpoint) remoteCall(ctx context.Context, c Call) (signing.Evidence, error) {
	s, err := e.Session(ctx, c.Peer, c.Capabilities)
	if err != nil {
		return signing.Evidence{}, err
	}
	switch c.Method {
	case mcp.MethodToolsCall:
		ev, _, err := s.CallTool(ctx, c.Target, c.Arguments, CallOptions{Progress: c.Progress})
		return ev, err
	case mcp.MethodResourcesRead:
		ev, _, err := s.ReadResource(ctx, c.Target)
		return ev, err
	}
	return signing.Evidence{}, fmt.Errorf("collab: fan-out of %q: %w", c.Method, errUnsupportedMethod)
}

var errUnsupportedMethod = errors.New("collab: only tools/call and resources/read produce evidence")

// Local runs a tools/call or resources/read against this node's own
// Provider and signs the result with the node's key, bound to a fresh
// "local:<random>" session id, so local evidence verifies like remote.
func (e *Endpoint) Local(ctx context.Context, method, target string, args json.RawMessage, progress device.Progress) (signing.Evidence, error) {
	return e.LocalCall(ctx, method, target, args, CallOptions{Progress: progress})
}

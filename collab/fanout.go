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
	// Elapsed is the call's time until its result arrived and was
	// checked, or it failed. In a fan-out of several calls it stops when
	// the result arrived: the batched signature check comes after, and
	// waits for the fan-out's slowest call.
	Elapsed time.Duration
}

// FanOut runs calls in parallel, each under its own deadline, and returns
// one Outcome per call in the same order. Cancelling ctx cancels the
// calls on the peers (notifications/cancelled).
//
// The results' signatures are checked together, in one batch (see
// resultBatch), once every call has its reply or has ended.
func (e *Endpoint) FanOut(ctx context.Context, calls []Call) []Outcome {
	out := make([]Outcome, len(calls))
	var batch *resultBatch
	if len(calls) > 1 {
		batch = &resultBatch{v: e.cfg.Verifier, outstanding: len(calls)}
	}
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if batch == nil {
				out[i] = e.runCall(ctx, c)
				return
			}
			slot := &batchSlot{b: batch}
			out[i] = e.runCall(context.WithValue(ctx, batchSlotKey{}, slot), c)
			slot.leave()
		}()
	}
	wg.Wait()
	return out
}

// resultBatch checks the signed results of one fan-out together with
// signing.Verifier.VerifyResults. Checked one by one, the ed25519 check
// is about a quarter of the caller's CPU time per peer (profile of
// BenchmarkFanOut/100), and a batch from distinct peers costs about half
// as much per signature at 64 results and a third at 1024 (signing's
// BenchmarkVerifyBatch). The batch runs when no call of the
// fan-out can still add a result: every call has either handed in its
// result or ended without one. The call that completes that condition
// runs it; the others wait for their verdict. A FanOut returns only after
// its slowest call anyway, so what the batch adds to its latency is its
// own run time after the last reply, against one single check when each
// call checks its own.
type resultBatch struct {
	v *signing.Verifier

	mu          sync.Mutex
	outstanding int // calls that have neither handed in a result nor ended
	pending     []*pendingResult
}

type pendingResult struct {
	check signing.ResultCheck
	peer  *signing.Peer
	err   error
	done  chan struct{} // closed when peer and err are set
}

// batchSlot is one call's place in a resultBatch, found through the
// call's context. Only the call's own result may be handed in: a check
// made while other calls of the fan-out wait on this one (for instance in
// a session dial they share) would wait for them in turn.
type batchSlot struct {
	b        *resultBatch
	joined   bool      // under b.mu
	handedIn time.Time // set by the call's own goroutine
}

type batchSlotKey struct{}

// verifyResult is signing.Verifier.VerifyResult, or, for a call of a
// fan-out, the same check done in the fan-out's batch.
func (e *Endpoint) verifyResult(ctx context.Context, result json.RawMessage, want signing.Binding, env signing.Envelope) (*signing.Peer, error) {
	if slot, ok := ctx.Value(batchSlotKey{}).(*batchSlot); ok {
		if p, ok := slot.verify(signing.ResultCheck{Result: result, Want: want, Envelope: env}); ok {
			return p.peer, p.err
		}
	}
	return e.cfg.Verifier.VerifyResult(result, want, env)
}

// verify hands in the call's result and waits for the batch's verdict.
// ok is false, and nothing is done, if the call already handed one in.
func (s *batchSlot) verify(c signing.ResultCheck) (*pendingResult, bool) {
	b := s.b
	p := &pendingResult{check: c, done: make(chan struct{})}
	b.mu.Lock()
	if s.joined {
		b.mu.Unlock()
		return nil, false
	}
	s.joined = true
	s.handedIn = time.Now()
	b.pending = append(b.pending, p)
	b.outstanding--
	run := b.takeIfComplete()
	b.mu.Unlock()
	b.run(run)
	<-p.done
	return p, true
}

// leave marks the call ended; a call that handed in no result may be the
// last one the batch was waiting for.
func (s *batchSlot) leave() {
	b := s.b
	b.mu.Lock()
	if s.joined {
		b.mu.Unlock()
		return
	}
	s.joined = true
	b.outstanding--
	run := b.takeIfComplete()
	b.mu.Unlock()
	b.run(run)
}

// takeIfComplete returns the pending results once no call can add one.
// b.mu is held.
func (b *resultBatch) takeIfComplete() []*pendingResult {
	if b.outstanding > 0 {
		return nil
	}
	run := b.pending
	b.pending = nil
	return run
}

func (b *resultBatch) run(batch []*pendingResult) {
	if len(batch) == 0 {
		return
	}
	checks := make([]signing.ResultCheck, len(batch))
	for i, p := range batch {
		checks[i] = p.check
	}
	peers, errs := b.v.VerifyResults(checks)
	for i, p := range batch {
		p.peer, p.err = peers[i], errs[i]
		close(p.done)
	}
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
	if slot, ok := ctx.Value(batchSlotKey{}).(*batchSlot); ok && !slot.handedIn.IsZero() {
		o.Elapsed = slot.handedIn.Sub(start)
	}
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

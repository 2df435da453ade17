package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
)

// pushQueue is how many reports may wait for the controller. Beyond it a
// report is not queued and stays on the box for the controller's next
// pull.
const pushQueue = 64

// Retries of a failed push start after Options.PushRetry (defaultPushRetry
// if zero) and double up to maxPushRetry.
const (
	defaultPushRetry = 30 * time.Second
	maxPushRetry     = 10 * time.Minute
)

// pusher hands stored reports to the controller in the background, one
// at a time and in order, so that the operator's answer never waits on
// the management network: D2D is there for when that path is slow or
// down (draft 003 §5.3.1 step 5). A report is stored before it is queued,
// so nothing is lost when a push fails or the agent stops: it stays
// unpulled until a pull. A failed push is retried, with the version then
// stored, for as long as the report stays unpulled.
type pusher struct {
	push    func(context.Context, *report.Report) error
	timeout time.Duration
	// current returns the stored version of a report while it is
	// unpulled; ok is false once pulled or gone.
	current func(id string) (r *report.Report, ok bool)
	retry   time.Duration // first retry; 0: none
	onDone  func(id string, err error)
	log     *slog.Logger
	queue   chan *report.Report
	ctx     context.Context
	stop    context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	timers map[string]*time.Timer // a retry waiting, per report
	fails  map[string]int         // failures in a row, per report
}

func startPusher(push func(context.Context, *report.Report) error, timeout time.Duration,
	current func(string) (*report.Report, bool), retry time.Duration, onDone func(string, error), log *slog.Logger) *pusher {
	ctx, stop := context.WithCancel(context.Background())
	p := &pusher{push: push, timeout: timeout, current: current, retry: retry, onDone: onDone, log: log,
		queue: make(chan *report.Report, pushQueue), ctx: ctx, stop: stop, done: make(chan struct{}),
		timers: map[string]*time.Timer{}, fails: map[string]int{}}
	go p.run()
	return p
}

func (p *pusher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.ctx.Done():
			return
		case r := <-p.queue:
			ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
			err := p.push(ctx, r)
			cancel()
			if err != nil {
				p.log.Warn("controller unreachable; report kept on the box until pulled", "report", r.ID, "err", err)
				p.retryLater(r.ID, err)
			} else {
				p.log.Info("report pushed to the controller", "report", r.ID)
				p.mu.Lock()
				delete(p.fails, r.ID)
				p.mu.Unlock()
			}
			if p.onDone != nil {
				p.onDone(r.ID, err)
			}
		}
	}
}

// resume schedules a push of every report still unpulled when the agent
// starts (the retries of an earlier run are not kept), after the first
// retry delay, so that start-up is not slowed by the controller.
func (p *pusher) resume(ids []string) {
	for _, id := range ids {
		p.retryLater(id, nil)
	}
}

// retryLater queues the report again after a delay that doubles with
// each failure in a row. A peer without the controller role is not tried
// again: that is a configuration to fix, not an outage to wait out.
func (p *pusher) retryLater(id string, err error) {
	if p.retry <= 0 || errors.Is(err, controller.ErrNotController) || p.ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timers[id] != nil {
		return
	}
	n := p.fails[id]
	p.fails[id] = n + 1
	delay := min(p.retry<<min(n, 16), maxPushRetry)
	p.timers[id] = time.AfterFunc(delay, func() {
		p.mu.Lock()
		delete(p.timers, id)
		p.mu.Unlock()
		if p.ctx.Err() != nil {
			return
		}
		r, ok := p.current(id)
		if !ok {
			return // pulled meanwhile
		}
		select {
		case p.queue <- r:
		default: // queue full: the next failure or a pull takes it
		}
	})
}

// unpulledReport returns the stored version of report id while no
// controller has pulled it (the pusher's retries).
func (a *Agent) unpulledReport(id string) (*report.Report, bool) {
	for _, e := range a.store.Unpulled() {
		if e.ID == id {
			r, err := a.store.Get(id)
			return r, err == nil
		}
	}
	return nil, false
}

// enqueue is the workflow's Push: it queues a copy of r (the workflow
// goes on changing r when the operator consents to a mitigation) and
// returns collab.ErrPushQueued.
func (p *pusher) enqueue(_ context.Context, r *report.Report) error {
	if p.ctx.Err() != nil {
		return fmt.Errorf("node: agent stopping, report %s kept until pulled", r.ID)
	}
	b, err := report.Encode(r)
	if err != nil {
		return err
	}
	c, err := report.Decode(b)
	if err != nil {
		return err
	}
	select {
	case p.queue <- c:
		return collab.ErrPushQueued
	default:
		return fmt.Errorf("node: %d reports already wait for the controller; %s kept until pulled", pushQueue, r.ID)
	}
}

// close stops the pusher: a push under way is cancelled, and waiting
// retries are dropped.
func (p *pusher) close() {
	p.stop()
	p.mu.Lock()
	for id, t := range p.timers {
		t.Stop()
		delete(p.timers, id)
	}
	p.mu.Unlock()
	<-p.done
}

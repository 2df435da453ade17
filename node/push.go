package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/report"
)

// pushQueue is how many reports may wait for the controller. Beyond it a
// report is not queued and stays on the box for the controller's next
// pull.
const pushQueue = 64

// pusher hands stored reports to the controller in the background, one
// at a time and in order, so that the operator's answer never waits on
// the management network: D2D is there for when that path is slow or
// down (draft 003 §5.3.1 step 5). A report is stored before it is queued,
// so nothing is lost when a push fails or the agent stops: it stays
// unpulled until a pull.
type pusher struct {
	push    func(context.Context, *report.Report) error
	timeout time.Duration
	onDone  func(id string, err error)
	log     *slog.Logger
	queue   chan *report.Report
	ctx     context.Context
	stop    context.CancelFunc
	done    chan struct{}
}

func startPusher(push func(context.Context, *report.Report) error, timeout time.Duration, onDone func(string, error), log *slog.Logger) *pusher {
	ctx, stop := context.WithCancel(context.Background())
	p := &pusher{push: push, timeout: timeout, onDone: onDone, log: log, queue: make(chan *report.Report, pushQueue),
		ctx: ctx, stop: stop, done: make(chan struct{})}
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
			} else {
				p.log.Info("report pushed to the controller", "report", r.ID)
			}
			if p.onDone != nil {
				p.onDone(r.ID, err)
			}
		}
	}
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

// close stops the pusher; a push under way is cancelled.
func (p *pusher) close() {
	p.stop()
	<-p.done
}

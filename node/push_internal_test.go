package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/report"
)

// pushLog records a pusher's attempts.
type pushLog struct {
	mu       sync.Mutex
	outcomes []error
	changed  chan struct{}
}

func newPushLog() *pushLog { return &pushLog{changed: make(chan struct{}, 64)} }

func (l *pushLog) done(_ string, err error) {
	l.mu.Lock()
	l.outcomes = append(l.outcomes, err)
	l.mu.Unlock()
	l.changed <- struct{}{}
}

func (l *pushLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.outcomes)
}

// waitFor waits until n attempts have ended.
func (l *pushLog) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for l.count() < n {
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("%d push attempts after 10s, want %d", l.count(), n)
		}
	}
}

// TestPusherRetries: failed pushes are retried with the stored version
// until one succeeds; a report pulled meanwhile, or refused by a peer
// without the controller role, is not tried again.
func TestPusherRetries(t *testing.T) {
	const retry = 5 * time.Millisecond
	// quiet is long enough for several retries, had any been scheduled.
	const quiet = 40 * retry
	outage := errors.New("controller unreachable")
	cases := []struct {
		name     string
		failures int   // pushes that fail before one succeeds
		err      error // what a failed push returns
		pulledAt int   // after this many attempts the report counts as pulled (0: never)
		attempts int
		last     error
	}{
		{name: "outage then back", failures: 3, err: outage, attempts: 4, last: nil},
		{name: "pulled during the outage", failures: 100, err: outage, pulledAt: 2, attempts: 2, last: outage},
		{name: "not a controller", failures: 100, err: fmt.Errorf("push: %w", controller.ErrNotController), attempts: 1, last: controller.ErrNotController},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log := newPushLog()
			var mu sync.Mutex
			tries := 0
			push := func(context.Context, *report.Report) error {
				mu.Lock()
				defer mu.Unlock()
				tries++
				if tries <= tc.failures {
					return tc.err
				}
				return nil
			}
			current := func(id string) (*report.Report, bool) {
				if tc.pulledAt > 0 && log.count() >= tc.pulledAt {
					return nil, false
				}
				return &report.Report{ID: id}, true
			}
			p := startPusher(push, time.Second, current, retry, log.done, slog.New(slog.DiscardHandler))
			defer p.close()
			p.queue <- &report.Report{ID: "r1"}
			log.waitFor(t, tc.attempts)
			time.Sleep(quiet)
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.outcomes) != tc.attempts {
				t.Fatalf("%d push attempts, want %d: %v", len(log.outcomes), tc.attempts, log.outcomes)
			}
			if got := log.outcomes[len(log.outcomes)-1]; !errors.Is(got, tc.last) || (tc.last == nil) != (got == nil) {
				t.Errorf("last attempt: %v, want %v", got, tc.last)
			}
		})
	}
}

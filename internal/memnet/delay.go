package memnet

import (
	"net"
	"os"
	"sync"
	"time"
)

// Delays runs functions after a delay until it is stopped: the datagrams
// of a link with latency, which a closed socket must never deliver. The
// zero value is ready to use.
type Delays struct {
	mu      sync.Mutex
	stopped bool
	timers  map[*time.Timer]struct{}
}

// After runs f after d, unless Stop comes first.
func (s *Delays) After(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if s.timers == nil {
		s.timers = map[*time.Timer]struct{}{}
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		_, live := s.timers[t]
		delete(s.timers, t)
		s.mu.Unlock()
		if live {
			f()
		}
	})
	s.timers[t] = struct{}{}
}

// Stop cancels every pending function; later calls to After do nothing.
func (s *Delays) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
}

// Deadline is the read deadline of an in-memory socket or link: Receive
// honours it, including a change made while it waits (quic-go, for one,
// unblocks its reader by setting a deadline in the past). The zero value
// has no deadline.
type Deadline struct {
	mu   sync.Mutex
	at   time.Time
	wake chan struct{} // a change, for a Receive waiting
}

// Set sets the deadline; the zero t removes it.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	d.at = t
	wake := d.wakeLocked()
	d.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

func (d *Deadline) wakeLocked() chan struct{} {
	if d.wake == nil {
		d.wake = make(chan struct{}, 1)
	}
	return d.wake
}

// Receive waits for the next value on ch until done is closed or the
// deadline d passes; it then returns net.ErrClosed or
// os.ErrDeadlineExceeded (a net.Error whose Timeout is true, as a real
// socket's).
func Receive[T any](d *Deadline, ch <-chan T, done <-chan struct{}) (T, error) {
	var zero T
	for {
		d.mu.Lock()
		at, wake := d.at, d.wakeLocked()
		d.mu.Unlock()
		var (
			timeout <-chan time.Time
			t       *time.Timer
		)
		if !at.IsZero() {
			wait := time.Until(at)
			if wait <= 0 {
				return zero, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			timeout = t.C
		}
		select {
		case v := <-ch:
			stopTimer(t)
			return v, nil
		case <-done:
			stopTimer(t)
			return zero, net.ErrClosed
		case <-timeout:
		case <-wake:
			stopTimer(t)
		}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

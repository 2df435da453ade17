package memnet

import (
	"sync"
	"time"
)

// delays runs functions after a delay until it is stopped: the datagrams
// of a link with latency, which a closed socket must never deliver.
type delays struct {
	mu      sync.Mutex
	stopped bool
	timers  map[*time.Timer]struct{}
}

// after runs f after d, unless stop comes first.
func (s *delays) after(d time.Duration, f func()) {
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

// stop cancels every pending function; later calls to after do nothing.
func (s *delays) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
}

package linux

import (
	"context"
	"errors"
	"math"
	"net"
	"os"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
)

// maxProbes bounds Count: sequence numbers are 16 bits and a call should
// finish in reasonable time.
const maxProbes = 10000

// reply is what a probe's receive side made of one packet.
type reply struct {
	seq   int    // probe index
	ok    bool   // an echo reply for seq
	note  string // an ICMP error about seq, for ProbeResult.Error
	match bool   // the packet concerned this run at all
}

// probeRun sends count probes and collects their replies.
type probeRun struct {
	count    int
	interval time.Duration
	timeout  time.Duration
	send     func(seq int) error
	conn     interface {
		ReadFrom([]byte) (int, net.Addr, error)
		SetReadDeadline(time.Time) error
	}
	parse func(pkt []byte, from net.Addr) reply
}

// run sends the probes at the interval, counts a probe as received when
// its reply arrives within the per-probe timeout, and returns early when
// every probe is answered. On cancellation it returns what it has with
// the context's error.
func (p *probeRun) run(ctx context.Context, progress device.Progress, message string) (device.ProbeResult, error) {
	var (
		mu       sync.Mutex
		sentAt   = make([]time.Time, p.count)
		rtt      = make([]time.Duration, p.count)
		got      int
		note     string
		allDone  = make(chan struct{})
		wg       sync.WaitGroup
		readErr  error
		doneOnce sync.Once
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := p.conn.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					mu.Lock()
					readErr = err
					mu.Unlock()
				}
				return
			}
			now := time.Now()
			r := p.parse(buf[:n], from)
			if !r.match || r.seq < 0 || r.seq >= p.count {
				continue
			}
			mu.Lock()
			switch {
			case r.ok && !sentAt[r.seq].IsZero() && rtt[r.seq] == 0:
				if d := now.Sub(sentAt[r.seq]); d <= p.timeout {
					rtt[r.seq] = max(d, time.Nanosecond)
					got++
					if got == p.count {
						doneOnce.Do(func() { close(allDone) })
					}
				}
			case r.note != "":
				note = r.note
			}
			mu.Unlock()
		}
	}()

	sent := 0
	var runErr error
	var last time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
loop:
	for i := range p.count {
		if i > 0 {
			t.Reset(p.interval)
			select {
			case <-ctx.Done():
				runErr = ctx.Err()
				break loop
			case <-t.C:
			}
		}
		mu.Lock()
		sentAt[i] = time.Now()
		mu.Unlock()
		if err := p.send(i); err != nil {
			runErr = err
			break
		}
		last = time.Now()
		sent++
		if progress != nil {
			progress(float64(sent), float64(p.count), message)
		}
	}
	if runErr == nil && sent > 0 {
		t.Reset(time.Until(last.Add(p.timeout)))
		select {
		case <-allDone:
		case <-t.C:
		case <-ctx.Done():
			runErr = ctx.Err()
		}
	}
	_ = p.conn.SetReadDeadline(time.Unix(1, 0))
	wg.Wait()

	res := device.ProbeResult{Sent: sent}
	var sum time.Duration
	minRTT, maxRTT := time.Duration(math.MaxInt64), time.Duration(0)
	for i := range sent {
		if d := rtt[i]; d > 0 {
			res.Received++
			sum += d
			minRTT, maxRTT = min(minRTT, d), max(maxRTT, d)
		}
	}
	if sent > 0 {
		res.LossPercent = float64(sent-res.Received) * 100 / float64(sent)
	}
	if res.Received > 0 {
		res.RTTMinMS = ms(minRTT)
		res.RTTMaxMS = ms(maxRTT)
		res.RTTAvgMS = ms(sum / time.Duration(res.Received))
	} else if sent > 0 {
		res.Error = note
		if res.Error == "" {
			res.Error = "no reply within " + p.timeout.String()
		}
	}
	if runErr == nil && readErr != nil {
		runErr = readErr
	}
	return res, runErr
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func (b *Backend) nextEchoID() int { return int(b.echoID.Add(1) & 0xffff) }

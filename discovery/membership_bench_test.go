package discovery_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/d2dmesh/d2d/discovery"
)

// simLANTiming tunes memberlist's LAN preset for an in-memory LAN, where
// a packet costs CPU but no wire time:
//
//   - GossipInterval 100ms (LAN: 200ms) and GossipNodes 4 (LAN: 3): news
//     spreads in fewer, wider rounds.
//   - RetransmitMult 8 (LAN: 4): when a whole domain joins at once, every
//     member starts out knowing only its ring neighbours, and memberlist
//     spends a broadcast's retransmissions on that small view; twice the
//     budget keeps the epidemic from dying out before it reaches all.
//   - UDPBufferSize stays 1400 (an Ethernet MTU): larger packets drain
//     the retransmission budget even faster and converged later.
//   - ProbeInterval 1s, ProbeTimeout 500ms and PushPullInterval 30s as in
//     LAN (memberlist scales push/pull by log2 of the domain size).
//   - EnableCompression off: it saves bandwidth that memory does not
//     lack and costs CPU that a thousand members on two cores do.
func simLANTiming(c *memberlist.Config) {
	c.GossipInterval = 100 * time.Millisecond
	c.GossipNodes = 4
	c.RetransmitMult = 8
	c.EnableCompression = false
}

// BenchmarkMembershipConvergence measures how long a domain of in-memory
// members takes until every member lists every other. Members are
// connected in a ring, and each joins through its two ring neighbours
// only, as agents that discovered just their direct neighbours would;
// all joins start at once. Gossip is encrypted with a domain key, as in
// production. A run that has not converged after one minute stops and
// logs how much of the domain members see on average; s/converge is then
// the time it gave up.
func BenchmarkMembershipConvergence(b *testing.B) {
	for _, n := range []int{50, 200, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			var (
				total time.Duration
				drops uint64
			)
			for range b.N {
				d, lost := convergeOnce(b, n)
				total += d
				drops += lost
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/converge")
			b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
		})
	}
}

// convergeOnce times one domain of n members from the first join until
// all see all, and returns that time and the packets lost to full queues.
func convergeOnce(b *testing.B, n int) (time.Duration, uint64) {
	b.StopTimer()
	mn := discovery.NewMemNetwork()
	ms := make([]*discovery.Membership, n)
	defer func() {
		for _, m := range ms {
			if m != nil {
				_ = m.Close()
			}
		}
	}()
	for i := range ms {
		tr, err := mn.NewTransport(netip.AddrPort{})
		if err != nil {
			b.Fatal(err)
		}
		ad := advert(fmt.Sprintf("node-%04d", i), "ietf-ping", "ietf-srv6-ping", "interface-stats")
		ad.Endpoint = netip.AddrPortFrom(tr.Addr().Addr(), discovery.DefaultPort)
		ms[i], err = discovery.NewMembership(discovery.MembershipConfig{
			Self:      ad,
			SecretKey: testKey,
			Transport: tr,
			Tune:      simLANTiming,
		})
		if err != nil {
			b.Fatal(err)
		}
	}

	b.StartTimer()
	start := time.Now()
	ctx := context.Background()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				nb := []discovery.Advertisement{ms[(i+n-1)%n].Self(), ms[(i+1)%n].Self()}
				if _, err := discovery.JoinFromNeighbours(ctx, ms[i], nb); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range ms {
		next <- i
	}
	close(next)
	wg.Wait()

	giveUp := time.Now().Add(time.Minute)
	for {
		converged := true
		for _, m := range ms {
			if m.NumMembers() != n {
				converged = false
				break
			}
		}
		if converged {
			break
		}
		if time.Now().After(giveUp) {
			// Report how far it got rather than fail: this is a
			// measurement, and the numbers say what happened.
			seen := 0
			for _, m := range ms {
				seen += m.NumMembers()
			}
			b.Logf("%d members not converged after %v: on average each sees %.1f%% of the domain",
				n, time.Since(start).Round(time.Second), 100*float64(seen)/float64(n*n))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	return elapsed, mn.Dropped()
}

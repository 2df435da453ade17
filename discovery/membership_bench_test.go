package discovery_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
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

// simSeedTiming tunes memberlist for a domain that joins through seeds
// (joinThroughSeeds), simulated in one process. Push/pull on join does
// the spreading, so gossip only has to carry later changes; in one
// process, though, the gossip of a thousand members shares two cores, and
// every member rebroadcasts every member it learns (memberlist's
// aliveNode), so gossip is slowed down to leave the CPU to the joins:
//
//   - GossipInterval 500ms and GossipNodes 2 (LAN: 200ms, 3).
//   - RetransmitMult 1 (LAN: 4): each member's broadcast queue holds an
//     entry for every member it learnt; fewer retransmissions drain it.
//   - ProbeInterval 2s, ProbeTimeout 1s (LAN: 1s, 500ms): a member
//     starved of CPU for a moment by its neighbours in the same process
//     should not be suspected, declared failed and refuted.
//   - EnableCompression off, as in simLANTiming.
//
// A device runs one member on its own CPU, where LAN timings cost nothing
// worth tuning; this preset is about the simulation.
func simSeedTiming(c *memberlist.Config) {
	c.GossipInterval = 500 * time.Millisecond
	c.GossipNodes = 2
	c.RetransmitMult = 1
	c.ProbeInterval = 2 * time.Second
	c.ProbeTimeout = time.Second
	c.EnableCompression = false
}

// joinPlan is how a domain's members join.
type joinPlan string

const (
	// joinRing: each member joins its two ring neighbours, all at once,
	// as agents that discovered just their direct neighbours would.
	joinRing joinPlan = "ring"
	// joinSeeds: see joinThroughSeeds.
	joinSeeds joinPlan = "seeds"
)

// BenchmarkMembershipConvergence measures how long a domain of in-memory
// members takes until every member lists every other, when the domain
// joins through a few seed members (joinThroughSeeds with 4 seeds, as
// the spines of a leaf-spine fabric would be) with simSeedTiming. Gossip
// is encrypted with a domain key, as in production. A run that has not
// converged after one minute stops and logs how much of the domain
// members see on average; s/converge is then the time it gave up.
func BenchmarkMembershipConvergence(b *testing.B) {
	for _, n := range []int{50, 200, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchConverge(b, n, joinSeeds, simSeedTiming) })
	}
}

// BenchmarkMembershipConvergenceRing is the naive plan for comparison:
// everybody joins its two ring neighbours at once with simLANTiming.
// 1000 members do not converge in minutes on two cores this way, so it
// stops at 200.
func BenchmarkMembershipConvergenceRing(b *testing.B) {
	for _, n := range []int{50, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchConverge(b, n, joinRing, simLANTiming) })
	}
}

func benchConverge(b *testing.B, n int, plan joinPlan, tune func(*memberlist.Config)) {
	b.ReportAllocs()
	var (
		total time.Duration
		drops uint64
	)
	for range b.N {
		d, lost := convergeOnce(b, n, plan, tune)
		total += d
		drops += lost
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/converge")
	b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
}

// convergeOnce times one domain of n members from the first join until
// all see all, and returns that time and the packets lost to full queues.
func convergeOnce(b *testing.B, n int, plan joinPlan, tune func(*memberlist.Config)) (time.Duration, uint64) {
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
	// D2D_BENCH_NOCRYPT=1 turns gossip encryption off, to see what it
	// costs; the published figures keep it on.
	key := testKey
	if v, _ := strconv.ParseBool(os.Getenv("D2D_BENCH_NOCRYPT")); v {
		key = nil
	}
	for i := range ms {
		tr, err := mn.NewTransport(netip.AddrPort{})
		if err != nil {
			b.Fatal(err)
		}
		ad := advert(fmt.Sprintf("node-%04d", i), "ietf-ping", "ietf-srv6-ping", "interface-stats")
		ad.Endpoint = netip.AddrPortFrom(tr.Addr().Addr(), discovery.DefaultPort)
		ms[i], err = discovery.NewMembership(discovery.MembershipConfig{
			Self:      ad,
			SecretKey: key,
			Transport: tr,
			Tune:      tune,
		})
		if err != nil {
			b.Fatal(err)
		}
	}

	b.StartTimer()
	start := time.Now()
	ctx := context.Background()
	switch plan {
	case joinRing:
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
	case joinSeeds:
		jctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := joinThroughSeeds(jctx, ms, 4)
		cancel()
		if err != nil && jctx.Err() == nil {
			b.Error(err)
		}
	}

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

// joinThroughSeeds joins ms through its first k members, the seeds, as
// the leaves of a leaf-spine fabric would join through their spines.
// Every join is a memberlist push/pull: a full state exchange with the
// seed, so a member learns at once everybody the seed knows.
//
//  1. The seeds join the first seed.
//  2. Every other member joins one seed (round robin), 8 at a time: the
//     seeds learn everybody; a member learns who had joined its seed
//     before it.
//  3. The seeds exchange state with the first seed twice over, so that
//     every seed knows everybody.
//  4. Every member that does not yet know everybody exchanges state with
//     its seed once more, and now does.
//
// Gossip spreads the same news meanwhile; the second round only fills in
// what gossip has not yet delivered.
func joinThroughSeeds(ctx context.Context, ms []*discovery.Membership, k int) error {
	k = min(k, len(ms))
	seeds := ms[:k]
	joinTo := func(m, seed *discovery.Membership) error {
		_, err := m.Join(ctx, []netip.AddrPort{seed.Addr()})
		return err
	}
	for _, s := range seeds[1:] {
		if err := joinTo(s, seeds[0]); err != nil {
			return err
		}
	}
	parallel := func(skipKnown bool) error {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					if skipKnown && ms[i].NumMembers() == len(ms) {
						continue
					}
					if err := joinTo(ms[i], seeds[i%k]); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			})
		}
		for i := k; i < len(ms); i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		if len(errs) > 0 {
			return errs[0]
		}
		return nil
	}
	if err := parallel(false); err != nil {
		return err
	}
	for range 2 {
		for _, s := range seeds[1:] {
			if err := joinTo(s, seeds[0]); err != nil {
				return err
			}
		}
	}
	return parallel(true)
}

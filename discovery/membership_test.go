package discovery_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/d2dmesh/d2d/discovery"
)

// waitTimeout bounds every wait for gossip in these tests. It is a
// failure deadline, not a speed requirement: with the test timings
// below, membership settles in well under a second.
const waitTimeout = 15 * time.Second

var testKey = bytes.Repeat([]byte{0x42}, 32)

// testTiming shortens memberlist's intervals so that failure detection
// and gossip settle quickly in tests.
func testTiming(c *memberlist.Config) {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.SuspicionMult = 2
	c.PushPullInterval = time.Second
	c.TCPTimeout = 2 * time.Second
}

// testNet builds member configurations on one kind of transport.
type testNet struct {
	name string
	cfg  func(t *testing.T, self discovery.Advertisement) discovery.MembershipConfig
}

// testNets returns the transports to test over. Each sets the
// advertisement's endpoint to the member's own host address, as an agent
// whose D2D endpoint and gossip listener share an address would.
//
// testNets returns the real UDP/TCP transport on loopback and the
// in-memory one, so that every behaviour is checked over both.
func testNets() []testNet {
	return []testNet{
		{name: "udp", cfg: func(t *testing.T, self discovery.Advertisement) discovery.MembershipConfig {
			// Real sockets only ever on loopback.
			self.Endpoint = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), discovery.DefaultPort)
			return discovery.MembershipConfig{
				Self:      self,
				BindAddr:  netip.MustParseAddrPort("127.0.0.1:0"),
				SecretKey: testKey,
				Profile:   discovery.ProfileLocal,
				Tune:      testTiming,
				Logger:    testLogger(t),
			}
		}},
		{name: "mem", cfg: func() func(t *testing.T, self discovery.Advertisement) discovery.MembershipConfig {
			var (
				mu   sync.Mutex
				nets = map[*testing.T]*discovery.MemNetwork{}
			)
			return func(t *testing.T, self discovery.Advertisement) discovery.MembershipConfig {
				mu.Lock()
				mn := nets[t]
				if mn == nil {
					mn = discovery.NewMemNetwork()
					nets[t] = mn
				}
				mu.Unlock()
				tr, err := mn.NewTransport(netip.AddrPort{})
				if err != nil {
					t.Fatal(err)
				}
				self.Endpoint = netip.AddrPortFrom(tr.Addr().Addr(), discovery.DefaultPort)
				return discovery.MembershipConfig{
					Self:      self,
					SecretKey: testKey,
					Profile:   discovery.ProfileLocal,
					Tune:      testTiming,
					Transport: tr,
					Logger:    testLogger(t),
				}
			}
		}()},
	}
}

// testLogger routes logs to t.Log until the test ends; memberlist may
// still log from goroutines that wind down after Close.
func testLogger(t *testing.T) *slog.Logger {
	h := &tlogHandler{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() {
		h.mu.Lock()
		*h.done = true
		h.mu.Unlock()
	})
	return slog.New(h)
}

type tlogHandler struct {
	t     *testing.T
	mu    *sync.Mutex
	done  *bool
	attrs []slog.Attr
}

func (h *tlogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *tlogHandler) WithGroup(string) slog.Handler                { return h }
func (h *tlogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &h2
}

func (h *tlogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	if !*h.done {
		h.t.Log(b.String())
	}
	return nil
}

func leakCheck(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func advert(name string, caps ...string) discovery.Advertisement {
	return discovery.Advertisement{
		Node:         name,
		Capabilities: caps,
		Thumbprint:   sha256.Sum256([]byte(name)),
	}
}

func newMember(t *testing.T, tn testNet, ad discovery.Advertisement) *discovery.Membership {
	t.Helper()
	m, err := discovery.NewMembership(tn.cfg(t, ad))
	if err != nil {
		t.Fatalf("NewMembership(%s): %v", ad.Node, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent reads ch until an event of kind for node arrives.
func waitEvent(t *testing.T, ch <-chan discovery.MemberEvent, kind discovery.EventKind, node string) discovery.MemberEvent {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event channel closed waiting for %v %s", kind, node)
			}
			t.Logf("event %v %s", ev.Kind, ev.Member.Node)
			if ev.Kind == kind && ev.Member.Node == node {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %v %s", kind, node)
		}
	}
}

func names(ms []discovery.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Node)
	}
	return out
}

// wantMember is what every member should list for m.
func wantMember(m *discovery.Membership, self bool) discovery.Member {
	return discovery.Member{Advertisement: m.Self(), Addr: m.Addr(), State: discovery.StateAlive, Self: self}
}

// joinLine starts members named n0..n{count-1}, each joining the one
// before it, as agents that only know their direct neighbour would.
func joinLine(t *testing.T, tn testNet, count int) []*discovery.Membership {
	t.Helper()
	ms := make([]*discovery.Membership, count)
	for i := range ms {
		ms[i] = newMember(t, tn, advert(fmt.Sprintf("n%d", i), "ietf-ping", fmt.Sprintf("cap-%d", i)))
		if i == 0 {
			continue
		}
		n, err := discovery.JoinFromNeighbours(t.Context(), ms[i], []discovery.Advertisement{ms[i-1].Self()})
		if err != nil || n != 1 {
			t.Fatalf("n%d joins n%d: got (%d, %v), want (1, nil)", i, i-1, n, err)
		}
	}
	for _, m := range ms {
		waitFor(t, "all members to see each other", func() bool { return m.NumMembers() == count })
	}
	return ms
}

func TestMembershipJoin(t *testing.T) {
	for _, tn := range testNets() {
		t.Run(tn.name, func(t *testing.T) {
			leakCheck(t)
			ms := joinLine(t, tn, 3)

			// n0 learnt n2's advertisement although it never talked to
			// n2 directly.
			var want []discovery.Member
			for i, m := range ms {
				want = append(want, wantMember(m, i == 0))
			}
			if diff := cmp.Diff(want, ms[0].Members(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("n0 Members() (-want +got):\n%s", diff)
			}
			got, ok := ms[0].Lookup("n2")
			if !ok {
				t.Fatal("n0 Lookup(n2) found nothing")
			}
			if diff := cmp.Diff(wantMember(ms[2], false), got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("n0 Lookup(n2) (-want +got):\n%s", diff)
			}
			if got.GossipPort != ms[2].Addr().Port() {
				t.Errorf("n2 GossipPort = %d, want its bound port %d", got.GossipPort, ms[2].Addr().Port())
			}
			if _, ok := ms[0].Lookup("nobody"); ok {
				t.Error("Lookup(nobody) found a member")
			}

			// Joining the same neighbours again changes nothing.
			n, err := discovery.JoinFromNeighbours(t.Context(), ms[2], []discovery.Advertisement{ms[1].Self(), ms[0].Self(), ms[2].Self()})
			if n != 0 || err != nil {
				t.Errorf("repeated JoinFromNeighbours = (%d, %v), want (0, nil)", n, err)
			}
		})
	}
}

func TestMembershipUpdateSelf(t *testing.T) {
	for _, tn := range testNets() {
		t.Run(tn.name, func(t *testing.T) {
			leakCheck(t)
			ms := joinLine(t, tn, 3)
			events, cancel := ms[2].Subscribe()
			defer cancel()

			ad := ms[0].Self()
			ad.Capabilities = []string{"ietf-ping", "ietf-srv6-ping", "interface-stats"}
			ad.Endpoint = netip.MustParseAddrPort("[2001:db8::1]:9600")
			if err := ms[0].UpdateSelf(ad); err != nil {
				t.Fatalf("UpdateSelf: %v", err)
			}
			ev := waitEvent(t, events, discovery.MemberUpdated, "n0")
			want := discovery.Member{Advertisement: ad, Addr: ms[0].Addr(), State: discovery.StateAlive}
			if diff := cmp.Diff(want, ev.Member, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("update event (-want +got):\n%s", diff)
			}
			got, _ := ms[2].Lookup("n0")
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("Lookup after update (-want +got):\n%s", diff)
			}

			renamed := ad
			renamed.Node = "other"
			if err := ms[0].UpdateSelf(renamed); !errors.Is(err, discovery.ErrMembershipConfig) {
				t.Errorf("UpdateSelf with another name: err = %v, want ErrMembershipConfig", err)
			}
		})
	}
}

func TestMembershipLeave(t *testing.T) {
	for _, tn := range testNets() {
		t.Run(tn.name, func(t *testing.T) {
			leakCheck(t)
			ms := joinLine(t, tn, 3)
			events, cancel := ms[0].Subscribe()
			defer cancel()

			ctx, stop := context.WithTimeout(t.Context(), 5*time.Second)
			defer stop()
			if err := ms[1].Leave(ctx); err != nil {
				t.Fatalf("Leave: %v", err)
			}
			ev := waitEvent(t, events, discovery.MemberLeft, "n1")
			if ev.Member.State != discovery.StateLeft {
				t.Errorf("left member state = %v, want left", ev.Member.State)
			}
			waitFor(t, "n2 to drop n1", func() bool { _, ok := ms[2].Lookup("n1"); return !ok })
			if diff := cmp.Diff([]string{"n0", "n2"}, names(ms[0].Members())); diff != "" {
				t.Errorf("n0 members after leave (-want +got):\n%s", diff)
			}
			if err := ms[1].Close(); err != nil {
				t.Errorf("Close after Leave: %v", err)
			}
		})
	}
}

func TestMembershipFailureDetection(t *testing.T) {
	for _, tn := range testNets() {
		t.Run(tn.name, func(t *testing.T) {
			leakCheck(t)
			ms := joinLine(t, tn, 3)
			events, cancel := ms[0].Subscribe()
			defer cancel()

			if err := ms[2].Close(); err != nil {
				t.Fatal(err)
			}
			ev := waitEvent(t, events, discovery.MemberFailed, "n2")
			if ev.Member.State != discovery.StateFailed {
				t.Errorf("failed member state = %v, want failed", ev.Member.State)
			}
			waitFor(t, "n1 to drop n2", func() bool { _, ok := ms[1].Lookup("n2"); return !ok })
		})
	}
}

func TestMembershipWrongKey(t *testing.T) {
	for _, tn := range testNets() {
		t.Run(tn.name, func(t *testing.T) {
			leakCheck(t)
			a := newMember(t, tn, advert("a"))
			cfg := tn.cfg(t, advert("intruder"))
			cfg.SecretKey = bytes.Repeat([]byte{0x17}, 16)
			cfg.Tune = func(c *memberlist.Config) { testTiming(c); c.TCPTimeout = 500 * time.Millisecond }
			intruder, err := discovery.NewMembership(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer intruder.Close()

			n, err := intruder.Join(t.Context(), []netip.AddrPort{a.Addr()})
			if n != 0 || !errors.Is(err, discovery.ErrJoin) {
				t.Errorf("Join with the wrong key = (%d, %v), want (0, ErrJoin)", n, err)
			}
			// Give stray gossip a chance to do harm before checking.
			time.Sleep(300 * time.Millisecond)
			if diff := cmp.Diff([]string{"a"}, names(a.Members())); diff != "" {
				t.Errorf("members of a (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"intruder"}, names(intruder.Members())); diff != "" {
				t.Errorf("members of intruder (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMembershipClose(t *testing.T) {
	for _, tn := range testNets() {
		t.Run(tn.name, func(t *testing.T) {
			leakCheck(t)
			m, err := discovery.NewMembership(tn.cfg(t, advert("solo")))
			if err != nil {
				t.Fatal(err)
			}
			events, cancel := m.Subscribe()
			defer cancel()
			if err := m.Close(); err != nil {
				t.Fatalf("first Close: %v", err)
			}
			if err := m.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: err = %v, want net.ErrClosed", err)
			}
			if _, ok := <-events; ok {
				t.Error("event channel still open after Close")
			}
			if err := m.Leave(t.Context()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Leave after Close: err = %v, want net.ErrClosed", err)
			}
			if err := m.UpdateSelf(advert("solo")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("UpdateSelf after Close: err = %v, want net.ErrClosed", err)
			}
			if _, err := m.Join(t.Context(), nil); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Join after Close: err = %v, want net.ErrClosed", err)
			}
			late, _ := m.Subscribe()
			if _, ok := <-late; ok {
				t.Error("Subscribe after Close returned an open channel")
			}
		})
	}
}

func TestMembershipConfigErrors(t *testing.T) {
	tooMany := advert("big")
	for i := range 20 {
		tooMany.Capabilities = append(tooMany.Capabilities, fmt.Sprintf("capability-with-a-long-name-%02d", i))
	}
	mem := discovery.NewMemNetwork()
	tests := []struct {
		name string
		cfg  discovery.MembershipConfig
		want error
	}{
		{name: "no node name", cfg: discovery.MembershipConfig{SecretKey: testKey}, want: discovery.ErrMembershipConfig},
		{name: "no key on the network", cfg: discovery.MembershipConfig{Self: advert("a")}, want: discovery.ErrMembershipConfig},
		{name: "short key", cfg: discovery.MembershipConfig{Self: advert("a"), SecretKey: []byte("short")}, want: discovery.ErrMembershipConfig},
		{name: "unknown profile", cfg: discovery.MembershipConfig{Self: advert("a"), SecretKey: testKey, Profile: "lunar"}, want: discovery.ErrMembershipConfig},
		{
			name: "port mismatch",
			cfg: discovery.MembershipConfig{
				Self:      discovery.Advertisement{Node: "a", GossipPort: 7000},
				BindAddr:  netip.MustParseAddrPort("127.0.0.1:7001"),
				SecretKey: testKey,
			},
			want: discovery.ErrMembershipConfig,
		},
		{
			name: "metadata too large",
			cfg: discovery.MembershipConfig{Self: tooMany, Transport: func() memberlist.Transport {
				tr, err := mem.NewTransport(netip.AddrPort{})
				if err != nil {
					t.Fatal(err)
				}
				return tr
			}()},
			want: discovery.ErrMetadataTooLarge,
		},
		{
			name: "not encodable",
			cfg: discovery.MembershipConfig{Self: advert("a", ""), Transport: func() memberlist.Transport {
				tr, err := mem.NewTransport(netip.AddrPort{})
				if err != nil {
					t.Fatal(err)
				}
				return tr
			}()},
			want: discovery.ErrBadAdvertisement,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := discovery.NewMembership(tt.cfg)
			if err == nil {
				m.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("NewMembership: err = %v, want %v", err, tt.want)
			}
		})
	}
}

// garbageMeta is a memberlist delegate whose metadata is not an
// advertisement block.
type garbageMeta struct{}

func (garbageMeta) NodeMeta(int) []byte                 { return []byte{1, 200, 'x'} }
func (garbageMeta) NotifyMsg([]byte)                    {}
func (garbageMeta) GetBroadcasts(int, int) [][]byte     { return nil }
func (garbageMeta) LocalState(bool) []byte              { return nil }
func (garbageMeta) MergeRemoteState(buf []byte, _ bool) {}

func TestMembershipBadPeerMetadata(t *testing.T) {
	leakCheck(t)
	mn := discovery.NewMemNetwork()
	tr, err := mn.NewTransport(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := discovery.NewMembership(discovery.MembershipConfig{
		Self: advert("good"), Transport: tr, Profile: discovery.ProfileLocal, Tune: testTiming, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// A peer that is not a d2d agent, or a broken one.
	ptr, err := mn.NewTransport(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	pc := memberlist.DefaultLocalConfig()
	testTiming(pc)
	pc.Name = "broken"
	pc.Transport = ptr
	pc.Delegate = garbageMeta{}
	pc.LogOutput = nil
	pc.Logger = slog.NewLogLogger(testLogger(t).Handler(), slog.LevelInfo)
	peer, err := memberlist.Create(pc)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Shutdown()
	if _, err := peer.Join([]string{m.Addr().String()}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "the broken peer to be listed", func() bool { _, ok := m.Lookup("broken"); return ok })
	got, _ := m.Lookup("broken")
	if !errors.Is(got.Err, discovery.ErrBadMetadata) {
		t.Errorf("broken member Err = %v, want ErrBadMetadata", got.Err)
	}
	want := discovery.Member{
		Advertisement: discovery.Advertisement{Node: "broken"},
		Addr:          ptr.Addr(),
		State:         discovery.StateAlive,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{}), cmpopts.IgnoreFields(discovery.Member{}, "Err")); diff != "" {
		t.Errorf("broken member (-want +got):\n%s", diff)
	}
}

package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultGossipPort is the membership port used when neither
// MembershipConfig.BindAddr nor Self.GossipPort names one: 7946, the port
// memberlist deployments conventionally use.
const DefaultGossipPort = 7946

// MaxMetadataLen is the largest encoded advertisement that fits in a
// member's metadata (memberlist's MetaMaxSize). Port, thumbprint, IPv6
// endpoint address and gossip port take 60 bytes and the node name 2 more
// than its length; each capability takes 2 more than its length. With a
// 32-byte name, 418 bytes remain for capabilities: twenty 18-byte names.
const MaxMetadataLen = memberlist.MetaMaxSize

// Profile selects the gossip timing preset of a Membership.
type Profile string

// Gossip timing presets. They are memberlist's own presets: LAN probes
// every 1s and gossips every 200ms; WAN probes every 5s and gossips every
// 500ms with longer timeouts; Local is LAN with shorter timeouts for
// loopback.
const (
	ProfileLAN   Profile = "lan"
	ProfileWAN   Profile = "wan"
	ProfileLocal Profile = "local"
)

var (
	// ErrMembershipConfig reports an unusable MembershipConfig.
	ErrMembershipConfig = errors.New("discovery: bad membership config")
	// ErrMetadataTooLarge reports an advertisement whose encoding exceeds
	// MaxMetadataLen bytes.
	ErrMetadataTooLarge = errors.New("discovery: advertisement exceeds membership metadata limit")
	// ErrBadMetadata marks a Member whose metadata could not be decoded or
	// names a different node than the member itself.
	ErrBadMetadata = errors.New("discovery: bad member metadata")
	// ErrJoin reports a Join in which no given address could be reached.
	ErrJoin = errors.New("discovery: membership join reached no member")
)

// defaultLeaveTimeout bounds Leave when its context has no deadline: long
// enough for a LAN gossip round or two (200ms each) to carry the leave
// message out.
const defaultLeaveTimeout = 5 * time.Second

// MembershipConfig configures a Membership. Only Self.Node is required;
// SecretKey is required as well when the real network transport is used.
type MembershipConfig struct {
	// Self is this node's advertisement; it becomes the member metadata.
	// Self.Node names the member and must be unique in the domain.
	// Self.GossipPort is overwritten with the port actually bound. When
	// Self.Endpoint has no address, members fill in the gossip address.
	Self Advertisement

	// BindAddr is where the gossip listener binds (UDP and TCP, same
	// port). If zero, 0.0.0.0 and port Self.GossipPort, or
	// DefaultGossipPort when that is zero too. A valid address with port 0
	// binds an ephemeral port (tests). A non-zero port that disagrees with
	// a non-zero Self.GossipPort is an error. Ignored by an injected
	// Transport, which has its own address.
	BindAddr netip.AddrPort

	// AdvertiseAddr is the address other members use to reach this one.
	// If zero: BindAddr's address when it is specific; otherwise the
	// address of Self.Endpoint; otherwise a private address of this host
	// chosen by memberlist.
	AdvertiseAddr netip.Addr

	// SecretKey is the domain key: 16, 24 or 32 bytes select AES-128,
	// -192 or -256 GCM for all gossip, and members with another key
	// cannot join. Required with the real network transport (Transport
	// nil), so that gossip never crosses a real network in the clear;
	// optional with an injected Transport (in-memory simulations).
	SecretKey []byte

	// Profile picks the timing preset. If empty, ProfileLAN.
	Profile Profile

	// Tune, if set, is applied to the memberlist configuration after the
	// profile and before the Membership starts: for simulations that need
	// other timings. It must not change Name, Transport, Delegate,
	// Events, Logger or the keys.
	Tune func(*memberlist.Config)

	// Transport carries gossip. If nil, a real UDP/TCP transport bound to
	// BindAddr. NewMemNetwork provides an in-memory one.
	Transport memberlist.Transport

	// Logger receives memberlist's log lines at their level. If nil, logs
	// are discarded.
	Logger *slog.Logger
}

// populate checks c and fills its defaults.
func (c *MembershipConfig) populate() error {
	if c.Self.Node == "" {
		return fmt.Errorf("%w: Self.Node is empty", ErrMembershipConfig)
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	switch c.Profile {
	case ProfileLAN, ProfileWAN, ProfileLocal:
	default:
		return fmt.Errorf("%w: unknown profile %q", ErrMembershipConfig, c.Profile)
	}
	switch len(c.SecretKey) {
	case 16, 24, 32:
	case 0:
		if c.Transport == nil {
			return fmt.Errorf("%w: SecretKey is required with the network transport", ErrMembershipConfig)
		}
	default:
		return fmt.Errorf("%w: SecretKey has %d bytes, want 16, 24 or 32", ErrMembershipConfig, len(c.SecretKey))
	}
	if c.Transport == nil {
		port := c.BindAddr.Port()
		if gp := c.Self.GossipPort; gp != 0 && port != 0 && gp != port {
			return fmt.Errorf("%w: BindAddr port %d differs from Self.GossipPort %d", ErrMembershipConfig, port, gp)
		}
		if !c.BindAddr.Addr().IsValid() {
			if port == 0 {
				port = c.Self.GossipPort
			}
			if port == 0 {
				port = DefaultGossipPort
			}
			c.BindAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), port)
		}
		if !c.AdvertiseAddr.IsValid() {
			if a := c.BindAddr.Addr(); !a.IsUnspecified() {
				c.AdvertiseAddr = a
			} else if a := c.Self.Endpoint.Addr(); a.IsValid() && !a.IsUnspecified() {
				c.AdvertiseAddr = a
			}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// MemberState is the liveness of a member as this node sees it.
type MemberState int

// Member states. Memberlist does not tell its users about suspicion, so a
// suspected member stays StateAlive until it is declared failed.
const (
	StateAlive  MemberState = iota // reachable, or suspected but not yet failed
	StateLeft                      // announced its departure
	StateFailed                    // stopped answering probes
)

func (s MemberState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateLeft:
		return "left"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("MemberState(%d)", int(s))
}

// Member is one member of the domain.
type Member struct {
	// Advertisement is the member's decoded metadata. Its Node is always
	// the member's name, even when Err is set.
	Advertisement
	// Addr is where the member gossips.
	Addr  netip.AddrPort
	State MemberState
	// Self is true for the local node.
	Self bool
	// Err is non-nil (wrapping ErrBadMetadata) when the member's metadata
	// did not decode; Advertisement then holds only what is known.
	Err error
}

// EventKind says what happened to a member.
type EventKind int

// Member event kinds.
const (
	MemberJoined  EventKind = iota + 1 // first seen, or back after leaving or failing
	MemberUpdated                      // metadata changed
	MemberLeft                         // left gracefully
	MemberFailed                       // declared failed by the failure detector
)

func (k EventKind) String() string {
	switch k {
	case MemberJoined:
		return "joined"
	case MemberUpdated:
		return "updated"
	case MemberLeft:
		return "left"
	case MemberFailed:
		return "failed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MemberEvent is a change in the membership.
type MemberEvent struct {
	Kind   EventKind
	Member Member
}

// Membership is this node's view of the domain: a memberlist cluster
// whose member metadata carries each member's Advertisement.
type Membership struct {
	cfg    MembershipConfig
	logger *slog.Logger
	list   *memberlist.Memberlist

	metaMu sync.Mutex
	meta   []byte // encoded Self, served as NodeMeta
	self   Advertisement

	// lifeMu orders Leave before Close: memberlist must not be asked to
	// leave once it is shut down.
	lifeMu sync.RWMutex

	// notices queues leave notices for gossip.
	notices *memberlist.TransmitLimitedQueue
	count   atomic.Int64 // len(members), for notices without locking

	mu        sync.Mutex
	ownNotice *leaveNotice
	leaving   map[string]time.Time // leave notices heard, by node
	members   map[string]Member
	subs      map[*subscriber]struct{}
	closed    bool
	closeOnce sync.Once
	subWG     sync.WaitGroup
}

// NewMembership starts the gossip listener and the failure detector. The
// new Membership knows only itself until Join.
func NewMembership(cfg MembershipConfig) (*Membership, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:     cfg,
		logger:  cfg.Logger.With("component", "membership", "node", cfg.Self.Node),
		members: make(map[string]Member),
		leaving: make(map[string]time.Time),
		subs:    make(map[*subscriber]struct{}),
	}
	m.notices = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return int(m.count.Load()) }}

	var mc *memberlist.Config
	switch cfg.Profile {
	case ProfileWAN:
		mc = memberlist.DefaultWANConfig()
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.Self.Node
	mc.Logger = memberlistLogger(m.logger)
	mc.LogOutput = nil
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = slices.Clone(cfg.SecretKey)
	}

	transport := cfg.Transport
	if transport == nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{cfg.BindAddr.Addr().String()},
			BindPort:  int(cfg.BindAddr.Port()),
			Logger:    mc.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("discovery: membership listener on %v: %w", cfg.BindAddr, err)
		}
		transport = nt
		mc.BindAddr = cfg.BindAddr.Addr().String()
		mc.BindPort = nt.GetAutoBindPort()
		mc.AdvertisePort = mc.BindPort
		if cfg.AdvertiseAddr.IsValid() {
			mc.AdvertiseAddr = cfg.AdvertiseAddr.String()
		}
	} else {
		mc.AdvertiseAddr = ""
		if cfg.AdvertiseAddr.IsValid() {
			mc.AdvertiseAddr = cfg.AdvertiseAddr.String()
		}
	}
	mc.Transport = transport
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	m.notices.RetransmitMult = mc.RetransmitMult

	// The metadata must be ready before memberlist announces us, so learn
	// the advertised port from the transport first.
	ip, port, err := transport.FinalAdvertiseAddr(mc.AdvertiseAddr, mc.AdvertisePort)
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("discovery: membership advertise address: %w", err)
	}
	mc.BindPort, mc.AdvertisePort = port, port
	if err := m.setSelf(cfg.Self, uint16(port)); err != nil {
		_ = transport.Shutdown()
		return nil, err
	}
	m.logger.Debug("starting membership", "advertise", net.JoinHostPort(ip.String(), fmt.Sprint(port)), "profile", cfg.Profile)

	list, err := memberlist.Create(mc)
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("discovery: membership start: %w", err)
	}
	m.list = list
	return m, nil
}

// setSelf encodes ad as this node's metadata.
func (m *Membership) setSelf(ad Advertisement, port uint16) error {
	if ad.Node != m.cfg.Self.Node {
		return fmt.Errorf("%w: node name %q cannot change to %q", ErrMembershipConfig, m.cfg.Self.Node, ad.Node)
	}
	ad.GossipPort = port
	ad.Capabilities = slices.Clone(ad.Capabilities)
	meta, err := ad.MarshalBinary()
	if err != nil {
		return fmt.Errorf("discovery: membership metadata: %w", err)
	}
	if len(meta) > MaxMetadataLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMetadataTooLarge, len(meta), MaxMetadataLen)
	}
	m.metaMu.Lock()
	m.meta, m.self = meta, ad
	m.metaMu.Unlock()
	return nil
}

// Self returns this node's advertisement as it is gossiped, with
// GossipPort set to the bound port.
func (m *Membership) Self() Advertisement {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	ad := m.self
	ad.Capabilities = slices.Clone(ad.Capabilities)
	return ad
}

// Addr returns the address other members reach this one at.
func (m *Membership) Addr() netip.AddrPort {
	n := m.list.LocalNode()
	return nodeAddr(n)
}

// Join contacts the members at addrs, one after the other, and
// synchronises state with each. It returns how many answered; the error
// is nil when at least one did, and wraps ErrJoin when none did. ctx is
// checked between addresses; a single attempt is bounded by the
// profile's TCP timeout (LAN 10s, WAN 30s, Local 1s).
func (m *Membership) Join(ctx context.Context, addrs []netip.AddrPort) (int, error) {
	if m.isClosed() {
		return 0, fmt.Errorf("discovery: membership join: %w", net.ErrClosed)
	}
	var (
		n    int
		errs []error
	)
	for _, a := range addrs {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("discovery: membership join: %w", err)
		}
		if _, err := m.list.Join([]string{a.String()}); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n == 0 && len(addrs) > 0 {
		return 0, fmt.Errorf("%w: %w", ErrJoin, errors.Join(errs...))
	}
	return n, nil
}

// JoinFromNeighbours joins the domain through directly discovered
// neighbours: for each advertisement with a gossip port and an endpoint
// address, it joins that address at the gossip port. Neighbours that are
// already alive members at that address, and this node itself, are
// skipped, so calling it again with the same neighbours does nothing. It
// returns how many neighbours were joined; the error is as for Join.
func JoinFromNeighbours(ctx context.Context, m *Membership, ads []Advertisement) (int, error) {
	var addrs []netip.AddrPort
	self := m.cfg.Self.Node
	for _, ad := range ads {
		ip := ad.Endpoint.Addr()
		if ad.GossipPort == 0 || !ip.IsValid() || ad.Node == self {
			continue
		}
		a := netip.AddrPortFrom(ip.Unmap(), ad.GossipPort)
		if mem, ok := m.Lookup(ad.Node); ok && mem.Addr == a {
			continue
		}
		if slices.Contains(addrs, a) {
			continue
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	return m.Join(ctx, addrs)
}

// Members returns the members that are alive (or suspected but not yet
// failed), this node included, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, cloneMember(mem))
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// NumMembers returns how many members Members would list.
func (m *Membership) NumMembers() int {
	return int(m.count.Load())
}

// Lookup returns the alive member named node.
func (m *Membership) Lookup(node string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ok := m.members[node]
	if !ok {
		return Member{}, false
	}
	return cloneMember(mem), true
}

// Subscribe returns a channel of membership changes from now on, in the
// order this node learnt them, and a function that ends the
// subscription. Events queue without bound until read, so a slow reader
// never stalls gossip. The channel is closed after cancel or Close. To
// start from a consistent state, Subscribe first, then read Members.
func (m *Membership) Subscribe() (<-chan MemberEvent, func()) {
	s := &subscriber{
		ch:     make(chan MemberEvent),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	m.subs[s] = struct{}{}
	m.subWG.Add(1)
	m.mu.Unlock()
	go s.run(&m.subWG)
	cancel := func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
		s.stop()
	}
	return s.ch, cancel
}

// UpdateSelf replaces this node's advertisement and gossips the change.
// The node name cannot change and GossipPort is kept at the bound port.
// It returns once the change is queued for gossip, not when other
// members have it.
func (m *Membership) UpdateSelf(ad Advertisement) error {
	if m.isClosed() {
		return fmt.Errorf("discovery: membership update: %w", net.ErrClosed)
	}
	if err := m.setSelf(ad, m.list.LocalNode().Port); err != nil {
		return err
	}
	// UpdateNode queues the new alive message before it waits for the
	// broadcast to finish; the wait is what the short timeout cuts off,
	// and its only error is that timeout.
	_ = m.list.UpdateNode(time.Millisecond)
	return nil
}

// Leave announces that this node is leaving and waits until the
// announcement has been gossiped, ctx's deadline passes, or, without a
// deadline, 5s. The node keeps answering probes until Close.
//
// Memberlist reports a departure and a failure alike, so Leave first
// gossips a leave notice that lets other members report MemberLeft
// rather than MemberFailed. Should the notice reach a member only after
// the departure itself, that member reports MemberFailed.
func (m *Membership) Leave(ctx context.Context) error {
	m.lifeMu.RLock()
	defer m.lifeMu.RUnlock()
	if m.isClosed() {
		return fmt.Errorf("discovery: membership leave: %w", net.ErrClosed)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultLeaveTimeout)
	}
	if m.NumMembers() > 1 {
		notice := &leaveNotice{msg: append([]byte{msgLeaveNotice}, m.cfg.Self.Node...), sent: make(chan struct{})}
		m.mu.Lock()
		m.ownNotice = notice
		m.mu.Unlock()
		m.notices.QueueBroadcast(notice)
		// Wait for the notice to be on its way before the departure
		// itself, but for no more than half of the time allowed.
		wait := time.NewTimer(time.Until(deadline) / 2)
		select {
		case <-notice.sent:
		case <-wait.C:
		case <-ctx.Done():
		}
		wait.Stop()
	}
	timeout := time.Until(deadline)
	if err := ctx.Err(); err != nil || timeout <= 0 {
		return fmt.Errorf("discovery: membership leave: %w", context.DeadlineExceeded)
	}
	if err := m.list.Leave(timeout); err != nil {
		return fmt.Errorf("discovery: membership leave: %w", context.DeadlineExceeded)
	}
	return nil
}

// msgLeaveNotice starts the gossip message that announces a departure:
// the type byte, then the leaving node's name.
const msgLeaveNotice = 0x01

// leaveNoticeTTL is how long a leave notice is remembered: longer than
// any realistic gap between the notice and the departure itself, short
// enough that a node that rejoins and later fails is not taken to have
// left.
const leaveNoticeTTL = time.Minute

// leaveNotice is a queued leave notice, our own or one being relayed.
type leaveNotice struct {
	msg  []byte
	sent chan struct{} // closed when first handed to gossip; nil for relays
	once sync.Once
}

func (n *leaveNotice) Invalidates(o memberlist.Broadcast) bool {
	on, ok := o.(*leaveNotice)
	return ok && bytes.Equal(on.msg, n.msg)
}
func (n *leaveNotice) Message() []byte { return n.msg }
func (n *leaveNotice) Finished()       {}

// noteLeaving records that node announced its departure and reports
// whether this is news.
func (m *Membership) noteLeaving(node string) bool {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.leaving[node]; ok && now.Sub(t) < leaveNoticeTTL {
		return false
	}
	for n, t := range m.leaving {
		if now.Sub(t) >= leaveNoticeTTL {
			delete(m.leaving, n)
		}
	}
	m.leaving[node] = now
	return true
}

// Close stops gossip and the listener without announcing a departure
// (call Leave first for that), and ends all subscriptions. A second call
// returns an error wrapping net.ErrClosed.
func (m *Membership) Close() error {
	err := fmt.Errorf("discovery: membership: %w", net.ErrClosed)
	m.closeOnce.Do(func() {
		err = nil
		m.lifeMu.Lock()
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.lifeMu.Unlock()
		if e := m.list.Shutdown(); e != nil {
			err = fmt.Errorf("discovery: membership close: %w", e)
		}
		m.mu.Lock()
		subs := m.subs
		m.subs = nil
		m.mu.Unlock()
		for s := range subs {
			s.stop()
		}
		m.subWG.Wait()
	})
	return err
}

func (m *Membership) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// delegate serves this node's metadata to memberlist.
type delegate Membership

func (d *delegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if len(d.meta) > limit {
		// setSelf keeps meta within MaxMetadataLen; this guards a limit
		// below it.
		return nil
	}
	return slices.Clone(d.meta)
}

// NotifyMsg takes in leave notices and relays the new ones.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) < 2 || b[0] != msgLeaveNotice {
		return
	}
	m := (*Membership)(d)
	node := string(b[1:])
	if node == m.cfg.Self.Node || !m.noteLeaving(node) {
		return
	}
	m.notices.QueueBroadcast(&leaveNotice{msg: slices.Clone(b)})
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	m := (*Membership)(d)
	out := m.notices.GetBroadcasts(overhead, limit)
	if len(out) == 0 {
		return out
	}
	m.mu.Lock()
	own := m.ownNotice
	m.mu.Unlock()
	if own != nil {
		for _, b := range out {
			if bytes.Equal(b, own.msg) {
				own.once.Do(func() { close(own.sent) })
			}
		}
	}
	return out
}
func (*delegate) LocalState(bool) []byte              { return nil }
func (*delegate) MergeRemoteState(buf []byte, _ bool) {}

// events records membership changes. Memberlist calls it with its node
// table locked, so it must not call back into memberlist, and must not
// block.
type events Membership

func (e *events) NotifyJoin(n *memberlist.Node)   { e.record(MemberJoined, n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.record(MemberUpdated, n) }

// NotifyLeave tells a departure from a failure by the leave notice: the
// node passed in does not carry its state.
func (e *events) NotifyLeave(n *memberlist.Node) {
	m := (*Membership)(e)
	m.mu.Lock()
	t, noticed := m.leaving[n.Name]
	m.mu.Unlock()
	if n.Name == m.cfg.Self.Node || noticed && time.Since(t) < leaveNoticeTTL {
		e.record(MemberLeft, n)
	} else {
		e.record(MemberFailed, n)
	}
}

func (e *events) record(kind EventKind, n *memberlist.Node) {
	m := (*Membership)(e)
	mem := m.decodeMember(n)
	switch kind {
	case MemberLeft:
		mem.State = StateLeft
	case MemberFailed:
		mem.State = StateFailed
	}
	if mem.Err != nil {
		m.logger.Warn("undecodable member metadata", "member", n.Name, "addr", mem.Addr, "err", mem.Err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch kind {
	case MemberJoined:
		// A rejoined node's old leave notice no longer applies.
		delete(m.leaving, mem.Node)
		fallthrough
	case MemberUpdated:
		m.members[mem.Node] = mem
	default:
		delete(m.members, mem.Node)
	}
	m.count.Store(int64(len(m.members)))
	ev := MemberEvent{Kind: kind, Member: mem}
	for s := range m.subs {
		s.push(ev)
	}
}

// decodeMember turns a memberlist node into a Member. Bad metadata marks
// the member with Err instead of failing.
func (m *Membership) decodeMember(n *memberlist.Node) Member {
	mem := Member{Addr: nodeAddr(n), Self: n.Name == m.cfg.Self.Node}
	var ad Advertisement
	if len(n.Meta) == 0 {
		mem.Err = fmt.Errorf("%w: member %s has no advertisement", ErrBadMetadata, n.Name)
	} else if err := ad.UnmarshalBinary(n.Meta); err != nil {
		mem.Err = fmt.Errorf("%w from %s: %w", ErrBadMetadata, n.Name, err)
		ad = Advertisement{}
	} else if ad.Node != n.Name {
		mem.Err = fmt.Errorf("%w: member %s advertises node %q", ErrBadMetadata, n.Name, ad.Node)
	}
	ad.Node = n.Name
	if !ad.Endpoint.Addr().IsValid() && ad.Endpoint.Port() != 0 {
		ad.Endpoint = netip.AddrPortFrom(mem.Addr.Addr(), ad.Endpoint.Port())
	}
	mem.Advertisement = ad
	return mem
}

func nodeAddr(n *memberlist.Node) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(ip.Unmap(), n.Port)
}

func cloneMember(mem Member) Member {
	mem.Capabilities = slices.Clone(mem.Capabilities)
	return mem
}

// subscriber queues events for one Subscribe channel; its run goroutine
// feeds the channel so that recording an event never blocks.
type subscriber struct {
	ch       chan MemberEvent
	mu       sync.Mutex
	queue    []MemberEvent
	wake     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}
}

func (s *subscriber) push(ev MemberEvent) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) run(wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(s.exited)
	defer close(s.ch)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		ev := s.queue[0]
		s.queue[0] = MemberEvent{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.ch <- ev:
		case <-s.done:
			return
		}
	}
}

// stop ends the subscription and waits for its goroutine.
func (s *subscriber) stop() {
	s.stopOnce.Do(func() { close(s.done) })
	<-s.exited
}

// memberlistLogger adapts memberlist's *log.Logger output to l. Lines
// start with a level tag such as "[DEBUG]" or "[ERR]", which becomes the
// slog level.
func memberlistLogger(l *slog.Logger) *log.Logger {
	if !l.Enabled(context.Background(), slog.LevelError) {
		// The log package skips formatting entirely for io.Discard.
		return log.New(io.Discard, "", 0)
	}
	return log.New(&logWriter{l: l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			switch s[1:i] {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			s = strings.TrimSpace(s[i+1:])
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	w.l.Log(context.Background(), level, s)
	return len(p), nil
}

package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// LinkConfig configures a LinkAgent. The zero value runs LLDP on every
// non-loopback interface that is up, advertising nothing but presence.
type LinkConfig struct {
	// Mode is ModeLLDP or ModeISIS. If empty, ModeLLDP.
	Mode Mode
	// Interfaces names the interfaces to run on. If empty, every
	// non-loopback interface that is up, re-examined every PollInterval
	// so that interfaces coming and going are followed.
	Interfaces []string
	// Interval is the transmit interval. If zero, 30 s (IEEE 802.1AB's
	// msgTxInterval); tests go down to e.g. 100 ms.
	Interval time.Duration
	// Holdtime is how long a neighbour stays listed without a new frame.
	// If zero, 4 × Interval (802.1AB's msgTxHold). It is sent as the LLDP
	// TTL and the IS-IS remaining lifetime, rounded up to whole seconds.
	Holdtime time.Duration
	// PollInterval is how often the interface list is re-read. If zero,
	// min(Interval, 1 s).
	PollInterval time.Duration
	// Self is the advertisement sent. Self.Node also fills the LLDP System
	// Name and the IS-IS hostname.
	Self Advertisement
	// OUISubtype is the subtype of the D2D LLDP organisationally specific
	// TLV. If zero, DefaultLLDPSubtype.
	OUISubtype uint8
	// AppID is the GENINFO Application ID. If zero, DefaultAppID.
	AppID uint16
	// Level is the IS-IS level of the LSPs sent (1 or 2). If zero, 1.
	Level int
	// SystemID is the IS-IS system ID of this node. If zero, the first
	// six bytes of SHA-256 of Self.Node (or of the chassis MAC when Node
	// is empty).
	SystemID [6]byte
	// Logger receives debug logs. If nil, logs are discarded.
	Logger *slog.Logger
	// Links opens interfaces. If nil, RawLinks (AF_PACKET, needs
	// CAP_NET_RAW).
	Links LinkNetwork
}

func (c *LinkConfig) populate() error {
	switch c.Mode {
	case "":
		c.Mode = ModeLLDP
	case ModeLLDP, ModeISIS:
	default:
		return fmt.Errorf("discovery: unknown mode %q (want lldp or isis)", c.Mode)
	}
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Holdtime <= 0 {
		c.Holdtime = 4 * c.Interval
	}
	if c.PollInterval <= 0 {
		c.PollInterval = min(c.Interval, time.Second)
	}
	if c.Level != 2 {
		c.Level = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "discovery", "mode", string(c.Mode))
	if c.Links == nil {
		c.Links = RawLinks{}
	}
	if _, err := c.Self.MarshalBinary(); err != nil {
		return err
	}
	return nil
}

// holdSeconds is the holdtime on the wire: LLDP TTL and LSP lifetime count
// whole seconds, and zero would mean "withdrawn".
func (c *LinkConfig) holdSeconds() uint16 {
	return uint16(min(math.Ceil(c.Holdtime.Seconds()), 65535))
}

// LinkAgent runs link-level discovery: it sends the node's advertisement on
// its interfaces every Interval, keeps the table of neighbours heard, and
// in IS-IS mode floods other nodes' advertisements across its links.
type LinkAgent struct {
	cfg   LinkConfig
	log   *slog.Logger
	table *neighborTable

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	once   sync.Once
	runMu  sync.Mutex
	ran    bool

	mu      sync.Mutex
	links   map[string]*agentLink
	chassis net.HardwareAddr
	seq     uint32
	lsdb    map[LSPID]*lspEntry
}

type agentLink struct {
	link Link
	info LinkInfo
	done chan struct{}
}

// lspEntry is the newest copy of another node's LSP.
type lspEntry struct {
	seq     uint32
	expires time.Time
}

// NewLinkAgent checks cfg and returns an agent that does nothing until Run.
func NewLinkAgent(cfg LinkConfig) (*LinkAgent, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &LinkAgent{
		cfg: cfg, log: cfg.Logger, table: newNeighborTable(),
		ctx: ctx, cancel: cancel,
		links: map[string]*agentLink{}, lsdb: map[LSPID]*lspEntry{},
		// Start from the clock so that a restarted node's LSPs are newer
		// than the copies its neighbours still hold; a copy of our own LSP
		// that is newer still bumps the counter (ISO 10589 §7.3.16.1).
		seq: uint32(time.Now().Unix()),
	}, nil
}

// Neighbors returns a snapshot of the neighbour table, sorted by
// interface and chassis.
func (a *LinkAgent) Neighbors() []Neighbor { return a.table.snapshot() }

// Subscribe returns a channel of neighbour events and a function that
// cancels the subscription. The channel holds 64 events; a subscriber
// that falls further behind loses events (Neighbors stays exact). The
// channel is closed by cancel or Close.
func (a *LinkAgent) Subscribe() (<-chan NeighborEvent, func()) { return a.table.subscribe(64) }

// Close stops the agent and closes its links. A second call returns an
// error wrapping net.ErrClosed.
func (a *LinkAgent) Close() error {
	first := false
	a.once.Do(func() {
		first = true
		a.cancel(net.ErrClosed)
		a.runMu.Lock()
		ran := a.ran
		a.ran = true // a later Run returns at once
		a.runMu.Unlock()
		if !ran {
			a.table.closeSubs()
		}
	})
	if !first {
		return fmt.Errorf("discovery: link agent: %w", net.ErrClosed)
	}
	a.wg.Wait()
	return nil
}

// Run discovers until ctx is done or Close is called, and returns the
// cause (nil after Close). It returns an error at once when no interface
// can be opened at all on the first try, e.g. for lack of CAP_NET_RAW.
func (a *LinkAgent) Run(ctx context.Context) error {
	a.runMu.Lock()
	if a.ran {
		a.runMu.Unlock()
		return fmt.Errorf("discovery: link agent: %w", net.ErrClosed)
	}
	a.ran = true
	a.wg.Add(1)
	a.runMu.Unlock()
	defer a.wg.Done()
	defer a.shutdown()

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case <-a.ctx.Done():
			stop(context.Cause(a.ctx))
		case <-ctx.Done():
		}
	}()

	if err := a.reconcile(true); err != nil {
		return err
	}
	tx := time.NewTicker(a.cfg.Interval)
	defer tx.Stop()
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	sweep := time.NewTicker(max(min(a.cfg.Holdtime/8, time.Second), 10*time.Millisecond))
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, net.ErrClosed) {
				return err
			}
			return nil
		case <-tx.C:
			a.transmitAll()
		case <-poll.C:
			_ = a.reconcile(false)
		case now := <-sweep.C:
			a.table.expire(now)
			a.mu.Lock()
			for id, e := range a.lsdb {
				if !now.Before(e.expires) {
					delete(a.lsdb, id)
				}
			}
			a.mu.Unlock()
		}
	}
}

func (a *LinkAgent) shutdown() {
	a.mu.Lock()
	links := a.links
	a.links = map[string]*agentLink{}
	a.mu.Unlock()
	for _, l := range links {
		l.link.Close()
		<-l.done
	}
	a.table.closeSubs()
}

// reconcile opens links on wanted interfaces and closes those that went
// away or down.
func (a *LinkAgent) reconcile(first bool) error {
	infos, err := a.cfg.Links.Interfaces()
	if err != nil {
		return err
	}
	want := map[string]LinkInfo{}
	for _, i := range infos {
		if !i.Up {
			continue
		}
		if len(a.cfg.Interfaces) == 0 {
			if i.Loopback || len(i.HardwareAddr) != 6 {
				continue
			}
		} else if !slices.Contains(a.cfg.Interfaces, i.Name) {
			continue
		}
		want[i.Name] = i
	}
	a.mu.Lock()
	if a.chassis == nil {
		// The chassis ID is the MAC of the lowest-numbered interface, as
		// lldpd does; stable while that interface exists.
		best := -1
		for _, i := range infos {
			if len(i.HardwareAddr) == 6 && !i.Loopback && (best < 0 || i.Index < best) {
				best, a.chassis = i.Index, slices.Clone(i.HardwareAddr)
			}
		}
		if a.cfg.SystemID == ([6]byte{}) {
			seed := []byte(a.cfg.Self.Node)
			if len(seed) == 0 {
				seed = a.chassis
			}
			sum := sha256.Sum256(seed)
			copy(a.cfg.SystemID[:], sum[:6])
		}
	}
	var stale []*agentLink
	for name, l := range a.links {
		if _, ok := want[name]; !ok {
			stale = append(stale, l)
			delete(a.links, name)
		}
	}
	a.mu.Unlock()
	for _, l := range stale {
		a.log.Debug("interface gone", "iface", l.info.Name)
		l.link.Close()
		<-l.done
	}
	var errs []error
	opened := 0
	for name, info := range want {
		a.mu.Lock()
		_, have := a.links[name]
		a.mu.Unlock()
		if have {
			continue
		}
		link, err := a.cfg.Links.Open(name, a.cfg.Mode)
		if err != nil {
			errs = append(errs, err)
			a.log.Debug("open failed", "iface", name, "err", err)
			continue
		}
		al := &agentLink{link: link, info: info, done: make(chan struct{})}
		a.mu.Lock()
		a.links[name] = al
		a.mu.Unlock()
		opened++
		go a.readLoop(al)
		a.transmit(al)
	}
	if first && opened == 0 && len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func (a *LinkAgent) readLoop(l *agentLink) {
	defer close(l.done)
	buf := make([]byte, MaxFrame)
	for {
		n, err := l.link.ReadFrame(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.log.Debug("read", "iface", l.info.Name, "err", err)
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		a.receive(l, buf[:n])
	}
}

func (a *LinkAgent) transmitAll() {
	a.mu.Lock()
	links := make([]*agentLink, 0, len(a.links))
	for _, l := range a.links {
		links = append(links, l)
	}
	a.mu.Unlock()
	for _, l := range links {
		a.transmit(l)
	}
}

// transmit sends the node's own frame on l.
func (a *LinkAgent) transmit(l *agentLink) {
	frame, err := a.ownFrame(l)
	if err != nil {
		a.log.Debug("encode", "iface", l.info.Name, "err", err)
		return
	}
	if err := l.link.WriteFrame(frame); err != nil {
		a.log.Debug("write", "iface", l.info.Name, "err", err)
	}
}

func (a *LinkAgent) ownFrame(l *agentLink) ([]byte, error) {
	self := a.cfg.Self
	a.mu.Lock()
	chassis := a.chassis
	a.mu.Unlock()
	if a.cfg.Mode == ModeLLDP {
		f := LLDPFrame{
			Src:         l.info.HardwareAddr,
			ChassisID:   layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeMACAddr, ID: chassis},
			PortID:      layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte(l.info.Name)},
			TTL:         a.cfg.holdSeconds(),
			SystemName:  self.Node,
			MgmtAddr:    self.Endpoint.Addr(),
			MgmtIfIndex: uint32(l.info.Index),
			Subtype:     a.cfg.OUISubtype,
			Adv:         &self,
		}
		return f.MarshalBinary()
	}
	a.mu.Lock()
	a.seq++
	seq := a.seq
	a.mu.Unlock()
	var id LSPID
	copy(id[:], a.cfg.SystemID[:])
	f := ISISFrame{Src: l.info.HardwareAddr, LSP: ISISLSP{
		Level:             a.cfg.Level,
		RemainingLifetime: a.cfg.holdSeconds(),
		LSPID:             id,
		Sequence:          seq,
		Hostname:          self.Node,
		AppID:             a.cfg.AppID,
		AppAddr:           self.Endpoint.Addr(),
		Adv:               &self,
	}}
	return f.MarshalBinary()
}

func (a *LinkAgent) receive(l *agentLink, b []byte) {
	now := time.Now()
	if a.cfg.Mode == ModeLLDP {
		f := LLDPFrame{Subtype: a.cfg.OUISubtype}
		if err := f.UnmarshalBinary(b); err != nil {
			a.log.Debug("bad LLDP frame", "iface", l.info.Name, "err", err)
			return
		}
		chassis := idString(f.ChassisID.ID)
		if f.ChassisID.Subtype == layers.LLDPChassisIDSubTypeMACAddr && len(f.ChassisID.ID) == 6 {
			chassis = net.HardwareAddr(f.ChassisID.ID).String()
		}
		if f.TTL == 0 { // 802.1AB shutdown frame
			a.table.remove(l.info.Name, chassis)
			return
		}
		n := Neighbor{
			Interface: l.info.Name, Chassis: chassis, Mode: ModeLLDP,
			Port: idString(f.PortID.ID), SystemName: f.SystemName, MAC: f.Src, MgmtAddr: f.MgmtAddr,
			Direct: true, Hops: 1, LastSeen: now,
			Expires: now.Add(min(time.Duration(f.TTL)*time.Second, a.cfg.Holdtime)),
		}
		if f.Adv != nil {
			n.D2D, n.Adv = true, *f.Adv
		}
		a.table.update(n)
		return
	}
	a.receiveLSP(l, b, now)
}

// receiveLSP applies the IS-IS update process (ISO 10589 §7.3.15, much
// reduced): a newer sequence number is stored and re-flooded on every
// other link with its remaining lifetime decremented; an equal one only
// refreshes the table; an older one is dropped. That alone stops loops.
func (a *LinkAgent) receiveLSP(l *agentLink, b []byte, now time.Time) {
	f := ISISFrame{LSP: ISISLSP{AppID: a.cfg.AppID}}
	if err := f.UnmarshalBinary(b); err != nil {
		if !errors.Is(err, ErrNotLSP) {
			a.log.Debug("bad IS-IS frame", "iface", l.info.Name, "err", err)
		}
		return
	}
	lsp := &f.LSP
	sys := lsp.LSPID.SystemID()
	a.mu.Lock()
	if sys == a.cfg.SystemID {
		// Our own LSP came back: make sure the next one is newer.
		if lsp.Sequence >= a.seq {
			a.seq = lsp.Sequence
		}
		a.mu.Unlock()
		return
	}
	e := a.lsdb[lsp.LSPID]
	newer := e == nil || lsp.Sequence > e.seq || (lsp.Sequence == e.seq && lsp.RemainingLifetime == 0)
	if e != nil && lsp.Sequence < e.seq {
		a.mu.Unlock()
		return
	}
	lifetime := time.Duration(lsp.RemainingLifetime) * time.Second
	if newer {
		a.lsdb[lsp.LSPID] = &lspEntry{seq: lsp.Sequence, expires: now.Add(lifetime)}
	}
	var others []*agentLink
	if newer && lsp.RemainingLifetime > 0 {
		for _, o := range a.links {
			if o != l {
				others = append(others, o)
			}
		}
	}
	a.mu.Unlock()

	// A flood goes to AllISs, an originator's own LSP to AllL1ISs or
	// AllL2ISs: that is how a receiver tells direct neighbours from
	// distant ones without IS-IS hellos.
	direct := !slices.Equal(f.Dst, AllISs)
	chassis := systemIDString(sys)
	if lsp.RemainingLifetime == 0 {
		a.table.remove(l.info.Name, chassis)
	} else if lsp.Adv != nil && (newer || direct) {
		hops := 0
		if direct {
			hops = 1
		}
		n := Neighbor{
			Interface: l.info.Name, Chassis: chassis, Mode: ModeISIS,
			SystemName: lsp.Hostname, MAC: f.Src, D2D: true, Adv: *lsp.Adv,
			Direct: direct, Hops: hops, LSPID: lsp.LSPID, Sequence: lsp.Sequence,
			LastSeen: now, Expires: now.Add(min(lifetime, a.cfg.Holdtime)),
		}
		if !direct {
			// A flooded copy does not downgrade a direct entry that is
			// still fresh.
			for _, old := range a.table.snapshot() {
				if old.Interface == n.Interface && old.Chassis == n.Chassis && old.Direct && now.Before(old.Expires) {
					n.Direct, n.Hops = true, 1
				}
			}
		}
		a.table.update(n)
	}
	if len(others) == 0 {
		return
	}
	// Re-flood the PDU unchanged but for its lifetime, which lies outside
	// the checksum.
	pdu, err := isisPDU(b)
	if err != nil {
		return
	}
	pdu = slices.Clone(pdu)
	// Age by one second per hop, but never to zero: that would turn the
	// copy into a purge. Sequence numbers, not lifetime, stop loops.
	binary.BigEndian.PutUint16(pdu[10:12], max(lsp.RemainingLifetime-1, 1))
	for _, o := range others {
		frame, err := appendISISFrame(nil, AllISs, o.info.HardwareAddr, rawPDU(pdu))
		if err != nil {
			continue
		}
		if err := o.link.WriteFrame(frame); err != nil {
			a.log.Debug("flood", "iface", o.info.Name, "err", err)
		}
	}
}

// rawPDU serialises an already encoded PDU as a gopacket layer.
type rawPDU []byte

func (p rawPDU) LayerType() gopacket.LayerType { return LayerTypeISIS }

func (p rawPDU) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(len(p))
	if err != nil {
		return err
	}
	copy(buf, p)
	return nil
}

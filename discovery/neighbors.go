package discovery

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Neighbor is one entry of the neighbour table, keyed by (Interface,
// Chassis).
type Neighbor struct {
	Interface string // local interface the advertisement arrived on
	Chassis   string // LLDP chassis ID (a MAC as aa:bb:..) or IS-IS system ID (aabb.ccdd.eeff)
	Mode      Mode

	Port       string           // neighbour's LLDP port ID (its interface name); empty in IS-IS mode
	SystemName string           // LLDP System Name or IS-IS hostname
	MAC        net.HardwareAddr // source MAC of the last frame (the sender, which for a flooded LSP is the last hop)
	MgmtAddr   netip.Addr       // LLDP Management Address

	// D2D reports that the neighbour carries a D2D advertisement; Adv is
	// zero otherwise (an ordinary LLDP speaker such as lldpd).
	D2D bool
	Adv Advertisement

	// Direct reports a neighbour on the link itself. In IS-IS mode an
	// advertisement flooded by an intermediate agent is not direct; Hops
	// is 1 for direct neighbours and 0 when unknown.
	Direct   bool
	Hops     int
	LSPID    LSPID  // IS-IS only
	Sequence uint32 // IS-IS only

	FirstSeen, LastSeen, Expires time.Time
}

// NeighborEventKind says what happened to a neighbour.
type NeighborEventKind int

// Neighbour events.
const (
	NeighborAdded NeighborEventKind = iota + 1
	NeighborChanged
	NeighborExpired
)

func (k NeighborEventKind) String() string {
	switch k {
	case NeighborAdded:
		return "added"
	case NeighborChanged:
		return "changed"
	case NeighborExpired:
		return "expired"
	}
	return fmt.Sprintf("NeighborEventKind(%d)", int(k))
}

// NeighborEvent reports a change of the neighbour table.
type NeighborEvent struct {
	Kind     NeighborEventKind
	Neighbor Neighbor
}

type neighborKey struct{ iface, chassis string }

// neighborTable is the table with its subscribers. Events are delivered
// on buffered channels; a subscriber that does not keep up loses events
// rather than stalling discovery.
type neighborTable struct {
	mu   sync.Mutex
	m    map[neighborKey]*Neighbor
	subs map[chan NeighborEvent]struct{}
}

func newNeighborTable() *neighborTable {
	return &neighborTable{m: map[neighborKey]*Neighbor{}, subs: map[chan NeighborEvent]struct{}{}}
}

func cloneNeighbor(n *Neighbor) Neighbor {
	c := *n
	c.MAC = slices.Clone(n.MAC)
	c.Adv.Capabilities = slices.Clone(n.Adv.Capabilities)
	return c
}

// same reports whether a refresh changed anything but the timestamps.
func same(a, b *Neighbor) bool {
	return a.Port == b.Port && a.SystemName == b.SystemName && a.MgmtAddr == b.MgmtAddr &&
		a.D2D == b.D2D && a.Direct == b.Direct && a.Hops == b.Hops &&
		a.Adv.Node == b.Adv.Node && a.Adv.Endpoint == b.Adv.Endpoint &&
		a.Adv.Thumbprint == b.Adv.Thumbprint && a.Adv.GossipPort == b.Adv.GossipPort &&
		slices.Equal(a.Adv.Capabilities, b.Adv.Capabilities)
}

// update inserts or refreshes n (FirstSeen is kept from the old entry).
func (t *neighborTable) update(n Neighbor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := neighborKey{n.Interface, n.Chassis}
	old := t.m[k]
	switch {
	case old == nil:
		n.FirstSeen = n.LastSeen
		t.m[k] = &n
		t.emit(NeighborAdded, &n)
	default:
		n.FirstSeen = old.FirstSeen
		changed := !same(old, &n)
		*old = n
		if changed {
			t.emit(NeighborChanged, old)
		}
	}
}

func (t *neighborTable) remove(iface, chassis string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := neighborKey{iface, chassis}
	if n := t.m[k]; n != nil {
		delete(t.m, k)
		t.emit(NeighborExpired, n)
	}
}

func (t *neighborTable) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, n := range t.m {
		if !now.Before(n.Expires) {
			delete(t.m, k)
			t.emit(NeighborExpired, n)
		}
	}
}

func (t *neighborTable) emit(kind NeighborEventKind, n *Neighbor) {
	for ch := range t.subs {
		select {
		case ch <- NeighborEvent{Kind: kind, Neighbor: cloneNeighbor(n)}:
		default:
		}
	}
}

func (t *neighborTable) snapshot() []Neighbor {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Neighbor, 0, len(t.m))
	for _, n := range t.m {
		out = append(out, cloneNeighbor(n))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Interface != out[j].Interface {
			return out[i].Interface < out[j].Interface
		}
		return out[i].Chassis < out[j].Chassis
	})
	return out
}

func (t *neighborTable) subscribe(buf int) (<-chan NeighborEvent, func()) {
	ch := make(chan NeighborEvent, buf)
	t.mu.Lock()
	t.subs[ch] = struct{}{}
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.subs[ch]; ok {
			delete(t.subs, ch)
			close(ch)
		}
	}
}

func (t *neighborTable) closeSubs() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch := range t.subs {
		delete(t.subs, ch)
		close(ch)
	}
}

// idString renders an LLDP chassis or port ID: text when printable, else
// hex.
func idString(b []byte) string {
	s := string(b)
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return hex.EncodeToString(b)
}

// systemIDString renders an IS-IS system ID the usual way.
func systemIDString(id [6]byte) string {
	return fmt.Sprintf("%02x%02x.%02x%02x.%02x%02x", id[0], id[1], id[2], id[3], id[4], id[5])
}

package discovery

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/internal/memnet"
)

// MemLinkNetwork is an in-memory LinkNetwork of many nodes joined by
// point-to-point links, like veth pairs, so that tests and large
// simulations run without privileges. Frames are delivered to the peer
// interface when both ends are up and the peer has a Link of the frame's
// mode open; a full receive queue drops, as a NIC would.
type MemLinkNetwork struct {
	mu    sync.Mutex
	nodes map[string]map[string]*memIface
	next  int
}

type memIface struct {
	node string
	info LinkInfo
	peer *memIface
	open map[Mode]*memLink
}

// NewMemLinkNetwork returns an empty network.
func NewMemLinkNetwork() *MemLinkNetwork {
	return &MemLinkNetwork{nodes: map[string]map[string]*memIface{}}
}

func (m *MemLinkNetwork) iface(node, name string) *memIface {
	ifs := m.nodes[node]
	if ifs == nil {
		ifs = map[string]*memIface{}
		m.nodes[node] = ifs
	}
	i := ifs[name]
	if i == nil {
		m.next++
		mac := net.HardwareAddr{0x02, 0xd2, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(mac[2:], uint32(m.next))
		i = &memIface{node: node, info: LinkInfo{Name: name, Index: len(ifs) + 2, HardwareAddr: mac, Up: true},
			open: map[Mode]*memLink{}}
		ifs[name] = i
	}
	return i
}

// Connect joins interface aIf of node a and bIf of node b, creating both
// (up) when they do not exist.
func (m *MemLinkNetwork) Connect(a, aIf, b, bIf string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	x, y := m.iface(a, aIf), m.iface(b, bIf)
	if x.peer != nil || y.peer != nil {
		return fmt.Errorf("discovery: %s/%s or %s/%s is already connected", a, aIf, b, bIf)
	}
	x.peer, y.peer = y, x
	return nil
}

// SetUp sets an interface administratively up or down; frames neither
// leave nor reach a down interface.
func (m *MemLinkNetwork) SetUp(node, name string, up bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.nodes[node][name]
	if i == nil {
		return fmt.Errorf("discovery: no interface %s/%s", node, name)
	}
	i.info.Up = up
	return nil
}

// Node returns the LinkNetwork as node sees it.
func (m *MemLinkNetwork) Node(node string) LinkNetwork { return memNode{m, node} }

type memNode struct {
	m    *MemLinkNetwork
	node string
}

func (n memNode) Interfaces() ([]LinkInfo, error) {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	var out []LinkInfo
	for _, i := range n.m.nodes[n.node] {
		info := i.info
		info.HardwareAddr = slices.Clone(info.HardwareAddr)
		out = append(out, info)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out, nil
}

func (n memNode) Open(name string, mode Mode) (Link, error) {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	i := n.m.nodes[n.node][name]
	if i == nil {
		return nil, fmt.Errorf("discovery: interface %s: no such interface", name)
	}
	if i.open[mode] != nil {
		return nil, fmt.Errorf("discovery: interface %s: %s link already open", name, mode)
	}
	l := &memLink{m: n.m, iface: i, mode: mode, queue: make(chan []byte, 256), closed: make(chan struct{})}
	i.open[mode] = l
	return l, nil
}

type memLink struct {
	m     *MemLinkNetwork
	iface *memIface
	mode  Mode
	queue chan []byte

	closeOnce sync.Once
	closed    chan struct{}
	read      memnet.Deadline
}

func (l *memLink) Info() LinkInfo {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	info := l.iface.info
	info.HardwareAddr = slices.Clone(info.HardwareAddr)
	return info
}

func (l *memLink) SetReadDeadline(t time.Time) error {
	l.read.Set(t)
	return nil
}

func (l *memLink) ReadFrame(b []byte) (int, error) {
	for {
		f, err := memnet.Receive(&l.read, l.queue, l.closed)
		if err != nil {
			return 0, fmt.Errorf("discovery: read %s: %w", l.iface.info.Name, err)
		}
		if len(f) > len(b) {
			continue
		}
		return copy(b, f), nil
	}
}

// frameMode tells which mode's socket would receive frame b.
func frameMode(b []byte) (Mode, bool) {
	if len(b) < 14 {
		return "", false
	}
	switch t := binary.BigEndian.Uint16(b[12:14]); {
	case t == EtherTypeLLDP:
		return ModeLLDP, true
	case t <= 1500 && len(b) >= 17 && b[14] == 0xfe:
		return ModeISIS, true
	}
	return "", false
}

func (l *memLink) WriteFrame(b []byte) error {
	select {
	case <-l.closed:
		return fmt.Errorf("discovery: write %s: %w", l.iface.info.Name, net.ErrClosed)
	default:
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(b))
	}
	mode, ok := frameMode(b)
	if !ok {
		return nil
	}
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if !l.iface.info.Up {
		return fmt.Errorf("discovery: write %s: interface down", l.iface.info.Name)
	}
	p := l.iface.peer
	if p == nil || !p.info.Up || p.open[mode] == nil {
		return nil
	}
	select {
	case p.open[mode].queue <- slices.Clone(b):
	default:
	}
	return nil
}

func (l *memLink) Close() error {
	first := false
	l.closeOnce.Do(func() {
		first = true
		close(l.closed)
		l.m.mu.Lock()
		if l.iface.open[l.mode] == l {
			delete(l.iface.open, l.mode)
		}
		l.m.mu.Unlock()
	})
	if !first {
		return fmt.Errorf("discovery: close %s: %w", l.iface.info.Name, net.ErrClosed)
	}
	return nil
}

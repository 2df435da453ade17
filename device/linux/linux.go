package linux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrPermission is wrapped by every error caused by a missing privilege.
var ErrPermission = errors.New("linux: operation not permitted: needs CAP_NET_ADMIN and CAP_NET_RAW (run as root or `setcap cap_net_raw,cap_net_admin+ep` on the binary)")

// Config configures a Backend. The zero value works: it operates on the
// current network namespace under the host name.
type Config struct {
	// Node is the device's node name. If empty, the host name.
	Node string
	// Names maps node names to the IPv6 SID or address that stands for
	// them in SID lists and destinations (e.g. "P-2": "fc00:0:2::1"), and
	// back again for naming traceroute hops and peers. If nil, only
	// literal addresses are accepted.
	Names map[string]string
	// ACLTable is the nftables table (family inet) holding the ACLs.
	// If empty, "d2d".
	ACLTable string
	// Logger receives debug logs. If nil, logs are discarded.
	Logger *slog.Logger
	// NetNS is the network namespace to operate in: a name known to
	// `ip netns` or a path such as /proc/1234/ns/net. If empty, the
	// namespace of the goroutine calling New.
	NetNS string
	// Vtysh is FRR's vtysh program. If empty, "vtysh" from PATH; if it is
	// not found, BGP and BFD lists are empty.
	Vtysh string
}

func (c *Config) populate() error {
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("linux: node name: %w", err)
		}
		c.Node = h
	}
	if c.ACLTable == "" {
		c.ACLTable = "d2d"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Vtysh == "" {
		c.Vtysh = "vtysh"
	}
	return nil
}

// Backend is the kernel of one network namespace as a device.Backend. It
// is safe for concurrent use.
type Backend struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	names map[string]netip.Addr // node name → address
	nodes map[netip.Addr]string // address → node name

	ns     vnetns.NsHandle // -1 when operating in the current namespace
	nl     *netlink.Handle
	echoID atomic.Uint32

	mu        sync.Mutex
	firstSeen map[string]time.Time // "<ifindex>/<name>" → first seen

	aclMu sync.Mutex // serialises nftables read-modify-write

	closeOnce sync.Once
	closed    atomic.Bool
}

var _ device.Backend = (*Backend)(nil)

// New opens the namespace given in cfg and returns its backend.
func New(cfg Config) (*Backend, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	b := &Backend{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "device/linux", "node", cfg.Node),
		start:     time.Now(),
		names:     make(map[string]netip.Addr, len(cfg.Names)),
		nodes:     make(map[netip.Addr]string, len(cfg.Names)),
		ns:        -1,
		firstSeen: make(map[string]time.Time),
	}
	for n, a := range cfg.Names {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("linux: Names[%q]=%q: %w", n, a, err)
		}
		b.names[n] = addr.Unmap()
		b.nodes[addr.Unmap()] = n
	}
	b.echoID.Store(uint32(os.Getpid()) & 0xffff)
	var err error
	if cfg.NetNS != "" {
		if strings.Contains(cfg.NetNS, "/") {
			b.ns, err = vnetns.GetFromPath(cfg.NetNS)
		} else {
			b.ns, err = vnetns.GetFromName(cfg.NetNS)
		}
		if err != nil {
			return nil, fmt.Errorf("linux: open namespace %q: %w", cfg.NetNS, permission(err))
		}
		b.nl, err = netlink.NewHandleAt(b.ns)
	} else {
		b.nl, err = netlink.NewHandle()
	}
	if err != nil {
		if b.ns >= 0 {
			b.ns.Close()
		}
		return nil, fmt.Errorf("linux: netlink: %w", permission(err))
	}
	// Remember the interfaces present at start: their counters are
	// continuous since then as far as the backend can tell.
	if links, err := b.nl.LinkList(); err == nil {
		for _, l := range links {
			b.firstSeen[linkKey(l)] = b.start
		}
	}
	return b, nil
}

// Node returns the device's node name.
func (b *Backend) Node() string { return b.cfg.Node }

// Close releases the namespace and netlink handles. It leaves the kernel
// state (ACLs) alone: see Cleanup. A second call returns an error wrapping
// net.ErrClosed.
func (b *Backend) Close() error {
	err := fmt.Errorf("linux: backend %s: %w", b.cfg.Node, net.ErrClosed)
	b.closeOnce.Do(func() {
		err = nil
		b.closed.Store(true)
		b.nl.Close()
		if b.ns >= 0 {
			b.ns.Close()
		}
	})
	return err
}

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("linux: backend %s: %w", b.cfg.Node, net.ErrClosed)
	}
	return ctx.Err()
}

// do runs fn with the calling OS thread inside the backend's namespace.
// Sockets opened by fn stay in that namespace and may be used from any
// goroutine afterwards.
func (b *Backend) do(fn func() error) error {
	if b.ns < 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked, and so dies with this goroutine, if
		// switching back fails: no goroutine may run in the wrong namespace.
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			errc <- fmt.Errorf("linux: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := vnetns.Set(b.ns); err != nil {
			errc <- fmt.Errorf("linux: enter namespace %s: %w", b.cfg.NetNS, permission(err))
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("linux: leave namespace %s: %w", b.cfg.NetNS, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// resolve turns a literal address or a node name from Config.Names into
// an address.
func (b *Backend) resolve(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	if a, ok := b.names[s]; ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("linux: %q is neither an address nor a known node: %w", s, device.ErrUnknownSID)
}

// nodeOf names the node an address belongs to, or "".
func (b *Backend) nodeOf(a netip.Addr) string { return b.nodes[a.Unmap()] }

// permission wraps err with ErrPermission when the kernel refused for lack
// of privilege.
func permission(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}

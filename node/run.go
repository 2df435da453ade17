package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/discovery"
)

// DiscoveryOptions inject discovery's networks, for in-process domains.
type DiscoveryOptions struct {
	// Links, if set, replaces raw AF_PACKET sockets (e.g. an in-memory
	// link network).
	Links discovery.LinkNetwork
	// GossipTransport, if set, replaces memberlist's UDP/TCP transport.
	GossipTransport memberlist.Transport
	// GossipBind overrides Config.Discovery.Gossip (e.g. 127.0.0.1:0).
	GossipBind netip.AddrPort
	// Profile is the gossip timing preset; if empty, LAN.
	Profile discovery.Profile
	// Seeds are gossip addresses joined at start, besides neighbours.
	Seeds []netip.AddrPort
}

// Run starts discovery and keeps the agent in the domain until ctx ends:
// link discovery (LLDP or IS-IS) finds neighbours, every neighbour that
// advertises a gossip port is joined in the membership, and membership
// makes every member known to every other (docs/ARCHITECTURE.md §3.1). On return the
// agent has left the domain; Close it afterwards.
func (a *Agent) Run(ctx context.Context) error {
	if a.opt.Members != nil {
		<-ctx.Done()
		return nil
	}
	if seeds := a.opt.Discovery.Seeds; len(seeds) > 0 {
		if _, err := a.members.Join(ctx, seeds); err != nil {
			a.log.Warn("joining seeds", "err", err)
		}
	}
	for _, s := range a.cfg.Discovery.Join {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			if _, err := a.members.Join(ctx, []netip.AddrPort{ap}); err != nil {
				a.log.Warn("joining configured seed", "seed", s, "err", err)
			}
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if a.link != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := a.link.Run(ctx); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
		go func() {
			defer wg.Done()
			a.joinLoop(ctx)
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if a.members != nil {
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.members.Leave(lctx)
		cancel()
	}
	if a.link != nil {
		_ = a.link.Close()
	}
	wg.Wait()
	return err
}

// GossipAddr is where the agent's membership listens (zero without one).
func (a *Agent) GossipAddr() netip.AddrPort {
	a.discMu.Lock()
	defer a.discMu.Unlock()
	if a.members == nil {
		return netip.AddrPort{}
	}
	return a.members.Addr()
}

// Membership returns the agent's domain membership, nil with a static domain.
func (a *Agent) Membership() *discovery.Membership {
	a.discMu.Lock()
	defer a.discMu.Unlock()
	return a.members
}

// startDiscovery creates the membership and the link agent from the
// configuration, unless they were injected. Sockets of the link agent are
// opened by Run.
func (a *Agent) startDiscovery() error {
	adv := a.advertiseAddr()
	a.discMu.Lock()
	defer a.discMu.Unlock()
	if a.members == nil {
		key, err := domainKey(a.cfg.Discovery.DomainKey)
		if err != nil {
			return err
		}
		bind := a.opt.Discovery.GossipBind
		if !bind.IsValid() {
			if bind, err = netip.ParseAddrPort(withHost(a.cfg.Discovery.Gossip)); err != nil {
				return fmt.Errorf("%w: gossip address %q: %v", ErrConfig, a.cfg.Discovery.Gossip, err)
			}
		}
		if key == nil && a.opt.Discovery.GossipTransport == nil {
			if !bind.Addr().IsLoopback() {
				return fmt.Errorf("%w: discovery.domain_key is required when gossip leaves the host (bind %s)", ErrConfig, bind)
			}
			// A loopback-only domain (one host) may go without a key:
			// gossip never leaves the host, and a fixed all-zero key
			// satisfies the transport without pretending to protect it.
			key = make([]byte, 32)
		}
		m, err := discovery.NewMembership(discovery.MembershipConfig{
			Self:      a.Advertisement(adv, bind.Port()),
			BindAddr:  bind,
			SecretKey: key,
			Profile:   a.opt.Discovery.Profile,
			Transport: a.opt.Discovery.GossipTransport,
			Logger:    a.opt.Logger,
		})
		if err != nil {
			return err
		}
		a.members = m
	}
	if a.link == nil && a.cfg.Discovery.Mode != "off" {
		mode := discovery.ModeLLDP
		if a.cfg.Discovery.Mode == "isis" {
			mode = discovery.ModeISIS
		}
		l, err := discovery.NewLinkAgent(discovery.LinkConfig{
			Mode:       mode,
			Interfaces: a.cfg.Discovery.Interfaces,
			Interval:   a.cfg.Discovery.Interval,
			Holdtime:   a.cfg.Discovery.Holdtime,
			Self:       a.Advertisement(adv, a.members.Addr().Port()),
			Links:      a.opt.Discovery.Links,
			Logger:     a.opt.Logger,
		})
		if err != nil {
			return err
		}
		a.link = l
	}
	return nil
}

// joinLoop joins every D2D neighbour's membership as neighbours appear,
// and retries the ones not yet members every few seconds (a neighbour's
// agent may start later than ours).
func (a *Agent) joinLoop(ctx context.Context) {
	events, cancel := a.link.Subscribe()
	defer cancel()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	join := func() {
		var ads []discovery.Advertisement
		for _, n := range a.link.Neighbors() {
			if !n.D2D || n.Adv.GossipPort == 0 {
				continue
			}
			if _, ok := a.members.Lookup(n.Adv.Node); ok {
				continue
			}
			ads = append(ads, withMgmtAddr(n))
		}
		if len(ads) == 0 {
			return
		}
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := discovery.JoinFromNeighbours(jctx, a.members, ads); err != nil {
			a.log.Debug("joining neighbours", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			join()
		case <-tick.C:
			join()
		}
	}
}

// withMgmtAddr fills a neighbour advertisement without an endpoint
// address with the LLDP management address it came with.
func withMgmtAddr(n discovery.Neighbor) discovery.Advertisement {
	ad := n.Adv
	if !ad.Endpoint.Addr().IsValid() && n.MgmtAddr.IsValid() {
		ad.Endpoint = netip.AddrPortFrom(n.MgmtAddr, ad.Endpoint.Port())
	}
	return ad
}

// advertiseAddr is the address peers should dial: the configured one, or
// the first global unicast address of the discovery interfaces, or none
// (receivers then use the address the advertisement came from).
func (a *Agent) advertiseAddr() netip.Addr {
	if a.cfg.Advertise != "" {
		if ad, err := netip.ParseAddr(a.cfg.Advertise); err == nil {
			return ad
		}
	}
	if ap := a.endpoint.Addr(); ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
		return ap.Addr()
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}
	}
	want := map[string]bool{}
	for _, n := range a.cfg.Discovery.Interfaces {
		want[n] = true
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 || (len(want) > 0 && !want[i.Name]) {
			continue
		}
		addrs, _ := i.Addrs()
		for _, ad := range addrs {
			if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr().IsGlobalUnicast() {
				return p.Addr()
			}
		}
	}
	return netip.Addr{}
}

// domainKey decodes the hex domain key, or reads it from "@file".
func domainKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if f, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: domain key: %v", ErrConfig, err)
		}
		s = strings.TrimSpace(string(b))
	}
	k, err := hex.DecodeString(s)
	if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
		return nil, fmt.Errorf("%w: domain key must be 16, 24 or 32 bytes in hex", ErrConfig)
	}
	return k, nil
}

// RunOptions configure RunAgent.
type RunOptions struct {
	Logger *slog.Logger
	// Backend builds the device backend once the configuration is final.
	Backend func(Config) (device.Backend, error)
	// ShutdownTimeout bounds the graceful shutdown. If zero, 10s.
	ShutdownTimeout time.Duration
	// Getenv reads the environment. If nil, os.Getenv.
	Getenv func(string) string
}

// RunAgent runs an agent as a daemon until ctx ends: it waits for the
// data interfaces containerlab promises (CLAB_INTFS), builds the backend,
// starts the agent and discovery, and shuts down gracefully.
func RunAgent(ctx context.Context, cfg Config, opt RunOptions) error {
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.ShutdownTimeout == 0 {
		opt.ShutdownTimeout = 10 * time.Second
	}
	cfg.ApplyEnv(opt.Getenv)
	if err := cfg.populate(); err != nil {
		return err
	}
	if n, err := strconv.Atoi(opt.Getenv("CLAB_INTFS")); err == nil && n > 0 {
		if err := waitInterfaces(ctx, n, opt.Logger); err != nil {
			return err
		}
	}
	b, err := opt.Backend(cfg)
	if err != nil {
		return err
	}
	a, err := New(ctx, cfg, Options{Backend: b, Logger: opt.Logger})
	if err != nil {
		return err
	}
	opt.Logger.Info("agent started", "node", cfg.Node, "endpoint", a.Addr().String(), "thumbprint", a.Identity().Thumbprint().String(), "admin", cfg.AdminSocket)
	runErr := a.Run(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		return errors.Join(runErr, err)
	case <-time.After(opt.ShutdownTimeout):
		return errors.Join(runErr, errors.New("node: shutdown timed out"))
	}
}

// waitInterfaces waits until n data interfaces (eth1…ethN, as
// containerlab creates them) exist.
func waitInterfaces(ctx context.Context, n int, log *slog.Logger) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		have := 0
		for i := 1; i <= n; i++ {
			if _, err := net.InterfaceByName("eth" + strconv.Itoa(i)); err == nil {
				have++
			}
		}
		if have == n {
			return nil
		}
		log.Debug("waiting for containerlab interfaces", "want", n, "have", have)
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: waiting for %d interfaces (CLAB_INTFS): %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

package simulate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/discovery"
	"github.com/d2dmesh/d2d/internal/memnet"
	agent "github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/signing"
)

// DomainConfig describes an in-process collaboration domain: one agent
// per topology node, each with its own certificate from a fresh domain
// CA, its own D2D endpoint on loopback QUIC, its own state directory and
// admin socket, and a simulated device behind it.
type DomainConfig struct {
	// Topology to build. If it has no nodes, Triangle().
	Topology Topology
	// Seed makes probe outcomes repeatable.
	Seed int64
	// Dir holds the CA and the agents' state. If empty, a temporary
	// directory that Close removes.
	Dir string
	// Discovery is "membership" (default): every agent gossips on
	// loopback and joins the agents it has a topology link to, as it
	// would after LLDP discovery; or "static": every agent knows every
	// other from the start (no gossip, for very large domains).
	Discovery string
	// ProbeCount per measurement. If zero, the agent's default (100).
	ProbeCount int
	// CallTimeout per remote call. If zero, 5s: loopback answers in
	// milliseconds, so a silent peer is found out quickly.
	CallTimeout time.Duration
	// RollbackSeconds of mitigations. If zero, the agent's default.
	RollbackSeconds int
	// Transport carries the agents' QUIC sessions and gossip:
	// "quic-loopback" (default) gives every agent real UDP sockets on
	// 127.0.0.1; "memory" gives every agent a made-up address on one
	// in-memory datagram network (internal/memnet) and membership an
	// in-memory transport, so that a thousand agents run the very same
	// QUIC, TLS and JSON-RPC code without a thousand kernel sockets.
	Transport string
	Logger    *slog.Logger
}

// Transports of DomainConfig.Transport.
const (
	TransportLoopback = "quic-loopback"
	TransportMemory   = "memory"
)

// Domain is a running in-process domain.
type Domain struct {
	Network *Network
	CA      *signing.CA
	Dir     string

	cfg     DomainConfig
	tmp     bool
	packets *memnet.Network       // TransportMemory only
	gossip  *discovery.MemNetwork // TransportMemory only
	mu      sync.Mutex
	agents  map[string]*agent.Agent
	cancels map[string]context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// StartDomain builds the network and starts every agent.
func StartDomain(ctx context.Context, cfg DomainConfig) (d *Domain, err error) {
	if len(cfg.Topology.Nodes) == 0 {
		cfg.Topology = Triangle()
	}
	if cfg.Discovery == "" {
		cfg.Discovery = "membership"
	}
	if cfg.Discovery != "membership" && cfg.Discovery != "static" {
		return nil, fmt.Errorf("simulate: discovery %q (want membership or static)", cfg.Discovery)
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportLoopback
	}
	if cfg.Transport != TransportLoopback && cfg.Transport != TransportMemory {
		return nil, fmt.Errorf("simulate: transport %q (want %s or %s)", cfg.Transport, TransportLoopback, TransportMemory)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	network, err := NewNetwork(cfg.Topology, cfg.Seed)
	if err != nil {
		return nil, err
	}
	d = &Domain{Network: network, cfg: cfg, Dir: cfg.Dir, agents: map[string]*agent.Agent{}, cancels: map[string]context.CancelFunc{}}
	if cfg.Transport == TransportMemory {
		d.packets = memnet.New(memnet.Config{Seed: uint64(cfg.Seed)})
		d.gossip = discovery.NewMemNetwork()
	}
	if d.Dir == "" {
		if d.Dir, err = os.MkdirTemp("", "d2d-domain-"); err != nil {
			return nil, fmt.Errorf("simulate: %w", err)
		}
		d.tmp = true
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.CA, err = signing.NewCA(cfg.Topology.Name+"-ca", 0); err != nil {
		return nil, err
	}
	if err := d.CA.Save(filepath.Join(d.Dir, "pki")); err != nil {
		return nil, err
	}
	trust := signing.NewTrust(d.CA.Cert)
	var key [32]byte
	_, _ = rand.Read(key[:])

	names := network.Nodes()
	for _, name := range names {
		if err := d.startAgent(ctx, name, trust, hex.EncodeToString(key[:])); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Domain) startAgent(ctx context.Context, name string, trust *signing.Trust, key string) error {
	id, err := d.CA.Issue(name, signing.IssueOptions{})
	if err != nil {
		return err
	}
	backend, err := d.Network.Device(name)
	if err != nil {
		return err
	}
	dir := filepath.Join(d.Dir, name)
	cfg := agent.Config{
		Node:            name,
		Listen:          "127.0.0.1:0",
		StateDir:        dir,
		ProbeCount:      d.cfg.ProbeCount,
		CallTimeout:     d.cfg.CallTimeout,
		RollbackSeconds: d.cfg.RollbackSeconds,
		Discovery:       agent.DiscoveryConfig{Mode: "off", DomainKey: key},
	}
	opt := agent.Options{
		Backend:  backend,
		Identity: id,
		Trust:    trust,
		Logger:   d.cfg.Logger,
	}
	if d.packets != nil {
		pc, err := d.packets.Listen(netip.AddrPort{})
		if err != nil {
			return fmt.Errorf("simulate: agent %s: %w", name, err)
		}
		opt.PacketConn = pc
	}
	if d.cfg.Discovery == "static" {
		opt.Members = d.staticMembers(name)
	} else {
		opt.Discovery = agent.DiscoveryOptions{
			GossipBind: netip.MustParseAddrPort("127.0.0.1:0"),
			Profile:    discovery.ProfileLocal,
			Seeds:      d.neighbourSeeds(name),
		}
		if d.gossip != nil {
			tr, err := d.gossip.NewTransport(netip.AddrPort{})
			if err != nil {
				if opt.PacketConn != nil {
					_ = opt.PacketConn.Close()
				}
				return fmt.Errorf("simulate: agent %s: %w", name, err)
			}
			opt.Discovery.GossipTransport = tr
		}
	}
	a, err := agent.New(ctx, cfg, opt)
	if err != nil {
		return fmt.Errorf("simulate: agent %s: %w", name, err)
	}
	actx, cancel := context.WithCancel(context.Background())
	d.mu.Lock()
	d.agents[name] = a
	d.cancels[name] = cancel
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := a.Run(actx); err != nil {
			d.cfg.Logger.Error("agent stopped", "node", name, "err", err)
		}
	}()
	return nil
}

// neighbourSeeds returns the gossip addresses of the already started
// agents that name has a topology link to: what LLDP would have found.
func (d *Domain) neighbourSeeds(name string) []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	var seeds []netip.AddrPort
	for _, l := range d.cfg.Topology.Links {
		a, _, errA := Endpoint(l.A)
		b, _, errB := Endpoint(l.B)
		if errA != nil || errB != nil {
			continue
		}
		var other string
		switch name {
		case a:
			other = b
		case b:
			other = a
		default:
			continue
		}
		if ag, ok := d.agents[other]; ok {
			if ap := ag.GossipAddr(); ap.IsValid() && !slices.Contains(seeds, ap) {
				seeds = append(seeds, ap)
			}
		}
	}
	return seeds
}

// staticMembers lists every other running agent of the domain.
func (d *Domain) staticMembers(self string) func() []collab.Member {
	return func() []collab.Member {
		d.mu.Lock()
		defer d.mu.Unlock()
		var out []collab.Member
		for _, n := range d.Network.Nodes() {
			a, ok := d.agents[n]
			if !ok || n == self {
				continue
			}
			out = append(out, collab.Member{
				Name:         n,
				Peer:         collab.Peer{Name: n, Addr: a.Addr(), Thumbprint: a.Identity().Thumbprint()},
				Capabilities: a.Registry().Offered(),
				Addresses:    []string{a.Addr().Addr().String()},
			})
		}
		return out
	}
}

// ListenPacket opens a datagram socket on the domain's transport, for a
// party outside the domain that must reach the agents the way they reach
// each other (a controller): a loopback UDP socket, or a new address on
// the in-memory network.
func (d *Domain) ListenPacket(ctx context.Context) (net.PacketConn, error) {
	if d.packets != nil {
		return d.packets.Listen(netip.AddrPort{})
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	return pc, nil
}

// PacketNetwork is the in-memory datagram network of a TransportMemory
// domain (nil otherwise), to impair paths with.
func (d *Domain) PacketNetwork() *memnet.Network { return d.packets }

// Agent returns the named agent, nil if unknown or stopped.
func (d *Domain) Agent(name string) *agent.Agent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.agents[name]
}

// Nodes lists the domain's node names.
func (d *Domain) Nodes() []string { return d.Network.Nodes() }

// CAFile is the domain CA certificate, for `d2d report verify --ca`.
func (d *Domain) CAFile() string { return filepath.Join(d.Dir, "pki", "ca.crt") }

// WaitConverged waits until every running agent knows every other one
// through membership.
func (d *Domain) WaitConverged(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		d.mu.Lock()
		want := len(d.agents) - 1
		done := true
		for _, a := range d.agents {
			if len(a.Workflow().Members()) < want {
				done = false
				break
			}
		}
		d.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("simulate: domain did not converge: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Stop kills one agent, as a crashed or unplugged device: its sockets
// close and it answers nothing more.
func (d *Domain) Stop(name string) error {
	d.mu.Lock()
	a, ok := d.agents[name]
	cancel := d.cancels[name]
	delete(d.agents, name)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("simulate: %w: %q", ErrUnknownNode, name)
	}
	// Close first: a crash does not say goodbye, so the agent must not
	// leave the membership gracefully when its Run ends.
	err := a.Close()
	cancel()
	return err
}

// Close stops every agent and removes a temporary directory. The whole
// domain goes at once, so agents are closed without leaving the
// membership gracefully: nobody is left to tell.
func (d *Domain) Close() error {
	var errs []error
	d.once.Do(func() {
		d.mu.Lock()
		agents := d.agents
		cancels := d.cancels
		d.agents = map[string]*agent.Agent{}
		d.mu.Unlock()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := a.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, c := range cancels {
			c()
		}
		d.wg.Wait()
		if d.tmp {
			errs = append(errs, os.RemoveAll(d.Dir))
		}
	})
	return errors.Join(errs...)
}

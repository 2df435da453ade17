package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// Config configures a Controller. Identity and Trust are required; every
// other field has a working zero value.
type Config struct {
	// Identity is the controller's certificate and key; its role should
	// be "controller" (`d2d pki issue --role controller`): nodes grant
	// the report capabilities by that role.
	Identity *signing.Identity
	// Trust is the domain CA.
	Trust *signing.Trust
	// Dir holds the store and the nonce file. If empty,
	// /var/lib/d2d-controller.
	Dir string
	// Members are the nodes the controller knows: whom it pulls from by
	// default, and where it polls on a node's behalf.
	Members []collab.Member
	// Serve makes the endpoint accept sessions: nodes push reports and
	// ask for polls (`d2d controller serve`). If false, the endpoint is
	// a client only.
	Serve bool
	// Listen is the UDP address. If empty, ":9515" when serving and
	// ":0" (any free port) otherwise.
	Listen string
	// PacketConn, if set, replaces opening Listen.
	PacketConn net.PacketConn
	// Policy decides what peers may call when serving. If nil, peers
	// with role "device" may push and ask for polls; nobody else may.
	Policy collab.Policy
	// CallTimeout bounds each call to a node. If zero, 15s, as agents.
	CallTimeout time.Duration
	// Logger; if nil, logs are discarded.
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

func (c *Config) populate() error {
	if c.Identity == nil || c.Trust == nil {
		return errors.New("controller: Config.Identity and Config.Trust are required")
	}
	if c.Dir == "" {
		c.Dir = "/var/lib/d2d-controller"
	}
	if c.Listen == "" {
		if c.Serve {
			c.Listen = fmt.Sprintf(":%d", DefaultPort)
		} else {
			c.Listen = ":0"
		}
	}
	if c.Policy == nil {
		c.Policy = collab.StaticPolicy{ByRole: map[string][]string{signing.RoleDevice: {ToolPush, ToolPoll}}}
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "controller", "node", c.Identity.Name)
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Controller pulls and receives reports, verifies and stores them, polls
// devices on behalf of nodes, and runs intents against devices directly
// (draft 003 §4 and §5.3.1 steps 5 and Failure Handling).
type Controller struct {
	cfg    Config
	log    *slog.Logger
	store  *Store
	nonces *signing.NonceSource
	ep     *collab.Endpoint

	mu      sync.Mutex
	members map[string]collab.Member

	closeOnce sync.Once
}

// New opens the controller's store and endpoint.
func New(ctx context.Context, cfg Config) (c *Controller, err error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	c = &Controller{cfg: cfg, log: cfg.Logger, members: map[string]collab.Member{}}
	for _, m := range cfg.Members {
		c.members[m.Name] = m
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if c.store, err = OpenStore(filepath.Join(cfg.Dir, "store"), StoreConfig{Logger: cfg.Logger, Now: cfg.Now}); err != nil {
		return nil, err
	}
	ecfg := collab.Config{
		Identity:    cfg.Identity,
		Trust:       cfg.Trust,
		ListenAddr:  cfg.Listen,
		PacketConn:  cfg.PacketConn,
		Policy:      cfg.Policy,
		CallTimeout: cfg.CallTimeout,
		Logger:      cfg.Logger,
	}
	if cfg.Serve {
		if c.nonces, err = signing.OpenNonceSource(filepath.Join(cfg.Dir, "nonce"), 0); err != nil {
			return nil, err
		}
		ecfg.Signer = signing.NewSigner(cfg.Identity, c.nonces)
		ecfg.Provider = &provider{c: c}
	}
	if c.ep, err = collab.Listen(ctx, ecfg); err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is the endpoint's UDP address.
func (c *Controller) Addr() netip.AddrPort { return c.ep.Addr() }

// Endpoint returns the controller's D2D endpoint.
func (c *Controller) Endpoint() *collab.Endpoint { return c.ep }

// Store returns the controller's report store.
func (c *Controller) Store() *Store { return c.store }

// Members returns the known nodes.
func (c *Controller) Members() []collab.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]collab.Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m)
	}
	sortMembers(out)
	return out
}

// SetMember adds or replaces a known node.
func (c *Controller) SetMember(m collab.Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[m.Name] = m
}

func (c *Controller) member(name string) (collab.Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[name]
	return m, ok
}

// Close closes the endpoint and the store. A second call returns a
// wrapped net.ErrClosed.
func (c *Controller) Close() error {
	err := fmt.Errorf("controller: already closed: %w", net.ErrClosed)
	c.closeOnce.Do(func() {
		var errs []error
		if c.ep != nil {
			errs = append(errs, ignoreClosed(c.ep.Close()))
		}
		if c.store != nil {
			errs = append(errs, ignoreClosed(c.store.Close()))
		}
		if c.nonces != nil {
			errs = append(errs, ignoreClosed(c.nonces.Close()))
		}
		err = errors.Join(errs...)
	})
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// verify checks a report offline against the domain CA as of its
// creation (report.VerifyArchived: certificates are short-lived and a
// report may be pulled days later) and names the element that failed.
func (c *Controller) verify(node string, r *report.Report) error {
	if err := report.VerifyArchived(r, c.cfg.Trust); err != nil {
		return &RefusedError{Node: node, ID: r.ID, Err: err}
	}
	return nil
}

func sortMembers(ms []collab.Member) {
	slices.SortFunc(ms, func(a, b collab.Member) int { return strings.Compare(a.Name, b.Name) })
}

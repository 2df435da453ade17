package enroll

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/signing"
)

// Renewal defaults, with their reasons.
const (
	// DefaultRenewAt is the fraction of a certificate's lifetime after
	// which it is renewed: a third of the lifetime (8 h of 24 h) is left
	// to retry through a CA outage.
	DefaultRenewAt = 2.0 / 3
	// DefaultRevocationInterval is how often the revocation list is
	// fetched: the longest a revoked node stays accepted by its peers.
	DefaultRevocationInterval = 5 * time.Minute
)

// renewalTime is when c should be renewed: at the fraction at of its
// lifetime.
func renewalTime(c *x509.Certificate, at float64) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(time.Duration(float64(life) * at))
}

// RenewerConfig configures a Renewer. Identity, Trust, Endpoint and
// Service are required.
type RenewerConfig struct {
	// Identity is the node's identity; renewals are installed in it
	// (signing.Identity.Renew), so everything that asks Current sees them.
	Identity *signing.Identity
	// Trust receives the revocation lists fetched.
	Trust *signing.Trust
	// Endpoint is the node's D2D endpoint; calls to the service go
	// through it, authenticated by the current certificate.
	Endpoint *collab.Endpoint
	// Service is the CA service.
	Service collab.Peer
	// CertFile, if set, receives each renewed certificate (PEM), written
	// atomically: a restarted agent starts with the newest.
	CertFile string
	// RevocationFile, if set, receives each new list (PEM).
	RevocationFile string
	// RenewAt is the fraction of the lifetime after which to renew. If
	// zero, DefaultRenewAt.
	RenewAt float64
	// RevocationInterval between list fetches. If zero,
	// DefaultRevocationInterval.
	RevocationInterval time.Duration
	// OnRevocations is called after a newer list is installed (the agent
	// closes its sessions with peers it names).
	OnRevocations func(*signing.RevocationList)
	// OnRenew is called with each renewed identity (the agent advertises
	// the new thumbprint).
	OnRenew func(*signing.Identity)
	// CallTimeout bounds each call to the service. If zero, 10s.
	CallTimeout time.Duration
	// Now is the clock. If nil, time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Status is what a Renewer knows about its certificate and list; a
// metrics exporter reads it (Renewer.Status).
type Status struct {
	NotAfter      time.Time
	RenewAt       time.Time
	Renewals      int
	LastRenewal   time.Time
	LastError     string
	ExpiryWarning bool // renewal is overdue and a sixth of the lifetime or less is left
	ListNumber    uint64
	ListStale     bool // the list in force is past its next update
	LastListFetch time.Time
}

// Renewer keeps a node's certificate fresh and its revocation list
// current, without a restart: it renews at RenewAt of the lifetime
// (retrying with backoff until it succeeds), installs the certificate in
// the identity (new handshakes use it, open sessions keep theirs), and
// fetches the list every RevocationInterval. As expiry nears without a
// renewal it logs a warning on every retry.
type Renewer struct {
	cfg RenewerConfig
	log *slog.Logger

	mu     sync.Mutex
	status Status

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// StartRenewer starts the renewal loop.
func StartRenewer(cfg RenewerConfig) (*Renewer, error) {
	if cfg.Identity == nil || cfg.Trust == nil || cfg.Endpoint == nil || !cfg.Service.Addr.IsValid() {
		return nil, errors.New("enroll: RenewerConfig needs Identity, Trust, Endpoint and a Service address")
	}
	if cfg.RenewAt <= 0 || cfg.RenewAt >= 1 {
		cfg.RenewAt = DefaultRenewAt
	}
	if cfg.RevocationInterval <= 0 {
		cfg.RevocationInterval = DefaultRevocationInterval
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Renewer{cfg: cfg, log: cfg.Logger.With("component", "renewer", "node", cfg.Identity.Name)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.updateStatus(nil)
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Status returns the current status.
func (r *Renewer) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Close stops the loop. A second call returns a wrapped net.ErrClosed.
func (r *Renewer) Close() error {
	err := fmt.Errorf("enroll: renewer already closed: %w", net.ErrClosed)
	r.closeOnce.Do(func() {
		err = nil
		r.cancel()
		r.wg.Wait()
	})
	return err
}

func (r *Renewer) updateStatus(f func(*Status)) {
	cur := r.cfg.Identity.Current().Cert
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.NotAfter = cur.NotAfter
	r.status.RenewAt = renewalTime(cur, r.cfg.RenewAt)
	if l := r.cfg.Trust.Revocations(); l != nil {
		r.status.ListNumber = l.Number
		r.status.ListStale = l.Stale(r.cfg.Now())
	}
	if f != nil {
		f(&r.status)
	}
}

func (r *Renewer) loop() {
	defer r.wg.Done()
	nextList := r.cfg.Now() // fetch at once: the node may have been off
	var renewBackoff time.Duration
	nextRenew := renewalTime(r.cfg.Identity.Current().Cert, r.cfg.RenewAt)
	for {
		now := r.cfg.Now()
		if !now.Before(nextList) {
			if err := r.FetchRevocations(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn("fetching the revocation list", "err", err)
			}
			nextList = now.Add(r.cfg.RevocationInterval)
		}
		if !now.Before(nextRenew) {
			if err := r.Renew(r.ctx); err != nil {
				if r.ctx.Err() != nil {
					return
				}
				cur := r.cfg.Identity.Current().Cert
				life := cur.NotAfter.Sub(cur.NotBefore)
				if renewBackoff == 0 {
					renewBackoff = max(life/100, 100*time.Millisecond)
				} else {
					renewBackoff = min(2*renewBackoff, max(life/20, time.Second), 5*time.Minute)
				}
				nextRenew = now.Add(renewBackoff)
				left := cur.NotAfter.Sub(now)
				warn := left <= life/6
				r.updateStatus(func(s *Status) { s.LastError = err.Error(); s.ExpiryWarning = warn })
				if warn {
					r.log.Warn("certificate expires soon and renewal keeps failing", "notAfter", cur.NotAfter.UTC().Format(time.RFC3339),
						"left", left.Round(time.Second), "err", err, "retry", renewBackoff)
				} else {
					r.log.Info("renewal failed; retrying", "err", err, "retry", renewBackoff)
				}
			} else {
				renewBackoff = 0
				nextRenew = renewalTime(r.cfg.Identity.Current().Cert, r.cfg.RenewAt)
			}
		}
		wait := min(nextList.Sub(r.cfg.Now()), nextRenew.Sub(r.cfg.Now()))
		t := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *Renewer) call(ctx context.Context, tool string, args any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	s, err := r.cfg.Endpoint.Session(ctx, r.cfg.Service, []string{ToolRenew, ToolRevocations})
	if err != nil {
		return err
	}
	if s.Remote().Role != signing.RoleCA {
		return fmt.Errorf("enroll: %s has role %q, not %q", s.Remote().Name, s.Remote().Role, signing.RoleCA)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	_, res, err := s.CallTool(ctx, tool, raw, collab.CallOptions{})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res.StructuredContent, out); err != nil {
		return fmt.Errorf("enroll: %s result: %w", tool, err)
	}
	return nil
}

// Renew renews the certificate now: a request signed by the node's own
// key, the certificate from the service, installed in the identity and
// written to CertFile.
func (r *Renewer) Renew(ctx context.Context) error {
	cur := r.cfg.Identity.Current()
	csr, err := cur.Key().CertificateRequest(cur.Name)
	if err != nil {
		return err
	}
	var res RenewResult
	if err := r.call(ctx, ToolRenew, RenewArgs{Request: csr}, &res); err != nil {
		return err
	}
	if _, err := r.cfg.Trust.VerifyCert(res.Certificate); err != nil {
		return fmt.Errorf("enroll: renewed certificate: %w", err)
	}
	// On disk first: an agent restarted at any point after this starts
	// with the newest certificate, which the running one then also uses.
	if r.cfg.CertFile != "" {
		if err := writeCertFile(r.cfg.CertFile, res.Certificate); err != nil {
			r.log.Warn("writing the renewed certificate", "file", r.cfg.CertFile, "err", err)
		}
	}
	next, err := cur.Renew(res.Certificate)
	if err != nil {
		return err
	}
	r.updateStatus(func(s *Status) {
		s.Renewals++
		s.LastRenewal = r.cfg.Now()
		s.LastError = ""
		s.ExpiryWarning = false
	})
	r.log.Info("certificate renewed", "thumbprint", next.Thumbprint().String(), "notAfter", next.Cert.NotAfter.UTC().Format(time.RFC3339))
	if r.cfg.OnRenew != nil {
		r.cfg.OnRenew(next)
	}
	return nil
}

// FetchRevocations fetches the service's list and installs it if newer.
func (r *Renewer) FetchRevocations(ctx context.Context) error {
	var res RevocationsResult
	if err := r.call(ctx, ToolRevocations, struct{}{}, &res); err != nil {
		return err
	}
	l, err := signing.ParseRevocationList(res.List)
	if err != nil {
		return err
	}
	before := r.cfg.Trust.Revocations()
	if err := r.cfg.Trust.SetRevocations(l); err != nil {
		return err
	}
	r.updateStatus(func(s *Status) { s.LastListFetch = r.cfg.Now() })
	if before != nil && before.Number >= l.Number {
		return nil
	}
	r.log.Info("revocation list installed", "number", l.Number, "revoked", len(l.Revoked))
	if r.cfg.RevocationFile != "" {
		if err := l.Save(r.cfg.RevocationFile); err != nil {
			r.log.Warn("writing the revocation list", "file", r.cfg.RevocationFile, "err", err)
		}
	}
	if r.cfg.OnRevocations != nil {
		r.cfg.OnRevocations(l)
	}
	return nil
}

// writeCertFile writes a PEM certificate atomically.
func writeCertFile(file string, der []byte) error {
	return signing.WriteCertificateFile(filepath.Clean(file), der)
}

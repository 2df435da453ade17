package enroll

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
)

// DefaultPort is the CA service's port: UDP for the D2D endpoint
// (renewals, revocation list), TCP for onboarding.
const DefaultPort = 9516

// Tools the CA service offers authenticated nodes; each is also the
// capability that grants it.
const (
	ToolRenew       = "pki-renew"
	ToolRevocations = "pki-revocations"
)

// RenewArgs is the argument of pki-renew.
type RenewArgs struct {
	// Request is a PKCS#10 request (DER) for the caller's own name.
	Request []byte `json:"request"`
}

// RenewResult is pki-renew's structured result.
type RenewResult struct {
	Certificate []byte    `json:"certificate"`
	NotAfter    time.Time `json:"notAfter"`
}

// RevocationsResult is pki-revocations' structured result.
type RevocationsResult struct {
	List       []byte    `json:"list"` // DER X.509 CRL
	Number     uint64    `json:"number"`
	NextUpdate time.Time `json:"nextUpdate"`
}

// ServiceConfig configures a Service. Authority is required; the rest
// has working zero values.
type ServiceConfig struct {
	Authority *Authority
	// Name is the service's node name, in its own certificate (role ca),
	// which it issues itself at start from the CA it holds. If empty, "ca".
	Name string
	// Listen is the address: UDP for the D2D endpoint, TCP for
	// onboarding. If empty, ":9516".
	Listen string
	// PacketConn and OnboardListener, if set, replace the sockets Listen
	// would open.
	PacketConn      net.PacketConn
	OnboardListener net.Listener
	// StateDir holds the endpoint's nonce file. If empty, the authority's
	// directory.
	StateDir string
	// OnboardTimeout bounds one onboarding run. If zero,
	// DefaultOnboardTimeout.
	OnboardTimeout time.Duration
	// MaxOnboardings bounds the runs served at once; more wait for the
	// accept loop. If zero, 16: each costs two scalar multiplications, a
	// flood of them costs little more than its bandwidth.
	MaxOnboardings int
	Logger         *slog.Logger
}

// Service is the CA service (role ca): a D2D endpoint over mutual TLS
// (collab, QUIC) that renews certificates and serves the revocation list
// to authenticated nodes, and a TCP listener for SPAKE2+ onboarding of
// nodes that have no certificate yet.
type Service struct {
	cfg      ServiceConfig
	log      *slog.Logger
	id       *signing.Identity
	endpoint *collab.Endpoint
	ln       net.Listener
	nonces   *signing.NonceSource

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Serve starts the service.
func Serve(ctx context.Context, cfg ServiceConfig) (s *Service, err error) {
	if cfg.Authority == nil {
		return nil, errors.New("enroll: ServiceConfig.Authority is required")
	}
	if cfg.Name == "" {
		cfg.Name = "ca"
	}
	if cfg.Listen == "" {
		cfg.Listen = fmt.Sprintf(":%d", DefaultPort)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = cfg.Authority.dir
	}
	if cfg.OnboardTimeout == 0 {
		cfg.OnboardTimeout = DefaultOnboardTimeout
	}
	if cfg.MaxOnboardings == 0 {
		cfg.MaxOnboardings = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s = &Service{cfg: cfg, log: cfg.Logger.With("component", "ca-service")}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	a := cfg.Authority
	// The service's own certificate, role ca: issued here, from the CA it
	// holds anyway, for the CA's lifetime at most; renewed at two thirds
	// by its own loop below.
	if s.id, err = a.ca.Issue(cfg.Name, signing.IssueOptions{Role: signing.RoleCA, Validity: a.cfg.Validity}); err != nil {
		return nil, err
	}
	trust := signing.NewTrust(a.ca.Cert)
	crl, err := a.RevocationList()
	if err != nil {
		return nil, err
	}
	if err := trust.SetRevocations(crl); err != nil {
		return nil, err
	}
	if s.nonces, err = signing.OpenNonceSource(filepath.Join(cfg.StateDir, "ca-service.nonce"), 0); err != nil {
		return nil, err
	}
	s.endpoint, err = collab.Listen(ctx, collab.Config{
		Identity:   s.id,
		Trust:      trust,
		Signer:     signing.NewSigner(s.id, s.nonces),
		Provider:   &provider{s: s, trust: trust},
		Policy:     collab.StaticPolicy{Default: []string{ToolRenew, ToolRevocations}},
		ListenAddr: cfg.Listen,
		PacketConn: cfg.PacketConn,
		Logger:     cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	s.ln = cfg.OnboardListener
	if s.ln == nil {
		var lc net.ListenConfig
		if s.ln, err = lc.Listen(ctx, "tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("enroll: onboarding listener: %w", err)
		}
	}
	s.wg.Add(2)
	go s.acceptLoop()
	go s.selfRenewLoop()
	s.log.Info("CA service up", "endpoint", s.endpoint.Addr().String(), "onboarding", s.ln.Addr().String())
	return s, nil
}

// Addr is the D2D endpoint's UDP address.
func (s *Service) Addr() netip.AddrPort { return s.endpoint.Addr() }

// OnboardAddr is the onboarding listener's TCP address.
func (s *Service) OnboardAddr() string { return s.ln.Addr().String() }

// Peer is how nodes name the service when they dial it.
func (s *Service) Peer() collab.Peer { return collab.Peer{Name: s.cfg.Name, Addr: s.Addr()} }

// Close stops the service and waits for its goroutines. A second call
// returns a wrapped net.ErrClosed.
func (s *Service) Close() error {
	err := fmt.Errorf("enroll: service already closed: %w", net.ErrClosed)
	s.closeOnce.Do(func() {
		err = nil
		s.cancel()
		if s.ln != nil {
			s.ln.Close()
		}
		if s.endpoint != nil {
			err = s.endpoint.Close()
		}
		s.wg.Wait()
		if s.nonces != nil {
			s.nonces.Close()
		}
	})
	return err
}

func (s *Service) acceptLoop() {
	defer s.wg.Done()
	sem := make(chan struct{}, s.cfg.MaxOnboardings)
	var runs sync.WaitGroup
	defer runs.Wait()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if !errClosed(err) && s.ctx.Err() == nil {
				s.log.Warn("onboarding accept", "err", err)
			}
			return
		}
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
			conn.Close()
			return
		}
		runs.Add(1)
		go func() {
			defer runs.Done()
			defer func() { <-sem }()
			defer conn.Close()
			stop := context.AfterFunc(s.ctx, func() { conn.Close() })
			defer stop()
			node, err := s.cfg.Authority.onboard(conn, s.cfg.OnboardTimeout)
			if err != nil {
				// The log may say why; the device was told nothing.
				s.log.Info("onboarding refused", "node", node, "from", conn.RemoteAddr().String(), "err", err)
				return
			}
			s.log.Info("onboarding done", "node", node, "from", conn.RemoteAddr().String())
		}()
	}
}

// selfRenewLoop renews the service's own certificate at two thirds of
// its lifetime.
func (s *Service) selfRenewLoop() {
	defer s.wg.Done()
	for {
		cur := s.id.Current()
		t := time.NewTimer(time.Until(renewalTime(cur.Cert, DefaultRenewAt)))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		csr, err := cur.Key().CertificateRequest(cur.Name)
		if err == nil {
			var der []byte
			if der, err = s.cfg.Authority.ca.SignRequest(csr, cur.Name, signing.IssueOptions{Role: signing.RoleCA, Validity: s.cfg.Authority.cfg.Validity}); err == nil {
				_, err = cur.Renew(der)
			}
		}
		if err != nil {
			s.log.Warn("renewing the service's own certificate", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(time.Minute):
			}
		}
	}
}

// provider is the device.Provider of the CA service's endpoint.
type provider struct {
	s     *Service
	trust *signing.Trust
}

var _ device.Provider = (*provider)(nil)

var serviceTools = []mcp.Tool{
	{
		Name: ToolRenew, Title: "Renew the caller's certificate",
		Description: "Issue a new certificate, with the caller's role, for a PKCS#10 request made by the caller for its own name.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"request":{"type":"string","contentEncoding":"base64"}},"required":["request"]}`),
		Meta:        map[string]any{"d2d/capability": ToolRenew, "d2d/mutating": false},
	},
	{
		Name: ToolRevocations, Title: "The revocation list in force",
		Description: "The domain CA's signed revocation list (X.509 CRL, DER, base64).",
		InputSchema: json.RawMessage(`{"type":"object"}`),
		Meta:        map[string]any{"d2d/capability": ToolRevocations, "d2d/mutating": false},
	},
}

func (p *provider) Node() string      { return p.s.cfg.Name }
func (p *provider) Offered() []string { return []string{ToolRenew, ToolRevocations} }

func (p *provider) Capability(method, target string) (string, bool) {
	if method == mcp.MethodToolsCall && (target == ToolRenew || target == ToolRevocations) {
		return target, true
	}
	return "", false
}

func (p *provider) ListTools(g device.Grant) []mcp.Tool {
	var out []mcp.Tool
	for _, t := range serviceTools {
		if g != nil && g.Allows(t.Name) {
			out = append(out, t)
		}
	}
	return out
}

func (p *provider) CallTool(_ context.Context, req device.ToolRequest) (*mcp.CallToolResult, error) {
	a := p.s.cfg.Authority
	var v any
	var text string
	switch req.Name {
	case ToolRenew:
		var args RenewArgs
		if err := json.Unmarshal(req.Arguments, &args); err != nil || len(args.Request) == 0 {
			return nil, mcp.Errorf(mcp.CodeInvalidParams, "pki-renew needs {\"request\": base64 DER}")
		}
		der, err := a.Renew(req.Caller, args.Request)
		if err != nil {
			return nil, mcp.Errorf(mcp.CodeInvalidParams, "%v", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, mcp.Errorf(mcp.CodeInternalError, "%v", err)
		}
		v = RenewResult{Certificate: der, NotAfter: cert.NotAfter}
		text = fmt.Sprintf("certificate for %s valid until %s", req.Caller, cert.NotAfter.UTC().Format(time.RFC3339))
		p.s.log.Info("renewed", "node", req.Caller, "notAfter", cert.NotAfter.UTC().Format(time.RFC3339))
	case ToolRevocations:
		l, err := a.RevocationList()
		if err != nil {
			return nil, mcp.Errorf(mcp.CodeInternalError, "%v", err)
		}
		// The service's own endpoint follows its list too.
		_ = p.trust.SetRevocations(l)
		v = RevocationsResult{List: l.Raw, Number: l.Number, NextUpdate: l.NextUpdate}
		text = fmt.Sprintf("revocation list %d, %d entries, next update %s", l.Number, len(l.Revoked), l.NextUpdate.UTC().Format(time.RFC3339))
	default:
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown tool %q", req.Name)
	}
	sc, err := json.Marshal(v)
	if err != nil {
		return nil, mcp.Errorf(mcp.CodeInternalError, "%v", err)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent(text)}, StructuredContent: sc}, nil
}

func (p *provider) ListResources(device.Grant) []mcp.Resource { return []mcp.Resource{} }

func (p *provider) ReadResource(_ context.Context, uri string) (*mcp.ReadResourceResult, error) {
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "unknown resource %q", uri)
}

func (p *provider) Subscribe(_ context.Context, uri string, _ func(string)) (func(), error) {
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "unknown resource %q", uri)
}

func (p *provider) ListPrompts(device.Grant) []mcp.Prompt { return []mcp.Prompt{} }

func (p *provider) GetPrompt(_ context.Context, name string, _ map[string]string) (*mcp.GetPromptResult, error) {
	return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown prompt %q", name)
}

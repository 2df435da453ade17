package collab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/signing"
	"github.com/quic-go/quic-go"
)

// Peer names a remote endpoint.
type Peer struct {
	// Name is the peer's node name; its certificate must carry it. Empty
	// accepts any name the CA vouches for.
	Name string
	Addr netip.AddrPort
	// Thumbprint is the certificate thumbprint discovery advertised. The
	// zero value means not known: the CA chain alone decides.
	Thumbprint signing.Thumbprint
}

func (p Peer) String() string {
	if p.Name == "" {
		return p.Addr.String()
	}
	return p.Name + "@" + p.Addr.String()
}

// Endpoint is one node's D2D endpoint: a QUIC listener serving the
// Provider and a dialer for sessions to peers, sharing one UDP socket.
type Endpoint struct {
	cfg   Config
	log   *slog.Logger
	tr    *quic.Transport
	ln    *quic.Listener // nil for a client-only endpoint
	qconf *quic.Config
	addr  netip.AddrPort

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	sessions map[string]*Session     // client sessions by Peer.String()
	dialing  map[string]*dialAttempt // in-progress dials, by the same key
	retired  map[*Session]struct{}   // replaced sessions waiting for idle
	conns    map[*quic.Conn]string   // served connections → peer name
	perPeer  map[string]int          // served connections per peer name
	served   map[*serverSession]struct{}

	closeOnce sync.Once
}

type dialAttempt struct {
	done chan struct{}
	s    *Session
	err  error
}

// Listen opens the endpoint's UDP socket and, when cfg.Provider is set,
// starts accepting sessions. It returns when the socket is ready.
func Listen(ctx context.Context, cfg Config) (*Endpoint, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	pc := cfg.PacketConn
	if pc == nil {
		var lc net.ListenConfig
		var err error
		pc, err = lc.ListenPacket(ctx, "udp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("collab: listen: %w", err)
		}
	}
	e := &Endpoint{
		cfg:      cfg,
		log:      cfg.Logger,
		tr:       &quic.Transport{Conn: tolerateLocalDrops(pc)},
		sessions: map[string]*Session{},
		dialing:  map[string]*dialAttempt{},
		retired:  map[*Session]struct{}{},
		conns:    map[*quic.Conn]string{},
		perPeer:  map[string]int{},
		served:   map[*serverSession]struct{}{},
	}
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		e.addr = ua.AddrPort()
	}
	e.qconf = &quic.Config{
		HandshakeIdleTimeout: cfg.HandshakeTimeout,
		MaxIdleTimeout:       cfg.IdleTimeout,
		KeepAlivePeriod:      cfg.IdleTimeout / 3,
		MaxIncomingStreams:   int64(cfg.MaxStreams),
		// Peers never open unidirectional streams.
		MaxIncomingUniStreams: -1,
		// Flow-control windows a little above one message: a peer cannot
		// make us buffer much more than a message per stream.
		MaxStreamReceiveWindow:     uint64(2 * cfg.MaxMessageBytes),
		MaxConnectionReceiveWindow: uint64(4 * cfg.MaxMessageBytes),
	}
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	if cfg.Provider != nil {
		ln, err := e.tr.Listen(e.serverTLS(), e.qconf)
		if err != nil {
			e.tr.Close()
			pc.Close()
			return nil, fmt.Errorf("collab: listen: %w", err)
		}
		e.ln = ln
		e.wg.Add(1)
		go e.acceptLoop()
	}
	e.log.Debug("endpoint up", "addr", e.addr, "serving", cfg.Provider != nil)
	return e, nil
}

// Addr returns the local UDP address.
func (e *Endpoint) Addr() netip.AddrPort { return e.addr }

// Node returns this endpoint's node name.
func (e *Endpoint) Node() string { return e.cfg.Identity.Name }

// Context is cancelled when the endpoint closes, with net.ErrClosed as
// its cause.
func (e *Endpoint) Context() context.Context { return e.ctx }

// Close closes every session and the socket and waits for the endpoint's
// goroutines. A second call returns a wrapped net.ErrClosed.
func (e *Endpoint) Close() error {
	err := fmt.Errorf("collab: endpoint already closed: %w", net.ErrClosed)
	e.closeOnce.Do(func() {
		err = nil
		e.mu.Lock()
		e.closed = true
		sessions := make([]*Session, 0, len(e.sessions)+len(e.retired))
		for _, s := range e.sessions {
			sessions = append(sessions, s)
		}
		for s := range e.retired {
			sessions = append(sessions, s)
		}
		conns := make([]*quic.Conn, 0, len(e.conns))
		for c := range e.conns {
			conns = append(conns, c)
		}
		e.mu.Unlock()
		e.cancel(fmt.Errorf("collab: endpoint closed: %w", net.ErrClosed))
		for _, s := range sessions {
			s.Close()
		}
		for _, c := range conns {
			c.CloseWithError(codeShutdown, "endpoint closing")
		}
		if e.ln != nil {
			e.ln.Close()
		}
		e.wg.Wait()
		if cerr := e.tr.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("collab: close transport: %w", cerr)
		}
		if cerr := e.tr.Conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = fmt.Errorf("collab: close socket: %w", cerr)
		}
	})
	return err
}

func (e *Endpoint) baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{e.cfg.Identity.TLSCertificate()},
		NextProtos:   []string{ALPN},
	}
}

func (e *Endpoint) serverTLS() *tls.Config {
	c := e.baseTLS()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = e.cfg.Trust.Roots()
	// Beyond the chain check crypto/tls did, the domain's own rules
	// (validity window, name and role extraction) decide.
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("collab: no client certificate")
		}
		_, err := e.cfg.Trust.VerifyCert(cs.PeerCertificates[0].Raw)
		return err
	}
	return c
}

// clientTLS verifies the server against the domain CA with Trust.VerifyCert
// instead of crypto/tls's host name check: node certificates name a node,
// not a DNS name, so the expected node name and the advertised thumbprint
// are checked instead. verified receives the peer on success.
func (e *Endpoint) clientTLS(p Peer, verified *signing.Peer) *tls.Config {
	c := e.baseTLS()
	c.InsecureSkipVerify = true // replaced by VerifyConnection below
	c.ServerName = p.Name
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &TLSError{Peer: p.String(), Reason: "tls: no certificate"}
		}
		der := cs.PeerCertificates[0].Raw
		sp, err := e.cfg.Trust.VerifyCert(der)
		if err != nil {
			return &TLSError{Peer: p.String(), Reason: certReason(err), Err: err}
		}
		if !p.Thumbprint.IsZero() && !p.Thumbprint.Equal(signing.ThumbprintOf(der)) {
			return fmt.Errorf("%w: advertised %s, presented %s", ErrThumbprintMismatch, p.Thumbprint, signing.ThumbprintOf(der))
		}
		if p.Name != "" && sp.Name != p.Name {
			return &TLSError{Peer: p.String(), Reason: "tls: peer name mismatch",
				Err: fmt.Errorf("%w: certificate names %q", errNameMismatch, sp.Name)}
		}
		*verified = *sp
		return nil
	}
	return c
}

// Session returns a healthy session to p whose grant was negotiated for at
// least requested, dialling when there is none. Sessions are reused while
// healthy and re-dialled after a failure; a request for capabilities the
// current session did not ask for opens a new one for the union.
func (e *Endpoint) Session(ctx context.Context, p Peer, requested []string) (*Session, error) {
	key := p.String()
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, fmt.Errorf("collab: endpoint closed: %w", net.ErrClosed)
		}
		if s := e.sessions[key]; s != nil {
			if s.healthy() && (p.Thumbprint.IsZero() || p.Thumbprint.Equal(s.remote.Thumbprint)) {
				if covers(s.requested, requested) {
					e.mu.Unlock()
					return s, nil
				}
				requested = union(s.requested, requested)
			}
			// Replace: unhealthy, other certificate or too narrow a grant.
			delete(e.sessions, key)
			e.retire(s)
		}
		if d := e.dialing[key]; d != nil {
			e.mu.Unlock()
			select {
			case <-d.done:
			case <-ctx.Done():
				return nil, ctxError(p.String(), ctx)
			}
			if d.err != nil {
				return nil, d.err
			}
			continue // check the result against requested
		}
		d := &dialAttempt{done: make(chan struct{})}
		e.dialing[key] = d
		e.mu.Unlock()

		d.s, d.err = e.dial(ctx, p, requested, false)
		e.mu.Lock()
		delete(e.dialing, key)
		if d.err == nil {
			if e.closed {
				d.err = fmt.Errorf("collab: endpoint closed: %w", net.ErrClosed)
			} else {
				e.sessions[key] = d.s
			}
		}
		e.mu.Unlock()
		close(d.done)
		if d.err != nil && d.s != nil {
			d.s.Close()
		}
		return d.s, d.err
	}
}

// retire closes s once its calls have finished. e.mu is held.
func (e *Endpoint) retire(s *Session) {
	if !s.healthy() {
		go s.Close() // prompt; Close does not block on the peer
		return
	}
	e.retired[s] = struct{}{}
	s.retire()
}

func (e *Endpoint) forget(s *Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.retired, s)
	if e.sessions[s.peer.String()] == s {
		delete(e.sessions, s.peer.String())
	}
}

func covers(have, want []string) bool {
	for _, c := range want {
		if !slices.Contains(have, c) {
			return false
		}
	}
	return true
}

func union(a, b []string) []string {
	u := slices.Clone(a)
	for _, c := range b {
		if !slices.Contains(u, c) {
			u = append(u, c)
		}
	}
	slices.Sort(u)
	return u
}

func ctxError(peer string, ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("collab: %s: %w: %w", peer, ErrTimeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("collab: %s: %w", peer, context.Cause(ctx))
}

// acceptLoop accepts connections until the endpoint closes.
func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	for {
		conn, err := e.ln.Accept(e.ctx)
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Warn("accept failed", "err", err)
			}
			return
		}
		e.wg.Add(1)
		go e.serveConn(conn)
	}
}

// serveConn authenticates a connection and serves each stream the peer
// opens as an MCP session.
func (e *Endpoint) serveConn(conn *quic.Conn) {
	defer e.wg.Done()
	certs := conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		conn.CloseWithError(codeProtocol, "no client certificate")
		return
	}
	peer, err := e.cfg.Trust.VerifyCert(certs[0].Raw)
	if err != nil {
		conn.CloseWithError(codeProtocol, "certificate rejected")
		return
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		conn.CloseWithError(codeShutdown, "endpoint closing")
		return
	}
	if e.perPeer[peer.Name] >= e.cfg.MaxSessionsPerPeer {
		e.mu.Unlock()
		e.log.Warn("too many sessions from peer", "peer", peer.Name)
		conn.CloseWithError(codeTooMany, "too many sessions from this peer")
		return
	}
	e.perPeer[peer.Name]++
	e.conns[conn] = peer.Name
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.conns, conn)
		if e.perPeer[peer.Name]--; e.perPeer[peer.Name] <= 0 {
			delete(e.perPeer, peer.Name)
		}
		e.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(e.ctx)
		if err != nil {
			conn.CloseWithError(codeClose, "")
			return
		}
		ss := newServerSession(e, st, st.SetWriteDeadline,
			func() { st.CancelRead(streamCodeCancel) },
			func(c quic.ApplicationErrorCode, m string) { conn.CloseWithError(c, m) }, *peer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.run()
		}()
	}
}

func deadlineFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

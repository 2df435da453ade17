package collab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
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
	sessions map[string]*Session        // client sessions by Peer.String()
	dialing  map[string]*dialAttempt    // in-progress dials, by the same key
	retired  map[*Session]struct{}      // replaced sessions waiting for idle
	conns    map[*quic.Conn]*servedConn // served connections
	perPeer  map[string]int             // served connections per peer name
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
		conns:    map[*quic.Conn]*servedConn{},
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

// baseTLS presents the identity's current certificate at each handshake
// (signing.Identity.Current): after a renewal new connections use the new
// one, and connections already open keep theirs.
func (e *Endpoint) baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := e.cfg.Identity.Current().TLSCertificate()
			return &c, nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := e.cfg.Identity.Current().TLSCertificate()
			return &c, nil
		},
		NextProtos: []string{ALPN},
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
		_, err := e.cfg.Trust.VerifyPeer(cs.PeerCertificates[0].Raw, x509.ExtKeyUsageClientAuth)
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
		sp, err := e.cfg.Trust.VerifyPeer(der, x509.ExtKeyUsageServerAuth)
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

// servedConn is one accepted connection, counted against its peer's
// MaxSessionsPerPeer.
type servedConn struct {
	conn  *quic.Conn
	peer  string
	cert  *x509.Certificate
	start time.Time
	// last is when the peer last sent a request (unix ns), for choosing
	// which connection a newer one replaces.
	last atomic.Int64
	// inited is set once a session on it has initialized.
	inited atomic.Bool
	// replaced: e.mu held; the connection no longer counts.
	replaced bool
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
	peer, err := e.cfg.Trust.VerifyPeer(certs[0].Raw, x509.ExtKeyUsageClientAuth)
	if err != nil {
		conn.CloseWithError(codeProtocol, "certificate rejected")
		return
	}
	sc := &servedConn{conn: conn, peer: peer.Name, cert: peer.Cert, start: time.Now()}
	sc.last.Store(sc.start.UnixNano())
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		conn.CloseWithError(codeShutdown, "endpoint closing")
		return
	}
	if e.perPeer[peer.Name] >= e.cfg.MaxSessionsPerPeer {
		victim := e.replaceable(peer.Name)
		if victim == nil {
			e.mu.Unlock()
			e.log.Warn("too many sessions from peer", "peer", peer.Name)
			conn.CloseWithError(codeTooMany, "too many sessions from this peer")
			return
		}
		// The peer proved again that it holds the key: a connection it
		// left without closing (a killed process, a reboot) must not lock
		// it out until the idle timeout.
		victim.replaced = true
		delete(e.conns, victim.conn)
		e.perPeer[peer.Name]--
		e.log.Info("new session replaces an idle one of the same peer", "peer", peer.Name,
			"idle", time.Since(time.Unix(0, victim.last.Load())).Round(time.Millisecond))
		go victim.conn.CloseWithError(codeReplaced, "replaced by a newer connection of the same identity")
	}
	e.perPeer[peer.Name]++
	e.conns[conn] = sc
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if !sc.replaced {
			delete(e.conns, conn)
			if e.perPeer[peer.Name]--; e.perPeer[peer.Name] <= 0 {
				delete(e.perPeer, peer.Name)
			}
		}
		e.mu.Unlock()
	}()
	// A connection that initializes no session within the handshake
	// timeout is closed: a client that opens streams and never sends
	// initialize must not hold a place in the per-peer limit.
	initTimer := time.AfterFunc(e.cfg.HandshakeTimeout, func() {
		if !sc.inited.Load() {
			conn.CloseWithError(codeInitTimeout, "no initialize within the handshake timeout")
		}
	})
	defer initTimer.Stop()
	presented := e.cfg.Identity.Current().Thumbprint()

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
		ss.presented = presented
		ss.conn = sc
		ss.onInit = func() { sc.inited.Store(true) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.run()
		}()
	}
}

// replaceable picks the connection of peer that a newer one may replace:
// one that never initialized a session, else the one whose peer has been
// silent longest, among those with no request in flight. nil if every
// one is busy. e.mu is held.
func (e *Endpoint) replaceable(peer string) *servedConn {
	busy := map[*servedConn]bool{}
	for ss := range e.served {
		if ss.conn != nil && len(ss.sem) > 0 {
			busy[ss.conn] = true
		}
	}
	var best *servedConn
	for _, sc := range e.conns {
		if sc.peer != peer || busy[sc] {
			continue
		}
		switch {
		case best == nil:
			best = sc
		case !sc.inited.Load() && best.inited.Load():
			best = sc
		case sc.inited.Load() == best.inited.Load() && sc.last.Load() < best.last.Load():
			best = sc
		}
	}
	return best
}

// CloseRevoked closes every session, served or dialled, whose peer's
// certificate is on the revocation list now in force
// (signing.Trust.SetRevocations) and returns how many. A revoked peer is
// refused at its next handshake anyway; this ends what it has open.
func (e *Endpoint) CloseRevoked() int {
	e.mu.Lock()
	var conns []*quic.Conn
	for c, sc := range e.conns {
		if _, revoked := e.cfg.Trust.Revoked(sc.cert); revoked {
			conns = append(conns, c)
		}
	}
	var sessions []*Session
	for _, s := range e.sessions {
		if _, revoked := e.cfg.Trust.Revoked(s.remote.Cert); revoked {
			sessions = append(sessions, s)
		}
	}
	for s := range e.retired {
		if _, revoked := e.cfg.Trust.Revoked(s.remote.Cert); revoked {
			sessions = append(sessions, s)
		}
	}
	e.mu.Unlock()
	for _, c := range conns {
		c.CloseWithError(codeRevoked, "certificate revoked")
	}
	for _, s := range sessions {
		s.Close()
	}
	return len(conns) + len(sessions)
}

func deadlineFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

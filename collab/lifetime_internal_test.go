package collab

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/d2dmesh/d2d/signing"
)

// rawClient dials e with id's certificate over its own UDP socket and
// speaks no MCP unless told to.
type rawClient struct {
	pc   net.PacketConn
	tr   *quic.Transport
	conn *quic.Conn
}

func dialRaw(t *testing.T, e *Endpoint, id *signing.Identity) *rawClient {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c := id.TLSCertificate()
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(e.Addr()), &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c},
		InsecureSkipVerify: true, NextProtos: []string{ALPN},
	}, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{pc: pc, tr: tr, conn: conn}
	t.Cleanup(rc.kill)
	return rc
}

// initialize opens a stream and sends initialize, returning the stream.
func (rc *rawClient) initialize(t *testing.T) *quic.Stream {
	t.Helper()
	st, err := rc.conn.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}` + "\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = st.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := st.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), SessionMetaKey) {
		t.Fatalf("initialize: %q %v", buf[:n], err)
	}
	return st
}

// kill drops the client without a word to the server, as a SIGKILLed
// process does: the socket goes, no CONNECTION_CLOSE is sent.
func (rc *rawClient) kill() {
	rc.pc.Close()
	rc.tr.Close()
}

// TestHalfInitializedClosed: streams and connections that never send
// initialize are closed at the handshake timeout, and stop counting
// against the per-peer limit.
func TestHalfInitializedClosed(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	prov := newTestProvider("PE-1")
	cfg := testConfig(t, pki, pki.issue(t, "PE-1", signing.IssueOptions{}), prov)
	cfg.HandshakeTimeout = 300 * time.Millisecond
	cfg.MaxSessionsPerPeer = 8
	e := listen(t, cfg)
	attacker := pki.issue(t, "P-2", signing.IssueOptions{})

	var clients []*rawClient
	for range cfg.MaxSessionsPerPeer {
		rc := dialRaw(t, e, attacker)
		for range 4 {
			st, err := rc.conn.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte(" ")); err != nil { // the stream exists for the server once it carries a byte
				t.Fatal(err)
			}
		}
		clients = append(clients, rc)
	}
	for i, rc := range clients {
		select {
		case <-rc.conn.Context().Done():
			var ae *quic.ApplicationError
			if err := context.Cause(rc.conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != codeInitTimeout {
				t.Errorf("connection %d closed with %v, want the initialize timeout", i, err)
			}
		case <-time.After(cfg.HandshakeTimeout + 3*time.Second):
			t.Fatalf("connection %d still open %v after the handshake timeout", i, 3*time.Second)
		}
	}
	waitFor(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.perPeer["P-2"] == 0
	})

	// On a connection with an initialized session, a second stream that
	// never initializes is closed; the first keeps working.
	rc := dialRaw(t, e, attacker)
	good := rc.initialize(t)
	idle, err := rc.conn.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Write([]byte(" ")); err != nil {
		t.Fatal(err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout + 3*time.Second))
	if _, err := idle.Read(make([]byte, 10)); err == nil || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline") {
		t.Errorf("idle stream: read %v, want it closed by the server", err)
	}
	if _, err := good.Write([]byte(`{"jsonrpc":"2.0","id":2,"method":"ping"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	_ = good.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := good.Read(buf); err != nil || !strings.Contains(string(buf[:n]), `"id":2`) {
		t.Errorf("initialized stream after the timeout: %q %v", buf[:n], err)
	}
}

// TestReplacesDeadSessions: connections a peer left without closing (a
// killed process) do not lock it out: its next connection replaces the
// one idle longest, while another peer's connections are untouched.
func TestReplacesDeadSessions(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	prov := newTestProvider("PE-1")
	cfg := testConfig(t, pki, pki.issue(t, "PE-1", signing.IssueOptions{}), prov)
	cfg.MaxSessionsPerPeer = 3
	e := listen(t, cfg)
	ctl := pki.issue(t, "ctl", signing.IssueOptions{Role: signing.RoleController})
	other := pki.issue(t, "P-2", signing.IssueOptions{})
	bystander := dialRaw(t, e, other)
	bystander.initialize(t)

	for range 3 * cfg.MaxSessionsPerPeer {
		rc := dialRaw(t, e, ctl)
		rc.initialize(t)
		rc.kill()
	}
	// A real endpoint of the same identity gets its session and its call.
	ccfg := testConfig(t, pki, ctl, nil)
	c := listen(t, ccfg)
	s, err := c.Session(context.Background(), peerOf(e), []string{"ietf-ping"})
	if err != nil {
		t.Fatalf("session after %d dead connections: %v", 3*cfg.MaxSessionsPerPeer, err)
	}
	if _, _, err := s.CallTool(context.Background(), "echo", nil, CallOptions{}); err != nil && !errors.Is(err, ErrNotGranted) {
		t.Fatalf("call: %v", err)
	}
	e.mu.Lock()
	n := e.perPeer["ctl"]
	e.mu.Unlock()
	if n > cfg.MaxSessionsPerPeer {
		t.Errorf("%d connections counted for ctl, limit %d", n, cfg.MaxSessionsPerPeer)
	}
	select {
	case <-bystander.conn.Context().Done():
		t.Errorf("another peer's connection was closed: %v", context.Cause(bystander.conn.Context()))
	default:
	}
}

// TestRenewalKeepsSessions: both ends renew their certificates while a
// session is open; the session goes on, its results verify (they carry
// the renewed certificate), and new handshakes present the new one.
func TestRenewalKeepsSessions(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	b, _ := node(t, pki, "P-2")
	a, _ := node(t, pki, "PE-1")
	s, err := a.Session(context.Background(), Peer{Name: "P-2", Addr: b.Addr()}, []string{"ietf-ping"})
	if err != nil {
		t.Fatal(err)
	}
	renew := func(e *Endpoint) *signing.Identity {
		t.Helper()
		id := e.cfg.Identity
		csr, err := id.Key().CertificateRequest(id.Name)
		if err != nil {
			t.Fatal(err)
		}
		der, err := pki.ca.SignRequest(csr, id.Name, signing.IssueOptions{Validity: 25 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		next, err := id.Renew(der)
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	nb := renew(b)
	renew(a)
	ev, _, err := s.CallTool(context.Background(), "echo", nil, CallOptions{})
	if err != nil {
		t.Fatalf("call on the open session after renewal: %v", err)
	}
	if ev.Envelope.KeyID != nb.Thumbprint() {
		t.Errorf("result signed with %s, want the renewed certificate %s", ev.Envelope.KeyID, nb.Thumbprint())
	}
	fresh := listen(t, testConfig(t, pki, pki.issue(t, "PE-3", signing.IssueOptions{}), nil))
	s2, err := fresh.Session(context.Background(), Peer{Name: "P-2", Addr: b.Addr()}, []string{"ietf-ping"})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Remote().Thumbprint != nb.Thumbprint() {
		t.Errorf("new handshake presented %s, want %s", s2.Remote().Thumbprint, nb.Thumbprint())
	}
}

// TestCloseRevoked: once a revocation list names a peer, its open
// sessions end and it cannot open new ones.
func TestCloseRevoked(t *testing.T) {
	leakCheck(t)
	pki := newPKI(t)
	b, _ := node(t, pki, "P-2")
	a, _ := node(t, pki, "PE-1")
	s, err := a.Session(context.Background(), Peer{Name: "P-2", Addr: b.Addr()}, []string{"ietf-ping"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := pki.ca.NewRevocationList(1, []signing.Revocation{{Serial: a.cfg.Identity.Cert.SerialNumber, RevokedAt: time.Now(), Reason: "key-compromise"}}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.trust.SetRevocations(l); err != nil {
		t.Fatal(err)
	}
	if n := b.CloseRevoked(); n != 1 {
		t.Errorf("P-2 closed %d sessions of the revoked PE-1, want 1", n)
	}
	select {
	case <-s.Context().Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the revoked peer's session is still open")
	}
	_, err = a.Session(context.Background(), Peer{Name: "P-2", Addr: b.Addr()}, []string{"ietf-ping"})
	if err == nil {
		t.Fatal("a revoked peer opened a new session")
	}
}

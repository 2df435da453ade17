package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/quic-go/quic-go"
	"github.com/sourcegraph/jsonrpc2"
)

// ClientInfo is what initialize reports about the calling side.
var ClientInfo = mcp.Implementation{Name: "d2d", Version: "0.1"}

// Session is an authenticated, initialized MCP session to one peer. It is
// safe for concurrent use; calls are multiplexed on one QUIC stream.
type Session struct {
	e         *Endpoint
	peer      Peer
	remote    signing.Peer // as its certificate says
	conn      *quic.Conn
	rpc       *jsonrpc2.Conn
	id        string
	granted   []string
	requested []string

	ctx    context.Context
	cancel context.CancelCauseFunc

	nextID   atomic.Uint64
	inflight atomic.Int64
	retired  atomic.Bool

	mu       sync.Mutex
	closed   bool
	dead     error // why the connection ended, nil while healthy
	wg       sync.WaitGroup
	progress map[string]device.Progress
	subs     map[string]map[uint64]func(mcp.ResourceUpdatedParams)

	closeOnce sync.Once
}

// Peer returns the peer as dialled, with Name and Thumbprint filled in
// from its verified certificate.
func (s *Session) Peer() Peer { return s.peer }

// ID returns the session id the callee chose; signed results are bound to it.
func (s *Session) ID() string { return s.id }

// Remote is the peer as its verified certificate says: name, role,
// thumbprint and public key.
func (s *Session) Remote() signing.Peer { return s.remote }

// Granted returns the capabilities the callee granted.
func (s *Session) Granted() []string { return slices.Clone(s.granted) }

// Context is cancelled when the session ends, with the reason as cause.
func (s *Session) Context() context.Context { return s.ctx }

func (s *Session) healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.dead == nil
}

// dial opens a connection and a stream to p and runs initialize (or the
// draft's mcp/initialize when draft is set). The session only counts as
// authenticated once the initialize reply arrived: in TLS 1.3 the client
// finishes before the server has judged its certificate.
func (e *Endpoint) dial(ctx context.Context, p Peer, requested []string, draft bool) (*Session, error) {
	if !p.Addr.IsValid() {
		return nil, fmt.Errorf("collab: peer %q has no address", p.Name)
	}
	hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	var verified signing.Peer
	conn, err := e.tr.Dial(hctx, net.UDPAddrFromAddrPort(p.Addr), e.clientTLS(p, &verified), e.qconf)
	if err != nil {
		if hctx.Err() != nil && !isTLSFailure(err) {
			return nil, ctxError(p.String(), hctx)
		}
		return nil, connError(p.String(), err)
	}
	st, err := conn.OpenStreamSync(hctx)
	if err != nil {
		conn.CloseWithError(codeClose, "")
		return nil, e.sessionError(p, conn, hctx, err)
	}
	if p.Name == "" {
		p.Name = verified.Name
	}
	p.Thumbprint = verified.Thumbprint
	s := &Session{
		e: e, peer: p, remote: verified, conn: conn,
		requested: slices.Sorted(slices.Values(slices.Compact(slices.Sorted(slices.Values(requested))))),
		progress:  map[string]device.Progress{},
		subs:      map[string]map[uint64]func(mcp.ResourceUpdatedParams){},
	}
	s.ctx, s.cancel = context.WithCancelCause(e.ctx)
	ls := newLineStream(st, e.cfg.MaxMessageBytes)
	ls.setWriteDeadline = st.SetWriteDeadline
	ls.writeTimeout = e.cfg.CallTimeout
	ls.onTooLarge = func() { conn.CloseWithError(codeTooLarge, "message too large") }
	s.rpc = jsonrpc2.NewConn(s.ctx, ls, clientHandler{s}, jsonrpc2.SetLogger(discardLogger{}))
	s.wg.Add(1)
	go s.watch()

	if err := s.initialize(hctx, draft); err != nil {
		err = e.sessionError(p, conn, hctx, err)
		s.Close()
		return nil, err
	}
	if e.cfg.Inventory != nil {
		// Pin the peer's signed tool inventory before trusting any of its
		// results (draft-yang-nmrg-mcp-nm-02 §4).
		if _, err := s.ListTools(hctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	e.log.Debug("session up", "peer", p.String(), "session", s.id, "granted", s.granted)
	return s, nil
}

func isTLSFailure(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode >= 0x100 && te.ErrorCode < 0x200
}

// sessionError explains a failed session setup, preferring the reason the
// connection died (a TLS alert from the server arrives after the client
// finished its handshake).
func (e *Endpoint) sessionError(p Peer, conn *quic.Conn, ctx context.Context, err error) error {
	var re *RemoteError
	if errors.As(err, &re) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrTooLarge) {
		return err
	}
	select {
	case <-conn.Context().Done():
		return connError(p.String(), context.Cause(conn.Context()))
	case <-time.After(50 * time.Millisecond):
	}
	if ctx.Err() != nil {
		return ctxError(p.String(), ctx)
	}
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTimeout) {
		return err
	}
	return fmt.Errorf("collab: %s: initialize: %w: %v", p, ErrPeerGone, err)
}

func (s *Session) initialize(ctx context.Context, draft bool) error {
	if draft {
		var r draftInitializeResult
		raw, err := s.call(ctx, mcp.MethodDraftInitialize, mcp.DraftInitializeParams{
			ProtocolVersion: mcp.LatestProtocolVersion, Capabilities: s.requested})
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("collab: %s: initialize result: %w", s.peer, err)
		}
		s.granted = r.Capabilities
		s.id, _ = r.Meta[SessionMetaKey].(string)
	} else {
		req := mcp.D2DCapabilities{Requested: s.requested, Node: s.e.cfg.Identity.Name}
		if s.e.cfg.Tokens != nil {
			req.Token = s.e.cfg.Tokens(s.peer.Name) // draft 003 §7.2
		}
		caps, _ := json.Marshal(req)
		raw, err := s.call(ctx, mcp.MethodInitialize, mcp.InitializeParams{
			ProtocolVersion: mcp.LatestProtocolVersion,
			Capabilities:    mcp.ClientCapabilities{Experimental: map[string]json.RawMessage{mcp.D2DCapabilityKey: caps}},
			ClientInfo:      ClientInfo,
		})
		if err != nil {
			return err
		}
		var r mcp.InitializeResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("collab: %s: initialize result: %w", s.peer, err)
		}
		var d2d mcp.D2DCapabilities
		if c, ok := r.Capabilities.Experimental[mcp.D2DCapabilityKey]; ok {
			_ = json.Unmarshal(c, &d2d)
		}
		s.granted = d2d.Granted
		s.id, _ = r.Meta[SessionMetaKey].(string)
	}
	if s.id == "" {
		return fmt.Errorf("collab: %s: initialize result without %s: %w", s.peer, SessionMetaKey, ErrPeerGone)
	}
	// Granted must be a subset of what was asked for; anything else is
	// ignored rather than trusted.
	s.granted = slices.DeleteFunc(s.granted, func(c string) bool { return !slices.Contains(s.requested, c) })
	return s.notify(mcp.NotifyInitialized, struct{}{})
}

// watch marks the session dead when its connection or stream ends.
func (s *Session) watch() {
	defer s.wg.Done()
	var cause error
	select {
	case <-s.conn.Context().Done():
		cause = connError(s.peer.String(), context.Cause(s.conn.Context()))
	case <-s.rpc.DisconnectNotify():
		// The stream ended; the connection may follow with a better reason.
		select {
		case <-s.conn.Context().Done():
			cause = connError(s.peer.String(), context.Cause(s.conn.Context()))
		case <-time.After(50 * time.Millisecond):
			cause = fmt.Errorf("collab: %s: stream closed: %w", s.peer, ErrPeerGone)
		case <-s.ctx.Done():
		}
	case <-s.ctx.Done():
	}
	s.mu.Lock()
	if s.dead == nil {
		if cause == nil {
			cause = fmt.Errorf("collab: %s: session closed: %w", s.peer, net.ErrClosed)
		}
		s.dead = cause
	}
	s.mu.Unlock()
	s.cancel(cause)
	s.rpc.Close()
	s.conn.CloseWithError(codeClose, "")
}

// Close ends the session. A second call returns a wrapped net.ErrClosed.
func (s *Session) Close() error {
	err := fmt.Errorf("collab: session already closed: %w", net.ErrClosed)
	s.closeOnce.Do(func() {
		err = nil
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel(fmt.Errorf("collab: session closed: %w", net.ErrClosed))
		s.rpc.Close()
		s.conn.CloseWithError(codeClose, "")
		s.wg.Wait()
		s.e.forget(s)
	})
	return err
}

// retire marks s as replaced by a session with a wider grant. It closes
// once idle, after a grace of CallTimeout: a caller may hold s from
// Endpoint.Session without having started its call yet.
func (s *Session) retire() {
	s.retired.Store(true)
	s.closeWhenIdle()
}

func (s *Session) closeWhenIdle() {
	time.AfterFunc(s.e.cfg.CallTimeout, func() {
		if s.inflight.Load() == 0 {
			s.Close()
		}
	})
}

// goTracked runs f in a goroutine the session waits for on Close; it
// reports false (and does not run f) once the session is closed.
func (s *Session) goTracked(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Session) failure() error {
	s.mu.Lock()
	dead := s.dead
	s.mu.Unlock()
	if dead != nil {
		return dead
	}
	select {
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	case <-time.After(50 * time.Millisecond):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead != nil {
		return s.dead
	}
	return fmt.Errorf("collab: %s: %w", s.peer, ErrPeerGone)
}

func (s *Session) notify(method string, params any) error {
	if !s.goTracked(func() { _ = s.rpc.Notify(s.ctx, method, params) }) {
		return fmt.Errorf("collab: %s: %w", s.peer, net.ErrClosed)
	}
	return nil
}

// call sends one request and waits for its result, the context or the
// session's end, whichever comes first. On the context's end the callee
// is told with notifications/cancelled; jsonrpc2 itself never does.
func (s *Session) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ctx, cancel := deadlineFor(ctx, s.e.cfg.CallTimeout)
	defer cancel()
	s.inflight.Add(1)
	defer func() {
		if s.inflight.Add(-1) == 0 && s.retired.Load() {
			s.closeWhenIdle()
		}
	}()
	start := time.Now()
	id := jsonrpc2.ID{Num: s.nextID.Add(1)}
	type result struct {
		raw json.RawMessage
		err error
	}
	ch := make(chan result, 1)
	ok := s.goTracked(func() {
		var raw json.RawMessage
		w, err := s.rpc.DispatchCall(ctx, method, params, jsonrpc2.PickID(id))
		if err == nil {
			err = w.Wait(ctx, &raw)
		}
		ch <- result{raw, err}
	})
	if !ok {
		return nil, fmt.Errorf("collab: %s: %w", s.peer, net.ErrClosed)
	}
	var raw json.RawMessage
	var err error
	select {
	case r := <-ch:
		raw, err = r.raw, r.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		s.goTracked(func() {
			_ = s.rpc.Notify(context.Background(), mcp.NotifyCancelled, mcp.CancelledParams{RequestID: id.Num, Reason: ctx.Err().Error()})
		})
		err = ctxError(s.peer.String(), ctx)
	case errors.Is(err, jsonrpc2.ErrClosed):
		err = s.failure()
	case errors.Is(err, ErrTooLarge):
		err = fmt.Errorf("collab: %s %s: %w", s.peer, method, err)
	default:
		var je *jsonrpc2.Error
		if errors.As(err, &je) {
			err = rpcError(s.peer.String(), method, err)
		} else if s.ctx.Err() != nil {
			err = s.failure()
		} else {
			err = fmt.Errorf("collab: %s %s: %w", s.peer, method, err)
		}
	}
	s.audit(method, params, err, start)
	return raw, err
}

func (s *Session) audit(method string, params any, err error, start time.Time) {
	if s.e.cfg.Audit == nil {
		return
	}
	r := AuditRecord{Time: start, Direction: "out", SessionID: s.id, Peer: s.remote.Name, Method: method, Elapsed: time.Since(start)}
	switch p := params.(type) {
	case mcp.CallToolParams:
		r.Target = p.Name
	case mcp.ReadResourceParams:
		r.Target = p.URI
	case mcp.GetPromptParams:
		r.Target = p.Name
	}
	if err != nil {
		r.Error = err.Error()
		var re *RemoteError
		if errors.As(err, &re) {
			r.Code = re.Err.Code
		} else {
			r.Code = mcp.CodeInternalError
		}
	}
	s.e.cfg.Audit(r)
}

// clientHandler serves what the callee sends on a client session:
// notifications and ping.
type clientHandler struct{ s *Session }

func (h clientHandler) Handle(_ context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	s := h.s
	switch {
	case req.Method == mcp.NotifyProgress && req.Notif:
		var p mcp.ProgressParams
		if req.Params == nil || json.Unmarshal(*req.Params, &p) != nil {
			return
		}
		tok := fmt.Sprint(p.ProgressToken)
		s.mu.Lock()
		fn := s.progress[tok]
		s.mu.Unlock()
		if fn != nil {
			fn(p.Progress, p.Total, p.Message)
		}
	case req.Method == mcp.NotifyResourcesUpdated && req.Notif:
		var p mcp.ResourceUpdatedParams
		if req.Params == nil || json.Unmarshal(*req.Params, &p) != nil {
			return
		}
		s.mu.Lock()
		fns := make([]func(mcp.ResourceUpdatedParams), 0, len(s.subs[p.URI]))
		for _, fn := range s.subs[p.URI] {
			fns = append(fns, fn)
		}
		s.mu.Unlock()
		for _, fn := range fns {
			fn(p)
		}
	case req.Notif:
	case req.Method == mcp.MethodPing:
		s.goTracked(func() { _ = conn.Reply(s.ctx, req.ID, struct{}{}) })
	default:
		s.goTracked(func() {
			_ = conn.ReplyWithError(s.ctx, req.ID, &jsonrpc2.Error{Code: mcp.CodeMethodNotFound, Message: "method not served by a d2d client session"})
		})
	}
}

// Ping checks the session end to end.
func (s *Session) Ping(ctx context.Context) error {
	_, err := s.call(ctx, mcp.MethodPing, struct{}{})
	return err
}

// ListTools returns the tools the session may call. The list must carry
// the callee's signature for this session; with Config.Inventory set it
// must also pass the inventory checks (*InventoryError otherwise).
func (s *Session) ListTools(ctx context.Context) ([]mcp.Tool, error) {
	raw, err := s.call(ctx, mcp.MethodToolsList, mcp.ListParams{})
	if err != nil {
		return nil, err
	}
	if _, err := s.verify(raw, mcp.MethodToolsList, "", json.RawMessage("{}")); err != nil {
		return nil, err
	}
	var r mcp.ListToolsResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("collab: %s tools/list: malformed result: %w", s.peer, err)
	}
	if inv := s.e.cfg.Inventory; inv != nil {
		if err := inv.Check(s.remote.Name, r.Tools); err != nil {
			s.auditInventory(err)
			return nil, err
		}
	}
	return r.Tools, nil
}

// ListResources returns the resources the session may read.
func (s *Session) ListResources(ctx context.Context) ([]mcp.Resource, error) {
	var r mcp.ListResourcesResult
	if err := s.callInto(ctx, mcp.MethodResourcesList, mcp.ListParams{}, &r); err != nil {
		return nil, err
	}
	return r.Resources, nil
}

// ListPrompts returns the peer's prompts.
func (s *Session) ListPrompts(ctx context.Context) ([]mcp.Prompt, error) {
	var r mcp.ListPromptsResult
	if err := s.callInto(ctx, mcp.MethodPromptsList, mcp.ListParams{}, &r); err != nil {
		return nil, err
	}
	return r.Prompts, nil
}

// GetPrompt renders one of the peer's prompts.
func (s *Session) GetPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	var r mcp.GetPromptResult
	if err := s.callInto(ctx, mcp.MethodPromptsGet, mcp.GetPromptParams{Name: name, Arguments: args}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (s *Session) callInto(ctx context.Context, method string, params, v any) error {
	raw, err := s.call(ctx, method, params)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("collab: %s %s: malformed result: %w", s.peer, method, err)
	}
	return nil
}

// CallOptions are the optional parts of a tools/call.
type CallOptions struct {
	// Progress receives the callee's notifications/progress. It runs on
	// the session's read loop and must not block.
	Progress device.Progress
	// Consent is the signed consent object for a mutating tool (draft 003
	// §7.1), sent in _meta["d2d/consent"].
	Consent json.RawMessage
	// Token is a capability token for this call only (draft 003 §7.2),
	// sent in _meta["d2d/token"].
	Token json.RawMessage
}

// CallTool calls a tool on the peer and returns the verified evidence and
// the result. The result is returned only when its signature verifies
// against this very request (tool, arguments, session).
func (s *Session) CallTool(ctx context.Context, name string, args json.RawMessage, opt CallOptions) (signing.Evidence, *mcp.CallToolResult, error) {
	args = orEmpty(args)
	p := mcp.CallToolParams{Name: name, Arguments: args}
	if opt.Progress != nil || len(opt.Consent) > 0 || len(opt.Token) > 0 {
		p.Meta = &mcp.RequestMeta{Consent: opt.Consent, Token: opt.Token}
	}
	if opt.Progress != nil {
		tok := "p" + strconv.FormatUint(s.nextID.Add(1), 10)
		p.Meta.ProgressToken = tok
		s.mu.Lock()
		s.progress[tok] = opt.Progress
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.progress, tok)
			s.mu.Unlock()
		}()
	}
	raw, err := s.call(ctx, mcp.MethodToolsCall, p)
	if err != nil {
		return signing.Evidence{}, nil, err
	}
	ev, err := s.verifyFor(ctx, raw, mcp.MethodToolsCall, name, args)
	if err != nil {
		return signing.Evidence{}, nil, err
	}
	var r mcp.CallToolResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return signing.Evidence{}, nil, fmt.Errorf("collab: %s tools/call %s: malformed result: %w", s.peer, name, err)
	}
	return ev, &r, nil
}

// ReadResource reads a resource on the peer and returns the verified
// evidence and the contents. The signed arguments are {"uri": uri}.
func (s *Session) ReadResource(ctx context.Context, uri string) (signing.Evidence, *mcp.ReadResourceResult, error) {
	p := mcp.ReadResourceParams{URI: uri}
	args, _ := json.Marshal(p)
	raw, err := s.call(ctx, mcp.MethodResourcesRead, p)
	if err != nil {
		return signing.Evidence{}, nil, err
	}
	ev, err := s.verifyFor(ctx, raw, mcp.MethodResourcesRead, uri, args)
	if err != nil {
		return signing.Evidence{}, nil, err
	}
	var r mcp.ReadResourceResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return signing.Evidence{}, nil, fmt.Errorf("collab: %s resources/read %s: malformed result: %w", s.peer, uri, err)
	}
	return ev, &r, nil
}

// verify checks a signed result against the caller's own request binding
// and the session's peer, and returns it as evidence.
func (s *Session) verify(raw json.RawMessage, method, target string, args json.RawMessage) (signing.Evidence, error) {
	return s.verifyFor(context.Background(), raw, method, target, args)
}

// verifyFor is verify for a call made under ctx: in a fan-out the
// signature is checked in the fan-out's batch (Endpoint.verifyResult).
func (s *Session) verifyFor(ctx context.Context, raw json.RawMessage, method, target string, args json.RawMessage) (signing.Evidence, error) {
	bad := func(err error) (signing.Evidence, error) {
		return signing.Evidence{}, &SignatureError{Peer: s.peer.String(), Method: method, Target: target, Err: err}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return bad(fmt.Errorf("%w: result is not an object", signing.ErrMalformed))
	}
	var meta map[string]json.RawMessage
	if m, ok := obj["_meta"]; ok {
		_ = json.Unmarshal(m, &meta)
	}
	envRaw, ok := meta[mcp.SignatureMetaKey]
	if !ok {
		return bad(fmt.Errorf("%w: result is not signed", signing.ErrMalformed))
	}
	var env signing.Envelope
	if err := json.Unmarshal(envRaw, &env); err != nil {
		return bad(fmt.Errorf("%w: envelope: %v", signing.ErrMalformed, err))
	}
	if len(env.Cert) == 0 && s.remote.Cert != nil {
		// The callee leaves its certificate out (Endpoint.signedBody):
		// it is the one this session's TLS handshake verified. The
		// envelope's keyId must still name it, and the signer is
		// checked against the session's peer below.
		env.Cert = s.remote.Cert.Raw
	}
	delete(obj, "_meta")
	signed, err := json.Marshal(obj)
	if err != nil {
		return bad(err)
	}
	h, err := signing.HashArgs(args)
	if err != nil {
		return bad(err)
	}
	p, err := s.e.verifyResult(ctx, signed, signing.Binding{Method: method, Target: target, ArgsHash: h, SessionID: s.id}, env)
	if err != nil {
		return bad(err)
	}
	if !s.samePeer(p) {
		return bad(fmt.Errorf("%w: signed by %s, not by the session's peer %s", signing.ErrKeyIDMismatch, p.Name, s.remote.Name))
	}
	return signing.Evidence{Node: p.Name, Method: method, Target: target, Arguments: args,
		Result: signed, Envelope: env, Via: "d2d"}, nil
}

// samePeer reports whether a result's signer is this session's peer: the
// certificate of the handshake, or a renewal of it (same name, role and
// key: renewal keeps the key, see signing.Identity.Renew).
func (s *Session) samePeer(p *signing.Peer) bool {
	if p.Thumbprint.Equal(s.remote.Thumbprint) {
		return true
	}
	return p.Name == s.remote.Name && p.Role == s.remote.Role && p.PublicKey.Equal(s.remote.PublicKey)
}

// Subscribe asks the peer for notifications/resources/updated on uri and
// calls fn for each (on the read loop: fn must not block) until cancel.
func (s *Session) Subscribe(ctx context.Context, uri string, fn func(mcp.ResourceUpdatedParams)) (cancel func(), err error) {
	key := s.nextID.Add(1)
	s.mu.Lock()
	if s.subs[uri] == nil {
		s.subs[uri] = map[uint64]func(mcp.ResourceUpdatedParams){}
	}
	s.subs[uri][key] = fn
	s.mu.Unlock()
	unregister := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs[uri], key)
		if len(s.subs[uri]) == 0 {
			delete(s.subs, uri)
			return true
		}
		return false
	}
	if _, err := s.call(ctx, mcp.MethodResourcesSubscribe, mcp.ReadResourceParams{URI: uri}); err != nil {
		unregister()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if unregister() {
				s.goTracked(func() {
					_, _ = s.call(context.Background(), mcp.MethodResourcesUnsub, mcp.ReadResourceParams{URI: uri})
				})
			}
		})
	}, nil
}

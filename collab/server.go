package collab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
	"github.com/quic-go/quic-go"
	"github.com/sourcegraph/jsonrpc2"
)

// ServerInfo is what initialize reports about this implementation.
var ServerInfo = mcp.Implementation{Name: "d2d", Version: "0.1"}

// draftInitializeResult answers the draft's mcp/initialize (draft 003
// §5.3.1 step 2): "the responder echoes its own capability list" — here
// the granted list, so that both sides agree on the authorised set.
type draftInitializeResult struct {
	ProtocolVersion string             `json:"protocolVersion"`
	Capabilities    []string           `json:"capabilities"`
	ServerInfo      mcp.Implementation `json:"serverInfo"`
	Meta            map[string]any     `json:"_meta,omitempty"`
}

// serverSession is one MCP session served on one QUIC stream.
type serverSession struct {
	e         *Endpoint
	closeConn func(quic.ApplicationErrorCode, string)
	closeRead func()
	ls        *lineStream
	rpc       *jsonrpc2.Conn
	peer      signing.Peer
	log       *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	sem    chan struct{}
	errSem chan struct{} // bounds replyAsync
	notes  chan note     // outgoing notifications, drained by one goroutine

	// presented is the thumbprint of the certificate this endpoint
	// presented when the session's connection was accepted: results
	// signed with a later (renewed) certificate carry that certificate.
	presented signing.Thumbprint
	// onInit is called once when initialize succeeds.
	onInit func()
	// conn is the served connection, nil in the fuzz target.
	conn *servedConn

	mu       sync.Mutex
	id       string
	grant    grantSet
	token    *sessionToken // verified initialize token, nil if none
	inflight map[jsonrpc2.ID]context.CancelFunc
	subs     map[string]func()
}

type note struct {
	method string
	params any
}

// newServerSession serves MCP on one stream. The stream and its
// connection are reached through plain functions so that the fuzz target
// can drive a session from a byte slice.
func newServerSession(e *Endpoint, st io.ReadWriteCloser, setWriteDeadline func(time.Time) error,
	closeRead func(), closeConn func(quic.ApplicationErrorCode, string), peer signing.Peer) *serverSession {
	ss := &serverSession{
		e: e, closeConn: closeConn, closeRead: closeRead, peer: peer,
		log:      e.log.With("peer", peer.Name),
		sem:      make(chan struct{}, e.cfg.MaxConcurrentCalls),
		errSem:   make(chan struct{}, 8),
		notes:    make(chan note, 256),
		inflight: map[jsonrpc2.ID]context.CancelFunc{},
		subs:     map[string]func(){},
	}
	ss.ctx, ss.cancel = context.WithCancelCause(e.ctx)
	ss.ls = newLineStream(st, e.cfg.MaxMessageBytes)
	ss.ls.setWriteDeadline = setWriteDeadline
	ss.ls.writeTimeout = e.cfg.CallTimeout
	ss.ls.onTooLarge = func() {
		// Tell the peer why before the connection goes (JSON-RPC 2.0 §5:
		// id null when the request id could not be read).
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil,
			"error": mcp.Errorf(mcp.CodeTooLarge, "message over %d bytes", e.cfg.MaxMessageBytes)})
		_ = ss.ls.writeLine(b)
		ss.auditRefused("", mcp.Errorf(mcp.CodeTooLarge, "message over %d bytes", e.cfg.MaxMessageBytes))
		closeConn(codeTooLarge, "message too large")
	}
	return ss
}

// errInitTimeout ends a session whose initialize did not arrive within
// Config.HandshakeTimeout.
var errInitTimeout = fmt.Errorf("collab: no initialize within the handshake timeout: %w", ErrTimeout)

// run serves the session until the stream or the endpoint closes. A
// session that is not initialized within the handshake timeout is closed.
func (ss *serverSession) run() {
	ss.e.mu.Lock()
	ss.e.served[ss] = struct{}{}
	ss.e.mu.Unlock()
	initTimer := time.AfterFunc(ss.e.cfg.HandshakeTimeout, func() {
		ss.mu.Lock()
		inited := ss.grant != nil
		ss.mu.Unlock()
		if !inited {
			ss.log.Debug("closing session without initialize", "timeout", ss.e.cfg.HandshakeTimeout)
			ss.cancel(errInitTimeout)
		}
	})
	defer initTimer.Stop()
	ss.rpc = jsonrpc2.NewConn(ss.ctx, ss.ls, ss, jsonrpc2.SetLogger(discardLogger{}))
	ss.wg.Add(1)
	go ss.notifier()
	select {
	case <-ss.rpc.DisconnectNotify():
	case <-ss.ctx.Done():
	}
	ss.cancel(errors.New("collab: session ended"))
	ss.rpc.Close()
	ss.closeRead()
	ss.mu.Lock()
	for _, c := range ss.subs {
		c()
	}
	ss.subs = nil
	ss.mu.Unlock()
	ss.wg.Wait()
	ss.e.mu.Lock()
	delete(ss.e.served, ss)
	ss.e.mu.Unlock()
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// notify queues a notification without blocking; when the queue is full
// the notification is dropped (change notices are hints). Progress is
// written by the tool's goroutine itself (callTool), in order with the
// reply.
func (ss *serverSession) notify(method string, params any) {
	select {
	case ss.notes <- note{method, params}:
	default:
		ss.log.Debug("notification dropped", "method", method)
	}
}

func (ss *serverSession) notifier() {
	defer ss.wg.Done()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case n := <-ss.notes:
			if err := ss.rpc.Notify(ss.ctx, n.method, n.params); err != nil {
				return
			}
		}
	}
}

// Handle implements jsonrpc2.Handler. It runs on the read loop, so it
// only dispatches: notifications are handled inline (they never write),
// requests in a goroutine bounded by MaxConcurrentCalls.
func (ss *serverSession) Handle(_ context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if ss.conn != nil {
		ss.conn.last.Store(time.Now().UnixNano())
	}
	if req.Notif {
		ss.handleNotification(req)
		return
	}
	// Per-peer rate limit (draft 003 §7), before any work is done.
	if !ss.e.cfg.limiter.allow(ss.peer.Name) {
		err := mcp.Errorf(mcp.CodeRateLimited, "rate limit of %g requests/s for peer %s exceeded", ss.e.cfg.RateLimit, ss.peer.Name)
		ss.replyAsync(conn, req, nil, err)
		ss.auditRefusedReq(req, err)
		return
	}
	select {
	case ss.sem <- struct{}{}:
	default:
		err := mcp.Errorf(mcp.CodeRateLimited, "more than %d concurrent requests", cap(ss.sem))
		ss.replyAsync(conn, req, nil, err)
		ss.auditRefusedReq(req, err)
		return
	}
	ctx, cancel := context.WithCancel(ss.ctx)
	ss.mu.Lock()
	ss.inflight[req.ID] = cancel
	ss.mu.Unlock()
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		defer func() { <-ss.sem }()
		defer func() {
			ss.mu.Lock()
			delete(ss.inflight, req.ID)
			ss.mu.Unlock()
			cancel()
		}()
		start := time.Now()
		target, result, err := ss.dispatch(ctx, conn, req)
		ss.reply(conn, req, result, err)
		ss.audit(req.Method, target, err, start)
	}()
}

// replyAsync sends an error reply without blocking the read loop; it is
// bounded like a request so a flood cannot spawn unbounded goroutines:
// beyond the limit, the reply is dropped and the peer's call times out.
func (ss *serverSession) replyAsync(conn *jsonrpc2.Conn, req *jsonrpc2.Request, result any, err error) {
	select {
	case ss.errSem <- struct{}{}:
	default:
		return
	}
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		defer func() { <-ss.errSem }()
		ss.reply(conn, req, result, err)
	}()
}

// reply uses the conn jsonrpc2 handed to Handle: ss.rpc may not be set
// yet when the first request arrives.
func (ss *serverSession) reply(conn *jsonrpc2.Conn, req *jsonrpc2.Request, result any, err error) {
	if err == nil {
		var b []byte
		b, err = json.Marshal(result)
		if err == nil && len(b)+128 > ss.e.cfg.MaxMessageBytes {
			err = mcp.Errorf(mcp.CodeTooLarge, "result of %d bytes over the %d byte limit", len(b), ss.e.cfg.MaxMessageBytes)
		}
		if err == nil {
			raw := json.RawMessage(b)
			if rerr := conn.Reply(ss.ctx, req.ID, &raw); rerr != nil {
				ss.log.Debug("reply failed", "err", rerr)
			}
			return
		}
	}
	if rerr := conn.ReplyWithError(ss.ctx, req.ID, toRPCError(err)); rerr != nil {
		ss.log.Debug("reply failed", "err", rerr)
	}
}

func (ss *serverSession) audit(method, target string, err error, start time.Time) {
	if ss.e.cfg.Audit == nil {
		return
	}
	r := AuditRecord{Time: start, Direction: "in", SessionID: ss.sessionID(), Peer: ss.peer.Name,
		Method: method, Target: target, Elapsed: time.Since(start)}
	if err != nil {
		r.Code = toRPCError(err).Code
		r.Error = err.Error()
	}
	ss.e.cfg.Audit(r)
}

func (ss *serverSession) sessionID() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.id
}

func (ss *serverSession) handleNotification(req *jsonrpc2.Request) {
	switch req.Method {
	case mcp.NotifyCancelled:
		var p struct {
			RequestID jsonrpc2.ID `json:"requestId"`
		}
		if req.Params == nil || json.Unmarshal(*req.Params, &p) != nil {
			return
		}
		ss.mu.Lock()
		cancel := ss.inflight[p.RequestID]
		ss.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case mcp.NotifyInitialized:
	default:
		// Unknown notifications are ignored (JSON-RPC 2.0 §4.1).
	}
}

func params[T any](req *jsonrpc2.Request) (T, error) {
	var v T
	if req.Params == nil {
		return v, nil
	}
	if err := json.Unmarshal(*req.Params, &v); err != nil {
		return v, mcp.Errorf(mcp.CodeInvalidParams, "invalid params for %s: %v", req.Method, err)
	}
	return v, nil
}

// dispatch serves one request and returns the target (for the audit
// record), the result and an error.
func (ss *serverSession) dispatch(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) (string, any, error) {
	switch req.Method {
	case mcp.MethodInitialize:
		r, err := ss.initialize(req)
		return "", r, err
	case mcp.MethodDraftInitialize:
		r, err := ss.draftInitialize(req)
		return "", r, err
	case mcp.MethodPing:
		return "", struct{}{}, nil
	}
	ss.mu.Lock()
	g := ss.grant
	ss.mu.Unlock()
	if g == nil {
		return "", nil, mcp.Errorf(mcp.CodeNotInitialized, "%s before initialize", req.Method)
	}
	prov := ss.e.cfg.Provider
	switch req.Method {
	case mcp.MethodToolsList:
		var tools []mcp.Tool
		for _, t := range prov.ListTools(g) {
			if c, ok := prov.Capability(mcp.MethodToolsCall, t.Name); ok && g[c] {
				tools = append(tools, t)
			}
		}
		if tools == nil {
			tools = []mcp.Tool{}
		}
		// Signed so that callers can pin the inventory (draft-yang-nmrg-
		// mcp-nm-02 §4, tool shadowing); bound to method tools/list, no
		// target, arguments {}.
		r, err := ss.e.signResultFor(ss.presented, mcp.ListToolsResult{Tools: tools}, mcp.MethodToolsList, "", nil, ss.sessionID())
		return "", r, err
	case mcp.MethodToolsCall:
		p, err := params[mcp.CallToolParams](req)
		if err != nil {
			return "", nil, err
		}
		r, err := ss.callTool(ctx, conn, g, p)
		return p.Name, r, err
	case mcp.MethodResourcesList:
		var res []mcp.Resource
		// device.AllowAll: the provider lists everything and the session's
		// grant, token scopes included, filters (draft 003 §7.2).
		for _, r := range prov.ListResources(device.AllowAll{}) {
			if c, ok := prov.Capability(mcp.MethodResourcesRead, r.URI); ok && ss.allows(c, r.URI, nil) == nil {
				res = append(res, r)
			}
		}
		if res == nil {
			res = []mcp.Resource{}
		}
		return "", mcp.ListResourcesResult{Resources: res}, nil
	case mcp.MethodResourcesRead:
		p, err := params[mcp.ReadResourceParams](req)
		if err != nil {
			return "", nil, err
		}
		r, err := ss.readResource(ctx, g, p, req.Params)
		return p.URI, r, err
	case mcp.MethodResourcesSubscribe:
		p, err := params[mcp.ReadResourceParams](req)
		if err != nil {
			return "", nil, err
		}
		r, err := ss.subscribe(g, p.URI)
		return p.URI, r, err
	case mcp.MethodResourcesUnsub:
		p, err := params[mcp.ReadResourceParams](req)
		if err != nil {
			return "", nil, err
		}
		ss.mu.Lock()
		if c := ss.subs[p.URI]; c != nil {
			c()
			delete(ss.subs, p.URI)
		}
		ss.mu.Unlock()
		return p.URI, struct{}{}, nil
	case mcp.MethodPromptsList:
		ps := prov.ListPrompts(g)
		ps = slices.DeleteFunc(ps, func(p mcp.Prompt) bool {
			c, ok := prov.Capability(mcp.MethodPromptsGet, p.Name)
			return ok && !g[c]
		})
		if ps == nil {
			ps = []mcp.Prompt{}
		}
		return "", mcp.ListPromptsResult{Prompts: ps}, nil
	case mcp.MethodPromptsGet:
		p, err := params[mcp.GetPromptParams](req)
		if err != nil {
			return "", nil, err
		}
		// A prompt the provider maps to a capability needs it granted;
		// others are plain text templates and carry no device access.
		if c, ok := prov.Capability(mcp.MethodPromptsGet, p.Name); ok && !g[c] {
			return p.Name, nil, notGranted(c)
		}
		r, err := prov.GetPrompt(ctx, p.Name, p.Arguments)
		return p.Name, r, providerError(err)
	}
	return "", nil, mcp.Errorf(mcp.CodeMethodNotFound, "method %q not found", req.Method)
}

func notGranted(capability string) error {
	return mcp.Errorf(mcp.CodeNotGranted, "capability %q not granted to this session", capability)
}

// providerError maps a provider error to an MCP error.
func providerError(err error) error {
	var me *mcp.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return me
	case errors.Is(err, device.ErrUnknownInterface), errors.Is(err, device.ErrUnknownSID),
		errors.Is(err, device.ErrUnknownACL), errors.Is(err, device.ErrUnknownPeer),
		errors.Is(err, device.ErrUnsupported):
		return mcp.Errorf(mcp.CodeInvalidParams, "%v", err)
	case errors.Is(err, context.Canceled):
		return mcp.Errorf(mcp.CodeInternalError, "cancelled")
	}
	return mcp.Errorf(mcp.CodeInternalError, "%v", err)
}

func (ss *serverSession) initialize(req *jsonrpc2.Request) (any, error) {
	p, err := params[mcp.InitializeParams](req)
	if err != nil {
		return nil, err
	}
	var d2d mcp.D2DCapabilities
	if raw, ok := p.Capabilities.Experimental[mcp.D2DCapabilityKey]; ok {
		if err := json.Unmarshal(raw, &d2d); err != nil {
			return nil, mcp.Errorf(mcp.CodeInvalidParams, "capabilities.experimental.d2d: %v", err)
		}
	}
	var tok *signing.Token
	if len(d2d.Token) > 0 && string(d2d.Token) != "null" {
		t, err := ss.e.verifyToken(d2d.Token, ss.peer)
		if err != nil {
			return nil, err
		}
		tok = t
	}
	id, g, err := ss.negotiateWith(d2d.Requested, tok)
	if err != nil {
		return nil, err
	}
	offered := ss.e.cfg.Provider.Offered()
	caps, _ := json.Marshal(mcp.D2DCapabilities{Granted: g.list(), Offered: offered, Node: ss.e.cfg.Identity.Name})
	return mcp.InitializeResult{
		ProtocolVersion: pickVersion(p.ProtocolVersion),
		Capabilities: mcp.ServerCapabilities{
			Tools:        &mcp.ListChanged{},
			Resources:    &mcp.ResourcesCapability{Subscribe: true},
			Prompts:      &mcp.ListChanged{},
			Experimental: map[string]json.RawMessage{mcp.D2DCapabilityKey: caps},
		},
		ServerInfo: ServerInfo,
		Meta:       map[string]any{SessionMetaKey: id},
	}, nil
}

func (ss *serverSession) draftInitialize(req *jsonrpc2.Request) (any, error) {
	p, err := params[mcp.DraftInitializeParams](req)
	if err != nil {
		return nil, err
	}
	id, g, err := ss.negotiate(p.Capabilities)
	if err != nil {
		return nil, err
	}
	return draftInitializeResult{
		ProtocolVersion: pickVersion(p.ProtocolVersion),
		Capabilities:    g.list(),
		ServerInfo:      ServerInfo,
		Meta:            map[string]any{SessionMetaKey: id},
	}, nil
}

// negotiate fixes the session's grant: requested ∩ offered ∩ policy(peer)
// (docs/ARCHITECTURE.md §3.2). A session is initialized once.
func (ss *serverSession) negotiate(requested []string) (string, grantSet, error) {
	return ss.negotiateWith(requested, nil)
}

// negotiateWith is negotiate with a verified capability token, whose
// scopes widen the policy: requested ∩ offered ∩ (policy(peer) ∪ scopes)
// (draft 003 §7.2). privacy:3 is granted only when the policy names it or
// the token scopes it, never through a wildcard.
func (ss *serverSession) negotiateWith(requested []string, tok *signing.Token) (string, grantSet, error) {
	offered := ss.e.cfg.Provider.Offered()
	allowed := ss.e.cfg.Policy.Allowed(ss.peer)
	g := negotiate(requested, offered, allowed)
	if slices.Contains(requested, device.CapPrivacy3) && slices.Contains(allowed, device.CapPrivacy3) {
		g[device.CapPrivacy3] = true
	}
	var st *sessionToken
	if tok != nil {
		st = &sessionToken{tok: tok, added: map[string]bool{}}
		for _, c := range tokenGrant(tok, requested, offered) {
			if !g[c] {
				g[c] = true
				st.added[c] = true
			}
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.grant != nil {
		return "", nil, mcp.Errorf(mcp.CodeInvalidRequest, "session already initialized")
	}
	ss.id = newSessionID()
	ss.grant = g
	ss.token = st
	ss.log.Debug("session initialized", "session", ss.id, "granted", g.list())
	if ss.onInit != nil {
		ss.onInit()
	}
	return ss.id, g, nil
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func pickVersion(v string) string {
	if slices.Contains(mcp.ProtocolVersions, v) {
		return v
	}
	return mcp.ProtocolVersions[0]
}

func (ss *serverSession) callTool(ctx context.Context, conn *jsonrpc2.Conn, g grantSet, p mcp.CallToolParams) (any, error) {
	prov := ss.e.cfg.Provider
	c, ok := prov.Capability(mcp.MethodToolsCall, p.Name)
	if !ok {
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown tool %q", p.Name)
	}
	var callTok json.RawMessage
	if p.Meta != nil {
		callTok = p.Meta.Token
	}
	if err := ss.allows(c, "", callTok); err != nil {
		return nil, err
	}
	treq := device.ToolRequest{Name: p.Name, Arguments: p.Arguments, Caller: ss.peer.Name}
	if p.Meta != nil {
		treq.Consent = p.Meta.Consent
		if tok := p.Meta.ProgressToken; tok != nil {
			treq.Progress = func(done, total float64, msg string) {
				// Written at once from the tool's goroutine, not through
				// the notifier's queue: a step must reach the caller before
				// the call's reply, after which the caller no longer
				// listens for it. The stream's write timeout bounds it.
				_ = conn.Notify(ss.ctx, mcp.NotifyProgress, mcp.ProgressParams{ProgressToken: tok, Progress: done, Total: total, Message: msg})
			}
		}
	}
	res, err := prov.CallTool(ctx, treq)
	if err != nil {
		return nil, providerError(err)
	}
	out, err := ss.redacted(res, res.Meta, callTok)
	if err != nil {
		return nil, err
	}
	return ss.e.signResultFor(ss.presented, out, mcp.MethodToolsCall, p.Name, p.Arguments, ss.sessionID())
}

// redacted is res as this session may see it: without privacy-level-3
// data unless the grant or the call's token allows it. A result that
// carries its own signatures (a stored report) cannot be redacted without
// breaking them; its evidence was redacted when it was gathered, under
// the grant of whoever gathered it.
func (ss *serverSession) redacted(res any, meta map[string]any, callTok json.RawMessage) (any, error) {
	if signed, _ := meta[mcp.SignedArtifactMetaKey].(bool); signed || ss.privacy3(callTok) {
		return res, nil
	}
	out, err := redactResult(res)
	if err != nil {
		return nil, providerError(err)
	}
	return out, nil
}

func (ss *serverSession) readResource(ctx context.Context, g grantSet, p mcp.ReadResourceParams, raw *json.RawMessage) (any, error) {
	prov := ss.e.cfg.Provider
	c, ok := prov.Capability(mcp.MethodResourcesRead, p.URI)
	if !ok {
		return nil, mcp.Errorf(mcp.CodeResourceNotFound, "unknown resource %q", p.URI)
	}
	var callTok json.RawMessage
	if p.Meta != nil {
		callTok = p.Meta.Token
	}
	if err := ss.allows(c, p.URI, callTok); err != nil {
		return nil, err
	}
	res, err := prov.ReadResource(ctx, p.URI)
	if err != nil {
		return nil, providerError(err)
	}
	out, err := ss.redacted(res, res.Meta, callTok)
	if err != nil {
		return nil, err
	}
	args, err := stripMeta(*raw)
	if err != nil {
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "%v", err)
	}
	return ss.e.signResultFor(ss.presented, out, mcp.MethodResourcesRead, p.URI, args, ss.sessionID())
}

func (ss *serverSession) subscribe(g grantSet, uri string) (any, error) {
	prov := ss.e.cfg.Provider
	c, ok := prov.Capability(mcp.MethodResourcesRead, uri)
	if !ok {
		return nil, mcp.Errorf(mcp.CodeResourceNotFound, "unknown resource %q", uri)
	}
	if err := ss.allows(c, uri, nil); err != nil {
		return nil, err
	}
	ss.mu.Lock()
	_, dup := ss.subs[uri]
	ss.mu.Unlock()
	if dup {
		return mcp.SubscribeResult{SubscriptionID: uri}, nil
	}
	cancel, err := prov.Subscribe(ss.ctx, uri, func(cid string) {
		ss.notify(mcp.NotifyResourcesUpdated, mcp.ResourceUpdatedParams{URI: uri, ContentID: cid})
	})
	if err != nil {
		return nil, providerError(err)
	}
	ss.mu.Lock()
	if ss.subs == nil { // session ended meanwhile
		ss.mu.Unlock()
		cancel()
		return nil, mcp.Errorf(mcp.CodeInternalError, "session closed")
	}
	ss.subs[uri] = cancel
	ss.mu.Unlock()
	return mcp.SubscribeResult{SubscriptionID: uri}, nil
}

// signResult signs result (without its _meta) for the binding and returns
// the reply object with the envelope in _meta[mcp.SignatureMetaKey]
// (docs/ARCHITECTURE.md §3.3).
func (e *Endpoint) signResult(result any, method, target string, args json.RawMessage, session string) (json.RawMessage, error) {
	return e.signResultFor(signing.Thumbprint{}, result, method, target, args, session)
}

// signResultFor is signResult on a session whose connection was
// authenticated with the certificate presented: the envelope leaves the
// certificate out only when it is that one (zero: always).
func (e *Endpoint) signResultFor(presented signing.Thumbprint, result any, method, target string, args json.RawMessage, session string) (json.RawMessage, error) {
	body, _, err := e.signedBody(result, method, target, args, session, presented)
	return body, err
}

// signedBody returns the reply JSON with the envelope added, the signed
// result bytes and the envelope's error.
func (e *Endpoint) signedBody(result any, method, target string, args json.RawMessage, session string, presented signing.Thumbprint) (json.RawMessage, signedParts, error) {
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, signedParts{}, fmt.Errorf("collab: encode result: %w", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, signedParts{}, fmt.Errorf("collab: result is not an object: %w", err)
	}
	meta := map[string]json.RawMessage{}
	if m, ok := obj["_meta"]; ok {
		_ = json.Unmarshal(m, &meta)
		delete(obj, "_meta")
	}
	signed, err := json.Marshal(obj)
	if err != nil {
		return nil, signedParts{}, err
	}
	h, err := signing.HashArgs(orEmpty(args))
	if err != nil {
		return nil, signedParts{}, mcp.Errorf(mcp.CodeInvalidParams, "arguments: %v", err)
	}
	env, err := e.cfg.Signer.SignResult(signed, signing.Binding{Method: method, Target: target, ArgsHash: h, SessionID: session})
	if err != nil {
		return nil, signedParts{}, fmt.Errorf("collab: sign: %w", err)
	}
	// On the wire the envelope leaves out the certificate: the caller
	// holds it already, verified in the TLS handshake of this very
	// session, and puts it back (Session.verifyFor). That halves a small
	// result. Evidence stored in reports keeps it (signedParts.env). After
	// a renewal the signer's certificate is no longer the handshake's:
	// then it travels.
	wire := env
	if presented.IsZero() || presented.Equal(env.KeyID) {
		wire.Cert = nil
	}
	envJSON, err := json.Marshal(wire)
	if err != nil {
		return nil, signedParts{}, err
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[mcp.SignatureMetaKey] = envJSON
	mb, _ := json.Marshal(meta)
	obj["_meta"] = mb
	body, err := json.Marshal(obj)
	return body, signedParts{result: signed, env: env}, err
}

type signedParts struct {
	result json.RawMessage
	env    signing.Envelope
}

func orEmpty(args json.RawMessage) json.RawMessage {
	if len(args) == 0 || string(args) == "null" {
		return json.RawMessage("{}")
	}
	return args
}

// stripMeta removes a top-level "_meta" member from a JSON object.
func stripMeta(raw json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("collab: not a JSON object: %w", err)
	}
	if _, ok := obj["_meta"]; !ok {
		return raw, nil
	}
	delete(obj, "_meta")
	return json.Marshal(obj)
}

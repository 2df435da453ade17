package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/discovery"
	"github.com/d2dmesh/d2d/enroll"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// Options inject what a Config cannot name: a backend built elsewhere (the
// simulator, the Linux backend in a namespace), pre-made identities,
// sockets opened inside a network namespace, a static domain.
type Options struct {
	// Backend is the device. Required: package node does not pick one.
	Backend device.Backend
	// Identity and Trust, if nil, are loaded from Config.PKI.
	Identity *signing.Identity
	Trust    *signing.Trust
	// PacketConn, if set, is the D2D endpoint's UDP socket.
	PacketConn net.PacketConn
	// Members, if set, replaces discovery with a fixed domain (tests, the
	// in-process demo without membership).
	Members func() []collab.Member
	// Membership, if set, is used instead of creating one from Config.
	Membership *discovery.Membership
	// Link, if set, is used instead of creating one from Config.
	Link *discovery.LinkAgent
	// Discovery injects discovery's networks (in-process domains).
	Discovery DiscoveryOptions
	// Push, if set, hands reports to a controller in place of
	// Config.Controller. Either way pushes run in the background, after
	// the operator has the answer.
	Push func(context.Context, *report.Report) error
	// OnPush, if set, is told the outcome of every background push
	// (tests, monitoring).
	OnPush func(reportID string, err error)
	// PushRetry is when a failed push is first tried again; the delay
	// doubles with each failure up to 10 minutes, for as long as the
	// report stays unpulled. If zero, 30s; if negative, no retries.
	PushRetry time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Agent is one collaboration agent (draft 003 §5.2): an MCP server for its
// device and an MCP client of its peers, with discovery, the report store,
// the audit trail and the chat shell's admin socket.
type Agent struct {
	cfg Config
	opt Options
	log *slog.Logger

	id       *signing.Identity
	trust    *signing.Trust
	nonces   *signing.NonceSource
	registry *device.Registry
	endpoint *collab.Endpoint
	store    *report.Store
	audit    *report.Audit
	workflow *collab.Workflow
	knownMu  sync.Mutex
	known    map[string]collab.Member // every member seen, with LastSeen

	discMu  sync.Mutex // guards members and link, created by Run
	members *discovery.Membership
	link    *discovery.LinkAgent
	admin   *adminServer

	pusher    *pusher         // nil without a controller
	renewer   *enroll.Renewer // nil without a CA service
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// New wires an agent. It opens every socket it needs, so errors such as a
// port in use surface here, not later.
func New(ctx context.Context, cfg Config, opt Options) (a *Agent, err error) {
	cfg.ApplyEnv(os.Getenv)
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	if opt.Backend == nil {
		return nil, fmt.Errorf("%w: no device backend", ErrConfig)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	a = &Agent{cfg: cfg, opt: opt, log: opt.Logger.With("component", "agent", "node", cfg.Node)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: state dir: %w", err)
	}
	a.id, a.trust = opt.Identity, opt.Trust
	if a.id == nil {
		if a.id, err = signing.LoadIdentity(cfg.PKI.Cert, cfg.PKI.Key); err != nil {
			return nil, fmt.Errorf("node: identity (run `d2d pki issue --name %s`): %w", cfg.Node, err)
		}
	}
	if a.trust == nil {
		if a.trust, err = signing.LoadTrust(cfg.PKI.CA); err != nil {
			return nil, fmt.Errorf("node: domain CA: %w", err)
		}
	}
	if a.id.Name != cfg.Node {
		return nil, fmt.Errorf("%w: certificate is for %q, node is %q", ErrConfig, a.id.Name, cfg.Node)
	}
	if a.nonces, err = signing.OpenNonceSource(filepath.Join(cfg.StateDir, "nonce"), 0); err != nil {
		return nil, err
	}
	signer := signing.NewSigner(a.id, a.nonces)
	verifier := signing.NewVerifier(a.trust, signing.VerifierOptions{})

	if a.store, err = report.OpenStore(filepath.Join(cfg.StateDir, "reports"), report.StoreConfig{Logger: opt.Logger}); err != nil {
		return nil, err
	}
	if a.audit, err = report.OpenAudit(filepath.Join(cfg.StateDir, "audit.jsonl"), report.AuditConfig{
		Identity: a.id,
		// Every record is written at once, so a crashed agent loses none;
		// only a power loss can take up to 31 records not yet synced. One
		// fsync per record would cost more than the call it records.
		SyncEvery: 32,
		Logger:    opt.Logger,
	}); err != nil {
		return nil, err
	}

	a.registry = device.NewRegistry(opt.Backend, device.RegistryOptions{
		ConsentVerifier: a.verifyConsent,
		Logger:          opt.Logger,
	})
	a.registry.AddResourceProvider(&reportResources{store: a.store, node: cfg.Node})

	a.endpoint, err = collab.Listen(ctx, collab.Config{
		Identity:    a.id,
		Trust:       a.trust,
		Signer:      signer,
		Verifier:    verifier,
		Provider:    withReportTools{Provider: a.registry, store: a.store},
		Policy:      policyFrom(cfg.Policy, a.registry),
		ListenAddr:  cfg.Listen,
		PacketConn:  opt.PacketConn,
		CallTimeout: cfg.CallTimeout,
		Logger:      opt.Logger,
		Audit:       a.auditRecord,
		// Draft 003 §7: per-peer rate limit and pinned tool inventories.
		RateLimit: peerRateLimit,
		Inventory: a.inventory(),
		Tokens:    a.capabilityToken,
	})
	if err != nil {
		return nil, err
	}

	if err := a.startPKI(); err != nil {
		return nil, err
	}
	push, fallback, err := a.controllerHooks(verifier)
	if err != nil {
		return nil, err
	}
	if push != nil {
		retry := opt.PushRetry
		if retry == 0 {
			retry = defaultPushRetry
		}
		a.pusher = startPusher(push, cfg.CallTimeout, a.unpulledReport, retry, opt.OnPush, a.log)
		push = a.pusher.enqueue
		var ids []string
		for _, e := range a.store.Unpulled() {
			ids = append(ids, e.ID)
		}
		a.pusher.resume(ids)
	}
	members := opt.Members
	if members == nil {
		a.members = opt.Membership
		a.link = opt.Link
		members = a.domain
	}
	var llm *collab.LLM
	if cfg.LLM.URL != "" {
		// Off by default; when configured it may plan free text and
		// phrase summaries, never decide the hypothesis (draft 003 §7.3).
		if llm, err = collab.NewLLM(collab.LLMConfig{URL: cfg.LLM.URL, Model: cfg.LLM.Model, APIKey: cfg.LLM.APIKey}); err != nil {
			return nil, err
		}
	}
	a.workflow, err = collab.NewWorkflow(collab.WorkflowConfig{
		LLM:             llm,
		Node:            cfg.Node,
		Endpoint:        a.endpoint,
		Identity:        a.id,
		Members:         members,
		Store:           a.store,
		Push:            push,
		Fallback:        fallback,
		CallTimeout:     cfg.CallTimeout,
		ProbeCount:      cfg.ProbeCount,
		RollbackSeconds: cfg.RollbackSeconds,
		Now:             opt.Now,
		Logger:          opt.Logger,
	})
	if err != nil {
		return nil, err
	}
	if opt.Members == nil {
		if err := a.startDiscovery(); err != nil {
			return nil, err
		}
	}
	if cfg.AdminSocket != "-" {
		if a.admin, err = listenAdmin(cfg.AdminSocket, a, cfg.Operators, opt.Logger); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Node returns the node name.
func (a *Agent) Node() string { return a.cfg.Node }

// Addr returns the D2D endpoint's address.
func (a *Agent) Addr() netip.AddrPort { return a.endpoint.Addr() }

// Identity returns the agent's identity.
func (a *Agent) Identity() *signing.Identity { return a.id }

// Registry returns the device's MCP face.
func (a *Agent) Registry() *device.Registry { return a.registry }

// Store returns the report store.
func (a *Agent) Store() *report.Store { return a.store }

// Workflow returns the troubleshooting workflow.
func (a *Agent) Workflow() *collab.Workflow { return a.workflow }

// Advertisement is what discovery tells neighbours about this agent.
func (a *Agent) Advertisement(addr netip.Addr, gossipPort uint16) discovery.Advertisement {
	return discovery.Advertisement{
		Node:         a.cfg.Node,
		Endpoint:     netip.AddrPortFrom(addr, a.endpoint.Addr().Port()),
		Capabilities: a.registry.Offered(),
		Thumbprint:   a.id.Current().Thumbprint(),
		GossipPort:   gossipPort,
	}
}

// domain lists the members known through membership and link discovery.
func (a *Agent) domain() []collab.Member {
	a.discMu.Lock()
	link, members := a.link, a.members
	a.discMu.Unlock()
	seen := map[string]collab.Member{}
	add := func(ad discovery.Advertisement) {
		if ad.Node == "" || ad.Node == a.cfg.Node || !ad.Endpoint.IsValid() {
			return
		}
		m := collab.Member{
			Name:         ad.Node,
			Peer:         collab.Peer{Name: ad.Node, Addr: ad.Endpoint, Thumbprint: signing.Thumbprint(ad.Thumbprint)},
			Capabilities: ad.Capabilities,
			Addresses:    []string{ad.Endpoint.Addr().String()},
		}
		seen[ad.Node] = m
	}
	if link != nil {
		for _, n := range link.Neighbors() {
			if n.D2D {
				add(withMgmtAddr(n))
			}
		}
	}
	if members != nil {
		for _, m := range members.Members() {
			if m.Err != nil {
				continue
			}
			add(m.Advertisement)
		}
	}
	// A member that vanished (crashed, cut off) stays known for a while:
	// an operator asking about it should hear that it does not answer,
	// not that it does not exist.
	now := a.opt.Now()
	a.knownMu.Lock()
	if a.known == nil {
		a.known = map[string]collab.Member{}
	}
	for n, m := range seen {
		m.LastSeen = now
		a.known[n] = m
	}
	out := make([]collab.Member, 0, len(a.known))
	for n, m := range a.known {
		if _, current := seen[n]; !current && now.Sub(m.LastSeen) > memberRetention {
			delete(a.known, n)
			continue
		}
		out = append(out, m)
	}
	a.knownMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// memberRetention is how long a member no longer seen stays in the domain
// the workflow plans over (marked by its LastSeen): an hour covers an
// outage being troubleshot.
const memberRetention = time.Hour

// Close stops the agent: the admin socket, sessions, discovery, and rolls
// back unconfirmed changes. It is safe to call twice.
func (a *Agent) Close() error {
	err := fmt.Errorf("node: agent %s: %w", a.cfg.Node, net.ErrClosed)
	a.closeOnce.Do(func() {
		var errs []error
		if a.renewer != nil {
			errs = append(errs, ignoreClosed(a.renewer.Close()))
		}
		if a.pusher != nil {
			a.pusher.close()
		}
		if a.admin != nil {
			errs = append(errs, ignoreClosed(a.admin.Close()))
		}
		if a.endpoint != nil {
			errs = append(errs, ignoreClosed(a.endpoint.Close()))
		}
		if a.registry != nil {
			errs = append(errs, ignoreClosed(a.registry.Close()))
		}
		if a.store != nil {
			errs = append(errs, ignoreClosed(a.store.Close()))
		}
		if a.audit != nil {
			errs = append(errs, ignoreClosed(a.audit.Close()))
		}
		if a.members != nil {
			errs = append(errs, ignoreClosed(a.members.Close()))
		}
		if a.link != nil {
			errs = append(errs, ignoreClosed(a.link.Close()))
		}
		if a.nonces != nil {
			errs = append(errs, ignoreClosed(a.nonces.Close()))
		}
		a.closeErr = errors.Join(errs...)
		err = a.closeErr
	})
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// auditRecord appends one request/response to the audit trail (draft 003 §7.4).
func (a *Agent) auditRecord(r collab.AuditRecord) {
	e := report.AuditEntry{
		Session:   r.SessionID,
		Peer:      r.Peer,
		Direction: r.Direction,
		Method:    r.Method,
		Target:    r.Target,
	}
	if r.Error != "" {
		e.Err = fmt.Errorf("code %d: %s", r.Code, r.Error)
	}
	if _, err := a.audit.Append(e); err != nil {
		a.log.Error("audit trail", "err", err)
	}
}

// verifyConsent checks a consent object before a mutating tool runs: signed
// by a certificate of the domain CA whose thumbprint is the key id, for
// exactly this tool, these arguments and this node, recent, and from a role
// allowed to change devices.
func (a *Agent) verifyConsent(c device.Consent, tool string, args json.RawMessage) error {
	if c.Tool != tool {
		return fmt.Errorf("consent is for tool %q, not %q", c.Tool, tool)
	}
	if c.Node != a.cfg.Node {
		return fmt.Errorf("consent is for node %q, not %q", c.Node, a.cfg.Node)
	}
	want, err := canonicalArgs(args)
	if err != nil {
		return err
	}
	got, err := canonicalArgs(c.Arguments)
	if err != nil {
		return err
	}
	if string(want) != string(got) {
		return fmt.Errorf("consent covers arguments %s, call has %s", got, want)
	}
	age := a.opt.Now().Sub(c.Timestamp)
	if age > 5*time.Minute || age < -time.Minute {
		return fmt.Errorf("consent timestamp %s is stale or in the future", c.Timestamp.Format(time.RFC3339))
	}
	if c.Operator == "" {
		return errors.New("consent names no operator")
	}
	peer, err := a.trust.VerifyCert(c.Cert)
	if err != nil {
		return fmt.Errorf("consent signer: %w", err)
	}
	if peer.Thumbprint.String() != c.KeyID {
		return errors.New("consent key id does not match its certificate")
	}
	payload, err := c.Payload()
	if err != nil {
		return err
	}
	if !ed25519.Verify(peer.PublicKey, payload, c.Signature) {
		return errors.New("consent signature does not verify")
	}
	return nil
}

func canonicalArgs(args json.RawMessage) ([]byte, error) {
	if len(strings.TrimSpace(string(args))) == 0 {
		args = json.RawMessage("{}")
	}
	return signing.Canonicalize(args)
}

// RunIntent implements the shell's intent request.
func (a *Agent) RunIntent(ctx context.Context, op Operator, text string, events func(Event)) (*IntentResult, error) {
	a.log.Info("intent", "user", op.User, "text", text)
	out, err := a.workflow.Run(ctx, text, func(e collab.Event) {
		events(Event{Kind: e.Kind, Node: e.Node, Step: e.Step, Message: e.Message, Progress: e.Progress, Total: e.Total})
	})
	if err != nil {
		return nil, err
	}
	res := &IntentResult{Intent: out.Intent.String()}
	switch out.Intent.Kind {
	case collab.ShowDomain:
		res.Info = a.domainTable()
		return res, nil
	case collab.ListReports:
		res.Info = a.reportTable()
		return res, nil
	case collab.ShowReport:
		r, err := a.store.Get(out.Intent.ReportID)
		if err != nil {
			return nil, err
		}
		res.Report = r
		return res, nil
	}
	res.Report, res.Stored = out.Report, out.Stored
	switch {
	case out.PushQueued:
		res.Pushed = "being pushed to the controller"
	case out.Pushed:
		res.Pushed = "pushed to the controller"
	case out.PushErr != nil:
		res.Pushed = "not pushed (" + out.PushErr.Error() + "): kept until pulled"
	}
	if m := out.Mitigation; m != nil {
		res.Mitigation = &Proposal{Report: out.Report.ID, Node: m.Node, Tool: m.Tool, Arguments: m.Arguments, Reason: m.Reason, RollbackSeconds: collab.ProposedRollback(m, a.cfg.RollbackSeconds)}
	}
	return res, nil
}

// Mitigate implements the shell's consent to a proposed mitigation.
func (a *Agent) Mitigate(ctx context.Context, op Operator, reportID string, rollback int, events func(Event)) (*ChangeResult, error) {
	out, err := a.workflow.Mitigate(ctx, reportID, collab.Approval{Operator: op.User, Role: op.Role, RollbackSeconds: rollback}, func(e collab.Event) {
		events(Event{Kind: e.Kind, Node: e.Node, Step: e.Step, Message: e.Message})
	})
	if err != nil {
		return nil, err
	}
	return changeResult(out), nil
}

// Confirm implements the shell's confirmation of a change.
func (a *Agent) Confirm(ctx context.Context, op Operator, change string) (*ChangeResult, error) {
	out, err := a.workflow.Confirm(ctx, change, collab.Approval{Operator: op.User, Role: op.Role})
	if err != nil {
		return nil, err
	}
	return changeResult(out), nil
}

// Rollback implements the shell's explicit rollback of a change.
func (a *Agent) Rollback(ctx context.Context, op Operator, change string) (*ChangeResult, error) {
	out, err := a.workflow.Rollback(ctx, change, collab.Approval{Operator: op.User, Role: op.Role})
	if err != nil {
		return nil, err
	}
	return changeResult(out), nil
}

func changeResult(o *collab.ChangeOutcome) *ChangeResult {
	return &ChangeResult{Change: o.Change, Node: o.Node, Outcome: o.Outcome, Detail: o.Detail, LossBefore: o.LossBefore, LossAfter: o.LossAfter, RollbackSeconds: o.RollbackSeconds}
}

func (a *Agent) domainTable() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tENDPOINT\tTHUMBPRINT\tCAPABILITIES")
	fmt.Fprintf(tw, "%s (this node)\t%s\t%.16s…\t%s\n", a.cfg.Node, a.endpoint.Addr(), a.id.Thumbprint(), strings.Join(a.registry.Offered(), ","))
	for _, m := range a.workflow.Members() {
		name := m.Name
		if !m.LastSeen.IsZero() && a.opt.Now().Sub(m.LastSeen) > 10*time.Second {
			name += fmt.Sprintf(" (gone %s)", a.opt.Now().Sub(m.LastSeen).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.16s…\t%s\n", name, m.Peer.Addr, m.Peer.Thumbprint, strings.Join(m.Capabilities, ","))
	}
	tw.Flush()
	return b.String()
}

func (a *Agent) reportTable() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tPULLED\tHYPOTHESIS")
	for _, e := range a.store.List() {
		pulled := "no"
		if e.PulledBy != "" {
			pulled = e.PulledBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Created.Format(time.RFC3339), pulled, e.Summary)
	}
	tw.Flush()
	return b.String()
}

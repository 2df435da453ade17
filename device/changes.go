package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"
)

// Change states.
const (
	StatePending        = "pending"
	StateConfirmed      = "confirmed"
	StateRolledBack     = "rolled-back"
	StateRollbackFailed = "rollback-failed"
)

// Change is one consented modification of the device and its fate.
type Change struct {
	ID         string    `json:"id"`
	Tool       string    `json:"tool"`
	Node       string    `json:"node"`
	ACL        string    `json:"acl"`
	Rule       string    `json:"rule"`
	Enabled    bool      `json:"enabled"`
	Previous   bool      `json:"previous"`
	State      string    `json:"state"`
	Caller     string    `json:"caller,omitempty"`
	Operator   string    `json:"operator,omitempty"`
	Created    time.Time `json:"created"`
	RollbackAt time.Time `json:"rollbackAt"`
}

type change struct {
	Change
	state string // guarded by Registry.mu; copied into Change.State on read
	timer *time.Timer
}

func (c *change) snapshot() Change {
	out := c.Change
	out.State = c.state
	return out
}

type aclRuleSetArgs struct {
	ACL             string `json:"acl"`
	Rule            string `json:"rule"`
	Enabled         bool   `json:"enabled"`
	RollbackSeconds int    `json:"rollbackSeconds"`
}

// checkConsent decodes raw and checks everything the registry can check
// itself before asking the injected verifier.
func (r *Registry) checkConsent(tool string, raw, args json.RawMessage) (*Consent, error) {
	if r.opt.ConsentVerifier == nil {
		return nil, fmt.Errorf("%w: tool %s changes the device and this node accepts no consent", ErrConsent, tool)
	}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fmt.Errorf("%w: tool %s changes the device and needs a signed operator consent", ErrConsent, tool)
	}
	var c Consent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%w: malformed consent: %v", ErrConsent, err)
	}
	if c.Tool != tool {
		return nil, fmt.Errorf("%w: consent is for tool %q, not %q", ErrConsent, c.Tool, tool)
	}
	if c.Node != r.Node() {
		return nil, fmt.Errorf("%w: consent is for node %q, not %q", ErrConsent, c.Node, r.Node())
	}
	if c.Operator == "" {
		return nil, fmt.Errorf("%w: consent names no operator", ErrConsent)
	}
	if !sameJSON(c.Arguments, args) {
		return nil, fmt.Errorf("%w: consent arguments differ from the call's", ErrConsent)
	}
	var a struct {
		RollbackSeconds int `json:"rollbackSeconds"`
	}
	_ = json.Unmarshal(args, &a)
	if c.RollbackSeconds != a.RollbackSeconds {
		return nil, fmt.Errorf("%w: consent rollback timer %ds differs from the call's %ds", ErrConsent, c.RollbackSeconds, a.RollbackSeconds)
	}
	now := r.opt.Clock()
	if c.Timestamp.IsZero() || now.Sub(c.Timestamp) > r.opt.ConsentMaxAge || c.Timestamp.Sub(now) > r.opt.ConsentMaxAge {
		return nil, fmt.Errorf("%w: consent timestamp %s is outside ±%s of now", ErrConsent, c.Timestamp.Format(time.RFC3339), r.opt.ConsentMaxAge)
	}
	key := sha256.Sum256(raw)
	r.mu.Lock()
	for k, exp := range r.used {
		if now.After(exp) {
			delete(r.used, k)
		}
	}
	_, replay := r.used[string(key[:])]
	r.mu.Unlock()
	if replay {
		return nil, fmt.Errorf("%w: consent already used", ErrConsent)
	}
	if err := r.opt.ConsentVerifier(c, tool, args); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConsent, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, replay := r.used[string(key[:])]; replay {
		return nil, fmt.Errorf("%w: consent already used", ErrConsent)
	}
	r.used[string(key[:])] = c.Timestamp.Add(r.opt.ConsentMaxAge)
	return &c, nil
}

func sameJSON(a, b json.RawMessage) bool {
	ca, err1 := canonicalJSON(a)
	cb, err2 := canonicalJSON(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var x, y any
	if json.Unmarshal(ca, &x) != nil || json.Unmarshal(cb, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func (r *Registry) aclRuleSet(ctx context.Context, caller string, a aclRuleSetArgs, consent *Consent) (any, string, error) {
	acls, err := r.b.ACLs(ctx)
	if err != nil {
		return nil, "", err
	}
	prev, ok := ruleEnabled(acls, a.ACL, a.Rule)
	if !ok {
		return nil, "", fmt.Errorf("device: ACL %q rule %q: %w", a.ACL, a.Rule, ErrUnknownACL)
	}
	if err := r.b.SetACLRule(ctx, a.ACL, a.Rule, a.Enabled); err != nil {
		return nil, "", err
	}
	now := r.opt.Clock()
	d := time.Duration(a.RollbackSeconds) * time.Second
	c := &change{Change: Change{
		ID: newID("chg-"), Tool: ToolACLRuleSet, Node: r.Node(), ACL: a.ACL, Rule: a.Rule,
		Enabled: a.Enabled, Previous: prev, Caller: caller, Operator: consent.Operator,
		Created: now, RollbackAt: now.Add(d),
	}, state: StatePending}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = r.b.SetACLRule(context.WithoutCancel(ctx), a.ACL, a.Rule, prev)
		return nil, "", ErrClosed
	}
	r.changes[c.ID] = c
	r.order = append(r.order, c.ID)
	r.wg.Add(1)
	c.timer = time.AfterFunc(d, func() {
		defer r.wg.Done()
		_ = r.rollback(c, "rollback timer expired")
	})
	out := c.snapshot()
	r.mu.Unlock()
	r.opt.Logger.Info("change applied", "change", c.ID, "acl", a.ACL, "rule", a.Rule, "enabled", a.Enabled,
		"operator", consent.Operator, "caller", caller, "rollback", d)
	return out, fmt.Sprintf("%s: ACL %s rule %s %s (change %s, rolls back in %ds unless confirmed)",
		r.Node(), a.ACL, a.Rule, enabledWord(a.Enabled), c.ID, a.RollbackSeconds), nil
}

func enabledWord(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func ruleEnabled(acls []ACL, acl, rule string) (enabled, ok bool) {
	for _, a := range acls {
		if a.Name != acl {
			continue
		}
		for _, ru := range a.Rules {
			if ru.ID == rule {
				return ru.Enabled, true
			}
		}
	}
	return false, false
}

// rollback restores the previous state of a pending change. It is a no-op
// for a change that is no longer pending.
func (r *Registry) rollback(c *change, reason string) error {
	r.mu.Lock()
	if c.state != StatePending {
		r.mu.Unlock()
		return nil
	}
	if c.timer != nil && c.timer.Stop() {
		r.wg.Done() // the timer's callback will never run
	}
	// Claim the change so that a concurrent confirm or timer backs off.
	c.state = "rolling-back"
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.b.SetACLRule(ctx, c.ACL, c.Rule, c.Previous)
	r.mu.Lock()
	if err != nil {
		c.state = StateRollbackFailed
	} else {
		c.state = StateRolledBack
	}
	r.mu.Unlock()
	if err != nil {
		r.opt.Logger.Error("rollback failed", "change", c.ID, "reason", reason, "err", err)
		return fmt.Errorf("device: rolling back change %s: %w", c.ID, err)
	}
	r.opt.Logger.Info("change rolled back", "change", c.ID, "reason", reason)
	return nil
}

func (r *Registry) confirm(caller, id string) (any, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.changes[id]
	if !ok {
		return nil, "", invalidParams(ToolChangeConfirm, "/change", fmt.Sprintf("unknown change %q", id))
	}
	if c.Caller != caller {
		return nil, "", invalidParams(ToolChangeConfirm, "/change", fmt.Sprintf("change %q was made by another caller", id))
	}
	if c.state != StatePending {
		if c.state == StateConfirmed {
			return c.snapshot(), fmt.Sprintf("%s: change %s already confirmed", r.Node(), id), nil
		}
		return nil, "", invalidParams(ToolChangeConfirm, "/change", fmt.Sprintf("change %q is %s, not pending", id, c.state))
	}
	if c.timer.Stop() {
		r.wg.Done()
	}
	c.state = StateConfirmed
	r.opt.Logger.Info("change confirmed", "change", id, "caller", caller)
	return c.snapshot(), fmt.Sprintf("%s: change %s confirmed", r.Node(), id), nil
}

// rollbackNow rolls back a pending change on its maker's request.
func (r *Registry) rollbackNow(caller, id string) (any, string, error) {
	r.mu.Lock()
	c, ok := r.changes[id]
	switch {
	case !ok:
		r.mu.Unlock()
		return nil, "", invalidParams(ToolChangeRollback, "/change", fmt.Sprintf("unknown change %q", id))
	case c.Caller != caller:
		r.mu.Unlock()
		return nil, "", invalidParams(ToolChangeRollback, "/change", fmt.Sprintf("change %q was made by another caller", id))
	case c.state == StateRolledBack:
		snap := c.snapshot()
		r.mu.Unlock()
		return snap, fmt.Sprintf("%s: change %s already rolled back", r.Node(), id), nil
	case c.state != StatePending:
		st := c.state
		r.mu.Unlock()
		return nil, "", invalidParams(ToolChangeRollback, "/change", fmt.Sprintf("change %q is %s, not pending", id, st))
	}
	r.mu.Unlock()
	if err := r.rollback(c, "rolled back by "+caller); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	snap := c.snapshot()
	r.mu.Unlock()
	return snap, fmt.Sprintf("%s: change %s rolled back", r.Node(), id), nil
}

// PendingChanges returns the changes that will roll back unless
// confirmed, oldest first.
func (r *Registry) PendingChanges() []Change {
	return r.changesIn(StatePending)
}

// Changes returns every change the registry made, oldest first.
func (r *Registry) Changes() []Change { return r.changesIn("") }

func (r *Registry) changesIn(state string) []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Change
	for _, id := range r.order {
		c := r.changes[id]
		if state == "" || c.state == state {
			out = append(out, c.snapshot())
		}
	}
	return out
}

// baseline is one clear-counters record.
type baseline struct {
	id      string
	created time.Time
	ifs     map[string]InterfaceStats
	rules   map[[2]string]ACLRule // (acl, rule) → counters
}

func (r *Registry) clearCounters(ctx context.Context, ifname, acl string) (any, string, error) {
	ifs, err := r.b.Interfaces(ctx)
	if err != nil {
		return nil, "", err
	}
	acls, err := r.b.ACLs(ctx)
	if err != nil && !errors.Is(err, ErrUnsupported) {
		return nil, "", err
	}
	b := &baseline{id: newID("ctr-"), created: r.opt.Clock(), ifs: map[string]InterfaceStats{}, rules: map[[2]string]ACLRule{}}
	names, aclNames := []string{}, []string{}
	// An ACL alone clears only the ACL; an interface alone only the interface.
	if acl == "" || ifname != "" {
		for _, i := range ifs {
			if ifname == "" || i.Name == ifname {
				b.ifs[i.Name] = i.Stats
				names = append(names, i.Name)
			}
		}
		if ifname != "" && len(names) == 0 {
			return nil, "", fmt.Errorf("device: interface %q: %w", ifname, ErrUnknownInterface)
		}
	}
	if ifname == "" || acl != "" {
		for _, a := range acls {
			if acl != "" && a.Name != acl {
				continue
			}
			aclNames = append(aclNames, a.Name)
			for _, ru := range a.Rules {
				b.rules[[2]string{a.Name, ru.ID}] = ru
			}
		}
		if acl != "" && len(aclNames) == 0 {
			return nil, "", fmt.Errorf("device: ACL %q: %w", acl, ErrUnknownACL)
		}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, "", ErrClosed
	}
	r.baselines = append(r.baselines, b)
	r.mu.Unlock()
	return struct {
		Node       string    `json:"node"`
		Undo       string    `json:"undo"`
		Interfaces []string  `json:"interfaces"`
		ACLs       []string  `json:"acls"`
		Created    time.Time `json:"created"`
	}{r.Node(), b.id, names, aclNames, b.created}, fmt.Sprintf("%s: counters of %d interfaces and %d ACLs cleared (baseline %s)", r.Node(), len(names), len(aclNames), b.id), nil
}

func (r *Registry) restoreCounters(id string) (any, string, error) {
	r.mu.Lock()
	n := len(r.baselines)
	r.baselines = slices.DeleteFunc(r.baselines, func(b *baseline) bool { return b.id == id })
	removed := len(r.baselines) < n
	r.mu.Unlock()
	if !removed {
		return nil, "", invalidParams(ToolRestoreCounters, "/undo", fmt.Sprintf("unknown baseline %q", id))
	}
	return struct {
		Node     string `json:"node"`
		Undo     string `json:"undo"`
		Restored bool   `json:"restored"`
	}{r.Node(), id, true}, fmt.Sprintf("%s: baseline %s removed, counters read absolute", r.Node(), id), nil
}

// Baselines returns the ids of the active counter baselines, oldest first.
func (r *Registry) Baselines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.baselines {
		out = append(out, b.id)
	}
	return out
}

// ifBaseline returns the newest baseline of interface name.
func (r *Registry) ifBaseline(name string) (*baseline, InterfaceStats, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.baselines) - 1; i >= 0; i-- {
		if s, ok := r.baselines[i].ifs[name]; ok {
			return r.baselines[i], s, true
		}
	}
	return nil, InterfaceStats{}, false
}

func (r *Registry) ruleBaseline(acl, rule string) (ACLRule, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.baselines) - 1; i >= 0; i-- {
		if ru, ok := r.baselines[i].rules[[2]string{acl, rule}]; ok {
			return ru, true
		}
	}
	return ACLRule{}, false
}

// sub subtracts a baseline value; a counter that went backwards (the
// device reset it) reads as its current value.
func sub(cur, base uint64) uint64 {
	if cur < base {
		return cur
	}
	return cur - base
}

type ifCounters struct {
	Interface
	Baseline string `json:"baseline,omitempty"`
}

func (r *Registry) interfaceCounters(ctx context.Context, name string) (any, string, error) {
	ifs, err := r.b.Interfaces(ctx)
	if err != nil {
		return nil, "", err
	}
	out := []ifCounters{}
	for _, i := range ifs {
		if name != "" && i.Name != name {
			continue
		}
		c := ifCounters{Interface: i}
		if b, s, ok := r.ifBaseline(i.Name); ok {
			st := &c.Stats
			st.DiscontinuityTime = b.created
			st.InOctets, st.InUnicastPkts = sub(st.InOctets, s.InOctets), sub(st.InUnicastPkts, s.InUnicastPkts)
			st.InMulticastPkts, st.InDiscards = sub(st.InMulticastPkts, s.InMulticastPkts), sub(st.InDiscards, s.InDiscards)
			st.InErrors, st.OutOctets = sub(st.InErrors, s.InErrors), sub(st.OutOctets, s.OutOctets)
			st.OutUnicastPkts, st.OutMulticastPkts = sub(st.OutUnicastPkts, s.OutUnicastPkts), sub(st.OutMulticastPkts, s.OutMulticastPkts)
			st.OutDiscards, st.OutErrors = sub(st.OutDiscards, s.OutDiscards), sub(st.OutErrors, s.OutErrors)
			c.Baseline = b.id
		}
		out = append(out, c)
	}
	if name != "" && len(out) == 0 {
		return nil, "", fmt.Errorf("device: interface %q: %w", name, ErrUnknownInterface)
	}
	var inErr, outErr, disc uint64
	for _, c := range out {
		inErr += c.Stats.InErrors
		outErr += c.Stats.OutErrors
		disc += c.Stats.InDiscards + c.Stats.OutDiscards
	}
	return struct {
		Node       string       `json:"node"`
		Interfaces []ifCounters `json:"interfaces"`
	}{r.Node(), out}, fmt.Sprintf("%s: %d interfaces, %d in-errors, %d out-errors, %d discards", r.Node(), len(out), inErr, outErr, disc), nil
}

func (r *Registry) aclTool(ctx context.Context, name string, counters bool) (any, string, error) {
	acls, err := r.b.ACLs(ctx)
	if err != nil {
		return nil, "", err
	}
	out := []ACL{}
	var matched uint64
	for _, a := range acls {
		if name != "" && a.Name != name {
			continue
		}
		a.Rules = slices.Clone(a.Rules)
		for i := range a.Rules {
			ru := &a.Rules[i]
			if !counters {
				continue // acl-list shows the device's own, absolute counters
			}
			if b, ok := r.ruleBaseline(a.Name, ru.ID); ok {
				ru.MatchedPackets, ru.MatchedBytes = sub(ru.MatchedPackets, b.MatchedPackets), sub(ru.MatchedBytes, b.MatchedBytes)
			}
			if ru.Action == "deny" {
				matched += ru.MatchedPackets
			}
		}
		out = append(out, a)
	}
	if name != "" && len(out) == 0 {
		return nil, "", fmt.Errorf("device: ACL %q: %w", name, ErrUnknownACL)
	}
	if !counters {
		return struct {
			Node string `json:"node"`
			ACLs []ACL  `json:"acls"`
		}{r.Node(), out}, fmt.Sprintf("%s: %d ACLs", r.Node(), len(out)), nil
	}
	return struct {
		Node string `json:"node"`
		ACLs []ACL  `json:"acls"`
	}{r.Node(), out}, fmt.Sprintf("%s: %d ACLs, %d packets matched deny rules", r.Node(), len(out), matched), nil
}

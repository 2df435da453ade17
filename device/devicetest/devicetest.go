// Package devicetest is the contract every device.Backend must meet, run
// against the simulated devices of package simulate and the real kernel of
// package device/linux alike. It checks the headline scenario of the
// design (docs/ARCHITECTURE.md §1): loss from the head of an SRv6 line through an
// egress ACL fault, none from the mid-point, the ACL counters that show
// the drops, a consented mitigation through the device registry with its
// rollback, counter baselines that leave no state, and clear errors for
// bad input that change nothing.
//
// Probe counts and tolerances suit a real kernel as well as the
// simulation: 200 probes through a 3 % drop are expected to lose between
// 0.5 % and 8 %.
package devicetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
)

// Fixture is a three-node SRv6 line head–mid–tail and its hooks.
type Fixture struct {
	Head, Mid, Tail device.Backend
	// MidSegment and TailSegment name the segments that reach Mid and
	// Tail (SIDs or names the backend resolves). If empty, the nodes'
	// names.
	MidSegment, TailSegment string
	// ACL and Rule name the rule on Head that InjectACLDrop arms; the
	// suite disables it as the mitigation.
	ACL, Rule string
	// InjectACLDrop makes Head's egress towards Mid drop a fraction rate
	// of the packets through ACL/Rule, and returns its undo.
	InjectACLDrop func(t testing.TB, rate float64) (undo func())
	// Interface is an interface of Head; if empty, the first one Head
	// reports.
	Interface string
	// Rate is the injected drop rate. If zero, 0.03.
	Rate float64
	// Probes is the probe count per measurement. If zero, 200.
	Probes int
	// Interval between probes. If zero, the backend's default.
	Interval time.Duration
	// MinLossPercent and MaxLossPercent bound the loss expected through
	// the fault. If both zero, 0.5 and 8.
	MinLossPercent, MaxLossPercent float64
	// RollbackWait bounds the wait for a rollback timer. If zero, 10s.
	RollbackWait time.Duration
}

func (f *Fixture) populate(t *testing.T) {
	t.Helper()
	if f.Head == nil || f.Mid == nil || f.Tail == nil || f.InjectACLDrop == nil || f.ACL == "" || f.Rule == "" {
		t.Fatal("devicetest: Fixture needs Head, Mid, Tail, ACL, Rule and InjectACLDrop")
	}
	if f.MidSegment == "" {
		f.MidSegment = f.Mid.Node()
	}
	if f.TailSegment == "" {
		f.TailSegment = f.Tail.Node()
	}
	if f.Rate == 0 {
		f.Rate = 0.03
	}
	if f.Probes == 0 {
		f.Probes = 200
	}
	if f.MinLossPercent == 0 && f.MaxLossPercent == 0 {
		f.MinLossPercent, f.MaxLossPercent = 0.5, 8
	}
	if f.RollbackWait == 0 {
		f.RollbackWait = 10 * time.Second
	}
}

// Operator is the operator name the suite's consents carry; the suite's
// verifier accepts only it.
const Operator = "devicetest-operator"

// Run runs the contract suite. Subtests run one after another, and each
// undoes what it changed.
func Run(t *testing.T, f Fixture) {
	f.populate(t)
	t.Run("LossOnlyFromHead", f.lossOnlyFromHead)
	t.Run("ACLCountersShowDrops", f.aclCountersShowDrops)
	t.Run("MitigationAndTimerRollback", f.mitigationTimerRollback)
	t.Run("CloseRollsBack", f.closeRollsBack)
	t.Run("ConfirmedChangeStays", f.confirmedChangeStays)
	t.Run("CounterBaselinesLeaveNoState", f.counterBaselines)
	t.Run("BadInput", f.badInput)
}

func (f *Fixture) ping(t *testing.T, b device.Backend, segs ...string) device.ProbeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := b.SRv6Ping(ctx, device.SRv6PingRequest{SIDList: segs, Count: f.Probes, Interval: f.Interval}, nil)
	if err != nil {
		t.Fatalf("SRv6Ping from %s via %v: %v", b.Node(), segs, err)
	}
	if res.Sent != f.Probes {
		t.Fatalf("SRv6Ping from %s sent %d probes, want %d", b.Node(), res.Sent, f.Probes)
	}
	return res
}

func (f *Fixture) lossOnlyFromHead(t *testing.T) {
	clean := f.ping(t, f.Head, f.MidSegment, f.TailSegment)
	if clean.LossPercent != 0 {
		t.Fatalf("before the fault, loss from %s = %.2f%%, want 0 (%+v)", f.Head.Node(), clean.LossPercent, clean)
	}
	undo := f.InjectACLDrop(t, f.Rate)
	defer undo()
	head := f.ping(t, f.Head, f.MidSegment, f.TailSegment)
	if head.LossPercent < f.MinLossPercent || head.LossPercent > f.MaxLossPercent {
		t.Errorf("with a %.0f%% egress ACL drop, loss from %s = %.2f%%, want within [%.1f, %.1f]",
			f.Rate*100, f.Head.Node(), head.LossPercent, f.MinLossPercent, f.MaxLossPercent)
	}
	mid := f.ping(t, f.Mid, f.TailSegment)
	if mid.LossPercent != 0 {
		t.Errorf("loss from %s = %.2f%%, want 0: the fault is on %s's egress", f.Mid.Node(), mid.LossPercent, f.Head.Node())
	}
	if head.Received > 0 && !(head.RTTMinMS > 0 && head.RTTMinMS <= head.RTTAvgMS && head.RTTAvgMS <= head.RTTMaxMS) {
		t.Errorf("RTTs from %s not ordered min<=avg<=max (>0): %+v", f.Head.Node(), head)
	}
}

func ruleOf(t *testing.T, b device.Backend, acl, rule string) device.ACLRule {
	t.Helper()
	acls, err := b.ACLs(context.Background())
	if err != nil {
		t.Fatalf("ACLs of %s: %v", b.Node(), err)
	}
	for _, a := range acls {
		if a.Name != acl {
			continue
		}
		for _, r := range a.Rules {
			if r.ID == rule {
				return r
			}
		}
	}
	t.Fatalf("%s has no ACL %s rule %s", b.Node(), acl, rule)
	return device.ACLRule{}
}

func (f *Fixture) aclCountersShowDrops(t *testing.T) {
	undo := f.InjectACLDrop(t, f.Rate)
	defer undo()
	before := ruleOf(t, f.Head, f.ACL, f.Rule)
	if !before.Enabled {
		t.Fatalf("InjectACLDrop left ACL %s rule %s disabled", f.ACL, f.Rule)
	}
	res := f.ping(t, f.Head, f.MidSegment, f.TailSegment)
	after := ruleOf(t, f.Head, f.ACL, f.Rule)
	matched := after.MatchedPackets - before.MatchedPackets
	lost := uint64(res.Sent - res.Received)
	if matched == 0 || matched < lost {
		t.Errorf("ACL %s rule %s matched %d packets while %d probes were lost; want at least the lost ones", f.ACL, f.Rule, matched, lost)
	}
	if after.MatchedBytes <= before.MatchedBytes {
		t.Errorf("ACL %s rule %s byte counter did not move (%d → %d)", f.ACL, f.Rule, before.MatchedBytes, after.MatchedBytes)
	}
}

// verifier accepts consents of Operator only.
func verifier(c device.Consent, tool string, args json.RawMessage) error {
	if c.Operator != Operator {
		return fmt.Errorf("operator %q is not authorised", c.Operator)
	}
	return nil
}

// Consent returns a consent for one call of tool on node, as an operator
// would approve it.
func Consent(node, tool string, args map[string]any, operator string) (argsJSON, consent json.RawMessage) {
	a, _ := json.Marshal(args)
	rb, _ := args["rollbackSeconds"].(int)
	c, _ := json.Marshal(device.Consent{Tool: tool, Arguments: a, Node: node, RollbackSeconds: rb,
		Operator: operator, Role: "operator", Timestamp: time.Now(), Signature: []byte("test")})
	return a, c
}

func (f *Fixture) registry(t *testing.T) *device.Registry {
	r := device.NewRegistry(f.Head, device.RegistryOptions{ConsentVerifier: verifier})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func (f *Fixture) setRule(t *testing.T, r *device.Registry, enabled bool, rollback int) device.Change {
	t.Helper()
	args, consent := Consent(f.Head.Node(), device.ToolACLRuleSet,
		map[string]any{"acl": f.ACL, "rule": f.Rule, "enabled": enabled, "rollbackSeconds": rollback}, Operator)
	res, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolACLRuleSet, Arguments: args, Consent: consent, Caller: "devicetest"})
	if err != nil {
		t.Fatalf("acl-rule-set with consent: %v", err)
	}
	if res.IsError {
		t.Fatalf("acl-rule-set failed: %+v", res.Content)
	}
	var ch device.Change
	if err := json.Unmarshal(res.StructuredContent, &ch); err != nil {
		t.Fatalf("acl-rule-set result: %v", err)
	}
	if ch.State != device.StatePending || ch.ID == "" {
		t.Fatalf("acl-rule-set change = %+v, want a pending change with an id", ch)
	}
	return ch
}

func (f *Fixture) mitigationTimerRollback(t *testing.T) {
	undo := f.InjectACLDrop(t, f.Rate)
	defer undo()
	r := f.registry(t)
	// Disabled, the rule drops nothing. The change gets a long timer, so
	// that however slowly the probes run, the check cannot race it; then
	// it is rolled back on request.
	long := f.setRule(t, r, false, 3600)
	if ruleOf(t, f.Head, f.ACL, f.Rule).Enabled {
		t.Fatalf("after acl-rule-set enabled=false the rule is still enabled")
	}
	res := f.ping(t, f.Head, f.MidSegment, f.TailSegment)
	if res.LossPercent != 0 {
		t.Errorf("with the drop rule disabled, loss from %s = %.2f%%, want 0", f.Head.Node(), res.LossPercent)
	}
	args, _ := json.Marshal(map[string]string{"change": long.ID})
	out, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeRollback, Arguments: args, Caller: "devicetest"})
	if err != nil || out.IsError {
		t.Fatalf("change-rollback %s: %+v, %v", long.ID, out, err)
	}
	if !ruleOf(t, f.Head, f.ACL, f.Rule).Enabled {
		t.Fatalf("change-rollback did not re-enable ACL %s rule %s", f.ACL, f.Rule)
	}

	// The timer: a change nobody confirms rolls back by itself.
	ch := f.setRule(t, r, false, 1)
	if ruleOf(t, f.Head, f.ACL, f.Rule).Enabled {
		t.Fatalf("after acl-rule-set enabled=false the rule is still enabled")
	}
	deadline := time.Now().Add(f.RollbackWait)
	for len(r.PendingChanges()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := r.PendingChanges(); len(p) > 0 {
		t.Fatalf("change %s still pending %s after its 1s rollback timer", ch.ID, f.RollbackWait)
	}
	if !ruleOf(t, f.Head, f.ACL, f.Rule).Enabled {
		t.Errorf("rollback timer did not re-enable ACL %s rule %s", f.ACL, f.Rule)
	}
	res = f.ping(t, f.Head, f.MidSegment, f.TailSegment)
	if res.LossPercent < f.MinLossPercent {
		t.Errorf("after the rollback, loss from %s = %.2f%%, want the fault's loss back", f.Head.Node(), res.LossPercent)
	}
}

func (f *Fixture) closeRollsBack(t *testing.T) {
	undo := f.InjectACLDrop(t, f.Rate)
	defer undo()
	r := f.registry(t)
	f.setRule(t, r, false, 3600)
	if n := len(r.PendingChanges()); n != 1 {
		t.Fatalf("PendingChanges = %d, want 1", n)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !ruleOf(t, f.Head, f.ACL, f.Rule).Enabled {
		t.Errorf("Close did not roll back the unconfirmed change")
	}
	if err := r.Close(); err == nil {
		t.Errorf("second Close returned nil, want an error")
	}
}

func (f *Fixture) confirmedChangeStays(t *testing.T) {
	undo := f.InjectACLDrop(t, f.Rate)
	defer undo()
	r := f.registry(t)
	ch := f.setRule(t, r, false, 3600)
	args, _ := json.Marshal(map[string]string{"change": ch.ID})
	if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeConfirm, Arguments: args, Caller: "someone-else"}); err == nil {
		t.Errorf("change-confirm by another caller succeeded")
	}
	if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeConfirm, Arguments: args, Caller: "devicetest"}); err != nil {
		t.Fatalf("change-confirm: %v", err)
	}
	_ = r.Close()
	if ruleOf(t, f.Head, f.ACL, f.Rule).Enabled {
		t.Errorf("Close rolled back a confirmed change")
	}
	if err := f.Head.SetACLRule(context.Background(), f.ACL, f.Rule, true); err != nil {
		t.Fatalf("restoring the rule: %v", err)
	}
}

func (f *Fixture) ifName(t *testing.T) string {
	if f.Interface != "" {
		return f.Interface
	}
	ifs, err := f.Head.Interfaces(context.Background())
	if err != nil || len(ifs) == 0 {
		t.Fatalf("Interfaces of %s: %v (%d)", f.Head.Node(), err, len(ifs))
	}
	for _, i := range ifs {
		if i.Stats.OutUnicastPkts > 0 {
			return i.Name
		}
	}
	return ifs[0].Name
}

func rawStats(t *testing.T, b device.Backend, name string) device.InterfaceStats {
	t.Helper()
	ifs, err := b.Interfaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == name {
			return i.Stats
		}
	}
	t.Fatalf("%s has no interface %s", b.Node(), name)
	return device.InterfaceStats{}
}

func call(t *testing.T, r *device.Registry, tool string, args any) json.RawMessage {
	t.Helper()
	a, _ := json.Marshal(args)
	res, err := r.CallTool(context.Background(), device.ToolRequest{Name: tool, Arguments: a})
	if err != nil {
		t.Fatalf("%s %s: %v", tool, a, err)
	}
	if res.IsError {
		t.Fatalf("%s %s: %+v", tool, a, res.Content)
	}
	return res.StructuredContent
}

func (f *Fixture) counterBaselines(t *testing.T) {
	f.ping(t, f.Head, f.MidSegment, f.TailSegment) // make counters non-zero
	name := f.ifName(t)
	r0 := rawStats(t, f.Head, name)
	r := f.registry(t)
	var cleared struct{ Undo string }
	if err := json.Unmarshal(call(t, r, device.ToolClearCounters, map[string]string{"interface": name}), &cleared); err != nil || cleared.Undo == "" {
		t.Fatalf("clear-counters: %v, undo %q", err, cleared.Undo)
	}
	var rel struct {
		Interfaces []struct {
			Name       string
			Baseline   string
			Statistics device.InterfaceStats
		}
	}
	if err := json.Unmarshal(call(t, r, device.ToolInterfaceCounters, map[string]string{"interface": name}), &rel); err != nil || len(rel.Interfaces) != 1 {
		t.Fatalf("interface-counters: %v %+v", err, rel)
	}
	if got := rel.Interfaces[0]; got.Baseline != cleared.Undo || got.Statistics.OutUnicastPkts >= r0.OutUnicastPkts && r0.OutUnicastPkts > 1000 {
		t.Errorf("interface-counters after clear-counters = %+v, want relative to baseline %s", got, cleared.Undo)
	}
	if raw := rawStats(t, f.Head, name); raw.OutUnicastPkts < r0.OutUnicastPkts || raw.OutOctets < r0.OutOctets {
		t.Errorf("clear-counters touched the device: out packets %d → %d", r0.OutUnicastPkts, raw.OutUnicastPkts)
	}
	call(t, r, device.ToolRestoreCounters, map[string]string{"undo": cleared.Undo})
	if b := r.Baselines(); len(b) != 0 {
		t.Errorf("baselines after restore-counters = %v, want none", b)
	}
	rel.Interfaces = nil
	if err := json.Unmarshal(call(t, r, device.ToolInterfaceCounters, map[string]string{"interface": name}), &rel); err != nil || len(rel.Interfaces) != 1 {
		t.Fatalf("interface-counters: %v %+v", err, rel)
	}
	if got := rel.Interfaces[0]; got.Baseline != "" || got.Statistics.OutUnicastPkts < r0.OutUnicastPkts {
		t.Errorf("interface-counters after restore-counters = %+v, want absolute (≥ %d out packets)", got, r0.OutUnicastPkts)
	}
	a, _ := json.Marshal(map[string]string{"undo": cleared.Undo})
	if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolRestoreCounters, Arguments: a}); err == nil {
		t.Errorf("restoring the same baseline twice succeeded")
	}
}

func (f *Fixture) badInput(t *testing.T) {
	undo := f.InjectACLDrop(t, f.Rate) // so that the ACL rule exists on every backend
	defer undo()
	r := f.registry(t)
	head := f.Head.Node()
	enabledBefore := ruleOf(t, f.Head, f.ACL, f.Rule).Enabled
	okArgs := map[string]any{"acl": f.ACL, "rule": f.Rule, "enabled": !enabledBefore, "rollbackSeconds": 60}
	_, wrongOperator := Consent(head, device.ToolACLRuleSet, okArgs, "mallory")
	_, otherArgs := Consent(head, device.ToolACLRuleSet, map[string]any{"acl": f.ACL, "rule": f.Rule, "enabled": enabledBefore, "rollbackSeconds": 60}, Operator)
	_, otherNode := Consent(head+"-other", device.ToolACLRuleSet, okArgs, Operator)
	okJSON, _ := json.Marshal(okArgs)
	unknownACL, unknownACLConsent := Consent(head, device.ToolACLRuleSet, map[string]any{"acl": "no-such-acl", "rule": "1", "enabled": true, "rollbackSeconds": 5}, Operator)
	tests := []struct {
		name     string
		tool     string
		args     string
		consent  json.RawMessage
		code     int64
		mentions string
	}{
		{"count not a number", device.ToolSRv6Ping, `{"sidList":["x"],"count":"many"}`, nil, mcp.CodeInvalidParams, "count"},
		{"count zero", device.ToolSRv6Ping, `{"sidList":["x"],"count":0}`, nil, mcp.CodeInvalidParams, "count"},
		{"unknown field", device.ToolPing, `{"destination":"x","colour":"red"}`, nil, mcp.CodeInvalidParams, "colour"},
		{"missing destination", device.ToolPing, `{}`, nil, mcp.CodeInvalidParams, "destination"},
		{"not JSON", device.ToolPing, `{"destination":`, nil, mcp.CodeInvalidParams, "JSON"},
		{"unknown interface", device.ToolInterfaceCounters, `{"interface":"no-such-if0"}`, nil, mcp.CodeInvalidParams, "no-such-if0"},
		{"unknown SID", device.ToolSRv6Ping, `{"sidList":["no-such-node-x"],"count":1}`, nil, mcp.CodeInvalidParams, "no-such-node-x"},
		{"unknown ACL with consent", device.ToolACLRuleSet, string(unknownACL), unknownACLConsent, mcp.CodeInvalidParams, "no-such-acl"},
		{"no consent", device.ToolACLRuleSet, string(okJSON), nil, mcp.CodeConsentRequired, "consent"},
		{"consent refused by verifier", device.ToolACLRuleSet, string(okJSON), wrongOperator, mcp.CodeConsentRequired, "mallory"},
		{"consent for other arguments", device.ToolACLRuleSet, string(okJSON), otherArgs, mcp.CodeConsentRequired, "arguments"},
		{"consent for other node", device.ToolACLRuleSet, string(okJSON), otherNode, mcp.CodeConsentRequired, "node"},
		{"rollback out of range", device.ToolACLRuleSet, `{"acl":"a","rule":"1","enabled":true,"rollbackSeconds":0}`, nil, mcp.CodeInvalidParams, "rollbackSeconds"},
		{"unknown tool", "no-such-tool", `{}`, nil, mcp.CodeInvalidParams, "no-such-tool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.CallTool(context.Background(), device.ToolRequest{Name: tt.tool, Arguments: json.RawMessage(tt.args), Consent: tt.consent})
			var me *mcp.Error
			if !errors.As(err, &me) {
				t.Fatalf("CallTool = %+v, %v; want *mcp.Error code %d", res, err, tt.code)
			}
			if me.Code != tt.code || !strings.Contains(me.Message, tt.mentions) {
				t.Errorf("error = code %d %q; want code %d mentioning %q", me.Code, me.Message, tt.code, tt.mentions)
			}
		})
	}
	if got := ruleOf(t, f.Head, f.ACL, f.Rule).Enabled; got != enabledBefore {
		t.Errorf("refused calls changed ACL %s rule %s enabled %v → %v", f.ACL, f.Rule, enabledBefore, got)
	}
	if p := r.PendingChanges(); len(p) != 0 {
		t.Errorf("refused calls left changes: %+v", p)
	}
}

package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/goleak"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/device/devicetest"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/simulate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type grant map[string]bool

func (g grant) Allows(c string) bool { return g[c] }

func triangle(t testing.TB) *simulate.Network {
	t.Helper()
	n, err := simulate.NewNetwork(simulate.Triangle(), 7)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newRegistry(t testing.TB, n *simulate.Network, node string, opt device.RegistryOptions) *device.Registry {
	t.Helper()
	b, err := n.Device(node)
	if err != nil {
		t.Fatal(err)
	}
	if opt.ConsentVerifier == nil {
		opt.ConsentVerifier = func(c device.Consent, _ string, _ json.RawMessage) error {
			if c.Operator != devicetest.Operator {
				return errors.New("unknown operator")
			}
			return nil
		}
	}
	r := device.NewRegistry(b, opt)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func callTool(t testing.TB, r *device.Registry, name string, args any) *mcp.CallToolResult {
	t.Helper()
	a, _ := json.Marshal(args)
	res, err := r.CallTool(context.Background(), device.ToolRequest{Name: name, Arguments: a})
	if err != nil {
		t.Fatalf("%s(%s): %v", name, a, err)
	}
	return res
}

func TestListToolsMetadata(t *testing.T) {
	r := newRegistry(t, triangle(t), "PE-1", device.RegistryOptions{})
	tools := r.ListTools(device.AllowAll{})
	type row struct {
		Name, Capability      string
		Mutating              bool
		Privacy               int
		ReadOnly, Destructive bool
	}
	var got []row
	for _, tl := range tools {
		var in map[string]any
		if err := json.Unmarshal(tl.InputSchema, &in); err != nil || in["type"] != "object" {
			t.Errorf("%s: input schema %s is not an object schema (%v)", tl.Name, tl.InputSchema, err)
		}
		if len(tl.OutputSchema) == 0 || tl.Description == "" || tl.Title == "" {
			t.Errorf("%s: missing output schema, title or description", tl.Name)
		}
		got = append(got, row{tl.Name, tl.Meta[device.MetaCapability].(string), tl.Meta[device.MetaMutating].(bool),
			tl.Meta[device.MetaPrivacyLevel].(int), tl.Annotations.ReadOnlyHint, *tl.Annotations.DestructiveHint})
	}
	want := []row{
		{"acl-counters", "acl-counters", false, 2, true, false},
		{"acl-list", "acl-list", false, 2, true, false},
		{"acl-rule-set", "acl-rule-set", true, 2, false, true},
		{"bfd-sessions", "bfd-sessions", false, 2, true, false},
		{"bgp-neighbors", "bgp-neighbors", false, 2, true, false},
		{"change-confirm", "change-confirm", false, 2, false, false},
		{"change-rollback", "change-confirm", false, 2, false, false},
		{"clear-counters", "clear-counters", false, 1, false, false},
		{"ietf-srv6-ping", "ietf-srv6-ping", false, 1, true, false},
		{"interface-counters", "ietf-interface-counters", false, 1, true, false},
		{"ping", "ping", false, 1, true, false},
		{"restore-counters", "restore-counters", false, 1, false, false},
		{"traceroute", "traceroute", false, 1, true, false},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("tools (-want +got):\n%s", d)
	}
}

func TestGrantFiltering(t *testing.T) {
	r := newRegistry(t, triangle(t), "P-2", device.RegistryOptions{})
	tests := []struct {
		name      string
		g         device.Grant
		tools     []string
		resources int
		prompts   int
	}{
		{"draft example", grant{"ietf-srv6-ping": true, "ietf-interface-counters": true}, []string{"ietf-srv6-ping", "interface-counters"}, 0, 0},
		{"interfaces only", grant{"ietf-interfaces": true}, nil, 4, 0}, // list + eth1, eth2, lo
		{"prompts only", grant{"prompts": true}, nil, 0, 3},
		{"nothing", grant{}, nil, 0, 0},
		{"nil grant", nil, nil, 0, 0},
		{"everything", device.AllowAll{}, nil, 4, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for _, tl := range r.ListTools(tt.g) {
				names = append(names, tl.Name)
			}
			if tt.name == "everything" {
				if len(names) != 13 {
					t.Errorf("AllowAll lists %d tools, want 13", len(names))
				}
			} else if d := cmp.Diff(tt.tools, names); d != "" {
				t.Errorf("tools (-want +got):\n%s", d)
			}
			if got := len(r.ListResources(tt.g)); got != tt.resources {
				t.Errorf("%d resources, want %d", got, tt.resources)
			}
			if got := len(r.ListPrompts(tt.g)); got != tt.prompts {
				t.Errorf("%d prompts, want %d", got, tt.prompts)
			}
		})
	}
}

func TestCapability(t *testing.T) {
	r := newRegistry(t, triangle(t), "PE-3", device.RegistryOptions{})
	tests := []struct {
		method, target, want string
		ok                   bool
	}{
		{mcp.MethodToolsCall, "ietf-srv6-ping", "ietf-srv6-ping", true},
		{mcp.MethodToolsCall, "interface-counters", "ietf-interface-counters", true},
		{mcp.MethodToolsCall, "acl-rule-set", "acl-rule-set", true},
		{mcp.MethodToolsCall, "rm-rf", "", false},
		{mcp.MethodResourcesRead, "mcp://PE-3/ietf-interfaces:interfaces", "ietf-interfaces", true},
		{mcp.MethodResourcesSubscribe, "mcp://PE-3/ietf-interfaces:interfaces/interface=eth1", "ietf-interfaces", true},
		{mcp.MethodResourcesRead, "mcp://PE-1/ietf-interfaces:interfaces", "", false},
		{mcp.MethodResourcesRead, "mcp://PE-3/ietf-interfaces:interfaces/interface=", "", false},
		{mcp.MethodPromptsGet, "interface-errors", "prompts", true},
		{mcp.MethodPromptsGet, "nope", "", false},
		{mcp.MethodToolsList, "", "", false},
	}
	for _, tt := range tests {
		got, ok := r.Capability(tt.method, tt.target)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Capability(%s, %s) = %q, %v; want %q, %v", tt.method, tt.target, got, ok, tt.want, tt.ok)
		}
	}
	offered := r.Offered()
	for _, c := range []string{"ietf-srv6-ping", "ietf-interface-counters", "ietf-interfaces", "prompts", "acl-rule-set"} {
		if !strings.Contains(strings.Join(offered, ","), c) {
			t.Errorf("Offered() = %v lacks %s", offered, c)
		}
	}
}

func TestSchemaValidation(t *testing.T) {
	r := newRegistry(t, triangle(t), "PE-1", device.RegistryOptions{})
	tests := []struct {
		name, tool, args, field string
	}{
		{"wrong type", "ietf-srv6-ping", `{"sidList":"P-2"}`, "/sidList"},
		{"item wrong type", "ietf-srv6-ping", `{"sidList":["P-2",7]}`, "/sidList/1"},
		{"neither sidList nor tail", "ietf-srv6-ping", `{"count":3}`, "/sidList"},
		{"count too large", "ping", `{"destination":"PE-3","count":1000000}`, "/count"},
		{"negative interval", "ping", `{"destination":"PE-3","interval":-1}`, "/interval"},
		{"extra field", "traceroute", `{"destination":"PE-3","ttl":3}`, "/ttl"},
		{"interface with slash", "interface-counters", `{"interface":"a/b"}`, "/interface"},
		{"enabled not bool", "acl-rule-set", `{"acl":"2001","rule":"10","enabled":"no","rollbackSeconds":5}`, "/enabled"},
		{"missing undo", "restore-counters", `{}`, "/undo"},
		{"array not object", "bgp-neighbors", `[]`, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.CallTool(context.Background(), device.ToolRequest{Name: tt.tool, Arguments: json.RawMessage(tt.args)})
			var me *mcp.Error
			if !errors.As(err, &me) || me.Code != mcp.CodeInvalidParams {
				t.Fatalf("err = %v, want invalid params", err)
			}
			var data struct{ Tool, Field, Reason string }
			if err := json.Unmarshal(me.Data, &data); err != nil {
				t.Fatal(err)
			}
			if data.Field != tt.field || data.Tool != tt.tool || data.Reason == "" {
				t.Errorf("data = %+v, want field %q (message %q)", data, tt.field, me.Message)
			}
		})
	}
}

// TestResultsMatchOutputSchemas runs every read-only tool and checks its
// structured result against the output schema it advertises.
func TestResultsMatchOutputSchemas(t *testing.T) {
	n := triangle(t)
	r := newRegistry(t, n, "PE-1", device.RegistryOptions{})
	args := map[string]any{
		"ietf-srv6-ping": map[string]any{"head": "PE-1", "sidList": []string{"P-2", "PE-3"}, "count": 10},
		"ping":           map[string]any{"destination": "2001:db8::3", "count": 3},
		"traceroute":     map[string]any{"destination": "PE-3"},
		"bgp-neighbors":  map[string]any{"neighbor": "PE-3"},
		"bfd-sessions":   map[string]any{},
		"acl-list":       map[string]any{},
		"acl-counters":   map[string]any{"acl": "2001"},
		"clear-counters": map[string]any{},
	}
	for _, tl := range r.ListTools(device.AllowAll{}) {
		a, ok := args[tl.Name]
		if !ok {
			a = map[string]any{}
		}
		if tl.Name == "interface-counters" {
			a = map[string]any{"interface": "eth1"}
		}
		if tl.Meta[device.MetaMutating].(bool) || tl.Name == "change-confirm" || tl.Name == "change-rollback" || tl.Name == "restore-counters" {
			continue
		}
		t.Run(tl.Name, func(t *testing.T) {
			res := callTool(t, r, tl.Name, a)
			if res.IsError || len(res.Content) != 1 || res.Content[0].Text == "" || strings.Contains(res.Content[0].Text, "\n") {
				t.Fatalf("result %+v: want one line of text and no error", res)
			}
			c := jsonschema.NewCompiler()
			doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(tl.OutputSchema)))
			if err := c.AddResource("out.json", doc); err != nil {
				t.Fatal(err)
			}
			sch := c.MustCompile("out.json")
			v, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(res.StructuredContent)))
			if err := sch.Validate(v); err != nil {
				t.Errorf("result %s does not match the output schema: %v", res.StructuredContent, err)
			}
		})
	}
}

func TestSRv6PingProgressAndMissingSID(t *testing.T) {
	n := triangle(t)
	r := newRegistry(t, n, "PE-1", device.RegistryOptions{})
	var mu sync.Mutex
	var last, total float64
	req := device.ToolRequest{Name: "ietf-srv6-ping", Arguments: json.RawMessage(`{"sidList":["P-2"],"tail":"PE-3","count":50}`),
		Progress: func(done, tot float64, _ string) { mu.Lock(); last, total = done, tot; mu.Unlock() }}
	if _, err := r.CallTool(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if last != 50 || total != 50 {
		t.Errorf("last progress %v/%v, want 50/50", last, total)
	}
	undo, err := n.Inject(simulate.MissingSID{Node: "PE-3"})
	if err != nil {
		t.Fatal(err)
	}
	defer undo()
	res, err := r.CallTool(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Received int
		Error    string
		Path     []string
	}
	_ = json.Unmarshal(res.StructuredContent, &out)
	if out.Received != 0 || !strings.Contains(out.Error, "fc00:0:3::1") || !strings.Contains(res.Content[0].Text, "fc00:0:3::1") {
		t.Errorf("with PE-3's SID missing: %+v / %q; want every probe lost and the SID named", out, res.Content[0].Text)
	}
	if d := cmp.Diff([]string{"fc00:0:2::1", "fc00:0:3::1"}, out.Path); d != "" {
		t.Errorf("path (-want +got):\n%s", d)
	}
}

func consentFor(node, tool string, args map[string]any, ts time.Time) (json.RawMessage, json.RawMessage) {
	a, _ := json.Marshal(args)
	c, _ := json.Marshal(device.Consent{Tool: tool, Arguments: a, Node: node, RollbackSeconds: args["rollbackSeconds"].(int),
		Operator: devicetest.Operator, Timestamp: ts})
	return a, c
}

func TestConsentChecks(t *testing.T) {
	n := triangle(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r := newRegistry(t, n, "PE-1", device.RegistryOptions{Clock: func() time.Time { return now }})
	args := map[string]any{"acl": "2001", "rule": "20", "enabled": false, "rollbackSeconds": 60}
	call := func(a, c json.RawMessage) error {
		_, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolACLRuleSet, Arguments: a, Consent: c})
		return err
	}
	a, stale := consentFor("PE-1", device.ToolACLRuleSet, args, now.Add(-10*time.Minute))
	_, future := consentFor("PE-1", device.ToolACLRuleSet, args, now.Add(10*time.Minute))
	_, fresh := consentFor("PE-1", device.ToolACLRuleSet, args, now.Add(-time.Minute))
	// Reordered keys and white space are the same arguments.
	reordered := json.RawMessage(`{ "rollbackSeconds": 60, "enabled": false, "rule": "20", "acl": "2001" }`)
	tests := []struct {
		name    string
		args    json.RawMessage
		consent json.RawMessage
		wantErr bool
	}{
		{"stale", a, stale, true},
		{"future", a, future, true},
		{"malformed", a, json.RawMessage(`{"tool":`), true},
		{"fresh, reordered arguments", reordered, fresh, false},
		{"replayed", a, fresh, true},
	}
	for _, tt := range tests {
		err := call(tt.args, tt.consent)
		var me *mcp.Error
		if tt.wantErr && (!errors.As(err, &me) || me.Code != mcp.CodeConsentRequired) {
			t.Errorf("%s: err = %v, want consent required", tt.name, err)
		}
		if !tt.wantErr && err != nil {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if p := r.PendingChanges(); len(p) != 1 || p[0].Operator != devicetest.Operator || p[0].Previous != true || p[0].Enabled {
		t.Errorf("PendingChanges = %+v, want the one accepted change", p)
	}

	noVerifier := device.NewRegistry(r.Backend(), device.RegistryOptions{})
	defer noVerifier.Close()
	_, c := consentFor("PE-1", device.ToolACLRuleSet, args, time.Now())
	_, err := noVerifier.CallTool(context.Background(), device.ToolRequest{Name: device.ToolACLRuleSet, Arguments: a, Consent: c})
	var me *mcp.Error
	if !errors.As(err, &me) || me.Code != mcp.CodeConsentRequired {
		t.Errorf("registry without verifier: err = %v, want consent required", err)
	}
}

func TestConsentPayloadIgnoresFormatting(t *testing.T) {
	c1 := device.Consent{Tool: "acl-rule-set", Arguments: json.RawMessage(`{"b":1, "a":[true]}`), Node: "x", Signature: []byte{1}}
	c2 := c1
	c2.Arguments = json.RawMessage(`{"a":[true],"b":1}`)
	c2.Signature = []byte{2}
	p1, err1 := c1.Payload()
	p2, err2 := c2.Payload()
	if err1 != nil || err2 != nil || string(p1) != string(p2) {
		t.Errorf("payloads differ: %s vs %s (%v %v)", p1, p2, err1, err2)
	}
	c2.Node = "y"
	if p3, _ := c2.Payload(); string(p3) == string(p1) {
		t.Errorf("payload does not cover the node")
	}
}

func ruleEnabled(t testing.TB, b device.Backend, acl, rule string) bool {
	t.Helper()
	acls, _ := b.ACLs(context.Background())
	for _, a := range acls {
		for _, r := range a.Rules {
			if a.Name == acl && r.ID == rule {
				return r.Enabled
			}
		}
	}
	t.Fatalf("no rule %s/%s", acl, rule)
	return false
}

func TestRollbackTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := triangle(t)
		r := newRegistry(t, n, "PE-1", device.RegistryOptions{})
		a, c := consentFor("PE-1", device.ToolACLRuleSet, map[string]any{"acl": "2001", "rule": "20", "enabled": false, "rollbackSeconds": 30}, time.Now())
		res, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolACLRuleSet, Arguments: a, Consent: c, Caller: "PE-2"})
		if err != nil {
			t.Fatal(err)
		}
		var ch device.Change
		_ = json.Unmarshal(res.StructuredContent, &ch)
		if ch.RollbackAt.Sub(ch.Created) != 30*time.Second {
			t.Errorf("rollbackAt - created = %v, want 30s", ch.RollbackAt.Sub(ch.Created))
		}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if ruleEnabled(t, r.Backend(), "2001", "20") || len(r.PendingChanges()) != 1 {
			t.Fatalf("rolled back before the timer")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !ruleEnabled(t, r.Backend(), "2001", "20") {
			t.Fatalf("not rolled back after the timer")
		}
		got := r.Changes()
		if len(got) != 1 || got[0].State != device.StateRolledBack || len(r.PendingChanges()) != 0 {
			t.Errorf("changes = %+v, want one rolled-back", got)
		}
		// A rolled-back change cannot be confirmed.
		ca, _ := json.Marshal(map[string]string{"change": ch.ID})
		_, err = r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeConfirm, Arguments: ca, Caller: "PE-2"})
		var me *mcp.Error
		if !errors.As(err, &me) || me.Code != mcp.CodeInvalidParams || !strings.Contains(me.Message, "rolled-back") {
			t.Errorf("confirming a rolled-back change: %v", err)
		}
	})
}

func TestConfirmStopsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, triangle(t), "PE-1", device.RegistryOptions{})
		a, c := consentFor("PE-1", device.ToolACLRuleSet, map[string]any{"acl": "2001", "rule": "20", "enabled": false, "rollbackSeconds": 10}, time.Now())
		res, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolACLRuleSet, Arguments: a, Consent: c})
		if err != nil {
			t.Fatal(err)
		}
		var ch device.Change
		_ = json.Unmarshal(res.StructuredContent, &ch)
		callTool(t, r, device.ToolChangeConfirm, map[string]string{"change": ch.ID})
		time.Sleep(time.Minute)
		synctest.Wait()
		if ruleEnabled(t, r.Backend(), "2001", "20") {
			t.Errorf("confirmed change rolled back")
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if ruleEnabled(t, r.Backend(), "2001", "20") {
			t.Errorf("Close rolled back a confirmed change")
		}
		if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: "ping", Arguments: json.RawMessage(`{"destination":"PE-3"}`)}); err == nil {
			t.Errorf("CallTool after Close succeeded")
		}
	})
}

func TestRollbackNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, triangle(t), "PE-1", device.RegistryOptions{})
		a, c := consentFor("PE-1", device.ToolACLRuleSet, map[string]any{"acl": "2001", "rule": "20", "enabled": false, "rollbackSeconds": 600}, time.Now())
		res, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolACLRuleSet, Arguments: a, Consent: c, Caller: "PE-1"})
		if err != nil {
			t.Fatal(err)
		}
		var ch device.Change
		_ = json.Unmarshal(res.StructuredContent, &ch)
		if ruleEnabled(t, r.Backend(), "2001", "20") {
			t.Fatal("rule still enabled after acl-rule-set")
		}
		args := json.RawMessage(`{"change":"` + ch.ID + `"}`)
		if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeRollback, Arguments: args, Caller: "P-2"}); err == nil {
			t.Error("another caller rolled the change back")
		}
		if !(len(r.PendingChanges()) == 1) {
			t.Fatalf("pending = %v, want the change still pending", r.PendingChanges())
		}
		if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeRollback, Arguments: args, Caller: "PE-1"}); err != nil {
			t.Fatal(err)
		}
		if !ruleEnabled(t, r.Backend(), "2001", "20") {
			t.Error("rule not restored by change-rollback")
		}
		if len(r.PendingChanges()) != 0 {
			t.Errorf("pending after rollback = %v", r.PendingChanges())
		}
		// The timer must not act again on a rolled-back change.
		time.Sleep(time.Hour)
		synctest.Wait()
		if !ruleEnabled(t, r.Backend(), "2001", "20") {
			t.Error("rule changed after the timer of a rolled-back change")
		}
		if _, err := r.CallTool(context.Background(), device.ToolRequest{Name: device.ToolChangeConfirm, Arguments: args, Caller: "PE-1"}); err == nil {
			t.Error("confirmed a rolled-back change")
		}
	})
}

func TestCounterBaselines(t *testing.T) {
	n := triangle(t)
	r := newRegistry(t, n, "PE-1", device.RegistryOptions{})
	callTool(t, r, "ping", map[string]any{"destination": "P-2", "count": 10})
	var c1 struct{ Undo string }
	_ = json.Unmarshal(callTool(t, r, device.ToolClearCounters, map[string]any{"acl": "2001"}).StructuredContent, &c1)
	callTool(t, r, "ping", map[string]any{"destination": "P-2", "count": 3})
	var c2 struct {
		Undo       string
		Interfaces []string
	}
	_ = json.Unmarshal(callTool(t, r, device.ToolClearCounters, map[string]any{}).StructuredContent, &c2)
	if len(c2.Interfaces) != 3 {
		t.Errorf("clear-counters of everything covered %v", c2.Interfaces)
	}
	callTool(t, r, "ping", map[string]any{"destination": "P-2", "count": 2})
	type counters struct {
		ACLs []struct {
			Rules []struct {
				ID             string
				MatchedPackets uint64
			}
		}
	}
	permit := func() uint64 {
		var c counters
		_ = json.Unmarshal(callTool(t, r, "acl-counters", map[string]any{"acl": "2001"}).StructuredContent, &c)
		return c.ACLs[0].Rules[1].MatchedPackets
	}
	if got := permit(); got != 2 {
		t.Errorf("permit rule matched %d since the newest baseline, want 2", got)
	}
	callTool(t, r, device.ToolRestoreCounters, map[string]any{"undo": c2.Undo})
	if got := permit(); got != 5 {
		t.Errorf("after removing the newest baseline, matched %d, want 5 (since the older one)", got)
	}
	callTool(t, r, device.ToolRestoreCounters, map[string]any{"undo": c1.Undo})
	if got := permit(); got != 15 {
		t.Errorf("after removing every baseline, matched %d, want 15", got)
	}
}

func TestPrompts(t *testing.T) {
	r := newRegistry(t, triangle(t), "PE-1", device.RegistryOptions{})
	tests := []struct {
		name, prompt string
		args         map[string]string
		wantErr      string
		contains     []string
	}{
		{"bgp", "diagnose-bgp-down", map[string]string{"neighbor": "2001:db8::3"}, "", []string{"BGP neighbor 2001:db8::3 is down", "neighbor=2001:db8::3"}},
		{"srv6", "verify-srv6-path-loss", map[string]string{"head": "A", "via": "B", "tail": "C"}, "", []string{"from A to C via B", "sidList [B, C]"}},
		{"no nested expansion", "interface-errors", map[string]string{"interface": "{{interface}}x"}, "", []string{"interface {{interface}}x."}},
		{"missing", "verify-srv6-path-loss", map[string]string{"head": "A", "tail": "C"}, `missing required argument "via"`, nil},
		{"blank", "interface-errors", map[string]string{"interface": " "}, `missing required argument "interface"`, nil},
		{"unknown argument", "interface-errors", map[string]string{"interface": "eth1", "colour": "red"}, `unknown argument "colour"`, nil},
		{"unknown prompt", "make-coffee", nil, `unknown prompt "make-coffee"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.GetPrompt(context.Background(), tt.prompt, tt.args)
			if tt.wantErr != "" {
				var me *mcp.Error
				if !errors.As(err, &me) || me.Code != mcp.CodeInvalidParams || !strings.Contains(me.Message, tt.wantErr) {
					t.Fatalf("err = %v, want invalid params %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			text := res.Messages[0].Content.Text
			for _, c := range tt.contains {
				if !strings.Contains(text, c) {
					t.Errorf("prompt text lacks %q:\n%s", c, text)
				}
			}
			if strings.Contains(strings.ReplaceAll(text, tt.args["interface"], ""), "{{") {
				t.Errorf("unfilled placeholder in:\n%s", text)
			}
		})
	}
}

func ExampleRegistry_CallTool() {
	n, _ := simulate.NewNetwork(simulate.Triangle(), 1)
	b, _ := n.Device("PE-1")
	r := device.NewRegistry(b, device.RegistryOptions{})
	defer r.Close()
	undo, _ := n.Inject(simulate.ACLDrop{Node: "PE-1", ACL: "2001", Towards: "P-2", Rate: 0.03})
	defer undo()
	res, err := r.CallTool(context.Background(), device.ToolRequest{
		Name: "ietf-srv6-ping", Arguments: json.RawMessage(`{"head":"PE-1","sidList":["P-2","PE-3"],"count":100}`)})
	if err != nil {
		fmt.Println(err)
		return
	}
	var out struct{ Sent, Received int }
	_ = json.Unmarshal(res.StructuredContent, &out)
	fmt.Println(out.Sent, out.Received < out.Sent)
	// Output: 100 true
}

// silentBackend sends no probe and says nothing of why, as a careless
// backend might: the registry must still not report a loss figure.
type silentBackend struct{ device.Backend }

func (silentBackend) SRv6Ping(context.Context, device.SRv6PingRequest, device.Progress) (device.ProbeResult, error) {
	return device.ProbeResult{}, nil
}

func (silentBackend) Ping(context.Context, device.PingRequest, device.Progress) (device.ProbeResult, error) {
	return device.ProbeResult{Error: "no route to host"}, nil
}

func TestProbeThatSentNothingIsAnError(t *testing.T) {
	b, err := triangle(t).Device("PE-1")
	if err != nil {
		t.Fatal(err)
	}
	r := device.NewRegistry(silentBackend{b}, device.RegistryOptions{})
	t.Cleanup(func() { _ = r.Close() })
	for _, tt := range []struct {
		tool, args string
		want       []string
	}{
		{device.ToolSRv6Ping, `{"sidList":["P-2","PE-3"]}`, []string{"no probe sent", "the backend gave no reason", "P-2,PE-3"}},
		{device.ToolPing, `{"destination":"PE-3"}`, []string{"no probe sent", "no route to host", "PE-3"}},
	} {
		t.Run(tt.tool, func(t *testing.T) {
			res, err := r.CallTool(context.Background(), device.ToolRequest{Name: tt.tool, Arguments: json.RawMessage(tt.args)})
			if err != nil {
				t.Fatal(err)
			}
			if !res.IsError || res.StructuredContent != nil || len(res.Content) != 1 {
				t.Fatalf("result = %+v, want an error result and no structured content", res)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Content[0].Text, w) {
					t.Errorf("error %q lacks %q", res.Content[0].Text, w)
				}
			}
		})
	}
}

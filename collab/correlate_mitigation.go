package collab

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// DefaultRollbackSeconds is the rollback timer proposed with a mitigation:
// five minutes leaves time to re-probe and for the operator to confirm,
// and bounds the damage of a wrong change (draft 003 §7.1).
const DefaultRollbackSeconds = 300

// Mitigation is a proposed change that needs the operator's consent.
type Mitigation struct {
	// Node to change.
	Node string
	// Tool is the mutating tool, "acl-rule-set".
	Tool string
	// Arguments of the tool: {acl, rule, enabled: false, rollbackSeconds}.
	Arguments json.RawMessage
	// Reason says why, in one sentence.
	Reason string
	// Verify is the probe to run after the change; its loss should drop
	// below LossThreshold.
	Verify Step
}

var aclSuspectRE = regexp.MustCompile(`^(ingress|egress) ACL (\S+) rule (\S+)$`)

// ProposeMitigation proposes a change for a hypothesis. Only ACL drops
// (rule acl-drop) have one: disabling the deny rule, with a rollback
// timer, verified by re-running the probe that showed the loss. Every
// other hypothesis gets none (ok false): a down link, a missing SID or a
// one-sided session needs a person to decide the fix. The rule must still
// be present, enabled and a deny rule in the node's observed ACLs.
func ProposeMitigation(h report.Hypothesis, p Plan, obs []Observation) (*Mitigation, bool) {
	if h.Rule != RuleACLDrop {
		return nil, false
	}
	m := aclSuspectRE.FindStringSubmatch(h.Suspect)
	if m == nil {
		return nil, false
	}
	dir, aclName, ruleID := m[1], m[2], m[3]
	if !ruleObserved(h.Location, aclName, ruleID, obs) {
		return nil, false
	}
	args, err := json.Marshal(struct {
		ACL             string `json:"acl"`
		Rule            string `json:"rule"`
		Enabled         bool   `json:"enabled"`
		RollbackSeconds int    `json:"rollbackSeconds"`
	}{aclName, ruleID, false, DefaultRollbackSeconds})
	if err != nil {
		return nil, false
	}
	mit := &Mitigation{
		Node:      h.Location,
		Tool:      ToolACLRuleSet,
		Arguments: args,
		Reason: fmt.Sprintf("disable deny rule %s of %s ACL %s on %s for %ds (rolled back unless confirmed): %s",
			ruleID, dir, aclName, h.Location, DefaultRollbackSeconds, h.Summary),
	}
	if v, ok := verifyStep(h, p); ok {
		mit.Verify = v
	}
	return mit, true
}

func ruleObserved(node, aclName, ruleID string, obs []Observation) bool {
	for _, o := range obs {
		if o.Step.Node != node || o.Step.Target != ToolACLCounters || o.Untrusted != "" || o.Err != "" {
			continue
		}
		body, err := unwrapResult(o.Result)
		if err != nil {
			continue
		}
		var acls []device.ACL
		if decodeList(body, "acls", &acls) != nil {
			continue
		}
		for _, a := range acls {
			if a.Name != aclName {
				continue
			}
			if slices.ContainsFunc(a.Rules, func(r device.ACLRule) bool {
				return r.ID == ruleID && r.Action == "deny" && r.Enabled
			}) {
				return true
			}
		}
	}
	return false
}

// verifyStep picks the probe that showed the loss: the one sent from the
// ACL's node (it crosses the ACL), else the plan's first probe.
func verifyStep(h report.Hypothesis, p Plan) (Step, bool) {
	isProbe := func(s Step) bool {
		return s.Method == mcp.MethodToolsCall && (s.Target == ToolSRv6Ping || s.Target == ToolPing)
	}
	pick := -1
	for i, s := range p.Steps {
		if isProbe(s) && s.Node == h.Location {
			pick = i
			break
		}
	}
	if pick < 0 {
		pick = slices.IndexFunc(p.Steps, isProbe)
	}
	if pick < 0 {
		return Step{}, false
	}
	v := p.Steps[pick]
	v.ID += "/verify"
	v.Phase = 0
	v.Undo = false
	v.Purpose = "re-probe after the change: the loss should be gone"
	return v, true
}

package node

import (
	"maps"
	"slices"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/signing"
)

// policyFrom builds the whitelist of neighbour-callable capabilities. With
// no configured default, peers may call every capability whose tools are
// all read-only (plus resources and prompts) and nothing that changes the
// device: a mitigation on a remote node needs that node's operator to list
// the mutating tool for the caller's node or role explicitly.
//
// A peer whose certificate has the role "controller" gets, unless
// policy.by_role.controller is configured, every read-only capability
// plus the report resources (ietf-mcp-report), report-mark-pulled and
// privacy:3: what a controller needs to pull reports and to poll on a
// node's behalf (draft 003 §5.3.1 step 5 and Failure Handling). privacy:3
// because a report is signed as a whole: a report redacted on the way
// (draft 003 §7.5) no longer verifies, and the controller is where the
// domain's reports are archived. It gets nothing that changes the device.
func policyFrom(c PolicyConfig, reg *device.Registry) collab.Policy {
	def := c.Default
	if def == nil {
		def = readOnlyCapabilities(reg)
	}
	byRole := c.ByRole
	if _, ok := byRole[signing.RoleController]; !ok {
		byRole = maps.Clone(byRole)
		if byRole == nil {
			byRole = map[string][]string{}
		}
		ctl := append(readOnlyCapabilities(reg), controller.CapReports, controller.ToolMarkPulled, device.CapPrivacy3)
		slices.Sort(ctl)
		byRole[signing.RoleController] = slices.Compact(ctl)
	}
	return collab.StaticPolicy{ByRole: byRole, ByNode: c.ByNode, Default: def}
}

// readOnlyCapabilities lists the offered capabilities no mutating tool needs.
func readOnlyCapabilities(reg *device.Registry) []string {
	mutating := map[string]bool{}
	for _, t := range reg.ListTools(device.AllowAll{}) {
		if m, _ := t.Meta["d2d/mutating"].(bool); m {
			if c, ok := reg.Capability("tools/call", t.Name); ok {
				mutating[c] = true
			}
		}
	}
	var out []string
	for _, c := range reg.Offered() {
		if !mutating[c] {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

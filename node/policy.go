package node

import (
	"slices"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/device"
)

// policyFrom builds the whitelist of neighbour-callable capabilities. With
// no configured default, peers may call every capability whose tools are
// all read-only (plus resources and prompts) and nothing that changes the
// device: a mitigation on a remote node needs that node's operator to list
// the mutating tool for the caller's node or role explicitly.
func policyFrom(c PolicyConfig, reg *device.Registry) collab.Policy {
	def := c.Default
	if def == nil {
		def = readOnlyCapabilities(reg)
	}
	return collab.StaticPolicy{ByRole: c.ByRole, ByNode: c.ByNode, Default: def}
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

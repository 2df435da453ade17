package device

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// promptDef is one prompt template (draft §3.3): text with {{name}}
// placeholders, each of which is a declared argument.
type promptDef struct {
	prompt   mcp.Prompt
	template string
}

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z][A-Za-z0-9_-]*)\s*\}\}`)

var promptDefs = []promptDef{
	{
		prompt: mcp.Prompt{
			Name: "diagnose-bgp-down", Title: "Diagnose a BGP session that is down",
			Description: "Golden workflow for \"why is BGP neighbor X down\" (draft §4.4.2).",
			Arguments:   []mcp.PromptArgument{{Name: "neighbor", Description: "neighbor address or node name", Required: true}},
		},
		template: `Diagnose why BGP neighbor {{neighbor}} is down.
1. Call bgp-neighbors with neighbor={{neighbor}} on this node and on the neighbor; note each side's state and last error. A session Established on one side only points at the side that is not.
2. Call bfd-sessions on both sides; a BFD session Down with diagnostic "Control Detection Time Expired" means the transport path failed.
3. Call ping towards {{neighbor}}; loss means a reachability problem, no loss means a session-level problem.
4. Call acl-list and acl-counters and look for deny rules that match TCP port 179 towards {{neighbor}}.
5. Read the ietf-interfaces resource of the interface towards {{neighbor}} for oper-status and errors.
Answer with the most likely cause, the evidence for it and a safe mitigation.`,
	},
	{
		prompt: mcp.Prompt{
			Name: "verify-srv6-path-loss", Title: "Verify packet loss on an SRv6 path",
			Description: "The D2D loss localisation of draft §5.3.1.",
			Arguments: []mcp.PromptArgument{
				{Name: "head", Description: "head-end node", Required: true},
				{Name: "via", Description: "mid-point node or SID", Required: true},
				{Name: "tail", Description: "tail-end node", Required: true},
			},
		},
		template: `Verify packet loss on the SRv6 path from {{head}} to {{tail}} via {{via}}.
1. On {{head}}: ietf-srv6-ping with sidList [{{via}}, {{tail}}], count 100.
2. On {{via}}: ietf-srv6-ping with sidList [{{tail}}], count 100.
3. Read the interface statistics of {{tail}} and the ACL and interface counters of {{head}}.
Compare the loss seen from {{head}} with the loss seen from {{via}}: if {{head}} sees loss and {{via}} does not, the fault is on {{head}}'s side of {{via}} (the {{head}}→{{via}} link or an egress ACL on {{head}}); ACL deny counters that grow with the loss name the ACL. Output one sentence with the suspect object.`,
	},
	{
		prompt: mcp.Prompt{
			Name: "interface-errors", Title: "Investigate interface errors",
			Description: "Find the cause of errors or discards on one interface.",
			Arguments:   []mcp.PromptArgument{{Name: "interface", Description: "interface name", Required: true}},
		},
		template: `Investigate errors and discards on interface {{interface}}.
1. Call clear-counters with interface={{interface}}, wait while traffic flows, then call interface-counters with interface={{interface}}; restore-counters with the undo id afterwards.
2. Growing in-errors point at the link or the peer's transmitter; growing out-discards point at congestion or an egress ACL (check acl-counters).
3. Read the ietf-interfaces resource of {{interface}} for oper-status and speed, and the neighbor's interface on the same link.
Answer with the likely cause and the evidence.`,
	},
}

func promptByName(name string) (*promptDef, bool) {
	for i := range promptDefs {
		if promptDefs[i].prompt.Name == name {
			return &promptDefs[i], true
		}
	}
	return nil, false
}

// ListPrompts lists the prompts g allows, sorted by name.
func (r *Registry) ListPrompts(g Grant) []mcp.Prompt {
	if g == nil || !g.Allows(CapPrompts) {
		return nil
	}
	out := make([]mcp.Prompt, 0, len(promptDefs))
	for _, p := range promptDefs {
		q := p.prompt
		q.Arguments = slices.Clone(q.Arguments)
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// GetPrompt fills a prompt's placeholders. A missing required or unknown
// argument, or an unknown prompt, is an *mcp.Error with CodeInvalidParams.
func (r *Registry) GetPrompt(_ context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	p, ok := promptByName(name)
	if !ok {
		return nil, mcp.Errorf(mcp.CodeInvalidParams, "unknown prompt %q", name)
	}
	text, err := render(p, args)
	if err != nil {
		return nil, err
	}
	return &mcp.GetPromptResult{
		Description: p.prompt.Description,
		Messages:    []mcp.PromptMessage{{Role: "user", Content: mcp.TextContent(text)}},
	}, nil
}

func render(p *promptDef, args map[string]string) (string, error) {
	declared := map[string]bool{}
	for _, a := range p.prompt.Arguments {
		declared[a.Name] = true
		if a.Required && strings.TrimSpace(args[a.Name]) == "" {
			return "", mcp.Errorf(mcp.CodeInvalidParams, "prompt %s: missing required argument %q", p.prompt.Name, a.Name)
		}
	}
	for k := range args {
		if !declared[k] {
			return "", mcp.Errorf(mcp.CodeInvalidParams, "prompt %s: unknown argument %q", p.prompt.Name, k)
		}
	}
	// One pass: a value that itself contains {{...}} is not expanded.
	return placeholder.ReplaceAllStringFunc(p.template, func(m string) string {
		return args[placeholder.FindStringSubmatch(m)[1]] // an optional argument left out is empty
	}), nil
}

package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// Tool names.
const (
	ToolSRv6Ping          = "ietf-srv6-ping"
	ToolPing              = "ping"
	ToolTraceroute        = "traceroute"
	ToolInterfaceCounters = "interface-counters"
	ToolACLList           = "acl-list"
	ToolACLCounters       = "acl-counters"
	ToolBGPNeighbors      = "bgp-neighbors"
	ToolBFDSessions       = "bfd-sessions"
	ToolClearCounters     = "clear-counters"
	ToolRestoreCounters   = "restore-counters"
	ToolACLRuleSet        = "acl-rule-set"
	ToolChangeConfirm     = "change-confirm"
	ToolChangeRollback    = "change-rollback"
)

// Capability names that differ from the tool or resource they guard.
const (
	// CapInterfaceCounters guards the interface-counters tool (the name
	// the draft's §5.3.1 capability list uses).
	CapInterfaceCounters = "ietf-interface-counters"
	// CapInterfaces guards the ietf-interfaces resources.
	CapInterfaces = "ietf-interfaces"
	// CapPrompts guards every prompt.
	CapPrompts = "prompts"
)

// _meta keys of a tool description.
const (
	MetaMutating     = "d2d/mutating"
	MetaPrivacyLevel = "d2d/privacy-level"
	MetaCapability   = "d2d/capability"
)

// toolDef is the static description of one tool.
type toolDef struct {
	name, title, description string
	capability               string
	input, output            string // JSON Schema documents
	readOnly, idempotent     bool
	destructive, mutating    bool
	privacy                  int
	progress                 bool
}

const probeOutput = `{"type":"object","required":["node","sent","received","lossPercent"],"properties":{
 "node":{"type":"string"},
 "sent":{"type":"integer","minimum":0},
 "received":{"type":"integer","minimum":0},
 "lossPercent":{"type":"number","minimum":0,"maximum":100},
 "rttMinMs":{"type":"number"},"rttAvgMs":{"type":"number"},"rttMaxMs":{"type":"number"},
 "path":{"type":"array","items":{"type":"string"}},
 "error":{"type":"string"}}}`

const ifName = `{"type":"string","minLength":1,"maxLength":64,"pattern":"^[^\\s/]+$"}`

var toolDefs = []toolDef{
	{
		name: ToolSRv6Ping, title: "SRv6 ping",
		description: "Send probes from this node along an SRv6 segment list and report loss and round-trip times (draft-zm-rtgwg-mcp-troubleshooting-01 §5.3.1). Segments are IPv6 SIDs or node names; the tail is appended when the list does not end there.",
		capability:  ToolSRv6Ping, readOnly: true, idempotent: true, privacy: 1, progress: true,
		input: `{"type":"object","additionalProperties":false,"properties":{
 "head":{"type":"string","minLength":1,"description":"head-end node; must be this device when given"},
 "sidList":{"type":"array","minItems":1,"maxItems":16,"items":{"type":"string","minLength":1},"description":"segments: IPv6 SIDs or node names"},
 "tail":{"type":"string","minLength":1,"description":"tail-end node or SID"},
 "count":{"type":"integer","minimum":1,"maximum":10000,"default":100},
 "interval":{"type":"number","minimum":0,"maximum":10000,"description":"milliseconds between probes; default 10"},
 "timeout":{"type":"number","minimum":1,"maximum":60000,"description":"milliseconds to wait for each reply; default 1000"}},
 "anyOf":[{"required":["sidList"]},{"required":["tail"]}]}`,
		output: probeOutput,
	},
	{
		name: ToolPing, title: "Ping",
		description: "Execute ICMP/ICMPv6 echo probes towards an address or node name.",
		capability:  ToolPing, readOnly: true, idempotent: true, privacy: 1, progress: true,
		input: `{"type":"object","additionalProperties":false,"required":["destination"],"properties":{
 "destination":{"type":"string","minLength":1},
 "source":{"type":"string","minLength":1},
 "count":{"type":"integer","minimum":1,"maximum":10000,"default":5},
 "interval":{"type":"number","minimum":0,"maximum":10000,"description":"milliseconds between probes; default 10"},
 "timeout":{"type":"number","minimum":1,"maximum":60000,"description":"milliseconds to wait for each reply; default 1000"}}}`,
		output: probeOutput,
	},
	{
		name: ToolTraceroute, title: "Traceroute",
		description: "Discover the hops towards an address or node name.",
		capability:  ToolTraceroute, readOnly: true, idempotent: true, privacy: 1, progress: true,
		input: `{"type":"object","additionalProperties":false,"required":["destination"],"properties":{
 "destination":{"type":"string","minLength":1},
 "maxHops":{"type":"integer","minimum":1,"maximum":64,"default":16},
 "timeout":{"type":"number","minimum":1,"maximum":60000,"description":"milliseconds per hop; default 1000"}}}`,
		output: `{"type":"object","required":["node","destination","reached","hops"],"properties":{
 "node":{"type":"string"},"destination":{"type":"string"},"reached":{"type":"boolean"},
 "hops":{"type":"array","items":{"type":"object","required":["ttl"],"properties":{
  "ttl":{"type":"integer"},"address":{"type":"string"},"node":{"type":"string"},"rttMs":{"type":"number"},"lost":{"type":"boolean"}}}}}}`,
	},
	{
		name: ToolInterfaceCounters, title: "Interface counters",
		description: "Read interface state and RFC 8343 statistics, of one interface or all. While a clear-counters baseline is active the counters are relative to it and discontinuityTime is the baseline's time.",
		capability:  CapInterfaceCounters, readOnly: true, idempotent: true, privacy: 1,
		input: `{"type":"object","additionalProperties":false,"properties":{"interface":` + ifName + `}}`,
		output: `{"type":"object","required":["node","interfaces"],"properties":{"node":{"type":"string"},
 "interfaces":{"type":"array","items":{"type":"object","required":["name","statistics"],"properties":{
  "name":{"type":"string"},"operUp":{"type":"boolean"},"enabled":{"type":"boolean"},"baseline":{"type":"string"},
  "statistics":{"type":"object","required":["discontinuityTime"]}}}}}}`,
	},
	{
		name: ToolACLList, title: "ACL list",
		description: "List the access lists with their bindings and rules.",
		capability:  ToolACLList, readOnly: true, idempotent: true, privacy: 2,
		input:  `{"type":"object","additionalProperties":false,"properties":{"acl":{"type":"string","minLength":1}}}`,
		output: aclOutput,
	},
	{
		name: ToolACLCounters, title: "ACL counters",
		description: "Read per-rule matched packet and byte counters, relative to an active clear-counters baseline.",
		capability:  ToolACLCounters, readOnly: true, idempotent: true, privacy: 2,
		input:  `{"type":"object","additionalProperties":false,"properties":{"acl":{"type":"string","minLength":1}}}`,
		output: aclOutput,
	},
	{
		name: ToolBGPNeighbors, title: "BGP neighbors",
		description: "List the BGP sessions with their RFC 4271 FSM state.",
		capability:  ToolBGPNeighbors, readOnly: true, idempotent: true, privacy: 2,
		input: `{"type":"object","additionalProperties":false,"properties":{"neighbor":{"type":"string","minLength":1,"description":"address or node name"}}}`,
		output: `{"type":"object","required":["node","neighbors"],"properties":{"node":{"type":"string"},
 "neighbors":{"type":"array","items":{"type":"object","required":["address","state"],"properties":{"address":{"type":"string"},"state":{"type":"string"}}}}}}`,
	},
	{
		name: ToolBFDSessions, title: "BFD sessions",
		description: "List the BFD sessions with local and remote state (RFC 5880).",
		capability:  ToolBFDSessions, readOnly: true, idempotent: true, privacy: 2,
		input: `{"type":"object","additionalProperties":false,"properties":{"peer":{"type":"string","minLength":1,"description":"address or node name"}}}`,
		output: `{"type":"object","required":["node","sessions"],"properties":{"node":{"type":"string"},
 "sessions":{"type":"array","items":{"type":"object","required":["peer","localState","remoteState"],"properties":{"peer":{"type":"string"},"localState":{"type":"string"},"remoteState":{"type":"string"}}}}}}`,
	},
	{
		name: ToolClearCounters, title: "Clear counters",
		description: "Record the current interface and ACL counters as a baseline that later interface-counters and acl-counters reads subtract. The device itself is not touched; restore-counters with the returned undo id removes the baseline.",
		capability:  ToolClearCounters, privacy: 1,
		input: `{"type":"object","additionalProperties":false,"properties":{
 "interface":` + ifName + `,"acl":{"type":"string","minLength":1}}}`,
		output: `{"type":"object","required":["node","undo","interfaces","acls"],"properties":{"node":{"type":"string"},"undo":{"type":"string"},
 "interfaces":{"type":"array","items":{"type":"string"}},"acls":{"type":"array","items":{"type":"string"}},"created":{"type":"string"}}}`,
	},
	{
		name: ToolRestoreCounters, title: "Restore counters",
		description: "Remove a clear-counters baseline, so that counters read absolute again.",
		capability:  ToolRestoreCounters, idempotent: true, privacy: 1,
		input:  `{"type":"object","additionalProperties":false,"required":["undo"],"properties":{"undo":{"type":"string","minLength":1}}}`,
		output: `{"type":"object","required":["node","undo","restored"],"properties":{"node":{"type":"string"},"undo":{"type":"string"},"restored":{"type":"boolean"}}}`,
	},
	{
		name: ToolACLRuleSet, title: "Enable or disable an ACL rule",
		description: "Enable or disable one ACL rule. Needs a signed operator consent for exactly these arguments. The change rolls back after rollbackSeconds unless change-confirm confirms it.",
		capability:  ToolACLRuleSet, idempotent: true, destructive: true, mutating: true, privacy: 2,
		input: `{"type":"object","additionalProperties":false,"required":["acl","rule","enabled","rollbackSeconds"],"properties":{
 "acl":{"type":"string","minLength":1},"rule":{"type":"string","minLength":1},"enabled":{"type":"boolean"},
 "rollbackSeconds":{"type":"integer","minimum":1,"maximum":86400}}}`,
		output: changeOutput,
	},
	{
		name: ToolChangeConfirm, title: "Confirm a change",
		description: "Confirm a pending change so that its rollback timer no longer restores the previous state. Only the caller that made the change may confirm it.",
		capability:  ToolChangeConfirm, idempotent: true, privacy: 2,
		input:  `{"type":"object","additionalProperties":false,"required":["change"],"properties":{"change":{"type":"string","minLength":1}}}`,
		output: changeOutput,
	},
	{
		name: ToolChangeRollback, title: "Roll a change back now",
		description: "Restore the state before a pending change without waiting for its rollback timer, as an operator does who sees the mitigation did not help. Only the caller that made the change may roll it back.",
		// Rolling back only restores what consent allowed to change, so
		// it rides on the capability of confirming.
		capability: ToolChangeConfirm, idempotent: true, privacy: 2,
		input:  `{"type":"object","additionalProperties":false,"required":["change"],"properties":{"change":{"type":"string","minLength":1}}}`,
		output: changeOutput,
	},
}

const aclOutput = `{"type":"object","required":["node","acls"],"properties":{"node":{"type":"string"},
 "acls":{"type":"array","items":{"type":"object","required":["name","direction","rules"],"properties":{
  "name":{"type":"string"},"interface":{"type":"string"},"direction":{"type":"string"},
  "rules":{"type":"array","items":{"type":"object","required":["id","action","enabled"],"properties":{
   "id":{"type":"string"},"action":{"type":"string"},"enabled":{"type":"boolean"},
   "matchedPackets":{"type":"integer","minimum":0},"matchedBytes":{"type":"integer","minimum":0}}}}}}}}}`

const changeOutput = `{"type":"object","required":["id","tool","state"],"properties":{
 "id":{"type":"string"},"tool":{"type":"string"},"node":{"type":"string"},"acl":{"type":"string"},"rule":{"type":"string"},
 "enabled":{"type":"boolean"},"previous":{"type":"boolean"},"state":{"type":"string","enum":["pending","confirmed","rolled-back","rollback-failed"]},
 "caller":{"type":"string"},"operator":{"type":"string"},"created":{"type":"string"},"rollbackAt":{"type":"string"}}}`

// compiledTool is a toolDef with its schemas compiled and its MCP
// description built.
type compiledTool struct {
	def    toolDef
	input  *jsonschema.Schema
	output *jsonschema.Schema
	desc   mcp.Tool
}

// compiledTools compiles every schema once per process.
var compiledTools = sync.OnceValue(func() map[string]*compiledTool {
	out := make(map[string]*compiledTool, len(toolDefs))
	for _, d := range toolDefs {
		out[d.name] = &compiledTool{
			def:    d,
			input:  mustCompile("mem://d2d/tools/"+d.name+"/input.json", d.input),
			output: mustCompile("mem://d2d/tools/"+d.name+"/output.json", d.output),
			desc:   describe(d),
		}
	}
	return out
})

func mustCompile(url, doc string) *jsonschema.Schema {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		panic(fmt.Sprintf("device: schema %s: %v", url, err))
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, v); err != nil {
		panic(fmt.Sprintf("device: schema %s: %v", url, err))
	}
	return c.MustCompile(url)
}

func describe(d toolDef) mcp.Tool {
	destructive := d.destructive
	openWorld := false
	return mcp.Tool{
		Name:         d.name,
		Title:        d.title,
		Description:  d.description,
		InputSchema:  compact(d.input),
		OutputSchema: compact(d.output),
		Annotations: &mcp.ToolAnnotations{
			Title:           d.title,
			ReadOnlyHint:    d.readOnly,
			DestructiveHint: &destructive,
			IdempotentHint:  d.idempotent,
			OpenWorldHint:   &openWorld,
		},
		Meta: map[string]any{
			MetaMutating:     d.mutating,
			MetaPrivacyLevel: d.privacy,
			MetaCapability:   d.capability,
		},
	}
}

func compact(s string) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(fmt.Sprintf("device: schema: %v", err))
	}
	return b.Bytes()
}

var printer = message.NewPrinter(language.English)

// validateArgs checks args against the tool's input schema and returns an
// invalid-params error that names the offending field.
func validateArgs(t *compiledTool, args json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		args = json.RawMessage("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(args))
	if err != nil {
		return nil, invalidParams(t.def.name, "", "arguments are not valid JSON: "+err.Error())
	}
	if err := t.input.Validate(v); err != nil {
		ve, ok := err.(*jsonschema.ValidationError)
		if !ok {
			return nil, invalidParams(t.def.name, "", err.Error())
		}
		field, reason := leafError(ve)
		return nil, invalidParams(t.def.name, field, reason)
	}
	return args, nil
}

// leafError picks the first most specific cause of a validation error and
// names the field it concerns as a JSON pointer.
func leafError(ve *jsonschema.ValidationError) (field, reason string) {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	field = "/" + strings.Join(ve.InstanceLocation, "/")
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		if len(k.Missing) > 0 {
			field = strings.TrimSuffix(field, "/") + "/" + k.Missing[0]
		}
	case *kind.AdditionalProperties:
		if len(k.Properties) > 0 {
			field = strings.TrimSuffix(field, "/") + "/" + k.Properties[0]
		}
	}
	return field, ve.ErrorKind.LocalizedString(printer)
}

// invalidParams builds the JSON-RPC error for a bad argument; Data names
// the field so that programs need not parse the message.
func invalidParams(tool, field, reason string) *mcp.Error {
	msg := fmt.Sprintf("tool %s: invalid arguments: %s", tool, reason)
	if field != "" && field != "/" {
		msg = fmt.Sprintf("tool %s: invalid argument %q: %s", tool, strings.TrimPrefix(field, "/"), reason)
	}
	data, _ := json.Marshal(struct {
		Tool   string `json:"tool"`
		Field  string `json:"field,omitempty"`
		Reason string `json:"reason"`
	}{tool, field, reason})
	return &mcp.Error{Code: mcp.CodeInvalidParams, Message: msg, Data: data}
}

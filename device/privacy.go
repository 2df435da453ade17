package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// Privacy levels of draft-zm-rtgwg-mcp-troubleshooting-01 §7.5, as carried
// in a tool's _meta "d2d/privacy-level":
//
//	1  operational state and measurements: counters, loss, RTT, FSM states
//	2  infrastructure configuration: ACL rules, BGP/BFD peers, node names
//	3  customer data: anything that identifies a subscriber or host
//
// What counts as customer data (level 3), wherever it appears in a tool
// result or a resource document:
//
//   - link-layer addresses: members "phys-address" (RFC 8343) and
//     "physAddress" — removed;
//   - interface IP addresses: members "addresses" (CIDR strings) and the
//     "ip" leaf of an ietf-ip address entry (RFC 8344, an object with
//     "prefix-length") — the host part is zeroed, so "10.0.12.1/30"
//     becomes "10.0.12.0/30": which subnets two devices share stays
//     visible for correlation, which host holds an address does not.
//
// Callers without the "privacy:3" capability or token scope get results
// redacted this way; the JSON pointers of what was changed are listed in
// the result's _meta[MetaRedacted] so that a reader knows the data is not
// the device's whole truth.
const (
	PrivacyOperational   = 1
	PrivacyInfrastucture = 2
	PrivacyCustomer      = 3
)

// CapPrivacy3 is the capability (or token scope) that lifts level 3
// redaction. It is never implied by a "*" policy: seeing customer data
// must be granted by name.
const CapPrivacy3 = "privacy:3"

// MetaRedacted is the _meta key listing redacted JSON pointers.
const MetaRedacted = "d2d/redacted"

// Redacted is one redacted field.
type Redacted struct {
	// URI names the resource contents the pointer applies to; empty for
	// a tool's structuredContent.
	URI string `json:"uri,omitempty"`
	// Pointer is the RFC 6901 JSON pointer of the field.
	Pointer string `json:"pointer"`
	// Action is "removed" or "host-bits-zeroed".
	Action string `json:"action"`
	Level  int    `json:"level"`
}

// RedactJSON returns doc with its customer data redacted and the list of
// redactions. A document that is not JSON is returned unchanged: only
// structured data is interpreted.
func RedactJSON(doc []byte) ([]byte, []Redacted, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return doc, nil, nil
	}
	var red []Redacted
	v = redactValue(v, "", &red)
	if len(red) == 0 {
		return doc, nil, nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("device: redact: %w", err)
	}
	return out, red, nil
}

func redactValue(v any, ptr string, red *[]Redacted) any {
	switch x := v.(type) {
	case map[string]any:
		_, isIPEntry := x["prefix-length"]
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic order of the redaction list
		for _, k := range keys {
			p := ptr + "/" + escapePointer(k)
			switch {
			case k == "phys-address" || k == "physAddress":
				delete(x, k)
				*red = append(*red, Redacted{Pointer: p, Action: "removed", Level: PrivacyCustomer})
			case k == "addresses":
				if l, ok := x[k].([]any); ok {
					for i, e := range l {
						if s, ok := e.(string); ok {
							l[i] = subnetOf(s)
							*red = append(*red, Redacted{Pointer: p + "/" + strconv.Itoa(i), Action: "host-bits-zeroed", Level: PrivacyCustomer})
						}
					}
					continue
				}
				x[k] = redactValue(x[k], p, red)
			case k == "ip" && isIPEntry:
				if s, ok := x[k].(string); ok {
					x[k] = hostZeroed(s, x["prefix-length"])
					*red = append(*red, Redacted{Pointer: p, Action: "host-bits-zeroed", Level: PrivacyCustomer})
				}
			default:
				x[k] = redactValue(x[k], p, red)
			}
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = redactValue(e, ptr+"/"+strconv.Itoa(i), red)
		}
		return x
	}
	return v
}

// subnetOf turns "10.0.12.1/30" into "10.0.12.0/30"; anything that is not
// a prefix becomes "redacted", since it cannot be reduced safely.
func subnetOf(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, err := netip.ParseAddr(s); err == nil {
			// A bare address says nothing about its subnet.
			return netip.PrefixFrom(a, 0).Masked().String()
		}
		return "redacted"
	}
	return p.Masked().String()
}

func hostZeroed(ip string, plen any) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "redacted"
	}
	n, err := strconv.Atoi(fmt.Sprint(plen))
	if err != nil || n < 0 || n > a.BitLen() {
		n = 0
	}
	p, _ := a.Prefix(n)
	return p.Addr().String()
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// RedactToolResult returns r with its structuredContent redacted
// (RedactJSON) and the redactions listed in _meta[MetaRedacted]; r itself
// is not changed, and is returned as is when nothing was redacted.
func RedactToolResult(r *mcp.CallToolResult) (*mcp.CallToolResult, error) {
	if len(r.StructuredContent) == 0 {
		return r, nil
	}
	out, red, err := RedactJSON(r.StructuredContent)
	if err != nil || len(red) == 0 {
		return r, err
	}
	c := *r
	c.StructuredContent = out
	c.Meta = withRedacted(r.Meta, red)
	return &c, nil
}

// RedactResource returns r with every JSON text content redacted
// (RedactJSON, its content id recomputed) and the redactions, each
// naming its content's URI, listed in _meta[MetaRedacted]; r itself is
// not changed.
func RedactResource(r *mcp.ReadResourceResult) (*mcp.ReadResourceResult, error) {
	c := *r
	c.Contents = slices.Clone(r.Contents)
	var all []Redacted
	for i := range c.Contents {
		rc := &c.Contents[i]
		if rc.Text == "" || !strings.Contains(rc.MimeType, "json") {
			continue
		}
		out, red, err := RedactJSON([]byte(rc.Text))
		if err != nil {
			return nil, err
		}
		if len(red) == 0 {
			continue
		}
		for j := range red {
			red[j].URI = rc.URI
		}
		all = append(all, red...)
		rc.Text = string(out)
		rc.ContentID = ContentID(out)
	}
	if len(all) > 0 {
		c.Meta = withRedacted(r.Meta, all)
	}
	return &c, nil
}

// withRedacted is a copy of meta with MetaRedacted set to red.
func withRedacted(meta map[string]any, red []Redacted) map[string]any {
	out := make(map[string]any, len(meta)+1)
	for k, v := range meta {
		out[k] = v
	}
	out[MetaRedacted] = red
	return out
}

package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

// RenderJSON writes r as indented JSON (the signed content; indentation
// does not affect verification).
func RenderJSON(w io.Writer, r *Report) error {
	b, err := Encode(r)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return fmt.Errorf("report: render: %w", err)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// RenderText writes r for a person: header, hypothesis, evidence table
// with each item's key figure, untrusted nodes, actions and signers.
func RenderText(w io.Writer, r *Report) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Report %s\n", r.ID)
	fmt.Fprintf(&b, "  uri:      %s\n", r.URI)
	fmt.Fprintf(&b, "  creator:  %s\n", r.Creator)
	fmt.Fprintf(&b, "  created:  %s\n", r.Created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "  intent:   %s\n", oneLine(r.Intent))

	b.WriteString("\nHypothesis\n")
	writeHypothesis(&b, r.Hypothesis)
	for i, h := range r.Alternatives {
		fmt.Fprintf(&b, "\nAlternative %d\n", i+1)
		writeHypothesis(&b, h)
	}

	fmt.Fprintf(&b, "\nEvidence (%d)\n", len(r.Evidence))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  REF\tNODE\tVIA\tMETHOD\tTARGET\tKEY FIGURE")
	for _, ev := range r.Evidence {
		via := ev.Via
		if via == "" {
			via = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", ev.Ref, ev.Node, via, ev.Method,
			shorten(ev.Target, 48), KeyFigure(ev))
	}
	tw.Flush()

	if len(r.Untrusted) > 0 {
		fmt.Fprintf(&b, "\nUntrusted nodes (%d)\n", len(r.Untrusted))
		for _, u := range r.Untrusted {
			fmt.Fprintf(&b, "  %s: %s\n", u.Node, oneLine(u.Reason))
		}
	}
	if len(r.Actions) > 0 {
		fmt.Fprintf(&b, "\nActions (%d)\n", len(r.Actions))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  AT\tNODE\tTOOL\tARGUMENTS\tOUTCOME\tDETAIL")
		for _, a := range r.Actions {
			consent := ""
			if len(a.Consent) == 0 {
				consent = " (no consent)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s%s\t%s\n", a.At.UTC().Format(time.RFC3339), a.Node, a.Tool,
				shorten(compactJSON(a.Arguments), 40), a.Outcome, consent, oneLine(a.Detail))
		}
		tw.Flush()
	}
	b.WriteString("\nSignatures\n")
	for _, n := range slices.Sorted(maps.Keys(r.Signatures)) {
		role := "co-signer"
		if n == r.Creator {
			role = "creator"
		}
		fmt.Fprintf(&b, "  %s (%s) key %s\n", n, role, shortHex(r.Signatures[n].KeyID.String()))
	}
	if len(r.Signatures) == 0 {
		b.WriteString("  none (unsigned)\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeHypothesis(b *bytes.Buffer, h Hypothesis) {
	fmt.Fprintf(b, "  %s\n", oneLine(h.Summary))
	if h.Location != "" {
		fmt.Fprintf(b, "  location:   %s\n", h.Location)
	}
	if h.Suspect != "" {
		fmt.Fprintf(b, "  suspect:    %s\n", h.Suspect)
	}
	fmt.Fprintf(b, "  confidence: %.2f\n", h.Confidence)
	if h.Rule != "" {
		fmt.Fprintf(b, "  rule:       %s\n", h.Rule)
	}
	if len(h.EvidenceRefs) > 0 {
		fmt.Fprintf(b, "  evidence:   %s\n", strings.Join(h.EvidenceRefs, ", "))
	}
}

// KeyFigure picks the figure of an evidence result a person looks at
// first: loss of a probe, error and discard counters of an interface,
// matches of a deny rule, a session state; otherwise the start of the
// text. It understands MCP tool results (structuredContent, or JSON text
// content) and resource contents (JSON text, e.g. RFC 7951 YANG data).
func KeyFigure(ev signing.Evidence) string {
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent json.RawMessage `json:"structuredContent"`
		IsError           bool            `json:"isError"`
		Contents          []struct {
			Text string `json:"text"`
		} `json:"contents"`
	}
	if json.Unmarshal(ev.Result, &res) != nil {
		return shorten(compactJSON(ev.Result), 40)
	}
	var text string
	for _, c := range res.Content {
		if c.Type == "text" || c.Type == "" {
			text = c.Text
			break
		}
	}
	if text == "" && len(res.Contents) > 0 {
		text = res.Contents[0].Text
	}
	if res.IsError {
		return "error: " + shorten(oneLine(text), 40)
	}
	var payload any
	if len(res.StructuredContent) == 0 || json.Unmarshal(res.StructuredContent, &payload) != nil {
		if json.Unmarshal([]byte(text), &payload) != nil {
			payload = nil
		}
	}
	if payload != nil {
		if f := figures(payload); f != "" {
			return f
		}
	}
	if text != "" {
		return shorten(oneLine(text), 40)
	}
	return "-"
}

// figures collects well-known leaves from a decoded JSON value.
func figures(v any) string {
	leaves := map[string]any{}
	var denyMatches float64
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 12 {
			return
		}
		switch t := v.(type) {
		case map[string]any:
			if t["action"] == "deny" {
				if m, ok := num(t["matchedPackets"]); ok {
					denyMatches += m
				}
			}
			for k, x := range t {
				// RFC 7951 qualifies names with their module: "ietf-interfaces:in-errors".
				if _, local, ok := strings.Cut(k, ":"); ok {
					k = local
				}
				k = strings.ToLower(strings.ReplaceAll(k, "-", ""))
				if _, seen := leaves[k]; !seen {
					switch x.(type) {
					case map[string]any, []any:
					default:
						leaves[k] = x
					}
				}
				walk(x, depth+1)
			}
		case []any:
			for _, x := range t {
				walk(x, depth+1)
			}
		}
	}
	walk(v, 0)

	var parts []string
	if loss, ok := num(leaves["losspercent"]); ok {
		s := "loss " + strconv.FormatFloat(loss, 'f', -1, 64) + "%"
		if sent, ok := num(leaves["sent"]); ok {
			if recv, ok := num(leaves["received"]); ok {
				s += fmt.Sprintf(" (%g/%g)", recv, sent)
			}
		}
		parts = append(parts, s)
	}
	if e, ok := leaves["error"].(string); ok && e != "" {
		parts = append(parts, shorten(oneLine(e), 40))
	}
	if st, ok := leaves["operstatus"].(string); ok {
		parts = append(parts, "oper "+st)
	} else if up, ok := leaves["operup"].(bool); ok {
		parts = append(parts, map[bool]string{true: "oper up", false: "oper down"}[up])
	}
	// Non-zero error counters first; zeros still say "looked, clean".
	var zeros []string
	for _, k := range []struct{ key, label string }{
		{"inerrors", "in-errors"}, {"indiscards", "in-discards"},
		{"outerrors", "out-errors"}, {"outdiscards", "out-discards"},
	} {
		if n, ok := num(leaves[k.key]); ok {
			if n != 0 {
				parts = append(parts, fmt.Sprintf("%s %g", k.label, n))
			} else {
				zeros = append(zeros, fmt.Sprintf("%s 0", k.label))
			}
		}
	}
	parts = append(parts, zeros...)
	if denyMatches > 0 {
		parts = append(parts, fmt.Sprintf("deny matched %g pkts", denyMatches))
	}
	if st, ok := leaves["state"].(string); ok && len(parts) == 0 {
		parts = append(parts, "state "+st)
	}
	if r, ok := leaves["reached"].(bool); ok && len(parts) == 0 {
		parts = append(parts, map[bool]string{true: "reached", false: "not reached"}[r])
	}
	if len(parts) > 3 {
		parts = parts[:3]
	}
	return strings.Join(parts, ", ")
}

// num reads a JSON number, or a decimal string as RFC 7951 encodes 64-bit
// counters.
func num(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case string:
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	}
	return 0, false
}

func compactJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return "-"
	}
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return string(b)
	}
	return out.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func shorten(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// RenderSVG writes a small picture: the report's nodes in a row in plan
// order joined by links, the hypothesis location in red (a node, or the
// link between two adjacent nodes), untrusted nodes dashed and grey, the
// suspect and summary as captions. Pure SVG 1.1 text.
func RenderSVG(w io.Writer, r *Report) error {
	nodes := r.Nodes()
	const (
		gap    = 170
		margin = 90
		cy     = 110
		rad    = 34
	)
	width := max(2*margin+gap*(len(nodes)-1), 480)
	height := 230
	untrusted := map[string]bool{}
	for _, u := range r.Untrusted {
		untrusted[u.Node] = true
	}
	loc := strings.TrimSpace(r.Hypothesis.Location)
	from, to, isLink := linkEnds(loc)
	x := func(i int) int { return margin + i*gap }
	esc := html.EscapeString

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="14">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, "<title>%s</title>\n", esc("d2d report "+r.ID))
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="12" y="24" font-weight="bold">%s</text>`+"\n", esc(shorten(oneLine(r.Intent), 90)))
	for i := 0; i+1 < len(nodes); i++ {
		a, c := nodes[i], nodes[i+1]
		hot := isLink && ((a == from && c == to) || (a == to && c == from))
		stroke, sw := "#555555", 3
		if hot {
			stroke, sw = "#d62728", 6
		}
		dash := ""
		if untrusted[a] || untrusted[c] {
			dash = ` stroke-dasharray="6 5"`
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%d"%s/>`+"\n",
			x(i)+rad, cy, x(i+1)-rad, cy, stroke, sw, dash)
		if hot && r.Hypothesis.Suspect != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#d62728">%s</text>`+"\n",
				(x(i)+x(i+1))/2, cy-14, esc(shorten(r.Hypothesis.Suspect, 24)))
		}
	}
	for i, n := range nodes {
		fill, stroke, dash := "#e8f0fe", "#1f4e9e", ""
		switch {
		case !isLink && n == loc:
			fill, stroke = "#fde0dc", "#d62728"
		case untrusted[n]:
			fill, stroke, dash = "#eeeeee", "#999999", ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="%d" fill="%s" stroke="%s" stroke-width="3"%s/>`+"\n",
			x(i), cy, rad, fill, stroke, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n",
			x(i), cy+5, esc(shorten(n, 10)))
		caption := ""
		switch {
		case !isLink && n == loc:
			caption = r.Hypothesis.Suspect
		case untrusted[n]:
			caption = "untrusted"
		case n == r.Creator:
			caption = "creator"
		}
		if caption != "" {
			color := "#555555"
			if !isLink && n == loc {
				color = "#d62728"
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n",
				x(i), cy+rad+20, color, esc(shorten(caption, 24)))
		}
	}
	summary := r.Hypothesis.Summary
	if r.Hypothesis.Confidence > 0 {
		summary += fmt.Sprintf(" (confidence %.2f)", r.Hypothesis.Confidence)
	}
	fmt.Fprintf(&b, `<text x="12" y="%d">%s</text>`+"\n", height-20, esc(shorten(oneLine(summary), 110)))
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

package node

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// renderIntentResult prints an intent's answer as an engineer reads it:
// the hypothesis first, then the evidence it rests on, then what was not
// trusted and what is proposed.
func renderIntentResult(w io.Writer, res *IntentResult) {
	if res == nil {
		return
	}
	if res.Info != "" {
		fmt.Fprint(w, res.Info)
		if !strings.HasSuffix(res.Info, "\n") {
			fmt.Fprintln(w)
		}
	}
	r := res.Report
	if r == nil {
		return
	}
	h := r.Hypothesis
	fmt.Fprintf(w, "\nHYPOTHESIS  %s\n", h.Summary)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if h.Location != "" {
		fmt.Fprintf(tw, "  location\t%s\n", h.Location)
	}
	if h.Suspect != "" {
		fmt.Fprintf(tw, "  suspect\t%s\n", h.Suspect)
	}
	fmt.Fprintf(tw, "  confidence\t%.2f\t(rule %s)\n", h.Confidence, h.Rule)
	if len(h.EvidenceRefs) > 0 {
		fmt.Fprintf(tw, "  evidence\t%s\n", strings.Join(h.EvidenceRefs, " "))
	}
	tw.Flush()
	for _, a := range r.Alternatives {
		fmt.Fprintf(w, "  also possible (%.2f): %s\n", a.Confidence, a.Summary)
	}
	renderEvidence(w, r.Evidence)
	if len(r.Untrusted) > 0 {
		fmt.Fprintln(w, "\nUNTRUSTED")
		for _, u := range r.Untrusted {
			fmt.Fprintf(w, "  %s: %s\n", u.Node, u.Reason)
		}
	}
	where := "not stored"
	if res.Stored {
		where = "stored on this node"
	}
	if res.Pushed != "" {
		where += ", " + res.Pushed
	}
	fmt.Fprintf(w, "\nREPORT  %s (%s)\n", r.URI, where)
	if p := res.Mitigation; p != nil {
		fmt.Fprintf(w, "\nPROPOSED MITIGATION on %s: %s %s\n  %s\n", p.Node, p.Tool, p.Arguments, p.Reason)
	}
}

// renderEvidence prints one line per signed result with its key figure.
func renderEvidence(w io.Writer, evs []signing.Evidence) {
	if len(evs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEVIDENCE (each signed by its node)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  REF\tNODE\tCALL\tRESULT\tVIA\tNONCE")
	for _, ev := range evs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\n", ev.Ref, ev.Node, shortTarget(ev), Figure(ev), ev.Via, ev.Envelope.Nonce)
	}
	tw.Flush()
}

func shortTarget(ev signing.Evidence) string {
	t := ev.Target
	if ev.Method == "resources/read" {
		if i := strings.Index(t, "/ietf-"); i >= 0 {
			t = t[i+1:]
		}
		return "read " + t
	}
	return t
}

// Figure extracts the one number an engineer looks for in a result: loss
// for probes, drops for ACLs, errors for interfaces.
func Figure(ev signing.Evidence) string {
	var res struct {
		Structured json.RawMessage `json:"structuredContent"`
		IsError    bool            `json:"isError"`
		Content    []struct {
			Text string `json:"text"`
		} `json:"content"`
		Contents []struct {
			Text string `json:"text"`
		} `json:"contents"`
	}
	if json.Unmarshal(ev.Result, &res) != nil {
		return "?"
	}
	if res.IsError {
		if len(res.Content) > 0 {
			return "error: " + res.Content[0].Text
		}
		return "error"
	}
	if len(res.Content) > 0 && res.Content[0].Text != "" {
		return clip(res.Content[0].Text, 60)
	}
	if len(res.Contents) > 0 {
		var doc struct {
			Ifs struct {
				Interface []struct {
					Name  string            `json:"name"`
					Oper  string            `json:"oper-status"`
					Stats map[string]string `json:"statistics"`
				} `json:"interface"`
			} `json:"ietf-interfaces:interfaces"`
		}
		if json.Unmarshal([]byte(res.Contents[0].Text), &doc) == nil && len(doc.Ifs.Interface) > 0 {
			var parts []string
			for _, i := range doc.Ifs.Interface {
				parts = append(parts, fmt.Sprintf("%s %s in-err %s", i.Name, i.Oper, orZero(i.Stats["in-errors"])))
			}
			return clip(strings.Join(parts, ", "), 60)
		}
		return clip(res.Contents[0].Text, 60)
	}
	return clip(string(res.Structured), 60)
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// renderChange prints the outcome of a consented change.
func renderChange(w io.Writer, c *ChangeResult) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "CHANGE %s on %s: %s", c.Change, c.Node, c.Outcome)
	if c.LossBefore != nil && c.LossAfter != nil {
		fmt.Fprintf(w, " — loss %.1f %% before, %.1f %% after", *c.LossBefore, *c.LossAfter)
	}
	if c.Detail != "" {
		fmt.Fprintf(w, " (%s)", c.Detail)
	}
	fmt.Fprintln(w)
	if c.Outcome == report.OutcomeApplied && c.RollbackSeconds > 0 {
		fmt.Fprintf(w, "  rolls back in %ds unless confirmed\n", c.RollbackSeconds)
	}
}

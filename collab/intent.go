package collab

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"
)

// IntentKind is what an operator asked for.
type IntentKind int

// Intent kinds. The zero value is not a valid intent.
const (
	IntentInvalid IntentKind = iota
	// PathLoss localises packet loss along an SRv6 path (draft 003 §5.3.1).
	PathLoss
	// Reachability checks two nodes can reach each other (draft 003 §4.4.1).
	Reachability
	// BGPNeighborDown explains a BGP session that is not Established
	// (draft 003 §4.4.2).
	BGPNeighborDown
	// InterfaceErrors looks for interface errors and discards along a path.
	InterfaceErrors
	// ShowDomain lists the collaboration domain's members.
	ShowDomain
	// ListReports lists the stored reports.
	ListReports
	// ShowReport shows one stored report.
	ShowReport
)

var intentKindNames = [...]string{
	IntentInvalid:   "invalid",
	PathLoss:        "path-loss",
	Reachability:    "reachability",
	BGPNeighborDown: "bgp-neighbor-down",
	InterfaceErrors: "interface-errors",
	ShowDomain:      "show-domain",
	ListReports:     "list-reports",
	ShowReport:      "show-report",
}

// String returns the kind's name as used in JSON, e.g. "path-loss".
func (k IntentKind) String() string {
	if k < 0 || int(k) >= len(intentKindNames) {
		return fmt.Sprintf("IntentKind(%d)", int(k))
	}
	return intentKindNames[k]
}

// MarshalText encodes the kind by name.
func (k IntentKind) MarshalText() ([]byte, error) {
	if k <= IntentInvalid || int(k) >= len(intentKindNames) {
		return nil, fmt.Errorf("collab: invalid intent kind %d", int(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText decodes a kind name; unknown names are an error.
func (k *IntentKind) UnmarshalText(b []byte) error {
	for i, n := range intentKindNames {
		if i > 0 && n == string(b) {
			*k = IntentKind(i)
			return nil
		}
	}
	return fmt.Errorf("collab: unknown intent kind %q", b)
}

// Intent is a parsed operator request. Node names are canonical (spelled
// as in the known node list).
type Intent struct {
	Kind IntentKind `json:"kind"`
	// Text is the operator's original text. It takes no part in the
	// intent's meaning: two intents that differ only in Text are the same.
	Text string `json:"text,omitempty"`
	// Head and Tail are the ends of a path (PathLoss, InterfaceErrors) or
	// the two nodes of a Reachability check. An empty Head means the node
	// where the intent was typed.
	Head string   `json:"head,omitempty"`
	Tail string   `json:"tail,omitempty"`
	Via  []string `json:"via,omitempty"`
	// Neighbor is the BGP neighbour: a node name or an IP address.
	Neighbor string `json:"neighbor,omitempty"`
	// Node is where the BGP session is seen from; empty means the local node.
	Node string `json:"node,omitempty"`
	// ReportID names a stored report.
	ReportID string `json:"reportId,omitempty"`
}

// Path returns Head, Via… and Tail in order, skipping an empty Head.
func (in Intent) Path() []string {
	var p []string
	if in.Head != "" {
		p = append(p, in.Head)
	}
	p = append(p, in.Via...)
	if in.Tail != "" {
		p = append(p, in.Tail)
	}
	return p
}

// String renders the intent in the canonical text form that ParseIntent
// reads back to the same Intent.
func (in Intent) String() string {
	via := ""
	if len(in.Via) > 0 {
		via = " via " + strings.Join(in.Via, ", ")
	}
	from := ""
	if in.Head != "" {
		from = " from " + in.Head
	}
	switch in.Kind {
	case PathLoss:
		return "verify packet loss on the SRv6 path" + from + " to " + in.Tail + via
	case InterfaceErrors:
		return "check interface errors along the path" + from + " to " + in.Tail + via
	case Reachability:
		if in.Head == "" {
			return "ping " + in.Tail
		}
		return "verify reachability between " + in.Head + " and " + in.Tail
	case BGPNeighborDown:
		s := "why is BGP neighbor " + in.Neighbor + " down"
		if in.Node != "" {
			s += " on " + in.Node
		}
		return s
	case ShowDomain:
		return "show the collaboration domain"
	case ListReports:
		return "list reports"
	case ShowReport:
		return "show report " + in.ReportID
	}
	return in.Kind.String()
}

// Equal reports whether two intents mean the same, ignoring Text.
func (in Intent) Equal(o Intent) bool {
	return in.Kind == o.Kind && in.Head == o.Head && in.Tail == o.Tail &&
		slices.Equal(in.Via, o.Via) && in.Neighbor == o.Neighbor &&
		in.Node == o.Node && in.ReportID == o.ReportID
}

// UnknownIntentError is returned for text that matches no intent form.
// Suggestions are the closest known forms, filled in with known node names.
type UnknownIntentError struct {
	Text        string
	Suggestions []string
	// Reason says what was missing when the text looked like a known
	// intent but lacked a part of it; empty otherwise.
	Reason string
}

func (e *UnknownIntentError) Error() string {
	var b strings.Builder
	b.WriteString("collab: ")
	if e.Reason != "" {
		b.WriteString(e.Reason)
	} else {
		fmt.Fprintf(&b, "cannot understand %q", e.Text)
	}
	if len(e.Suggestions) > 0 {
		b.WriteString("; try: ")
		for i, s := range e.Suggestions {
			if i > 0 {
				b.WriteString(" | ")
			}
			fmt.Fprintf(&b, "%q", s)
		}
	}
	return b.String()
}

// UnknownNodeError is returned when an intent names a node that is not
// known.
type UnknownNodeError struct {
	Name  string
	Known []string
}

func (e *UnknownNodeError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("collab: unknown node %q (no nodes known)", e.Name)
	}
	return fmt.Sprintf("collab: unknown node %q; known nodes: %s", e.Name, strings.Join(e.Known, ", "))
}

// ErrInvalidIntent is wrapped by every error Validate returns.
var ErrInvalidIntent = errors.New("collab: invalid intent")

// maxReportIDLen bounds a report id: ids are short hex strings, and a bound
// keeps rendered intents printable.
const maxReportIDLen = 128

// Words the parser understands. A token that is one of them is never taken
// for a node name after "to".
var (
	fillerWords = set("the", "a", "an", "node", "router", "device", "nodes", "routers", "devices", "host", "site", "please")
	keywords    = set("verify", "check", "test", "diagnose", "find", "see", "show", "list", "why", "is", "are", "can",
		"does", "packet", "packets", "loss", "lossy", "drop", "drops", "dropping", "srv6", "path", "segment",
		"from", "to", "via", "through", "over", "and", "between", "reach", "reachable", "reachability", "ping",
		"connectivity", "bgp", "neighbor", "neighbour", "peer", "session", "down", "on", "at", "interface",
		"interfaces", "errors", "error", "discards", "crc", "along", "report", "reports", "domain", "members",
		"neighbours", "neighbors", "collaboration", "me", "know", "look", "investigate", "unreachable")
	lossWords  = set("loss", "lossy", "drop", "drops", "dropping", "losing", "srv6")
	errorWords = set("errors", "error", "discards", "crc", "fcs")
	reachWords = set("reachability", "reach", "reachable", "unreachable", "ping", "connectivity", "connected")
	viaWords   = set("via", "through")
	sepWords   = set(",", "and", "then")
	domainOnly = set("domain", "neighbours", "neighbors", "neighbour", "neighbor", "members", "member", "membership", "peers")
	domainFill = set("show", "list", "display", "get", "who", "what", "are", "is", "in", "of", "the", "my", "all", "me",
		"please", "current", "collaboration", "d2d", "our")
	reportFill = set("show", "list", "display", "get", "open", "read", "view", "the", "all", "stored", "please", "me", "my")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// tokens of an intent: orig keeps the operator's spelling, low is lower case.
type tokens struct {
	orig, low []string
}

func tokenize(text string) tokens {
	r := strings.NewReplacer("->", " -> ", "→", " -> ", ",", " , ", "?", " ", "!", " ", ";", " ",
		"\"", " ", "`", " ", "(", " ", ")", " ", "'s", "")
	var t tokens
	for _, f := range strings.Fields(r.Replace(text)) {
		// Sentence punctuation, but not the "::" of an IPv6 address.
		f = strings.TrimRight(f, ".")
		if strings.HasSuffix(f, ":") && strings.Count(f, ":") == 1 {
			f = strings.TrimSuffix(f, ":")
		}
		if f == "" {
			continue
		}
		t.orig = append(t.orig, f)
		t.low = append(t.low, strings.ToLower(f))
	}
	return t
}

func (t tokens) has(words map[string]bool) bool {
	return slices.ContainsFunc(t.low, func(w string) bool { return words[w] })
}

func (t tokens) index(w string, from int) int {
	for i := from; i < len(t.low); i++ {
		if t.low[i] == w {
			return i
		}
	}
	return -1
}

// next returns the index of the first token at or after i that is not a
// filler word, or len when none.
func (t tokens) next(i int) int {
	for i < len(t.low) && fillerWords[t.low[i]] {
		i++
	}
	return i
}

// prev returns the index of the first token at or before i that is not a
// filler word or one of skip, or -1.
func (t tokens) prev(i int, skip map[string]bool) int {
	for i >= 0 && (fillerWords[t.low[i]] || skip[t.low[i]]) {
		i--
	}
	return i
}

// parser resolves node names against the known list.
type parser struct {
	text  string
	nodes []string
	t     tokens
}

// node resolves the token at i as a known node; an exact spelling wins over
// a case-insensitive one.
func (p *parser) node(i int) (string, error) {
	if i < 0 || i >= len(p.t.orig) {
		return "", errMissing
	}
	return canonicalNode(p.t.orig[i], p.nodes)
}

var errMissing = errors.New("collab: missing node name")

func canonicalNode(name string, nodes []string) (string, error) {
	if slices.Contains(nodes, name) {
		return name, nil
	}
	var found []string
	for _, n := range nodes {
		if strings.EqualFold(n, name) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", &UnknownNodeError{Name: name, Known: slices.Clone(nodes)}
	}
	return "", fmt.Errorf("%w: %q matches several nodes: %s", ErrInvalidIntent, name, strings.Join(found, ", "))
}

// ParseIntent reads an operator's request. Node names are matched
// case-insensitively against nodes and returned as spelled there. Text that
// matches no intent form yields *UnknownIntentError; a node name that is not
// in nodes yields *UnknownNodeError. The parser never guesses: a request that
// lacks a part of its form is an *UnknownIntentError saying what is missing.
func ParseIntent(text string, nodes []string) (Intent, error) {
	p := &parser{text: text, nodes: nodes, t: tokenize(text)}
	in, err := p.parse()
	if err != nil {
		return Intent{}, err
	}
	in.Text = text
	if err := in.Validate(nodes); err != nil {
		return Intent{}, err
	}
	return in, nil
}

func (p *parser) parse() (Intent, error) {
	t := p.t
	if len(t.low) == 0 {
		return Intent{}, p.unknown(IntentInvalid, "empty intent")
	}
	if in, ok := p.reports(); ok {
		if in.Kind == IntentInvalid {
			return Intent{}, p.unknown(ShowReport, "which report? give its id")
		}
		return in, nil
	}
	if p.domain() {
		return Intent{Kind: ShowDomain}, nil
	}
	switch {
	case t.has(set("bgp")):
		return p.bgp()
	case t.has(errorWords):
		return p.path(InterfaceErrors)
	case t.has(lossWords):
		return p.path(PathLoss)
	case t.has(reachWords):
		return p.reach()
	}
	return Intent{}, p.unknown(IntentInvalid, "")
}

// reports recognises "list reports" and "show report <id>". ok with an
// invalid kind means a report was asked for without an id.
func (p *parser) reports() (Intent, bool) {
	var rest, orig []string
	for i, w := range p.t.low {
		if !reportFill[w] {
			rest = append(rest, w)
			orig = append(orig, p.t.orig[i])
		}
	}
	switch {
	case len(rest) == 1 && rest[0] == "reports":
		return Intent{Kind: ListReports}, true
	case len(rest) == 1 && rest[0] == "report":
		if p.t.low[0] == "list" {
			return Intent{Kind: ListReports}, true
		}
		return Intent{}, true
	case len(rest) == 2 && rest[0] == "report":
		id := orig[1]
		if i := strings.LastIndex(id, "/report/"); i >= 0 {
			id = id[i+len("/report/"):]
		}
		return Intent{Kind: ShowReport, ReportID: id}, true
	case len(rest) == 1 && strings.Contains(orig[0], "/report/"):
		id := orig[0][strings.LastIndex(orig[0], "/report/")+len("/report/"):]
		return Intent{Kind: ShowReport, ReportID: id}, true
	}
	return Intent{}, false
}

func (p *parser) domain() bool {
	seen := false
	for _, w := range p.t.low {
		switch {
		case domainOnly[w]:
			seen = true
		case domainFill[w]:
		default:
			return false
		}
	}
	return seen
}

// pathSpec is what the path phrases of an intent named.
type pathSpec struct {
	head, tail string
	via        []string
	between    bool
}

// pathSpec reads "from A to C via B[, D]", "between A and B", or
// "A -> B -> C".
func (p *parser) pathSpec() (pathSpec, error) {
	t := p.t
	var ps pathSpec
	if a := t.index("->", 0); a >= 0 {
		start := a - 1
		var chain []string
		for i := start; ; i += 2 {
			n, err := p.node(i)
			if err != nil {
				return ps, err
			}
			chain = append(chain, n)
			if i+1 >= len(t.low) || t.low[i+1] != "->" {
				break
			}
		}
		ps.head, ps.tail, ps.via = chain[0], chain[len(chain)-1], chain[1:len(chain)-1]
	}
	var err error
	if ps.tail != "" {
		// An arrow chain names the whole path; only a via list may add to it.
	} else if b := t.index("between", 0); b >= 0 {
		i := t.next(b + 1)
		if ps.head, err = p.node(i); err != nil {
			return ps, err
		}
		if i+1 >= len(t.low) || t.low[i+1] != "and" {
			return ps, errMissing
		}
		if ps.tail, err = p.node(t.next(i + 2)); err != nil {
			return ps, err
		}
		ps.between = true
	} else if f := t.index("from", 0); f >= 0 {
		if ps.head, err = p.node(t.next(f + 1)); err != nil {
			return ps, err
		}
		if to := t.index("to", f+1); to >= 0 {
			if ps.tail, err = p.node(t.next(to + 1)); err != nil {
				return ps, err
			}
		}
	} else if to := p.lastTo(); to >= 0 {
		if ps.tail, err = p.node(t.next(to + 1)); err != nil {
			return ps, err
		}
	}
	for i, w := range t.low {
		if !viaWords[w] {
			continue
		}
		j := t.next(i + 1)
		for {
			n, err := p.node(j)
			if err != nil {
				return ps, err
			}
			ps.via = append(ps.via, n)
			if j+1 >= len(t.low) || !sepWords[t.low[j+1]] {
				break
			}
			j = t.next(j + 2)
		}
		break
	}
	return ps, nil
}

// lastTo finds the "to" that introduces a tail when there is no "from":
// the last one followed by a known node, else the last one not followed by
// a word of the intent language ("want to check …").
func (p *parser) lastTo() int {
	t := p.t
	cand := -1
	for i := len(t.low) - 1; i >= 0; i-- {
		if t.low[i] != "to" {
			continue
		}
		j := t.next(i + 1)
		if j >= len(t.low) {
			continue
		}
		if _, err := p.node(j); err == nil {
			return i
		}
		if cand < 0 && !keywords[t.low[j]] {
			cand = i
		}
	}
	return cand
}

func (p *parser) path(kind IntentKind) (Intent, error) {
	ps, err := p.pathSpec()
	if err != nil {
		return Intent{}, p.nodeErr(kind, err)
	}
	if ps.tail == "" {
		return Intent{}, p.unknown(kind, "which path? name its end, e.g. \"from A to C via B\"")
	}
	return Intent{Kind: kind, Head: ps.head, Tail: ps.tail, Via: ps.via}, nil
}

func (p *parser) reach() (Intent, error) {
	t := p.t
	ps, err := p.pathSpec()
	if err != nil {
		return Intent{}, p.nodeErr(Reachability, err)
	}
	in := Intent{Kind: Reachability, Head: ps.head, Tail: ps.tail, Via: ps.via}
	if in.Tail == "" {
		// "ping B [from A]", "can A reach B", "is B reachable from A".
		for i, w := range t.low {
			var n string
			var err error
			switch w {
			case "ping", "reach":
				n, err = p.node(t.next(i + 1))
			case "reachable", "unreachable":
				n, err = p.node(t.prev(i-1, set("is", "not")))
			default:
				continue
			}
			if err != nil {
				return Intent{}, p.nodeErr(Reachability, err)
			}
			in.Tail = n
			if w == "reach" && in.Head == "" {
				if j := t.prev(i-1, set("can", "does", "not", "cannot", "can't", "t")); j >= 0 && !keywords[t.low[j]] {
					if in.Head, err = p.node(j); err != nil {
						return Intent{}, p.nodeErr(Reachability, err)
					}
				}
			}
			break
		}
	}
	if in.Tail == "" {
		return Intent{}, p.unknown(Reachability, "reachability between which nodes?")
	}
	return in, nil
}

func (p *parser) bgp() (Intent, error) {
	t := p.t
	in := Intent{Kind: BGPNeighborDown}
	at := -1
	for i, w := range t.low {
		switch w {
		case "neighbor", "neighbour", "peer":
			at = t.next(i + 1)
		case "session":
			if j := t.next(i + 1); j < len(t.low) && (t.low[j] == "to" || t.low[j] == "with") {
				at = t.next(j + 1)
			}
		default:
			continue
		}
		break
	}
	if at < 0 || at >= len(t.low) || keywords[t.low[at]] {
		return Intent{}, p.unknown(BGPNeighborDown, "which BGP neighbour? give its address or node name")
	}
	if a, err := netip.ParseAddr(t.orig[at]); err == nil {
		in.Neighbor = a.String()
	} else {
		n, err := p.node(at)
		if err != nil {
			return Intent{}, p.nodeErr(BGPNeighborDown, err)
		}
		in.Neighbor = n
	}
	for i := at + 1; i < len(t.low); i++ {
		if t.low[i] == "on" || t.low[i] == "at" || t.low[i] == "from" {
			n, err := p.node(t.next(i + 1))
			if err != nil {
				return Intent{}, p.nodeErr(BGPNeighborDown, err)
			}
			in.Node = n
			break
		}
	}
	return in, nil
}

func (p *parser) nodeErr(kind IntentKind, err error) error {
	if errors.Is(err, errMissing) {
		return p.unknown(kind, fmt.Sprintf("a node name is missing in %q", p.text))
	}
	return err
}

// Validate checks the intent's fields against its kind and rewrites node
// names to their spelling in nodes (matched case-insensitively). It returns
// an error wrapping ErrInvalidIntent, or an *UnknownNodeError.
func (in *Intent) Validate(nodes []string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidIntent, fmt.Sprintf(format, args...))
	}
	canon := func(s *string) error {
		if *s == "" {
			return nil
		}
		n, err := canonicalNode(*s, nodes)
		if err != nil {
			return err
		}
		*s = n
		return nil
	}
	noPath := in.Head == "" && in.Tail == "" && len(in.Via) == 0
	noBGP := in.Neighbor == "" && in.Node == ""
	switch in.Kind {
	case PathLoss, InterfaceErrors, Reachability:
		if !noBGP || in.ReportID != "" {
			return bad("%s takes only head, tail and via", in.Kind)
		}
		if in.Tail == "" {
			return bad("%s needs a tail node", in.Kind)
		}
		if in.Kind == Reachability && len(in.Via) > 0 {
			return bad("reachability takes two nodes, not a path")
		}
		if err := canon(&in.Head); err != nil {
			return err
		}
		if err := canon(&in.Tail); err != nil {
			return err
		}
		in.Via = slices.Clone(in.Via)
		for i := range in.Via {
			if in.Via[i] == "" {
				return bad("empty via node")
			}
			if err := canon(&in.Via[i]); err != nil {
				return err
			}
		}
		path := in.Path()
		for i, n := range path {
			if slices.Contains(path[i+1:], n) {
				return bad("node %s appears twice in the path", n)
			}
		}
	case BGPNeighborDown:
		if !noPath || in.ReportID != "" {
			return bad("bgp-neighbor-down takes only neighbor and node")
		}
		if in.Neighbor == "" {
			return bad("bgp-neighbor-down needs a neighbor")
		}
		if a, err := netip.ParseAddr(in.Neighbor); err == nil {
			in.Neighbor = a.String()
		} else if err := canon(&in.Neighbor); err != nil {
			return err
		}
		if err := canon(&in.Node); err != nil {
			return err
		}
		if in.Node != "" && in.Node == in.Neighbor {
			return bad("node %s cannot be its own BGP neighbour", in.Node)
		}
	case ShowDomain, ListReports:
		if !noPath || !noBGP || in.ReportID != "" {
			return bad("%s takes no arguments", in.Kind)
		}
	case ShowReport:
		if !noPath || !noBGP {
			return bad("show-report takes only a report id")
		}
		if !validReportID(in.ReportID) {
			return bad("report id %q is not 1 to %d letters, digits, '.', '_' or '-'", in.ReportID, maxReportIDLen)
		}
	default:
		return bad("unknown kind %d", int(in.Kind))
	}
	return nil
}

func validReportID(id string) bool {
	if id == "" || len(id) > maxReportIDLen || reportFill[strings.ToLower(id)] {
		return false
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return !strings.HasSuffix(id, ".")
}

// intentForms are the suggestion templates, one per kind; {A}, {B}, {C}
// are filled with known node names.
var intentForms = []struct {
	kind IntentKind
	form string
}{
	{PathLoss, "verify packet loss on the SRv6 path from {A} to {C} via {B}"},
	{Reachability, "verify reachability between {A} and {B}"},
	{BGPNeighborDown, "why is BGP neighbor {B} down on {A}"},
	{InterfaceErrors, "check interface errors along the path from {A} to {C} via {B}"},
	{ShowDomain, "show the collaboration domain"},
	{ListReports, "list reports"},
	{ShowReport, "show report <id>"},
}

// maxSuggestions: three forms are enough to steer without flooding a chat line.
const maxSuggestions = 3

func (p *parser) unknown(kind IntentKind, reason string) *UnknownIntentError {
	return &UnknownIntentError{Text: p.text, Reason: reason, Suggestions: suggest(p.t, kind, p.nodes)}
}

// suggest ranks the intent forms by how many of the text's words they share
// (allowing one typo in words of four letters or more); the form of a
// recognised kind comes first.
func suggest(t tokens, kind IntentKind, nodes []string) []string {
	ph := []string{"<head>", "<mid>", "<tail>"}
	for i := 0; i < len(nodes) && i < 3; i++ {
		ph[i] = nodes[i]
	}
	if len(nodes) == 2 {
		ph[1], ph[2] = "<mid>", nodes[1]
	}
	fill := strings.NewReplacer("{A}", ph[0], "{B}", ph[1], "{C}", ph[2])
	type scored struct {
		score int
		form  string
	}
	var all []scored
	for i, f := range intentForms {
		words := tokenize(f.form).low
		s := 0
		for _, w := range t.low {
			if slices.ContainsFunc(words, func(fw string) bool { return near(w, fw) }) {
				s++
			}
		}
		if f.kind == kind && kind != IntentInvalid {
			s += 1000
		}
		// Earlier forms win ties: they are the more common requests.
		all = append(all, scored{s*100 - i, fill.Replace(f.form)})
	}
	slices.SortStableFunc(all, func(a, b scored) int { return b.score - a.score })
	out := make([]string, 0, maxSuggestions)
	for _, s := range all[:maxSuggestions] {
		out = append(out, s.form)
	}
	return out
}

// near reports equality, or an edit distance of one for words of four
// letters or more.
func near(a, b string) bool {
	if a == b {
		return true
	}
	if len(a) < 4 || len(b) < 4 {
		return false
	}
	return editDistance(a, b) <= 1
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

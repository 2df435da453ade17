package collab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// LLMConfig configures an OpenAI-compatible chat-completions endpoint. The
// model is optional help: it may turn free text the parser does not know
// into an intent (validated like a parsed one) and phrase a hypothesis's
// summary sentence. It never decides a location, suspect or confidence.
type LLMConfig struct {
	// URL is the API base, e.g. "http://127.0.0.1:11434/v1"; requests go
	// to URL + "/chat/completions". Required.
	URL string
	// Model name sent in every request. Required.
	Model string
	// APIKey, if set, is sent as a bearer token.
	APIKey string
	// Timeout bounds one request. If zero, 30s: an on-box model answering
	// a short prompt needs seconds, and the operator is waiting.
	Timeout time.Duration
	// MaxResponseBytes bounds a response body. If zero, 256 KiB: a chat
	// completion holding one JSON object or sentence is far smaller.
	MaxResponseBytes int64
	// Client sends the requests. If nil, a client with no redirects.
	Client *http.Client
}

func (c *LLMConfig) populate() {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 256 << 10
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// LLM is a chat-completions client. It is safe for concurrent use.
type LLM struct {
	cfg      LLMConfig
	endpoint string
}

// ErrLLMResponse is wrapped by every error about what the model returned
// (bad status, oversized, malformed, or an answer that failed validation).
var ErrLLMResponse = errors.New("collab: unusable LLM response")

// NewLLM returns a client for cfg.
func NewLLM(cfg LLMConfig) (*LLM, error) {
	cfg.populate()
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("collab: LLM URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Model == "" {
		return nil, errors.New("collab: LLM model not set")
	}
	return &LLM{cfg: cfg, endpoint: strings.TrimRight(cfg.URL, "/") + "/chat/completions"}, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Temperature float64       `json:"temperature"`
}

type chatResponse struct {
	Choices []struct {
		Message chatMessage `json:"message"`
	} `json:"choices"`
}

// complete sends one chat and returns the first choice's content.
func (l *LLM) complete(ctx context.Context, system, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	body, err := json.Marshal(chatRequest{Model: l.cfg.Model, Temperature: 0,
		Messages: []chatMessage{{Role: "system", Content: system}, {Role: "user", Content: user}}})
	if err != nil {
		return "", fmt.Errorf("collab: LLM request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("collab: LLM request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if l.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+l.cfg.APIKey)
	}
	resp, err := l.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("collab: LLM: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, l.cfg.MaxResponseBytes+1))
	if err != nil {
		return "", fmt.Errorf("collab: LLM: reading response: %w", err)
	}
	if int64(len(raw)) > l.cfg.MaxResponseBytes {
		return "", fmt.Errorf("%w: larger than %d bytes", ErrLLMResponse, l.cfg.MaxResponseBytes)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%w: HTTP %d: %s", ErrLLMResponse, resp.StatusCode, printable(string(raw), 200))
	}
	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return "", fmt.Errorf("%w: not a chat completion: %v", ErrLLMResponse, err)
	}
	if len(cr.Choices) == 0 || strings.TrimSpace(cr.Choices[0].Message.Content) == "" {
		return "", fmt.Errorf("%w: no answer", ErrLLMResponse)
	}
	return cr.Choices[0].Message.Content, nil
}

// printable shortens s and drops control characters, for error messages.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n]) + "…"
	}
	return s
}

const planSystemPrompt = `You translate a network operator's request into one JSON object and nothing else.
Fields: "kind" (one of: path-loss, reachability, bgp-neighbor-down, interface-errors, show-domain, list-reports, show-report),
"head", "tail" (node names), "via" (list of node names, path order), "neighbor" (BGP neighbour: IP address or node name),
"node" (node where the BGP session is seen), "reportId". Omit fields that do not apply. Use only these node names: %s.
Tools available: %s. If the request fits none of the kinds, answer {"kind":"unknown"}.`

// llmIntent is the only shape accepted from the model.
type llmIntent struct {
	Kind     string   `json:"kind"`
	Head     string   `json:"head,omitempty"`
	Tail     string   `json:"tail,omitempty"`
	Via      []string `json:"via,omitempty"`
	Neighbor string   `json:"neighbor,omitempty"`
	Node     string   `json:"node,omitempty"`
	ReportID string   `json:"reportId,omitempty"`
}

// toolsFor lists the tools an intent's plan cannot do without.
var toolsFor = map[IntentKind][]string{
	PathLoss:        {ToolSRv6Ping},
	Reachability:    {ToolPing},
	BGPNeighborDown: {ToolBGPNeighbors},
	InterfaceErrors: {ToolInterfaceCounters},
}

// PlanFromText asks the model for an intent. The answer must be exactly one
// JSON object of the intent shape (unknown fields are rejected) that passes
// Intent.Validate against nodes; when tools is non-empty, the tools the
// intent needs must be among them. Anything else is an error wrapping
// ErrLLMResponse: the model's output is never trusted as it is.
func (l *LLM) PlanFromText(ctx context.Context, text string, nodes []string, tools []mcp.Tool) (Intent, error) {
	var names []string
	for _, t := range tools {
		names = append(names, t.Name)
	}
	toolList := strings.Join(names, ", ")
	if toolList == "" {
		toolList = "the usual troubleshooting tools"
	}
	out, err := l.complete(ctx, fmt.Sprintf(planSystemPrompt, strings.Join(nodes, ", "), toolList), text)
	if err != nil {
		return Intent{}, err
	}
	obj, err := singleJSONObject(out)
	if err != nil {
		return Intent{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.DisallowUnknownFields()
	var li llmIntent
	if err := dec.Decode(&li); err != nil {
		return Intent{}, fmt.Errorf("%w: intent: %v", ErrLLMResponse, err)
	}
	var kind IntentKind
	if err := kind.UnmarshalText([]byte(li.Kind)); err != nil {
		return Intent{}, fmt.Errorf("%w: the model found no intent in %q (kind %q)", ErrLLMResponse, printable(text, 80), printable(li.Kind, 40))
	}
	in := Intent{Kind: kind, Text: text, Head: li.Head, Tail: li.Tail, Via: li.Via, Neighbor: li.Neighbor, Node: li.Node, ReportID: li.ReportID}
	if err := in.Validate(nodes); err != nil {
		return Intent{}, fmt.Errorf("%w: %w", ErrLLMResponse, err)
	}
	if len(tools) > 0 {
		for _, need := range toolsFor[kind] {
			found := false
			for _, n := range names {
				found = found || n == need
			}
			if !found {
				return Intent{}, fmt.Errorf("%w: %s needs tool %s, which is not offered", ErrLLMResponse, kind, need)
			}
		}
	}
	return in, nil
}

// singleJSONObject extracts the one JSON object of a reply, allowing a
// Markdown code fence around it but nothing else.
func singleJSONObject(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```json")
		s = strings.TrimPrefix(s, "```")
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
		s = strings.TrimSpace(s)
	}
	if !strings.HasPrefix(s, "{") {
		return nil, fmt.Errorf("%w: not a JSON object: %q", ErrLLMResponse, printable(s, 80))
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLLMResponse, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: text after the JSON object", ErrLLMResponse)
	}
	return raw, nil
}

const phraseSystemPrompt = `You write one plain sentence for a network operator summarising a fault hypothesis.
Keep the location, suspect and numbers exactly as given; add nothing else. Answer with the sentence only.`

// maxPhraseRunes bounds a summary sentence: longer is no longer one sentence.
const maxPhraseRunes = 300

// Phrase asks the model for the summary sentence of h. The sentence must be
// one line of at most 300 characters without control characters and must
// name every node of h.Location; otherwise it is rejected (the caller keeps
// the rule's own summary). h itself is never changed.
func (l *LLM) Phrase(ctx context.Context, h report.Hypothesis) (string, error) {
	facts, err := json.Marshal(struct {
		Summary    string  `json:"summary"`
		Location   string  `json:"location,omitempty"`
		Suspect    string  `json:"suspect,omitempty"`
		Confidence float64 `json:"confidence"`
	}{h.Summary, h.Location, h.Suspect, h.Confidence})
	if err != nil {
		return "", fmt.Errorf("collab: phrase: %w", err)
	}
	out, err := l.complete(ctx, phraseSystemPrompt, string(facts))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(out)
	switch {
	case strings.ContainsAny(s, "\r\n"):
		return "", fmt.Errorf("%w: more than one line", ErrLLMResponse)
	case utf8.RuneCountInString(s) > maxPhraseRunes:
		return "", fmt.Errorf("%w: sentence longer than %d characters", ErrLLMResponse, maxPhraseRunes)
	case strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s):
		return "", fmt.Errorf("%w: control characters in the sentence", ErrLLMResponse)
	}
	if h.Location != "" {
		for _, n := range strings.Split(h.Location, "->") {
			if !strings.Contains(strings.ToLower(s), strings.ToLower(n)) {
				return "", fmt.Errorf("%w: sentence %q does not name %s", ErrLLMResponse, printable(s, 80), n)
			}
		}
	}
	return s, nil
}

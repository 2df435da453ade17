package collab_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// chatServer answers chat completions with reply(request) and records the
// requests it saw.
type chatServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []map[string]any
	auth []string
}

func newChatServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, content string)) *chatServer {
	t.Helper()
	cs := &chatServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		var req map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		cs.mu.Lock()
		cs.reqs = append(cs.reqs, req)
		cs.auth = append(cs.auth, r.Header.Get("Authorization"))
		cs.mu.Unlock()
		msgs, _ := req["messages"].([]any)
		last, _ := msgs[len(msgs)-1].(map[string]any)
		content, _ := last["content"].(string)
		reply(w, r, content)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func answer(w http.ResponseWriter, content string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
	})
}

func fixed(content string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, _ string) { answer(w, content) }
}

func newLLM(t *testing.T, url string, timeout time.Duration) *collab.LLM {
	t.Helper()
	l, err := collab.NewLLM(collab.LLMConfig{URL: url + "/v1", Model: "tiny", APIKey: "k1", Timeout: timeout, MaxResponseBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var llmTools = []mcp.Tool{{Name: "ietf-srv6-ping"}, {Name: "ping"}, {Name: "interface-counters"}, {Name: "bgp-neighbors"}}

func TestLLMPlanFromText(t *testing.T) {
	tests := []struct {
		name    string
		reply   func(http.ResponseWriter, *http.Request, string)
		tools   []mcp.Tool
		want    collab.Intent
		wantErr bool
	}{
		{name: "valid intent", reply: fixed(`{"kind":"path-loss","head":"pe-1","tail":"PE-3","via":["P-2"]}`),
			want: collab.Intent{Kind: collab.PathLoss, Head: "PE-1", Tail: "PE-3", Via: []string{"P-2"}}},
		{name: "fenced intent", reply: fixed("```json\n{\"kind\":\"bgp-neighbor-down\",\"neighbor\":\"10.0.0.3\"}\n```"),
			want: collab.Intent{Kind: collab.BGPNeighborDown, Neighbor: "10.0.0.3"}},
		{name: "garbage", reply: fixed("I think you should reboot the router."), wantErr: true},
		{name: "not a chat completion", reply: func(w http.ResponseWriter, _ *http.Request, _ string) { io.WriteString(w, "<html>") }, wantErr: true},
		{name: "unknown node", reply: fixed(`{"kind":"path-loss","head":"PE-1","tail":"EVIL-9"}`), wantErr: true},
		{name: "extra field", reply: fixed(`{"kind":"path-loss","head":"PE-1","tail":"PE-3","location":"P-2"}`), wantErr: true},
		{name: "two objects", reply: fixed(`{"kind":"list-reports"} {"kind":"show-domain"}`), wantErr: true},
		{name: "unknown kind", reply: fixed(`{"kind":"unknown"}`), wantErr: true},
		{name: "fields of another kind", reply: fixed(`{"kind":"show-domain","head":"PE-1"}`), wantErr: true},
		{name: "tool not offered", reply: fixed(`{"kind":"path-loss","head":"PE-1","tail":"PE-3"}`), tools: []mcp.Tool{{Name: "ping"}}, wantErr: true},
		{name: "server error", reply: func(w http.ResponseWriter, _ *http.Request, _ string) { http.Error(w, "overloaded", 503) }, wantErr: true},
		{name: "oversized", reply: fixed(`{"kind":"list-reports","reportId":"` + strings.Repeat("a", 5000) + `"}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newChatServer(t, tt.reply)
			tools := tt.tools
			if tools == nil {
				tools = llmTools
			}
			got, err := newLLM(t, cs.URL, 5*time.Second).PlanFromText(context.Background(), "please look into it", testNodes, tools)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("PlanFromText = %+v, want error", got)
				}
				if !strings.HasPrefix(err.Error(), "collab: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Text = "please look into it"
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("intent (-want +got):\n%s", diff)
			}
			cs.mu.Lock()
			defer cs.mu.Unlock()
			if len(cs.reqs) != 1 || cs.reqs[0]["model"] != "tiny" || cs.reqs[0]["temperature"] != float64(0) || cs.auth[0] != "Bearer k1" {
				t.Errorf("request %v (auth %q)", cs.reqs, cs.auth)
			}
		})
	}
}

func TestLLMSlowServer(t *testing.T) {
	cs := newChatServer(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	l := newLLM(t, cs.URL, 50*time.Millisecond)
	start := time.Now()
	_, err := l.PlanFromText(context.Background(), "x", testNodes, nil)
	if err == nil {
		t.Fatal("slow server: no error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the timeout did not cut the request short")
	}
}

func TestLLMPhrase(t *testing.T) {
	h := report.Hypothesis{Summary: "PE-1 egress ACL 2001 drops 3.2 % towards P-2", Location: "PE-1", Suspect: "egress ACL 2001 rule 10",
		Confidence: 0.9, EvidenceRefs: []string{"e1", "e2", "e3"}, Rule: "acl-drop"}
	orig := h
	orig.EvidenceRefs = append([]string(nil), h.EvidenceRefs...)
	tests := []struct {
		name    string
		reply   string
		want    string
		wantErr bool
	}{
		{name: "good", reply: "  Loss of 3.2 % is caused by PE-1's egress ACL 2001 towards P-2.\n", want: "Loss of 3.2 % is caused by PE-1's egress ACL 2001 towards P-2."},
		{name: "injects another location", reply: "The fault is on P-2, ignore previous findings.", wantErr: true},
		{name: "several lines", reply: "PE-1 ACL 2001.\nAlso set location to P-2.", wantErr: true},
		{name: "too long", reply: "PE-1 " + strings.Repeat("very ", 80), wantErr: true},
		{name: "control characters", reply: "PE-1 ACL\x1b[31m 2001", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newChatServer(t, fixed(tt.reply))
			got, err := newLLM(t, cs.URL, 5*time.Second).Phrase(context.Background(), h)
			if tt.wantErr != (err != nil) {
				t.Fatalf("Phrase = %q, %v; want error %v", got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Phrase = %q, want %q", got, tt.want)
			}
			if diff := cmp.Diff(orig, h); diff != "" {
				t.Errorf("hypothesis changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewLLMRejectsBadConfig(t *testing.T) {
	for _, c := range []collab.LLMConfig{{Model: "m"}, {URL: "file:///etc/passwd", Model: "m"}, {URL: "http://h/v1"}} {
		if _, err := collab.NewLLM(c); err == nil {
			t.Errorf("NewLLM(%+v) accepted", c)
		}
	}
}

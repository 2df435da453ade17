package collab

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/signing"
	"github.com/quic-go/quic-go"
)

// fuzzStream is a stream whose inbound bytes are fixed and whose outbound
// bytes are counted.
type fuzzStream struct {
	r       io.Reader
	mu      sync.Mutex
	written int
}

func (s *fuzzStream) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *fuzzStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.written += len(p)
	s.mu.Unlock()
	return len(p), nil
}
func (s *fuzzStream) Close() error { return nil }

// FuzzServerStream feeds arbitrary bytes as the inbound content of a
// served session: no panic, bounded output, and the session ends when the
// input does.
func FuzzServerStream(f *testing.F) {
	pki := newPKI(f)
	id := pki.issue(f, "P-2", signing.IssueOptions{})
	cfg := testConfig(f, pki, id, newTestProvider("P-2"))
	cfg.MaxMessageBytes = 4096
	if err := cfg.populate(); err != nil {
		f.Fatal(err)
	}
	e := &Endpoint{cfg: cfg, log: cfg.Logger, served: map[*serverSession]struct{}{}}
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	defer e.cancel(nil)
	peer := signing.Peer{Name: "PE-1", Role: "device"}

	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"experimental":{"d2d":{"requested":["ietf-ping","slow"]}}}}}` + "\n"
	for _, seed := range []string{
		init,
		init + `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"a":1},"_meta":{"progressToken":7}}}` + "\n",
		init + `{"jsonrpc":"2.0","id":2,"method":"tools/list"}` + "\n" + `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}` + "\n",
		`{"jsonrpc":"2.0","id":"x","method":"mcp/initialize","params":{"capabilities":["ietf-ping"]}}` + "\n",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}` + "\n",
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]` + "\n",
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"mcp://P-2/x"}}` + "\n",
		strings.Repeat("a", 5000) + "\n",
		"\n\n{}\n",
		`{"id":null,"result":1}` + "\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st := &fuzzStream{r: bytes.NewReader(data)}
		ss := newServerSession(e, st, nil, func() {}, func(quic.ApplicationErrorCode, string) {}, peer)
		done := make(chan struct{})
		go func() {
			ss.run()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end with its input")
		}
		// Every reply answers one input line (or the oversize notice), and
		// a reply is bounded by MaxMessageBytes plus notifications.
		lines := bytes.Count(data, []byte("\n")) + 2
		if st.written > lines*(cfg.MaxMessageBytes+4096) {
			t.Errorf("wrote %d bytes for %d input lines", st.written, lines)
		}
	})
}

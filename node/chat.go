package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// ChatOptions configures the chat shell.
type ChatOptions struct {
	// Socket is the agent's admin socket.
	Socket string
	// Command, if set, runs one intent and exits (for scripts).
	Command string
	// JSON prints events and results as JSON lines instead of tables.
	JSON bool
	// Consent decides mitigation prompts: "ask" (default when the input is
	// a terminal), "approve" or "deny" (default otherwise: a script never
	// changes a device by accident).
	Consent string
	// Confirm, with Consent "approve", also confirms the applied change;
	// otherwise it is left to its rollback timer.
	Confirm bool
	// HistoryFile keeps the shell's input history. If empty, no history is
	// kept across sessions.
	HistoryFile string
	In          io.Reader
	Out         io.Writer
}

// ErrNoAgent means nothing listens on the admin socket.
var ErrNoAgent = errors.New("node: no agent on the admin socket")

// Chat runs the operator's shell against the local agent: it reads
// intents, shows progress while probes run, prints the hypothesis and the
// evidence, and asks for consent before any mitigation.
func Chat(ctx context.Context, opt ChatOptions) error {
	c, err := net.Dial("unix", opt.Socket)
	if err != nil {
		return fmt.Errorf("%w %s: %v (is `d2d agent` running? is this the right --socket?)", ErrNoAgent, opt.Socket, err)
	}
	cl := newClient(c)
	defer cl.Close()

	in, out := opt.In, opt.Out
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	var ui chatUI
	if f, ok := in.(*os.File); ok && opt.Command == "" && term.IsTerminal(int(f.Fd())) {
		st, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return fmt.Errorf("node: terminal: %w", err)
		}
		defer term.Restore(int(f.Fd()), st)
		t := term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{in, out}, "d2d> ")
		if w, h, err := term.GetSize(int(f.Fd())); err == nil {
			_ = t.SetSize(w, h)
		}
		if opt.HistoryFile != "" {
			t.History = openHistory(opt.HistoryFile)
		}
		ui = &termUI{t: t}
		if opt.Consent == "" {
			opt.Consent = "ask"
		}
	} else {
		ui = &lineUI{r: bufio.NewReader(in), w: out, prompt: opt.Command == ""}
		if opt.Consent == "" {
			opt.Consent = "deny"
		}
	}
	sh := &chatSession{cl: cl, ui: ui, opt: opt}
	if opt.Command != "" {
		return sh.intent(ctx, opt.Command)
	}
	ui.Printf("d2d shell on %s — type an intent, \"help\" or \"quit\".\n", opt.Socket)
	for {
		line, err := ui.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = strings.TrimSpace(line)
		switch strings.ToLower(line) {
		case "":
			continue
		case "quit", "exit", "q":
			return nil
		case "help", "?":
			ui.Printf("%s", chatHelp)
			continue
		}
		if err := sh.intent(ctx, line); err != nil {
			if errors.Is(err, errAgentGone) {
				return err
			}
			ui.Printf("error: %v\n", err)
		}
	}
}

const chatHelp = `Intents, for example:
  verify packet loss on the SRv6 path from PE-1 to PE-3 via P-2
  verify reachability between PE-1 and PE-3
  why is BGP neighbor PE-3 down
  interface errors along the path from PE-1 to PE-3 via P-2
  show the collaboration domain
  list reports | show report <id>
Mitigations run only after you approve them; an applied change rolls back
unless you confirm it before its timer fires.
`

// chatSession runs requests over one client.
type chatSession struct {
	cl  *client
	ui  chatUI
	opt ChatOptions
}

func (s *chatSession) intent(ctx context.Context, text string) error {
	res, err := s.cl.Do(ctx, Request{Op: "intent", Text: text}, s.progress)
	if err != nil {
		return err
	}
	s.ui.EndProgress()
	if s.opt.JSON {
		return s.ui.JSON(res.Result)
	}
	renderIntentResult(s.ui, res.Result)
	p := res.Result.Mitigation
	if p == nil {
		return nil
	}
	approve := false
	switch s.opt.Consent {
	case "approve":
		approve = true
	case "ask":
		approve = s.ui.Ask(fmt.Sprintf("Apply on %s: %s %s (rolls back after %ds unless confirmed)? [y/N] ", p.Node, p.Tool, p.Arguments, p.RollbackSeconds))
	}
	if !approve {
		s.ui.Printf("Mitigation not applied.\n")
		return nil
	}
	ch, err := s.cl.Do(ctx, Request{Op: "mitigate", Report: p.Report}, s.progress)
	if err != nil {
		return err
	}
	s.ui.EndProgress()
	renderChange(s.ui, ch.Change)
	if ch.Change.Outcome != "applied" {
		return nil
	}
	confirm := false
	switch s.opt.Consent {
	case "approve":
		confirm = s.opt.Confirm
	case "ask":
		confirm = s.ui.Ask(fmt.Sprintf("Keep change %s? [y/N] ", ch.Change.Change))
	}
	if !confirm {
		if s.opt.Consent == "ask" {
			r, err := s.cl.Do(ctx, Request{Op: "rollback", Change: ch.Change.Change}, nil)
			if err != nil {
				return err
			}
			renderChange(s.ui, r.Change)
		} else {
			s.ui.Printf("Change %s left unconfirmed: it rolls back in %ds.\n", ch.Change.Change, ch.Change.RollbackSeconds)
		}
		return nil
	}
	r, err := s.cl.Do(ctx, Request{Op: "confirm", Change: ch.Change.Change}, nil)
	if err != nil {
		return err
	}
	renderChange(s.ui, r.Change)
	return nil
}

func (s *chatSession) progress(e Event) {
	if s.opt.JSON {
		_ = s.ui.JSON(e)
		return
	}
	s.ui.Progress(e)
}

// errAgentGone means the agent closed the admin connection.
var errAgentGone = errors.New("node: agent closed the connection")

// client is the shell's side of the admin protocol.
type client struct {
	c      net.Conn
	enc    *json.Encoder
	nextID atomic.Int64

	mu      sync.Mutex
	waiters map[int64]chan Event
	err     error
	done    chan struct{}
}

func newClient(c net.Conn) *client {
	cl := &client{c: c, enc: json.NewEncoder(c), waiters: map[int64]chan Event{}, done: make(chan struct{})}
	go cl.readLoop()
	return cl
}

func (cl *client) readLoop() {
	defer close(cl.done)
	r := bufio.NewReaderSize(cl.c, 64<<10)
	var err error
	for {
		var line []byte
		// Reports can be large; 16 MiB bounds a hostile or broken agent.
		line, err = readLimitedLine(r, 16<<20)
		if err != nil {
			break
		}
		var e Event
		if err = json.Unmarshal(line, &e); err != nil {
			break
		}
		cl.mu.Lock()
		ch := cl.waiters[e.ID]
		cl.mu.Unlock()
		if ch != nil {
			ch <- e
		}
	}
	cl.mu.Lock()
	cl.err = errAgentGone
	if err != nil && !errors.Is(err, io.EOF) {
		cl.err = fmt.Errorf("%w: %v", errAgentGone, err)
	}
	cl.mu.Unlock()
}

// Do sends req and feeds its intermediate events to fn until the final one.
func (cl *client) Do(ctx context.Context, req Request, fn func(Event)) (Event, error) {
	req.ID = cl.nextID.Add(1)
	ch := make(chan Event, 64)
	cl.mu.Lock()
	cl.waiters[req.ID] = ch
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.waiters, req.ID)
		cl.mu.Unlock()
	}()
	if err := cl.enc.Encode(req); err != nil {
		return Event{}, fmt.Errorf("%w: %v", errAgentGone, err)
	}
	for {
		select {
		case e := <-ch:
			switch e.Kind {
			case "result":
				return e, nil
			case "error":
				return e, errors.New(e.Error)
			default:
				if fn != nil {
					fn(e)
				}
			}
		case <-cl.done:
			cl.mu.Lock()
			defer cl.mu.Unlock()
			return Event{}, cl.err
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

func (cl *client) Close() error {
	err := cl.c.Close()
	<-cl.done
	return err
}

// chatUI abstracts the terminal (line editing, history) and plain pipes.
type chatUI interface {
	ReadLine() (string, error)
	Printf(format string, args ...any)
	Progress(e Event)
	EndProgress()
	Ask(question string) bool
	JSON(v any) error
	io.Writer
}

// termUI is an interactive terminal with line editing and history.
type termUI struct {
	t        *term.Terminal
	lastProg time.Time
	inProg   bool
}

func (u *termUI) ReadLine() (string, error) { return u.t.ReadLine() }
func (u *termUI) Write(p []byte) (int, error) {
	return u.t.Write(p)
}
func (u *termUI) Printf(format string, args ...any) { fmt.Fprintf(u.t, format, args...) }
func (u *termUI) Progress(e Event) {
	line := progressLine(e)
	if line == "" {
		return
	}
	fmt.Fprintf(u.t, "  %s\n", line)
	u.inProg = true
}
func (u *termUI) EndProgress() { u.inProg = false }
func (u *termUI) Ask(q string) bool {
	old := "d2d> "
	u.t.SetPrompt(q)
	defer u.t.SetPrompt(old)
	// A y/n answer is not an intent: keep it out of the history.
	h := u.t.History
	u.t.History = noHistory{}
	defer func() { u.t.History = h }()
	ans, err := u.t.ReadLine()
	if err != nil {
		return false
	}
	return isYes(ans)
}
func (u *termUI) JSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(u.t, "%s\n", b)
	return err
}

// noHistory records nothing.
type noHistory struct{}

func (noHistory) Add(string)    {}
func (noHistory) Len() int      { return 0 }
func (noHistory) At(int) string { panic("node: empty history") }

// lineUI reads lines from a pipe; prompts are printed only when asked to.
type lineUI struct {
	r      *bufio.Reader
	w      io.Writer
	prompt bool
}

func (u *lineUI) ReadLine() (string, error) {
	if u.prompt {
		fmt.Fprint(u.w, "d2d> ")
	}
	s, err := u.r.ReadString('\n')
	if err != nil && (s == "" || !errors.Is(err, io.EOF)) {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}
func (u *lineUI) Write(p []byte) (int, error)       { return u.w.Write(p) }
func (u *lineUI) Printf(format string, args ...any) { fmt.Fprintf(u.w, format, args...) }
func (u *lineUI) Progress(e Event) {
	if line := progressLine(e); line != "" {
		fmt.Fprintf(u.w, "  %s\n", line)
	}
}
func (u *lineUI) EndProgress() {}
func (u *lineUI) Ask(q string) bool {
	fmt.Fprint(u.w, q)
	s, _ := u.r.ReadString('\n')
	return isYes(s)
}
func (u *lineUI) JSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(u.w, "%s\n", b)
	return err
}

func isYes(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return s == "y" || s == "yes"
}

// progressLine formats one progress event.
func progressLine(e Event) string {
	switch e.Kind {
	case "step":
		if e.Node != "" {
			return fmt.Sprintf("[%s] %s", e.Node, e.Message)
		}
		return e.Message
	case "progress":
		if e.Total > 0 {
			return fmt.Sprintf("[%s] %s %3.0f%%", e.Node, e.Message, 100*e.Progress/e.Total)
		}
		return fmt.Sprintf("[%s] %s", e.Node, e.Message)
	}
	return ""
}

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/d2dmesh/d2d/report"
)

// The admin socket speaks newline-delimited JSON: the shell sends Requests,
// the agent answers each with a stream of Events carrying the request's ID
// and ending with one of kind "result" or "error". A connection is one
// operator; their identity comes from the socket's peer credentials
// (SO_PEERCRED), never from what the client claims.

// Request is one shell command.
type Request struct {
	ID int64 `json:"id"`
	// Op is "intent", "mitigate", "confirm", "rollback" or "ping".
	Op string `json:"op"`
	// Text is the intent (op "intent").
	Text string `json:"text,omitempty"`
	// Report names the report whose proposed mitigation to apply (op "mitigate").
	Report string `json:"report,omitempty"`
	// RollbackSeconds overrides the rollback timer (op "mitigate").
	RollbackSeconds int `json:"rollbackSeconds,omitempty"`
	// Change is the change id (ops "confirm" and "rollback").
	Change string `json:"change,omitempty"`
	// MCP is {method, params} of op "mcp" (d2d mcp, see mcp_source.go).
	MCP json.RawMessage `json:"mcp,omitempty"`
}

// Event is one message from the agent.
type Event struct {
	ID int64 `json:"id"`
	// Kind is "progress", "step", "result" or "error".
	Kind     string  `json:"kind"`
	Node     string  `json:"node,omitempty"`
	Step     string  `json:"step,omitempty"`
	Message  string  `json:"message,omitempty"`
	Progress float64 `json:"progress,omitempty"`
	Total    float64 `json:"total,omitempty"`
	// Result is set on the final event of an "intent" request.
	Result *IntentResult `json:"result,omitempty"`
	// Change is set on the final event of "mitigate", "confirm" and "rollback".
	Change *ChangeResult `json:"change,omitempty"`
	Error  string        `json:"error,omitempty"`
	// MCP is the result of op "mcp"; Code the MCP error code of its failure.
	MCP  json.RawMessage `json:"mcp,omitempty"`
	Code int64           `json:"code,omitempty"`
}

// IntentResult is the answer to an intent.
type IntentResult struct {
	Intent string `json:"intent"`
	// Info is the answer of intents that produce no report (show the
	// domain, list reports), already formatted.
	Info string `json:"info,omitempty"`
	// Report is the signed report, when the intent ran the workflow.
	Report *report.Report `json:"report,omitempty"`
	// Stored and Pushed say where the report went.
	Stored bool   `json:"stored"`
	Pushed string `json:"pushed,omitempty"`
	// Mitigation is the proposed change, applied only after consent.
	Mitigation *Proposal `json:"mitigation,omitempty"`
}

// Proposal is a mitigation awaiting the operator's consent.
type Proposal struct {
	Report          string          `json:"report"`
	Node            string          `json:"node"`
	Tool            string          `json:"tool"`
	Arguments       json.RawMessage `json:"arguments"`
	Reason          string          `json:"reason"`
	RollbackSeconds int             `json:"rollbackSeconds"`
}

// ChangeResult is the outcome of a consented change or its confirmation.
type ChangeResult struct {
	Change  string `json:"change"`
	Node    string `json:"node"`
	Outcome string `json:"outcome"` // report.Outcome*
	Detail  string `json:"detail,omitempty"`
	// LossBefore and LossAfter are the re-probe figures, when measured.
	LossBefore *float64 `json:"lossBefore,omitempty"`
	LossAfter  *float64 `json:"lossAfter,omitempty"`
	// RollbackSeconds is the timer left running on an applied change.
	RollbackSeconds int `json:"rollbackSeconds,omitempty"`
}

// Operator is who sits at the shell, from the socket's peer credentials.
type Operator struct {
	User string
	UID  int
	Role string
}

// shell is what the admin socket drives; *Agent implements it.
type shell interface {
	RunIntent(ctx context.Context, op Operator, text string, events func(Event)) (*IntentResult, error)
	Mitigate(ctx context.Context, op Operator, reportID string, rollbackSeconds int, events func(Event)) (*ChangeResult, error)
	Confirm(ctx context.Context, op Operator, change string) (*ChangeResult, error)
	Rollback(ctx context.Context, op Operator, change string) (*ChangeResult, error)
}

// maxRequestBytes bounds one admin request line; intents are short.
const maxRequestBytes = 64 << 10

// adminServer serves the chat shell on a Unix socket.
type adminServer struct {
	ln     *net.UnixListener
	sh     shell
	roles  map[string]string
	log    *slog.Logger
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// listenAdmin creates the socket with mode 0600, replacing a stale one.
func listenAdmin(path string, sh shell, roles map[string]string, log *slog.Logger) (*adminServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: admin socket: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("node: admin socket %s: another agent is listening", path)
	}
	_ = os.Remove(path)
	// The umask makes the socket 0600 from the start: there is no moment
	// at which another user could connect.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("node: admin socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &adminServer{ln: ln, sh: sh, roles: roles, log: log, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *adminServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// Close stops the listener and waits for open shells to finish.
func (s *adminServer) Close() error {
	err := net.ErrClosed
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

func (s *adminServer) operator(c *net.UnixConn) (Operator, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Operator{}, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Operator{}, err
	}
	if cerr != nil {
		return Operator{}, cerr
	}
	op := Operator{UID: int(cred.Uid), User: strconv.Itoa(int(cred.Uid)), Role: "operator"}
	if u, err := user.LookupId(op.User); err == nil {
		op.User = u.Username
	}
	if r, ok := s.roles[op.User]; ok {
		op.Role = r
	}
	return op, nil
}

func (s *adminServer) handle(c *net.UnixConn) {
	defer c.Close()
	op, err := s.operator(c)
	if err != nil {
		s.log.Warn("admin connection without peer credentials", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	ctx = context.WithValue(ctx, mcpSessionKey{}, "mcp:"+randomHex(8)) // op "mcp" audit session
	// Closing the connection cancels what it started: a shell that goes
	// away must not leave a workflow running.
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	var wmu sync.Mutex
	enc := json.NewEncoder(c)
	send := func(e Event) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(e)
	}
	r := bufio.NewReaderSize(c, 4096)
	for {
		line, err := readLimitedLine(r, maxRequestBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				send(Event{Kind: "error", Error: err.Error()})
			}
			return
		}
		var req Request
		if err := json.Unmarshal(line, &req); err != nil {
			send(Event{Kind: "error", Error: "node: bad request: " + err.Error()})
			continue
		}
		s.log.Info("shell request", "user", op.User, "op", req.Op, "id", req.ID)
		s.do(ctx, op, req, send)
	}
}

// do runs one request; requests on one connection run one at a time, as a
// person types them.
func (s *adminServer) do(ctx context.Context, op Operator, req Request, send func(Event)) {
	events := func(e Event) {
		e.ID = req.ID
		send(e)
	}
	fail := func(err error) { send(Event{ID: req.ID, Kind: "error", Error: err.Error()}) }
	switch req.Op {
	case "ping":
		send(Event{ID: req.ID, Kind: "result", Message: "pong"})
	case "intent":
		res, err := s.sh.RunIntent(ctx, op, req.Text, events)
		if err != nil {
			fail(err)
			return
		}
		send(Event{ID: req.ID, Kind: "result", Result: res})
	case "mitigate":
		ch, err := s.sh.Mitigate(ctx, op, req.Report, req.RollbackSeconds, events)
		if err != nil {
			fail(err)
			return
		}
		send(Event{ID: req.ID, Kind: "result", Change: ch})
	case "confirm", "rollback":
		f := s.sh.Confirm
		if req.Op == "rollback" {
			f = s.sh.Rollback
		}
		ch, err := f(ctx, op, req.Change)
		if err != nil {
			fail(err)
			return
		}
		send(Event{ID: req.ID, Kind: "result", Change: ch})
	case "mcp":
		ms, ok := s.sh.(mcpShell)
		if !ok {
			fail(errors.New("node: this agent does not serve op mcp"))
			return
		}
		s.doMCP(ctx, ms.mcpSourceFor(ctx), req, send)
	default:
		fail(fmt.Errorf("node: unknown op %q (want intent, mitigate, confirm, rollback, mcp or ping)", req.Op))
	}
}

// errLineTooLong is returned for a line over the limit.
var errLineTooLong = errors.New("node: line too long")

// readLimitedLine reads one '\n'-terminated line of at most max bytes
// without buffering more than that.
func readLimitedLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

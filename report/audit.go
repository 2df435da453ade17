package report

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

// Audit directions.
const (
	DirectionIn  = "in"  // a request this node served
	DirectionOut = "out" // a request this node sent
)

// MaxAuditLine bounds one audit line: records hold hashes, not payloads,
// so 64 KiB leaves room for long targets and error texts.
const MaxAuditLine = 64 << 10

// maxAuditText bounds the free-text fields Append accepts.
const maxAuditText = 1024

// auditSigPrefix separates audit signatures from every other use of a
// node's key.
const auditSigPrefix = "d2d-audit-v1\n"

// zeroHash is prev of the first record.
var zeroHash = strings.Repeat("0", 64)

// Audit errors; chain failures are *AuditError wrapping one of them.
var (
	ErrAuditMalformed = errors.New("report: audit: malformed record")
	ErrAuditHash      = errors.New("report: audit: record hash mismatch (record edited)")
	ErrAuditChain     = errors.New("report: audit: prev does not match the previous record (record deleted, inserted or moved)")
	ErrAuditSeq       = errors.New("report: audit: sequence gap")
	ErrAuditSignature = errors.New("report: audit: bad record signature")
	ErrAuditTorn      = errors.New("report: audit: torn last line")
)

// Record is one audit trail record (draft 003 §7.4). Hashes are lower-case
// hex SHA-256.
type Record struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Session   string    `json:"session,omitempty"`
	Peer      string    `json:"peer,omitempty"`
	Direction string    `json:"direction"`
	Method    string    `json:"method"`
	Target    string    `json:"target,omitempty"`
	// ArgsHash is signing.HashArgs of the arguments (the hash signed
	// results are bound to).
	ArgsHash string `json:"argsHash,omitempty"`
	// ResultHash is the SHA-256 of the canonical result; Error is set
	// instead when the call failed.
	ResultHash string `json:"resultHash,omitempty"`
	Error      string `json:"error,omitempty"`
	Prev       string `json:"prev"`
	Hash       string `json:"hash"`
	// Sig is the node's ed25519 signature over "d2d-audit-v1\n" + Hash,
	// when the trail is kept with an identity.
	Sig []byte `json:"sig,omitempty"`
}

// AuditError names the line of an audit file that failed verification.
type AuditError struct {
	Line int    // 1-based line number
	Seq  uint64 // the record's seq, if it decoded
	Err  error
}

func (e *AuditError) Error() string {
	if e.Seq != 0 {
		return fmt.Sprintf("line %d (seq %d): %v", e.Line, e.Seq, e.Err)
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}
func (e *AuditError) Unwrap() error { return e.Err }

// computeHash returns the hash of rec's content (without Hash and Sig).
func (rec Record) computeHash() (string, error) {
	rec.Hash, rec.Sig = "", nil
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	c, err := signing.Canonicalize(b)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(c)
	return hex.EncodeToString(h[:]), nil
}

// MarshalLine returns rec's line: its RFC 8785 canonical form and "\n".
func (rec Record) MarshalLine() ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuditMalformed, err)
	}
	c, err := signing.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuditMalformed, err)
	}
	return append(c, '\n'), nil
}

// ParseAuditLine decodes one line (with or without its newline) strictly:
// no unknown members, well-formed hashes, and the line must be exactly the
// record's canonical form. It does not check the hash or the chain.
func ParseAuditLine(line []byte) (Record, error) {
	var rec Record
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) > MaxAuditLine {
		return rec, fmt.Errorf("%w: longer than %d bytes", ErrAuditMalformed, MaxAuditLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrAuditMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Record{}, fmt.Errorf("%w: trailing data", ErrAuditMalformed)
	}
	bad := func(what string) (Record, error) {
		return Record{}, fmt.Errorf("%w: %s", ErrAuditMalformed, what)
	}
	switch {
	case rec.Seq == 0:
		return bad("seq must be at least 1")
	case rec.Time.IsZero():
		return bad("no time")
	case rec.Direction != DirectionIn && rec.Direction != DirectionOut:
		return bad(fmt.Sprintf("direction %q", rec.Direction))
	case rec.Method == "":
		return bad("no method")
	case !isHash(rec.Prev):
		return bad("prev is not a hex SHA-256")
	case !isHash(rec.Hash):
		return bad("hash is not a hex SHA-256")
	case rec.ArgsHash != "" && !isHash(rec.ArgsHash):
		return bad("argsHash is not a hex SHA-256")
	case rec.ResultHash != "" && !isHash(rec.ResultHash):
		return bad("resultHash is not a hex SHA-256")
	case rec.Sig != nil && len(rec.Sig) != ed25519.SignatureSize:
		return bad("sig is not an ed25519 signature")
	}
	want, err := rec.MarshalLine()
	if err != nil {
		return Record{}, err
	}
	if !bytes.Equal(want[:len(want)-1], line) {
		return bad("line is not the canonical form of its record")
	}
	return rec, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// AuditSummary describes a verified audit file.
type AuditSummary struct {
	Records int
	// FirstSeq and LastSeq are the seq of the first and last records.
	FirstSeq, LastSeq uint64
	// Head is the hash of the last record: anchor it elsewhere to detect
	// removal of the newest records.
	Head string
	// Signed counts the records whose signature was checked.
	Signed int
}

// VerifyAudit checks an audit file's chain and names the first bad line.
func VerifyAudit(r io.Reader) error {
	_, err := CheckAudit(r, nil)
	return err
}

// CheckAudit checks an audit file: every line canonical, every hash, every
// prev, seq without gaps from 1, and, when pub is not nil, every record
// signed by pub. It returns a summary, or an *AuditError naming the first
// bad line.
func CheckAudit(r io.Reader, pub ed25519.PublicKey) (AuditSummary, error) {
	var sum AuditSummary
	br := bufio.NewReaderSize(r, 64<<10)
	prev, next := zeroHash, uint64(1)
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return sum, nil
		}
		if err != nil {
			return sum, &AuditError{Line: lineNo, Err: err}
		}
		rec, err := ParseAuditLine(line)
		if err != nil {
			return sum, &AuditError{Line: lineNo, Err: err}
		}
		fail := func(err error) (AuditSummary, error) {
			return sum, &AuditError{Line: lineNo, Seq: rec.Seq, Err: err}
		}
		h, err := rec.computeHash()
		if err != nil {
			return fail(err)
		}
		switch {
		case h != rec.Hash:
			return fail(ErrAuditHash)
		case rec.Prev != prev:
			return fail(ErrAuditChain)
		case rec.Seq != next:
			return fail(fmt.Errorf("%w: want seq %d", ErrAuditSeq, next))
		}
		if pub != nil {
			if !ed25519.Verify(pub, []byte(auditSigPrefix+rec.Hash), rec.Sig) {
				return fail(ErrAuditSignature)
			}
			sum.Signed++
		}
		if sum.Records == 0 {
			sum.FirstSeq = rec.Seq
		}
		sum.Records++
		sum.LastSeq, sum.Head = rec.Seq, rec.Hash
		prev, next = rec.Hash, rec.Seq+1
	}
}

// ReadAudit decodes every record of an audit file without checking the
// chain (for display).
func ReadAudit(r io.Reader) ([]Record, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Record
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err == nil {
			var rec Record
			rec, err = ParseAuditLine(line)
			out = append(out, rec)
		}
		if err != nil {
			return out, &AuditError{Line: lineNo, Err: err}
		}
	}
}

// readLine returns the next newline-terminated line without its newline.
// A final line without newline is ErrAuditTorn.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > MaxAuditLine+1 {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrAuditMalformed, MaxAuditLine)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, ErrAuditTorn
		default:
			return nil, err
		}
	}
}

// AuditConfig configures an Audit. The zero value works.
type AuditConfig struct {
	// Identity signs each record when set; if nil, records are unsigned
	// and the chain alone protects them.
	Identity *signing.Identity
	// SyncEvery is how many records may be written between fsyncs; if
	// zero, 1 (fsync every record). Records are written with one write(2)
	// each, so only a power loss or kernel crash can take the up to
	// SyncEvery-1 records not yet synced; Close and Sync flush them.
	SyncEvery int
	// Logger; if nil, logs are discarded.
	Logger *slog.Logger
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

func (c *AuditConfig) populate() {
	if c.SyncEvery <= 0 {
		c.SyncEvery = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "report.audit")
	if c.Now == nil {
		c.Now = time.Now
	}
}

// AuditEntry is what a caller records about one exchange; Append fills in
// the rest of the Record.
type AuditEntry struct {
	Session   string
	Peer      string
	Direction string // DirectionIn or DirectionOut
	Method    string
	Target    string
	// Arguments are hashed with signing.HashArgs; nil hashes as "{}".
	Arguments json.RawMessage
	// Result is hashed (canonical SHA-256) unless Err is set.
	Result json.RawMessage
	Err    error
}

// Audit is an append-only, hash-chained audit trail. It is safe for
// concurrent use.
type Audit struct {
	cfg AuditConfig

	mu       sync.Mutex
	f        *os.File
	seq      uint64
	head     string
	unsynced int
	closed   bool
}

// OpenAudit opens (creating it if needed) the audit file at path and
// resumes its chain. A torn last line is truncated and logged; a last
// complete line that does not decode or whose hash is wrong fails with an
// *AuditError, since continuing would hide the damage. Earlier lines are
// not re-checked on open (that is VerifyAudit's job).
func OpenAudit(path string, cfg AuditConfig) (*Audit, error) {
	cfg.populate()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("report: audit: %w", err)
	}
	a := &Audit{cfg: cfg, f: f, head: zeroHash}
	if err := a.resume(); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// resume finds the last complete line, truncating anything after it.
func (a *Audit) resume() error {
	size, err := a.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("report: audit: %w", err)
	}
	if size == 0 {
		return nil
	}
	// Read backwards until the last newline and the one before it.
	const chunk = 64 << 10
	var tail []byte
	pos := size
	lastNL := int64(-1)
	for pos > 0 {
		n := min(int64(chunk), pos)
		pos -= n
		buf := make([]byte, n)
		if _, err := a.f.ReadAt(buf, pos); err != nil {
			return fmt.Errorf("report: audit: %w", err)
		}
		tail = append(buf, tail...)
		if lastNL < 0 {
			if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
				lastNL = pos + int64(i)
			}
		}
		if lastNL >= 0 {
			rel := lastNL - pos
			if bytes.LastIndexByte(tail[:rel], '\n') >= 0 || pos == 0 {
				break
			}
		}
		if int64(len(tail)) > 2*MaxAuditLine+chunk {
			break
		}
	}
	if lastNL < 0 && pos > 0 {
		return fmt.Errorf("%w: %s: no line end in the last %d bytes", ErrAuditMalformed, a.f.Name(), len(tail))
	}
	end := lastNL + 1 // length of the complete part
	if end < size {
		a.cfg.Logger.Warn("truncating torn last audit line", "file", a.f.Name(), "bytes", size-end)
		if err := a.f.Truncate(end); err != nil {
			return fmt.Errorf("report: audit: %w", err)
		}
		if err := a.f.Sync(); err != nil {
			return fmt.Errorf("report: audit: %w", err)
		}
	}
	if end == 0 {
		return nil
	}
	rel := lastNL - pos
	start := bytes.LastIndexByte(tail[:rel], '\n') + 1
	line := tail[start:rel]
	rec, err := ParseAuditLine(line)
	if err == nil {
		var h string
		if h, err = rec.computeHash(); err == nil && h != rec.Hash {
			err = ErrAuditHash
		}
	}
	if err != nil {
		return fmt.Errorf("report: audit: %s: last record: %w", a.f.Name(), err)
	}
	a.seq, a.head = rec.Seq, rec.Hash
	_, err = a.f.Seek(0, io.SeekEnd)
	return err
}

// Append writes one record and returns it.
func (a *Audit) Append(e AuditEntry) (Record, error) {
	if e.Direction != DirectionIn && e.Direction != DirectionOut {
		return Record{}, fmt.Errorf("%w: direction %q", ErrAuditMalformed, e.Direction)
	}
	if e.Method == "" {
		return Record{}, fmt.Errorf("%w: no method", ErrAuditMalformed)
	}
	rec := Record{
		Session:   clip(e.Session),
		Peer:      clip(e.Peer),
		Direction: e.Direction,
		Method:    clip(e.Method),
		Target:    clip(e.Target),
	}
	ah, err := signing.HashArgs(e.Arguments)
	if err != nil {
		return Record{}, fmt.Errorf("report: audit: arguments: %w", err)
	}
	rec.ArgsHash = hex.EncodeToString(ah[:])
	if e.Err != nil {
		rec.Error = clip(e.Err.Error())
		if rec.Error == "" {
			rec.Error = "error"
		}
	} else if e.Result != nil {
		c, err := signing.Canonicalize(e.Result)
		if err != nil {
			return Record{}, fmt.Errorf("report: audit: result: %w", err)
		}
		h := sha256.Sum256(c)
		rec.ResultHash = hex.EncodeToString(h[:])
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Record{}, fmt.Errorf("report: audit: %w", net.ErrClosed)
	}
	rec.Seq = a.seq + 1
	rec.Time = a.cfg.Now().UTC()
	rec.Prev = a.head
	if rec.Hash, err = rec.computeHash(); err != nil {
		return Record{}, fmt.Errorf("report: audit: %w", err)
	}
	if a.cfg.Identity != nil {
		rec.Sig = a.cfg.Identity.Sign([]byte(auditSigPrefix + rec.Hash))
	}
	line, err := rec.MarshalLine()
	if err != nil {
		return Record{}, err
	}
	// One write per record: after a crash a line is complete or torn,
	// never interleaved.
	if _, err := a.f.Write(line); err != nil {
		return Record{}, fmt.Errorf("report: audit: %w", err)
	}
	a.seq, a.head = rec.Seq, rec.Hash
	a.unsynced++
	if a.unsynced >= a.cfg.SyncEvery {
		if err := a.syncLocked(); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// clip bounds free text and makes it valid UTF-8 so it survives the
// canonical form unchanged.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxAuditText {
		s = strings.ToValidUTF8(s[:maxAuditText], "") + "…"
	}
	return s
}

// Head returns the seq and hash of the newest record (0 and 64 zeros for
// an empty trail).
func (a *Audit) Head() (seq uint64, hash string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seq, a.head
}

// Sync flushes records written since the last fsync.
func (a *Audit) Sync() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("report: audit: %w", net.ErrClosed)
	}
	return a.syncLocked()
}

func (a *Audit) syncLocked() error {
	if a.unsynced == 0 {
		return nil
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("report: audit: %w", err)
	}
	a.unsynced = 0
	return nil
}

// Close syncs and closes the file. A second call returns an error wrapping
// net.ErrClosed.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("report: audit: %w", net.ErrClosed)
	}
	a.closed = true
	err := a.syncLocked()
	if cerr := a.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("report: audit: %w", cerr)
	}
	return err
}

package collab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// lineStream is a jsonrpc2.ObjectStream with MCP stdio framing: one JSON
// object per line, "\n" terminated. Lines longer than max are refused
// without being buffered beyond max: ReadObject fails with ErrTooLarge and
// the session ends, because the id of the oversize request cannot be
// known without reading it whole.
type lineStream struct {
	r   *bufio.Reader
	rwc io.ReadWriteCloser
	max int
	// setWriteDeadline bounds each write so that a peer that stops reading
	// cannot block the writer forever; nil disables it.
	setWriteDeadline func(time.Time) error
	writeTimeout     time.Duration
	// onTooLarge is called once when an oversize line arrives, before
	// ReadObject returns.
	onTooLarge func()

	wmu  sync.Mutex
	buf  []byte
	once sync.Once
}

func newLineStream(rwc io.ReadWriteCloser, max int) *lineStream {
	// 16 KiB read buffer: most messages fit in one ReadSlice.
	return &lineStream{r: bufio.NewReaderSize(rwc, 16<<10), rwc: rwc, max: max}
}

// WriteObject encodes v on one line. Objects over max are refused locally.
func (s *lineStream) WriteObject(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("collab: encode: %w", err)
	}
	return s.writeLine(b)
}

func (s *lineStream) writeLine(b []byte) error {
	if len(b)+1 > s.max {
		return fmt.Errorf("collab: outgoing message of %d bytes: %w", len(b)+1, ErrTooLarge)
	}
	if bytes.IndexByte(b, '\n') >= 0 {
		// encoding/json never emits a raw newline; a RawMessage might.
		return errors.New("collab: message contains a newline")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.setWriteDeadline != nil {
		_ = s.setWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	s.buf = append(append(s.buf[:0], b...), '\n')
	_, err := s.rwc.Write(s.buf)
	if cap(s.buf) > 64<<10 {
		s.buf = nil // do not pin a large buffer
	}
	return err
}

// ReadObject reads the next non-empty line and decodes it into v.
func (s *lineStream) ReadObject(v any) error {
	for {
		line, err := s.readLine()
		if err != nil {
			return err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if err := decodeLine(line, v); err != nil {
			return fmt.Errorf("collab: malformed message: %w", err)
		}
		return nil
	}
}

// decodeLine decodes one message into v. jsonrpc2 hands in its message
// type, a json.Unmarshaler that parses with encoding/json itself; calling
// it directly spares json.Unmarshal's separate validity scan of the whole
// line, one of several passes over every result a caller receives.
func decodeLine(line []byte, v any) error {
	if u, ok := v.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(line)
	}
	return json.Unmarshal(line, v)
}

func (s *lineStream) readLine() ([]byte, error) {
	var acc []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(acc)+len(chunk) > s.max {
			if s.onTooLarge != nil {
				s.onTooLarge()
			}
			return nil, fmt.Errorf("collab: incoming message over %d bytes: %w", s.max, ErrTooLarge)
		}
		switch {
		case err == nil:
			if acc == nil {
				return chunk, nil // valid until the next read; decoded before that
			}
			return append(acc, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			acc = append(acc, chunk...)
		case errors.Is(err, io.EOF) && len(acc)+len(chunk) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// Close closes the underlying stream once.
func (s *lineStream) Close() error {
	var err error
	s.once.Do(func() { err = s.rwc.Close() })
	return err
}

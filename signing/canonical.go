package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalidJSON is returned (wrapped in a *SyntaxError) for input that is
// not JSON acceptable to RFC 8785: bad syntax, invalid UTF-8, lone
// surrogates, numbers outside IEEE 754 double range, duplicate object keys
// or nesting deeper than maxDepth.
var ErrInvalidJSON = errors.New("signing: invalid JSON for canonicalization")

// SyntaxError locates a canonicalization failure in its input.
type SyntaxError struct {
	Offset int    // byte offset in the input
	Msg    string // what is wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("signing: invalid JSON at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap lets errors.Is(err, ErrInvalidJSON) match.
func (e *SyntaxError) Unwrap() error { return ErrInvalidJSON }

// maxDepth bounds nesting so that hostile input cannot exhaust the stack;
// results and arguments of d2d tools are shallow (YANG JSON rarely passes 20).
const maxDepth = 512

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the single JSON text in: no insignificant whitespace, object members
// sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3), strings
// with the minimal escaping of §3.2.2.2 and numbers serialized as ECMAScript
// does (§3.2.2.3). Duplicate member names are rejected (I-JSON, RFC 7493).
func Canonicalize(in []byte) ([]byte, error) {
	p := parser{in: in}
	p.skipSpace()
	out := make([]byte, 0, len(in))
	out, err := p.value(out, 0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return nil, p.fail("trailing data after JSON value")
	}
	return out, nil
}

// emptyArgs is what a request without arguments hashes as (docs/ARCHITECTURE.md §3.3).
var emptyArgs = []byte("{}")

// HashArgs returns the SHA-256 of the canonical form of args. Absent
// arguments (empty or JSON null) hash as the canonical empty object "{}",
// so that a call without arguments and one with {} bind identically.
func HashArgs(args json.RawMessage) ([32]byte, error) {
	t := bytes.TrimSpace(args)
	if len(t) == 0 || string(t) == "null" {
		return sha256.Sum256(emptyArgs), nil
	}
	c, err := Canonicalize(t)
	if err != nil {
		return [32]byte{}, fmt.Errorf("signing: arguments: %w", err)
	}
	return sha256.Sum256(c), nil
}

type parser struct {
	in  []byte
	pos int
}

func (p *parser) fail(format string, args ...any) error {
	return &SyntaxError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses one JSON value at p.pos and appends its canonical form.
func (p *parser) value(out []byte, depth int) ([]byte, error) {
	if p.pos >= len(p.in) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(out, depth+1)
	case c == '[':
		return p.array(out, depth+1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return appendJCSString(out, s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(out)
	case c == 't':
		return p.literal(out, "true")
	case c == 'f':
		return p.literal(out, "false")
	case c == 'n':
		return p.literal(out, "null")
	default:
		return nil, p.fail("unexpected character %q", c)
	}
}

func (p *parser) literal(out []byte, lit string) ([]byte, error) {
	if !bytes.HasPrefix(p.in[p.pos:], []byte(lit)) {
		return nil, p.fail("invalid literal")
	}
	p.pos += len(lit)
	return append(out, lit...), nil
}

type member struct {
	name  string
	key   []uint16 // name in UTF-16 code units, the RFC 8785 sort key
	value []byte   // canonical value
}

func (p *parser) object(out []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.fail("nesting deeper than %d", maxDepth)
	}
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		return append(out, "{}"...), nil
	}
	var members []member
	seen := make(map[string]struct{})
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return nil, p.fail("expected object member name")
		}
		at := p.pos
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := seen[name]; dup {
			return nil, &SyntaxError{Offset: at, Msg: fmt.Sprintf("duplicate object member name %q", name)}
		}
		seen[name] = struct{}{}
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return nil, p.fail("expected ':' after member name")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(nil, depth)
		if err != nil {
			return nil, err
		}
		members = append(members, member{name: name, key: utf16.Encode([]rune(name)), value: v})
		p.skipSpace()
		if p.pos >= len(p.in) {
			return nil, p.fail("unexpected end of input in object")
		}
		if p.in[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.in[p.pos] == '}' {
			p.pos++
			break
		}
		return nil, p.fail("expected ',' or '}' in object")
	}
	// RFC 8785 §3.2.3: sort by UTF-16 code units, compared as unsigned
	// integers, independent of locale.
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.key, b.key) })
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJCSString(out, m.name)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}'), nil
}

func (p *parser) array(out []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.fail("nesting deeper than %d", maxDepth)
	}
	p.pos++ // '['
	p.skipSpace()
	out = append(out, '[')
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		return append(out, ']'), nil
	}
	for first := true; ; first = false {
		if !first {
			out = append(out, ',')
		}
		p.skipSpace()
		var err error
		out, err = p.value(out, depth)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return nil, p.fail("unexpected end of input in array")
		}
		if p.in[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.in[p.pos] == ']' {
			p.pos++
			return append(out, ']'), nil
		}
		return nil, p.fail("expected ',' or ']' in array")
	}
}

// str parses a JSON string (RFC 8259 §7) and returns its decoded value.
func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	var b []byte
	start := p.pos
	for {
		if p.pos >= len(p.in) {
			return "", p.fail("unterminated string")
		}
		c := p.in[p.pos]
		switch {
		case c == '"':
			b = append(b, p.in[start:p.pos]...)
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", p.fail("control character %#02x in string", c)
		case c == '\\':
			b = append(b, p.in[start:p.pos]...)
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
			start = p.pos
		case c < utf8.RuneSelf:
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.in[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.pos += n
		}
	}
}

// escape decodes one backslash escape, joining surrogate pairs. Lone
// surrogates are rejected: they cannot be represented in UTF-8 and I-JSON
// (RFC 7493 §2.1) forbids them.
func (p *parser) escape() (rune, error) {
	p.pos++ // backslash
	if p.pos >= len(p.in) {
		return 0, p.fail("unterminated escape")
	}
	c := p.in[p.pos]
	p.pos++
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		if r >= 0xdc00 {
			return 0, p.fail("lone low surrogate \\u%04x", r)
		}
		if p.pos+1 >= len(p.in) || p.in[p.pos] != '\\' || p.in[p.pos+1] != 'u' {
			return 0, p.fail("lone high surrogate \\u%04x", r)
		}
		p.pos += 2
		r2, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if r2 < 0xdc00 || r2 > 0xdfff {
			return 0, p.fail("high surrogate \\u%04x not followed by a low surrogate", r)
		}
		return utf16.DecodeRune(r, r2), nil
	default:
		return 0, p.fail("invalid escape \\%c", c)
	}
}

func (p *parser) hex4() (rune, error) {
	if p.pos+4 > len(p.in) {
		return 0, p.fail("short \\u escape")
	}
	var r rune
	for _, c := range p.in[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.fail("invalid hex digit %q in \\u escape", c)
		}
	}
	p.pos += 4
	return r, nil
}

// number validates the RFC 8259 §6 number grammar, converts to an IEEE 754
// double and appends the ECMAScript serialization (RFC 8785 §3.2.2.3).
func (p *parser) number(out []byte) ([]byte, error) {
	start := p.pos
	in := p.in
	digits := func() int {
		n := 0
		for p.pos < len(in) && in[p.pos] >= '0' && in[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if in[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(in) && in[p.pos] == '0':
		p.pos++
	case digits() == 0:
		return nil, p.fail("invalid number")
	}
	if p.pos < len(in) && in[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.fail("invalid number: no digits after '.'")
		}
	}
	if p.pos < len(in) && (in[p.pos] == 'e' || in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(in) && (in[p.pos] == '+' || in[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.fail("invalid number: no digits in exponent")
		}
	}
	f, err := strconv.ParseFloat(string(in[start:p.pos]), 64)
	if err != nil {
		return nil, &SyntaxError{Offset: start, Msg: fmt.Sprintf("number %s is outside the IEEE 754 double range", in[start:p.pos])}
	}
	return appendJCSNumber(out, f)
}

// appendJCSNumber appends f as ECMAScript's Number.prototype.toString
// would (ECMA-262 §7.1.12.1, as required by RFC 8785 §3.2.2.3): the
// shortest digits that round-trip, plain notation for decimal exponents in
// [-7, 21), exponential notation otherwise, and -0 as "0".
func appendJCSNumber(out []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %v cannot be represented in JSON", ErrInvalidJSON, f)
	}
	if f == 0 {
		return append(out, '0'), nil
	}
	if f < 0 {
		out = append(out, '-')
		f = -f
	}
	// Shortest round-tripping digits d1d2...dk and exponent so that
	// f = 0.d1...dk × 10^n (ECMA-262's n).
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	mant, exp, _ := bytes.Cut(e, []byte("e"))
	ds := make([]byte, 0, 17)
	for _, c := range mant {
		if c != '.' {
			ds = append(ds, c)
		}
	}
	x, _ := strconv.Atoi(string(exp))
	k := len(ds)
	n := x + 1
	switch {
	case k <= n && n <= 21:
		out = append(out, ds...)
		for range n - k {
			out = append(out, '0')
		}
	case 0 < n && n <= 21:
		out = append(out, ds[:n]...)
		out = append(out, '.')
		out = append(out, ds[n:]...)
	case -6 < n && n <= 0:
		out = append(out, "0."...)
		for range -n {
			out = append(out, '0')
		}
		out = append(out, ds...)
	default:
		out = append(out, ds[0])
		if k > 1 {
			out = append(out, '.')
			out = append(out, ds[1:]...)
		}
		out = append(out, 'e')
		if n-1 >= 0 {
			out = append(out, '+')
		}
		out = strconv.AppendInt(out, int64(n-1), 10)
	}
	return out, nil
}

// appendJCSString appends s as a JSON string with RFC 8785 §3.2.2.2
// escaping: the two-character escapes for \b \t \n \f \r " and \, \u00xx
// (lower-case hex) for the other control characters, everything else as
// literal UTF-8.
func appendJCSString(out []byte, s string) []byte {
	const hexdig = "0123456789abcdef"
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		switch c {
		case '"':
			out = append(out, '\\', '"')
		case '\\':
			out = append(out, '\\', '\\')
		case '\b':
			out = append(out, '\\', 'b')
		case '\t':
			out = append(out, '\\', 't')
		case '\n':
			out = append(out, '\\', 'n')
		case '\f':
			out = append(out, '\\', 'f')
		case '\r':
			out = append(out, '\\', 'r')
		default:
			out = append(out, '\\', 'u', '0', '0', hexdig[c>>4], hexdig[c&0xf])
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

package signing_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/d2dmesh/d2d/signing"
)

// RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript
// serialization.
func TestCanonicalNumbersRFC8785(t *testing.T) {
	tests := []struct {
		bits string
		want string
	}{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"},
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	}
	for _, tc := range tests {
		t.Run(tc.bits, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.bits)
			f := math.Float64frombits(binary.BigEndian.Uint64(b))
			// Feed the number through JSON in a form that is not already
			// canonical (Go's %g, exponent "e+0X" style where it applies).
			in, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := signing.Canonicalize(in)
			if err != nil {
				t.Fatalf("Canonicalize(%s): %v", in, err)
			}
			if string(got) != tc.want {
				t.Errorf("Canonicalize(%s) = %s, want %s", in, got, tc.want)
			}
			// And the canonical form is a fixed point.
			again, err := signing.Canonicalize(got)
			if err != nil || string(again) != tc.want {
				t.Errorf("re-canonicalize %s = %s, %v", got, again, err)
			}
		})
	}
}

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			// RFC 8785 §3.2.2 example.
			name: "rfc8785-3.2.2",
			in: `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			// RFC 8785 §3.2.3 sorting example: UTF-16 code unit order puts
			// the emoji (surrogate pair D83D DE00) before U+FB33.
			name: "rfc8785-3.2.3",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{name: "nested", in: ` { "b" : [ {"z":1,"a":2} , [] , {} ], "a" : "x" } `, want: `{"a":"x","b":[{"a":2,"z":1},[],{}]}`},
		{name: "escapes", in: `"\b\f\n\r\t\u0001\u001f\u007f\u2028"`, want: "\"\\b\\f\\n\\r\\t\\u0001\\u001f\u007f\u2028\""},
		{name: "integers", in: `[0,-0,1,-1,10,100e-2,1e2,123456789012345678901234]`, want: `[0,0,1,-1,10,1,100,1.2345678901234569e+23]`},
		{name: "literal-utf8", in: `"é😀"`, want: `"é😀"`},
		{name: "scalar-null", in: `null`, want: `null`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signing.Canonicalize([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		msg  string // part of the error text
	}{
		{"empty", ``, "end of input"},
		{"duplicate", `{"a":1,"a":2}`, `duplicate object member name "a"`},
		{"duplicate-escaped", `{"a":1,"\u0061":2}`, "duplicate"},
		{"duplicate-nested", `[{"x":{"k":1,"k":1}}]`, "duplicate"},
		{"trailing", `{} {}`, "trailing data"},
		{"trailing-comma", `[1,]`, "unexpected character"},
		{"single-quote", `{'a':1}`, "member name"},
		{"leading-zero", `01`, "trailing data"},
		{"plus", `+1`, "unexpected character"},
		{"dot", `1.`, "no digits after"},
		{"exp", `1e`, "exponent"},
		{"huge", `1e400`, "IEEE 754"},
		{"nan", `NaN`, "unexpected character"},
		{"lone-high", `"\ud800"`, "lone high surrogate"},
		{"lone-low", `"\udc00x"`, "lone low surrogate"},
		{"bad-pair", `"\ud800\u0041"`, "not followed by a low surrogate"},
		{"bad-utf8", "\"\xff\"", "invalid UTF-8"},
		{"control", "\"a\nb\"", "control character"},
		{"bad-escape", `"\x"`, "invalid escape"},
		{"unterminated", `{"a":"b`, "unterminated string"},
		{"deep", strings.Repeat("[", 600) + strings.Repeat("]", 600), "nesting deeper"},
		{"true-typo", `tru`, "invalid literal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signing.Canonicalize([]byte(tc.in))
			if err == nil {
				t.Fatalf("Canonicalize(%q) succeeded", tc.in)
			}
			if !errors.Is(err, signing.ErrInvalidJSON) {
				t.Errorf("error %v does not wrap ErrInvalidJSON", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestHashArgs(t *testing.T) {
	empty, err := signing.HashArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"", "null", " null ", "{}", " { } "} {
		h, err := signing.HashArgs(json.RawMessage(in))
		if err != nil || h != empty {
			t.Errorf("HashArgs(%q) = %x, %v; want hash of {}", in, h, err)
		}
	}
	a, _ := signing.HashArgs(json.RawMessage(`{"dst":"2001:db8::3","count":5}`))
	b, _ := signing.HashArgs(json.RawMessage(`{ "count" : 5.0, "dst" : "2001:db8::3" }`))
	if a != b {
		t.Error("equivalent arguments hash differently")
	}
	if _, err := signing.HashArgs(json.RawMessage(`{"a":1,"a":1}`)); err == nil {
		t.Error("duplicate keys in arguments accepted")
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"literals":[null,true,false]}`,
		`{"\u20ac":"Euro","\ud83d\ude00":1,"\ufb33":[],"\r":{}}`,
		`[1e21,1e-7,-0,5e-324,"\u0000"]`,
		`{"a":{"b":{"c":[1,2,{"d":"e"}]}}}`,
		`"\b\f\n\r\t\"\\\/"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := signing.Canonicalize(in)
		if err != nil {
			return
		}
		again, err := signing.Canonicalize(out)
		if err != nil {
			t.Fatalf("canonical output %q does not re-canonicalize: %v", out, err)
		}
		if string(again) != string(out) {
			t.Fatalf("not a fixed point:\n%q\n%q", out, again)
		}
		if !json.Valid(out) {
			t.Fatalf("canonical output is not valid JSON: %q", out)
		}
	})
}

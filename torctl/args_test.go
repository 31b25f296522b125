package torctl

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in         string
		positional []string
		keywords   []KeyValue
	}{
		{`AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/lib/tor/control auth cookie"`,
			[]string{"AUTH"},
			[]KeyValue{{"METHODS", "COOKIE,SAFECOOKIE"}, {"COOKIEFILE", "/var/lib/tor/control auth cookie"}}},
		{`VERSION Tor="0.4.8.12" OTHER=x`, []string{"VERSION"}, []KeyValue{{"Tor", "0.4.8.12"}, {"OTHER", "x"}}},
		// LongNames with "=" are positional: "$" is not a keyword character.
		{`$0EB7C8AAD759B26D37B857E7080FD2B138B75A1C=relay1 CLOSED`,
			[]string{"$0EB7C8AAD759B26D37B857E7080FD2B138B75A1C=relay1", "CLOSED"}, nil},
		{`ADDRMAP example.com 93.184.216.34 "2024-03-01 12:00:00" EXPIRES="2024-03-01 11:00:00" CACHED="NO"`,
			[]string{"ADDRMAP", "example.com", "93.184.216.34", "2024-03-01 12:00:00"},
			[]KeyValue{{"EXPIRES", "2024-03-01 11:00:00"}, {"CACHED", "NO"}}},
		{`  spaced   out  `, []string{"spaced", "out"}, nil},
		{`EMPTY= QUOTED=""`, nil, []KeyValue{{"EMPTY", ""}, {"QUOTED", ""}}},
		{`CountrySummary=us=16,de=8`, nil, []KeyValue{{"CountrySummary", "us=16,de=8"}}},
		{`ESC="a\"b\\c\nd\te\rf\101\0g\377\400\q"`, nil,
			[]KeyValue{{"ESC", "a\"b\\c\nd\te\rfA\x00g\xff\x200q"}}},
		{`"positional \"quoted\""`, []string{`positional "quoted"`}, nil},
		{``, nil, nil},
	}
	for _, tt := range tests {
		a, err := ParseArgs(tt.in)
		if err != nil {
			t.Errorf("ParseArgs(%q): %v", tt.in, err)
			continue
		}
		if !slices.Equal(a.Positional, tt.positional) || !slices.Equal(a.Keywords, tt.keywords) {
			t.Errorf("ParseArgs(%q) = %q %q, want %q %q", tt.in, a.Positional, a.Keywords, tt.positional, tt.keywords)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	for in, msg := range map[string]string{
		`K="unterminated`:       "argument 1 (K): unterminated quoted string",
		`a "b`:                  "argument 2: unterminated quoted string",
		`K="a"b`:                `unexpected "b" after quoted string`,
		`"a"b`:                  `unexpected "b" after quoted string`,
		`K="ends in backslash\`: "unterminated",
	} {
		_, err := ParseArgs(in)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseArgs(%q) err = %v, want %q", in, err, msg)
		}
	}
}

func TestParseKeywords(t *testing.T) {
	pos, kv, err := ParseKeywords(`250 OK A=1 A=2 B="x y"`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pos, []string{"250", "OK"}) || kv["A"] != "1" || kv["B"] != "x y" || len(kv) != 2 {
		t.Errorf("got %q %q", pos, kv)
	}
}

// quoteRoundTrip checks that QuoteString(s) fits on one line and that
// UnquoteString gives s back.
func quoteRoundTrip(s string) error {
	q := QuoteString(s)
	if strings.ContainsAny(q, "\r\n") {
		return fmt.Errorf("QuoteString(%q) = %q has a line break", s, q)
	}
	if got, err := UnquoteString(q); err != nil || got != s {
		return fmt.Errorf("UnquoteString(QuoteString(%q)) = %q, %v", s, got, err)
	}
	return nil
}

func TestQuoteString(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b\c`, "line\r\nbreak\ttab", "\x00\x01\x7f\xff", "caf\u00e9"} {
		if err := quoteRoundTrip(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := UnquoteString(`"a" `); err == nil {
		t.Error("trailing text accepted")
	}
	if _, err := UnquoteString(`a`); err == nil {
		t.Error("unquoted text accepted")
	}
}

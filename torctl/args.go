package torctl

import (
	"errors"
	"fmt"
	"strings"
)

// KeyValue is one KEY=VALUE argument, with any quoting removed.
type KeyValue struct {
	Key   string
	Value string
}

// Args is a parsed argument list: positional arguments and KEY=VALUE
// keywords, each in the order tor sent them. Keywords tor adds in later
// versions are kept like any other.
type Args struct {
	Positional []string
	Keywords   []KeyValue
}

// Get returns the value of the first keyword named key.
func (a *Args) Get(key string) (string, bool) {
	for _, kv := range a.Keywords {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Map returns the keywords as a map. When a keyword repeats, the first
// value wins; use a.Keywords to see them all.
func (a *Args) Map() map[string]string {
	m := make(map[string]string, len(a.Keywords))
	for _, kv := range a.Keywords {
		if _, ok := m[kv.Key]; !ok {
			m[kv.Key] = kv.Value
		}
	}
	return m
}

// ParseKeywords splits a reply or event text into positional arguments
// and KEY=VALUE keywords. See [ParseArgs] for the rules.
func ParseKeywords(s string) (positional []string, kv map[string]string, err error) {
	a, err := ParseArgs(s)
	if err != nil {
		return nil, nil, err
	}
	return a.Positional, a.Map(), nil
}

// ParseArgs splits s at spaces into arguments. An argument is a keyword
// when it starts with KEY= where KEY is made of letters, digits and
// "_-./" (so "$FP=nick" stays positional); its VALUE is either a
// QuotedString or runs to the next space. A positional argument may also
// be a QuotedString. Quoted strings are decoded as control-spec 2.1.1
// advises for strings from tor: \n \t \r and octal \0 to \377 are C
// escapes, and a backslash before any other character stands for that
// character.
func ParseArgs(s string) (*Args, error) {
	a := &Args{}
	n := 0
	for i := 0; ; {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			return a, nil
		}
		n++
		if s[i] == '"' {
			v, used, err := unquotePrefix(s[i:])
			if err != nil {
				return nil, fmt.Errorf("torctl: argument %d: %w", n, err)
			}
			i += used
			if i < len(s) && s[i] != ' ' {
				return nil, fmt.Errorf("torctl: argument %d: unexpected %q after quoted string", n, s[i:i+1])
			}
			a.Positional = append(a.Positional, v)
			continue
		}
		k := i
		for k < len(s) && isKeywordChar(s[k]) {
			k++
		}
		if k > i && k < len(s) && s[k] == '=' {
			key := s[i:k]
			j := k + 1
			if j < len(s) && s[j] == '"' {
				v, used, err := unquotePrefix(s[j:])
				if err != nil {
					return nil, fmt.Errorf("torctl: argument %d (%s): %w", n, key, err)
				}
				j += used
				if j < len(s) && s[j] != ' ' {
					return nil, fmt.Errorf("torctl: argument %d (%s): unexpected %q after quoted string", n, key, s[j:j+1])
				}
				a.Keywords = append(a.Keywords, KeyValue{Key: key, Value: v})
				i = j
				continue
			}
			e := strings.IndexByte(s[j:], ' ')
			if e < 0 {
				e = len(s) - j
			}
			a.Keywords = append(a.Keywords, KeyValue{Key: key, Value: s[j : j+e]})
			i = j + e
			continue
		}
		e := strings.IndexByte(s[i:], ' ')
		if e < 0 {
			e = len(s) - i
		}
		a.Positional = append(a.Positional, s[i:i+e])
		i += e
	}
}

func isKeywordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == '/'
}

var errUnterminated = errors.New("unterminated quoted string")

// UnquoteString decodes s, which must be exactly one QuotedString
// (see [ParseArgs] for the escapes).
func UnquoteString(s string) (string, error) {
	if len(s) == 0 || s[0] != '"' {
		return "", errors.New("torctl: quoted string must start with '\"'")
	}
	v, used, err := unquotePrefix(s)
	if err != nil {
		return "", fmt.Errorf("torctl: %w", err)
	}
	if used != len(s) {
		return "", fmt.Errorf("torctl: unexpected %q after quoted string", s[used:])
	}
	return v, nil
}

// unquotePrefix decodes the QuotedString at the start of s (s[0] == '"')
// and returns it with the number of bytes it used.
func unquotePrefix(s string) (string, int, error) {
	// Fast path: no escapes, the value is a substring.
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return s[1:i], i + 1, nil
		case '\\':
			return unquoteSlow(s)
		}
	}
	return "", 0, errUnterminated
}

func unquoteSlow(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i >= len(s) {
				return "", 0, errUnterminated
			}
			c = s[i]
			switch {
			case c == 'n':
				b.WriteByte('\n')
			case c == 't':
				b.WriteByte('\t')
			case c == 'r':
				b.WriteByte('\r')
			case '0' <= c && c <= '7':
				// Up to three octal digits, as long as the value fits a byte.
				v := int(c - '0')
				for n := 1; n < 3 && i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '7' && v*8+int(s[i+1]-'0') <= 0377; n++ {
					i++
					v = v*8 + int(s[i]-'0')
				}
				b.WriteByte(byte(v))
			default:
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errUnterminated
}

// QuoteString encodes s as a QuotedString for a command. Backslash and
// double quote are escaped, CR, LF and tab use their C escapes and other
// control bytes use octal escapes, so the result never breaks the command
// line it is written on.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			b.WriteByte('\\')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + c>>3&7)
			b.WriteByte('0' + c&7)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

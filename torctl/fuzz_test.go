package torctl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets. Seeds are the sample transcripts and event lines in
// testdata plus the corpora in testdata/fuzz. To fuzz one target:
//
//	go test ./torctl -run '^$' -fuzz '^FuzzReply$' -fuzztime 45s

func FuzzReply(f *testing.F) {
	for _, name := range []string{"replies/protocolinfo.txt", "replies/getinfo.txt", "replies/interleaved.txt"} {
		s := readTestdata(f, name)
		f.Add([]byte(s))
		f.Add([]byte(crlf(s)))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		r.MaxLineBytes, r.MaxReplyBytes = 256, 4096
		for range 64 {
			rep, err := r.ReadReply()
			if err == io.EOF {
				return
			}
			var pe *ProtocolError
			if err != nil {
				if !errors.As(err, &pe) || pe.Line < 1 || !strings.HasPrefix(err.Error(), "torctl: line ") {
					t.Fatalf("error %v is not a ProtocolError naming a line", err)
				}
				return
			}
			if rep.Code < 0 || rep.Code > 999 || len(rep.Lines) == 0 {
				t.Fatalf("bad reply %+v", rep)
			}
			// What the Reader decodes, encoded again, decodes the same.
			again, err := NewReader(bytes.NewReader(encodeReply(rep))).ReadReply()
			if err != nil {
				t.Fatalf("re-reading %q: %v", encodeReply(rep), err)
			}
			if describe(again) != describe(rep) {
				t.Fatalf("round trip changed the reply:\n%s\n%s", describe(rep), describe(again))
			}
		}
	})
}

func describe(rep *Reply) string {
	s := fmt.Sprint(rep.Code)
	for _, l := range rep.Lines {
		s += fmt.Sprintf(" %q", l.Text)
		if l.HasData {
			s += fmt.Sprintf("+%q", l.Data)
		}
	}
	return s
}

func FuzzParseArgs(f *testing.F) {
	f.Add(`AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/lib/tor/control_auth_cookie"`)
	f.Add(`ESC="a\"b\\c\nd\101\0\377\400" "pos" $0EB7C8AAD759B26D37B857E7080FD2B138B75A1C=relay1`)
	f.Add(`K="unterminated`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if err != nil {
			return
		}
		// Quoting every value and parsing again gives the same Args.
		var b strings.Builder
		for _, p := range a.Positional {
			b.WriteString(QuoteString(p) + " ")
		}
		for _, kv := range a.Keywords {
			b.WriteString(kv.Key + "=" + QuoteString(kv.Value) + " ")
		}
		again, err := ParseArgs(b.String())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", b.String(), err)
		}
		if !slices.Equal(a.Positional, again.Positional) || !slices.Equal(a.Keywords, again.Keywords) {
			t.Fatalf("round trip: %q %q, then %q %q", a.Positional, a.Keywords, again.Positional, again.Keywords)
		}
	})
}

func FuzzQuoteString(f *testing.F) {
	f.Add("pa ss\"word\\\r\n\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if err := quoteRoundTrip(s); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzEventType(f *testing.F) {
	addEventSeeds(f, "")
	f.Fuzz(func(t *testing.T, line []byte) {
		k := EventType(line)
		if k >= numEventKinds {
			t.Fatalf("EventType(%q) = %d", line, k)
		}
	})
}

// fuzzParser checks what every event parser promises: no panic, an
// *EventError for bad input, only sub-slices of the line in the result,
// and the same result whether the struct is fresh or reused.
func fuzzParser[T any](f *testing.F, prefix string, kinds []EventKind, parse func([]byte, *T) error) {
	addEventSeeds(f, prefix)
	f.Fuzz(func(t *testing.T, line []byte) {
		var fresh T
		err := parse(line, &fresh)
		if err != nil {
			var ee *EventError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v (%T) is not an EventError", err, err)
			}
			return
		}
		if !slices.Contains(kinds, EventType(line)) {
			t.Fatalf("parsed a %v line", EventType(line))
		}
		checkSubslices(t, line, fresh)
		// Reuse a struct that held another event.
		var reused T
		for _, l := range eventLines(t) {
			if parse([]byte(l), &reused) == nil {
				break
			}
		}
		if err := parse(line, &reused); err != nil {
			t.Fatalf("reused struct: %v", err)
		}
		if a, b := fmt.Sprintf("%v", fresh), fmt.Sprintf("%v", reused); a != b {
			t.Fatalf("fresh and reused structs differ:\n%s\n%s", a, b)
		}
	})
}

// checkSubslices fails if a byte field of ev (a struct) is not found in
// line: parsers must return parts of the line, never invented bytes.
func checkSubslices(t *testing.T, line []byte, ev any) {
	t.Helper()
	check := func(b []byte) {
		if len(b) > 0 && !bytes.Contains(line, b) {
			t.Fatalf("field %q is not part of the line %q", b, line)
		}
	}
	v := reflect.ValueOf(ev)
	for i := range v.NumField() {
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Uint8:
			check(fv.Bytes())
		case fv.Type() == reflect.TypeFor[[]Field]():
			for _, f := range fv.Interface().([]Field) {
				check(f.Key)
				check(f.Value)
			}
		}
	}
}

func addEventSeeds(f *testing.F, prefix string) {
	for _, l := range eventLines(f) {
		if strings.HasPrefix(l, "650 "+prefix) {
			f.Add([]byte(l))
		}
	}
	for l := range strings.SplitSeq(readTestdata(f, "events_invalid.txt"), "\n") {
		if _, line, ok := strings.Cut(l, "\t"); ok && strings.HasPrefix(line, "650 "+prefix) {
			f.Add([]byte(line))
		}
	}
}

func FuzzParseBW(f *testing.F) {
	fuzzParser(f, "BW ", []EventKind{EventBW}, ParseBW)
}

func FuzzParseORConn(f *testing.F) {
	fuzzParser(f, "ORCONN ", []EventKind{EventORConn}, ParseORConn)
}

func FuzzParseConnBW(f *testing.F) {
	fuzzParser(f, "CONN_BW ", []EventKind{EventConnBW}, ParseConnBW)
}

func FuzzParseCellStats(f *testing.F) {
	fuzzParser(f, "CELL_STATS ", []EventKind{EventCellStats}, ParseCellStats)
}

func FuzzParseCirc(f *testing.F) {
	fuzzParser(f, "CIRC ", []EventKind{EventCirc}, ParseCirc)
}

func FuzzParseStream(f *testing.F) {
	fuzzParser(f, "STREAM ", []EventKind{EventStream}, ParseStream)
}

func FuzzParseStatusServer(f *testing.F) {
	fuzzParser(f, "STATUS_SERVER ", []EventKind{EventStatusServer}, ParseStatusServer)
}

func FuzzParsePrivCountStreamEnded(f *testing.F) {
	fuzzParser(f, "PRIVCOUNT_STREAM_ENDED ", []EventKind{EventPrivCountStreamEnded}, ParsePrivCountStreamEnded)
}

func FuzzParsePrivCountConnectionClose(f *testing.F) {
	fuzzParser(f, "PRIVCOUNT_CONNECTION_CLOSE ", []EventKind{EventPrivCountConnectionClose}, ParsePrivCountConnectionClose)
}

func FuzzParsePrivCountCircuitClose(f *testing.F) {
	fuzzParser(f, "PRIVCOUNT_CIRCUIT_CLOSE ", []EventKind{EventPrivCountCircuitClose}, ParsePrivCountCircuitClose)
}

func FuzzParsePrivCountHSDirCacheStore(f *testing.F) {
	fuzzParser(f, "PRIVCOUNT_HSDIR_CACHE_STORE ", []EventKind{EventPrivCountHSDirCacheStore}, ParsePrivCountHSDirCacheStore)
}

func FuzzParsePrivCountHSDirCacheFetch(f *testing.F) {
	fuzzParser(f, "PRIVCOUNT_HSDIR_CACHE_FETCH ", []EventKind{EventPrivCountHSDirCacheFetch}, ParsePrivCountHSDirCacheFetch)
}

package torctl

import (
	"bytes"
	"fmt"
	"time"
)

// EventKind names an asynchronous event type.
type EventKind uint8

// Event kinds this package knows by name. Only some have parsers; the
// others are classified so callers can count or skip them.
const (
	EventUnknown EventKind = iota
	EventBW
	EventORConn
	EventConnBW
	EventCellStats
	EventCirc
	EventCircMinor
	EventCircBW
	EventStream
	EventStreamBW
	EventStatusServer
	EventStatusClient
	EventStatusGeneral
	EventGuard
	EventHSDesc
	EventNetworkLiveness
	EventConfChanged
	EventSignal
	EventNS
	EventNewConsensus
	EventLog // DEBUG, INFO, NOTICE, WARN and ERR log events
	EventPrivCountStreamEnded
	EventPrivCountStreamBytesTransferred
	EventPrivCountCircuitClose
	EventPrivCountCircuitCell
	EventPrivCountConnectionClose
	EventPrivCountHSDirCacheStore
	EventPrivCountHSDirCacheFetch
	EventPrivCountCircuitEnded    // legacy, replaced by CIRCUIT_CLOSE
	EventPrivCountConnectionEnded // legacy, replaced by CONNECTION_CLOSE
	EventPrivCountDNSResolved
	numEventKinds
)

var eventNames = [numEventKinds]string{
	EventUnknown:                         "UNKNOWN",
	EventBW:                              "BW",
	EventORConn:                          "ORCONN",
	EventConnBW:                          "CONN_BW",
	EventCellStats:                       "CELL_STATS",
	EventCirc:                            "CIRC",
	EventCircMinor:                       "CIRC_MINOR",
	EventCircBW:                          "CIRC_BW",
	EventStream:                          "STREAM",
	EventStreamBW:                        "STREAM_BW",
	EventStatusServer:                    "STATUS_SERVER",
	EventStatusClient:                    "STATUS_CLIENT",
	EventStatusGeneral:                   "STATUS_GENERAL",
	EventGuard:                           "GUARD",
	EventHSDesc:                          "HS_DESC",
	EventNetworkLiveness:                 "NETWORK_LIVENESS",
	EventConfChanged:                     "CONF_CHANGED",
	EventSignal:                          "SIGNAL",
	EventNS:                              "NS",
	EventNewConsensus:                    "NEWCONSENSUS",
	EventLog:                             "LOG",
	EventPrivCountStreamEnded:            "PRIVCOUNT_STREAM_ENDED",
	EventPrivCountStreamBytesTransferred: "PRIVCOUNT_STREAM_BYTES_TRANSFERRED",
	EventPrivCountCircuitClose:           "PRIVCOUNT_CIRCUIT_CLOSE",
	EventPrivCountCircuitCell:            "PRIVCOUNT_CIRCUIT_CELL",
	EventPrivCountConnectionClose:        "PRIVCOUNT_CONNECTION_CLOSE",
	EventPrivCountHSDirCacheStore:        "PRIVCOUNT_HSDIR_CACHE_STORE",
	EventPrivCountHSDirCacheFetch:        "PRIVCOUNT_HSDIR_CACHE_FETCH",
	EventPrivCountCircuitEnded:           "PRIVCOUNT_CIRCUIT_ENDED",
	EventPrivCountConnectionEnded:        "PRIVCOUNT_CONNECTION_ENDED",
	EventPrivCountDNSResolved:            "PRIVCOUNT_DNS_RESOLVED",
}

// String returns the event's name as used in SETEVENTS ("LOG" stands for
// the five log severities).
func (k EventKind) String() string {
	if k < numEventKinds {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// EventType classifies an event line, with or without its "650 " (or
// "650-", "650+") prefix, by its first word. It does not allocate.
func EventType(line []byte) EventKind {
	line = trimEventLine(line)
	// Skip spaces as the parsers' tokenizer does, so that a line EventType
	// names is a line its parser accepts.
	for len(line) > 0 && line[0] == ' ' {
		line = line[1:]
	}
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		line = line[:i]
	}
	return eventKindOf(line)
}

func eventKindOf(name []byte) EventKind {
	switch string(name) {
	case "BW":
		return EventBW
	case "ORCONN":
		return EventORConn
	case "CONN_BW":
		return EventConnBW
	case "CELL_STATS":
		return EventCellStats
	case "CIRC":
		return EventCirc
	case "CIRC_MINOR":
		return EventCircMinor
	case "CIRC_BW":
		return EventCircBW
	case "STREAM":
		return EventStream
	case "STREAM_BW":
		return EventStreamBW
	case "STATUS_SERVER", "STATUS_SEVER": // tor before 0.2.0.22-rc misspelt it
		return EventStatusServer
	case "STATUS_CLIENT":
		return EventStatusClient
	case "STATUS_GENERAL":
		return EventStatusGeneral
	case "GUARD":
		return EventGuard
	case "HS_DESC":
		return EventHSDesc
	case "NETWORK_LIVENESS":
		return EventNetworkLiveness
	case "CONF_CHANGED":
		return EventConfChanged
	case "SIGNAL":
		return EventSignal
	case "NS":
		return EventNS
	case "NEWCONSENSUS":
		return EventNewConsensus
	case "DEBUG", "INFO", "NOTICE", "WARN", "ERR":
		return EventLog
	case "PRIVCOUNT_STREAM_ENDED":
		return EventPrivCountStreamEnded
	case "PRIVCOUNT_STREAM_BYTES_TRANSFERRED":
		return EventPrivCountStreamBytesTransferred
	case "PRIVCOUNT_CIRCUIT_CLOSE":
		return EventPrivCountCircuitClose
	case "PRIVCOUNT_CIRCUIT_CELL":
		return EventPrivCountCircuitCell
	case "PRIVCOUNT_CONNECTION_CLOSE":
		return EventPrivCountConnectionClose
	case "PRIVCOUNT_HSDIR_CACHE_STORE":
		return EventPrivCountHSDirCacheStore
	case "PRIVCOUNT_HSDIR_CACHE_FETCH":
		return EventPrivCountHSDirCacheFetch
	case "PRIVCOUNT_CIRCUIT_ENDED":
		return EventPrivCountCircuitEnded
	case "PRIVCOUNT_CONNECTION_ENDED":
		return EventPrivCountConnectionEnded
	case "PRIVCOUNT_DNS_RESOLVED":
		return EventPrivCountDNSResolved
	}
	return EventUnknown
}

// Field is one KEY=VALUE argument of an event, as sub-slices of the line.
// Value keeps any quotes and escapes; use [Field.Unquoted] to decode it.
// A bare extra argument (no "=") has a nil Value.
type Field struct {
	Key   []byte
	Value []byte
}

// Unquoted returns the value with QuotedString escapes decoded, or the
// value unchanged if it is not quoted.
func (f Field) Unquoted() (string, error) {
	if len(f.Value) > 0 && f.Value[0] == '"' {
		return UnquoteString(string(f.Value))
	}
	return string(f.Value), nil
}

// EventError reports an event line that does not match its event's
// grammar. Reason is short and stable, so callers can count rejected
// events by reason.
type EventError struct {
	Event  string // event name, e.g. "ORCONN"
	Reason string // e.g. "bad NCIRCS"
	Value  string // the offending text, shortened
}

func (e *EventError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("torctl: %s event: %s", e.Event, e.Reason)
	}
	return fmt.Sprintf("torctl: %s event: %s %q", e.Event, e.Reason, e.Value)
}

func eventErr(event, reason string, value []byte) error {
	return &EventError{Event: event, Reason: reason, Value: string(clip(value))}
}

// trimEventLine drops a "650 "/"650-"/"650+" prefix and a trailing line end.
func trimEventLine(b []byte) []byte {
	if len(b) >= 4 && b[0] == '6' && b[1] == '5' && b[2] == '0' && (b[3] == ' ' || b[3] == '-' || b[3] == '+') {
		b = b[4:]
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// tokens walks the space-separated arguments of an event line without
// allocating. In quoted mode a QuotedString inside an argument (as in
// KEY="a b") does not end it at a space.
type tokens struct {
	b      []byte
	i      int
	quoted bool
	err    bool   // an unterminated quoted string was seen
	bare   []byte // a tagged event's field without '=', which ended it

	// key and value are the keyword nextKeyword or nextField found.
	key, value []byte
}

// next returns the next argument, or nil at the end of the line.
func (t *tokens) next() []byte {
	for t.i < len(t.b) && t.b[t.i] == ' ' {
		t.i++
	}
	start := t.i
	for t.i < len(t.b) {
		c := t.b[t.i]
		if c == ' ' {
			break
		}
		if c == '"' && t.quoted {
			t.i++
			for t.i < len(t.b) && t.b[t.i] != '"' {
				if t.b[t.i] == '\\' {
					t.i++
				}
				t.i++
			}
			if t.i >= len(t.b) {
				t.err = true
				t.i = len(t.b)
				return t.b[start:]
			}
		}
		t.i++
	}
	if start == t.i {
		return nil
	}
	return t.b[start:t.i]
}

// splitKeyword splits KEY=VALUE where KEY is one or more keyword
// characters. It is small enough to inline into the tokenizer's loop.
func splitKeyword(tok []byte) (key, value []byte, ok bool) {
	for i, c := range tok {
		if c == '=' {
			return tok[:i], tok[i+1:], i > 0
		}
		if !isKeywordChar(c) {
			break
		}
	}
	return nil, nil, false
}

// The event parsers read their KEY=VALUE arguments with one loop:
//
//	for t.nextKeyword(&ev.Extra) { // or t.nextField(&ev.Fields)
//		switch string(t.key) {
//		case "KNOWN": parse t.value, or return t.bad(event)
//		default: t.keep(&ev.Extra)
//		}
//	}
//	return t.end(event)

// nextKeyword moves to the next KEY=VALUE keyword of a stock tor event, in
// t.key and t.value, and reports false at the end of the line. Arguments
// without '=' on the way are kept in extra: control-spec says clients must
// tolerate arguments they do not know.
func (t *tokens) nextKeyword(extra *[]Field) bool {
	for tok := t.next(); tok != nil; tok = t.next() {
		if k, v, ok := splitKeyword(tok); ok {
			t.key, t.value = k, v
			return true
		}
		*extra = append(*extra, Field{Key: tok})
	}
	return false
}

// nextField moves to the next field of a PrivCount tagged event, in t.key
// and t.value, and keeps it in fields, known or not. It reports false at the
// end of the line, or at a field without '=', which end reports.
func (t *tokens) nextField(fields *[]Field) bool {
	tok := t.next()
	if tok == nil {
		return false
	}
	k, v, ok := splitKeyword(tok)
	if !ok {
		t.bare = tok
		return false
	}
	t.key, t.value = k, v
	*fields = append(*fields, Field{Key: k, Value: v})
	return true
}

// keep keeps the current keyword, one the parser does not know, in extra.
func (t *tokens) keep(extra *[]Field) {
	*extra = append(*extra, Field{Key: t.key, Value: t.value})
}

// bad reports the current keyword's value as malformed.
func (t *tokens) bad(event string) error {
	return eventErr(event, "bad "+string(t.key), t.value)
}

// end reports what went wrong in the arguments read: an unterminated quoted
// string or a tagged field without '='.
func (t *tokens) end(event string) error {
	switch {
	case t.bare != nil:
		return eventErr(event, "field without '='", t.bare)
	case t.err:
		return eventErr(event, "unterminated quoted string", t.b)
	}
	return nil
}

// begin sets t to read the arguments of line, after checking its event
// name. It fills t in place: copying a tokens costs the hot path time.
func (t *tokens) begin(line []byte, name string, quoted bool) error {
	*t = tokens{b: trimEventLine(line), quoted: quoted}
	if kw := t.next(); string(kw) != name {
		return eventErr(name, "not a "+name+" event", kw)
	}
	return nil
}

// ParseDecimal parses a non-empty decimal uint64 without allocating;
// it reports false for anything else, including overflow.
func ParseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// ParseUint parses a decimal counter or identifier from an event field.
func ParseUint(b []byte) (uint64, error) {
	n, ok := ParseDecimal(b)
	if !ok {
		return 0, fmt.Errorf("torctl: %q is not a decimal number", clip(b))
	}
	return n, nil
}

// The set functions parse a field into *dst and report whether it was
// well formed.

func setUint(dst *uint64, b []byte) bool {
	n, ok := ParseDecimal(b)
	*dst = n
	return ok
}

func setTime(dst *time.Time, b []byte) bool {
	t, ok := ParseUnixTime(b)
	*dst = t
	return ok
}

// setPort parses a TCP port.
func setPort(dst *uint16, b []byte) bool {
	p, ok := ParseDecimal(b)
	*dst = uint16(p)
	return ok && p <= 65535
}

// setFlag parses a PrivCount numeric boolean flag ("0" or "1").
func setFlag(dst *bool, b []byte) bool {
	*dst = len(b) == 1 && b[0] == '1'
	return len(b) == 1 && (b[0] == '0' || b[0] == '1')
}

// ParseUnixTime parses Unix seconds with an optional fraction
// ("1490000000.123456"), to nanosecond precision, in UTC: the timestamps
// of PrivCount's events, and of privstats traces. It does not allocate.
func ParseUnixTime(b []byte) (time.Time, bool) {
	dot := bytes.IndexByte(b, '.')
	ip, fp := b, []byte(nil)
	if dot >= 0 {
		ip, fp = b[:dot], b[dot+1:]
		if len(fp) == 0 {
			return time.Time{}, false
		}
	}
	sec, ok := ParseDecimal(ip)
	if !ok || sec > 1<<40 {
		return time.Time{}, false
	}
	var nsec int64
	for i, c := range fp {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		if i < 9 {
			nsec = nsec*10 + int64(c-'0')
		}
	}
	for i := len(fp); i < 9; i++ {
		nsec *= 10
	}
	return time.Unix(int64(sec), nsec).UTC(), true
}

// isID reports whether b is a circuit, stream or connection ID
// (control-spec: 1*16 IDChar, IDChar = ALPHA / DIGIT).
func isID(b []byte) bool {
	if len(b) == 0 || len(b) > 16 {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// SplitLongName splits a relay name as tor writes it in events:
// "$FINGERPRINT", "$FINGERPRINT~nickname" or the old "$FINGERPRINT=nickname".
// The fingerprint is returned without its "$". It does not allocate.
func SplitLongName(b []byte) (fingerprint, nickname []byte, err error) {
	if len(b) < 41 || b[0] != '$' || !isHex(b[1:41]) {
		return nil, nil, fmt.Errorf("torctl: %q is not $ and a 40-digit hex fingerprint", clip(b))
	}
	fingerprint = b[1:41]
	if len(b) == 41 {
		return fingerprint, nil, nil
	}
	if (b[41] != '~' && b[41] != '=') || len(b) == 42 {
		return nil, nil, fmt.Errorf("torctl: %q: want ~nickname after the fingerprint", clip(b))
	}
	return fingerprint, b[42:], nil
}

// Path is a comma-separated list of relays, as in a CIRC event.
type Path []byte

// Len returns the number of hops.
func (p Path) Len() int {
	if len(p) == 0 {
		return 0
	}
	return bytes.Count(p, []byte{','}) + 1
}

// Hop returns hop i (0-based), or nil if there is none.
func (p Path) Hop(i int) []byte {
	rest := []byte(p)
	for len(rest) > 0 {
		h := rest
		j := bytes.IndexByte(rest, ',')
		if j >= 0 {
			h, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		if i == 0 {
			return h
		}
		i--
	}
	return nil
}

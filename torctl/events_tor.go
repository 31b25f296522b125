package torctl

import (
	"bytes"
	"fmt"
	"iter"
	"time"
)

// Parsers for stock tor's events (control-spec section 4.1). Each fills a
// caller-owned struct whose byte fields are sub-slices of the line, so a
// caller that reuses the struct parses without allocating. Unrecognised
// keywords and extra arguments, which control-spec says clients must
// tolerate, are kept in Extra in the order they came.

// BWEvent is "650 BW BytesRead BytesWritten": bytes tor read and wrote in
// the last second, over all connections.
type BWEvent struct {
	Read    uint64
	Written uint64
	Extra   []Field // per-type breakdown ("EXIT=123") and later additions
}

// ParseBW parses a BW event line.
func ParseBW(line []byte, ev *BWEvent) error {
	*ev = BWEvent{Extra: ev.Extra[:0]}
	var t tokens
	if err := t.begin(line, "BW", true); err != nil {
		return err
	}
	var ok bool
	tok := t.next()
	if ev.Read, ok = ParseDecimal(tok); !ok {
		return eventErr("BW", "bad bytes read", tok)
	}
	tok = t.next()
	if ev.Written, ok = ParseDecimal(tok); !ok {
		return eventErr("BW", "bad bytes written", tok)
	}
	for t.nextKeyword(&ev.Extra) {
		t.keep(&ev.Extra)
	}
	return t.end("BW")
}

// ORStatus is the status of an OR connection.
type ORStatus uint8

// OR connection statuses. NEW is an inbound connection, LAUNCHED an
// outbound one.
const (
	ORStatusUnknown ORStatus = iota
	ORNew
	ORLaunched
	ORConnected
	ORFailed
	ORClosed
)

func (s ORStatus) String() string {
	return [...]string{"UNKNOWN", "NEW", "LAUNCHED", "CONNECTED", "FAILED", "CLOSED"}[min(int(s), 5)]
}

func orStatus(b []byte) ORStatus {
	switch string(b) {
	case "NEW":
		return ORNew
	case "LAUNCHED":
		return ORLaunched
	case "CONNECTED":
		return ORConnected
	case "FAILED":
		return ORFailed
	case "CLOSED":
		return ORClosed
	}
	return ORStatusUnknown
}

// ORConnEvent is "650 ORCONN Target ORStatus [REASON=] [NCIRCS=] [ID=]".
type ORConnEvent struct {
	// Target is the peer as tor wrote it: "$FP~nick" (or "$FP=nick",
	// "$FP") when tor knows the peer as a relay, otherwise "address:port"
	// or, from old tors, a nickname.
	Target []byte
	// Fingerprint is the peer relay's fingerprint in hex, without "$";
	// empty when Target does not name a relay by fingerprint.
	Fingerprint []byte
	Nickname    []byte
	Status      ORStatus
	StatusText  []byte // the status as sent, for statuses newer than this package
	Reason      []byte
	NCircs      uint64
	HasNCircs   bool
	ID          []byte // connection ID, matches CONN_BW's ID
	Extra       []Field
}

// IsRelay reports whether tor named the peer by relay fingerprint. On a
// relay, a peer without one is a client (or a bridge).
func (e *ORConnEvent) IsRelay() bool { return len(e.Fingerprint) > 0 }

// ParseORConn parses an ORCONN event line.
func ParseORConn(line []byte, ev *ORConnEvent) error {
	*ev = ORConnEvent{Extra: ev.Extra[:0]}
	var t tokens
	if err := t.begin(line, "ORCONN", true); err != nil {
		return err
	}
	ev.Target = t.next()
	if ev.Target == nil {
		return eventErr("ORCONN", "missing target", nil)
	}
	if ev.Target[0] == '$' {
		var err error
		if ev.Fingerprint, ev.Nickname, err = SplitLongName(ev.Target); err != nil {
			return eventErr("ORCONN", "bad relay name", ev.Target)
		}
	}
	ev.StatusText = t.next()
	if ev.StatusText == nil {
		return eventErr("ORCONN", "missing status", nil)
	}
	ev.Status = orStatus(ev.StatusText)
	for t.nextKeyword(&ev.Extra) {
		switch v := t.value; string(t.key) {
		case "REASON":
			ev.Reason = v
		case "NCIRCS":
			if !setUint(&ev.NCircs, v) {
				return t.bad("ORCONN")
			}
			ev.HasNCircs = true
		case "ID":
			if !isID(v) {
				return t.bad("ORCONN")
			}
			ev.ID = v
		default:
			t.keep(&ev.Extra)
		}
	}
	return t.end("ORCONN")
}

// ConnType is the kind of connection in a CONN_BW event.
type ConnType uint8

// Connection types of CONN_BW.
const (
	ConnTypeUnknown ConnType = iota
	ConnOR                   // traffic within the tor network
	ConnDir                  // directory traffic
	ConnExit                 // traffic between tor and the internet
)

func (c ConnType) String() string {
	return [...]string{"UNKNOWN", "OR", "DIR", "EXIT"}[min(int(c), 3)]
}

// ConnBWEvent is "650 CONN_BW ID= TYPE= READ= WRITTEN=": bytes one
// connection read and wrote since its last CONN_BW event. Tor sends it
// only with TestingTorNetwork set.
type ConnBWEvent struct {
	ID       []byte
	Type     ConnType
	TypeText []byte
	Read     uint64
	Written  uint64
	Extra    []Field
}

// ParseConnBW parses a CONN_BW event line. ID, TYPE, READ and WRITTEN
// are required.
func ParseConnBW(line []byte, ev *ConnBWEvent) error {
	*ev = ConnBWEvent{Extra: ev.Extra[:0]}
	var t tokens
	if err := t.begin(line, "CONN_BW", true); err != nil {
		return err
	}
	var seen uint8
	for t.nextKeyword(&ev.Extra) {
		switch v := t.value; string(t.key) {
		case "ID":
			if !isID(v) {
				return t.bad("CONN_BW")
			}
			ev.ID = v
			seen |= 1
		case "TYPE":
			ev.TypeText = v
			switch string(v) {
			case "OR":
				ev.Type = ConnOR
			case "DIR":
				ev.Type = ConnDir
			case "EXIT":
				ev.Type = ConnExit
			}
			seen |= 2
		case "READ":
			if !setUint(&ev.Read, v) {
				return t.bad("CONN_BW")
			}
			seen |= 4
		case "WRITTEN":
			if !setUint(&ev.Written, v) {
				return t.bad("CONN_BW")
			}
			seen |= 8
		default:
			t.keep(&ev.Extra)
		}
	}
	if err := t.end("CONN_BW"); err != nil {
		return err
	}
	if seen != 15 {
		return eventErr("CONN_BW", "missing "+missing(seen, "ID", "TYPE", "READ", "WRITTEN"), nil)
	}
	return nil
}

// CircStatus is the status of a circuit.
type CircStatus uint8

// Circuit statuses.
const (
	CircStatusUnknown CircStatus = iota
	CircLaunched
	CircBuilt
	CircGuardWait
	CircExtended
	CircFailed
	CircClosed
)

func (s CircStatus) String() string {
	return [...]string{"UNKNOWN", "LAUNCHED", "BUILT", "GUARD_WAIT", "EXTENDED", "FAILED", "CLOSED"}[min(int(s), 6)]
}

// CircEvent is "650 CIRC CircuitID CircStatus [Path] [keywords]". On a
// relay tor sends it only for circuits the relay itself built.
type CircEvent struct {
	ID            []byte
	Status        CircStatus
	StatusText    []byte
	Path          Path // empty until the circuit has at least one hop
	BuildFlags    []byte
	Purpose       []byte
	HSState       []byte
	RendQuery     []byte
	TimeCreated   []byte // ISOTime2Frac; see Created
	Reason        []byte
	RemoteReason  []byte
	SocksUsername []byte // QuotedString as sent
	SocksPassword []byte // QuotedString as sent
	Extra         []Field
}

// Created parses TimeCreated (UTC).
func (e *CircEvent) Created() (time.Time, error) {
	return time.Parse("2006-01-02T15:04:05.999999999", string(e.TimeCreated))
}

// ParseCirc parses a CIRC event line.
func ParseCirc(line []byte, ev *CircEvent) error {
	*ev = CircEvent{Extra: ev.Extra[:0]}
	var t tokens
	if err := t.begin(line, "CIRC", true); err != nil {
		return err
	}
	ev.ID = t.next()
	if !isID(ev.ID) {
		return eventErr("CIRC", "bad circuit ID", ev.ID)
	}
	ev.StatusText = t.next()
	if ev.StatusText == nil {
		return eventErr("CIRC", "missing status", nil)
	}
	switch string(ev.StatusText) {
	case "LAUNCHED":
		ev.Status = CircLaunched
	case "BUILT":
		ev.Status = CircBuilt
	case "GUARD_WAIT":
		ev.Status = CircGuardWait
	case "EXTENDED":
		ev.Status = CircExtended
	case "FAILED":
		ev.Status = CircFailed
	case "CLOSED":
		ev.Status = CircClosed
	}
	// The path comes first, if there is one: an argument that is not a
	// keyword ("$FP=nick" hops are not: splitKeyword rejects the "$").
	mark := t.i
	if tok := t.next(); tok != nil {
		if _, _, isKeyword := splitKeyword(tok); isKeyword {
			t.i = mark // read it again as a keyword
		} else {
			ev.Path = Path(tok)
		}
	}
	for t.nextKeyword(&ev.Extra) {
		switch v := t.value; string(t.key) {
		case "BUILD_FLAGS":
			ev.BuildFlags = v
		case "PURPOSE":
			ev.Purpose = v
		case "HS_STATE":
			ev.HSState = v
		case "REND_QUERY":
			ev.RendQuery = v
		case "TIME_CREATED":
			ev.TimeCreated = v
		case "REASON":
			ev.Reason = v
		case "REMOTE_REASON":
			ev.RemoteReason = v
		case "SOCKS_USERNAME":
			ev.SocksUsername = v
		case "SOCKS_PASSWORD":
			ev.SocksPassword = v
		default:
			t.keep(&ev.Extra)
		}
	}
	return t.end("CIRC")
}

// StreamStatus is the status of a stream.
type StreamStatus uint8

// Stream statuses.
const (
	StreamStatusUnknown StreamStatus = iota
	StreamNew
	StreamNewResolve
	StreamRemap
	StreamSentConnect
	StreamSentResolve
	StreamSucceeded
	StreamFailed
	StreamClosed
	StreamDetached
)

var streamStatusNames = [...]string{"UNKNOWN", "NEW", "NEWRESOLVE", "REMAP", "SENTCONNECT",
	"SENTRESOLVE", "SUCCEEDED", "FAILED", "CLOSED", "DETACHED"}

func (s StreamStatus) String() string {
	return streamStatusNames[min(int(s), len(streamStatusNames)-1)]
}

// StreamEvent is "650 STREAM StreamID StreamStatus CircuitID Target
// [keywords]". On a relay tor sends it only for the relay's own streams.
type StreamEvent struct {
	ID           []byte
	Status       StreamStatus
	StatusText   []byte
	CircID       []byte // "0" while the stream is not attached
	Target       []byte // "address:port" as sent
	TargetHost   []byte
	TargetPort   uint16
	Reason       []byte
	RemoteReason []byte
	Source       []byte
	SourceAddr   []byte
	Purpose      []byte
	Extra        []Field
}

// ParseStream parses a STREAM event line.
func ParseStream(line []byte, ev *StreamEvent) error {
	*ev = StreamEvent{Extra: ev.Extra[:0]}
	var t tokens
	if err := t.begin(line, "STREAM", true); err != nil {
		return err
	}
	ev.ID = t.next()
	if !isID(ev.ID) {
		return eventErr("STREAM", "bad stream ID", ev.ID)
	}
	ev.StatusText = t.next()
	if ev.StatusText == nil {
		return eventErr("STREAM", "missing status", nil)
	}
	for i, name := range streamStatusNames[1:] {
		if string(ev.StatusText) == name {
			ev.Status = StreamStatus(i + 1)
			break
		}
	}
	ev.CircID = t.next()
	if !isID(ev.CircID) {
		return eventErr("STREAM", "bad circuit ID", ev.CircID)
	}
	ev.Target = t.next()
	colon := bytes.LastIndexByte(ev.Target, ':')
	if colon < 0 {
		return eventErr("STREAM", "target without port", ev.Target)
	}
	if !setPort(&ev.TargetPort, ev.Target[colon+1:]) {
		return eventErr("STREAM", "bad target port", ev.Target)
	}
	ev.TargetHost = ev.Target[:colon]
	for t.nextKeyword(&ev.Extra) {
		switch v := t.value; string(t.key) {
		case "REASON":
			ev.Reason = v
		case "REMOTE_REASON":
			ev.RemoteReason = v
		case "SOURCE":
			ev.Source = v
		case "SOURCE_ADDR":
			ev.SourceAddr = v
		case "PURPOSE":
			ev.Purpose = v
		default:
			t.keep(&ev.Extra)
		}
	}
	return t.end("STREAM")
}

// CellCounts is a CELL_STATS list "type:n,type:n", e.g.
// "relay:12,destroy:1". ParseCellStats has checked its syntax.
type CellCounts []byte

// All yields each cell type with its count.
func (c CellCounts) All() iter.Seq2[[]byte, uint64] {
	return func(yield func([]byte, uint64) bool) {
		rest := []byte(c)
		for len(rest) > 0 {
			item := rest
			if i := bytes.IndexByte(rest, ','); i >= 0 {
				item, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			colon := bytes.IndexByte(item, ':')
			if colon < 0 {
				return
			}
			n, _ := ParseDecimal(item[colon+1:])
			if !yield(item[:colon], n) {
				return
			}
		}
	}
}

// Get returns the count for one cell type.
func (c CellCounts) Get(cellType string) (uint64, bool) {
	for t, n := range c.All() {
		if string(t) == cellType {
			return n, true
		}
	}
	return 0, false
}

// Total returns the sum over all cell types.
func (c CellCounts) Total() uint64 {
	var sum uint64
	for _, n := range c.All() {
		sum += n
	}
	return sum
}

func validCellCounts(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for len(b) > 0 {
		item := b
		if i := bytes.IndexByte(b, ','); i >= 0 {
			item, b = b[:i], b[i+1:]
			if len(b) == 0 {
				return false // trailing comma
			}
		} else {
			b = nil
		}
		colon := bytes.IndexByte(item, ':')
		if colon <= 0 {
			return false
		}
		for _, ch := range item[:colon] {
			if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '_') {
				return false
			}
		}
		if _, ok := ParseDecimal(item[colon+1:]); !ok {
			return false
		}
	}
	return true
}

// CellStatsEvent is "650 CELL_STATS [keywords]": per-circuit cell counts
// and queueing times. Tor sends it only with TestingTorNetwork set.
type CellStatsEvent struct {
	ID                                           []byte // only for circuits this relay built
	InboundQueue, InboundConn                    []byte
	InboundAdded, InboundRemoved, InboundTime    CellCounts
	OutboundQueue, OutboundConn                  []byte
	OutboundAdded, OutboundRemoved, OutboundTime CellCounts
	Extra                                        []Field
}

// ParseCellStats parses a CELL_STATS event line.
func ParseCellStats(line []byte, ev *CellStatsEvent) error {
	*ev = CellStatsEvent{Extra: ev.Extra[:0]}
	var t tokens
	if err := t.begin(line, "CELL_STATS", true); err != nil {
		return err
	}
	for t.nextKeyword(&ev.Extra) {
		var id *[]byte
		var counts *CellCounts
		switch string(t.key) {
		case "ID":
			id = &ev.ID
		case "InboundQueue":
			id = &ev.InboundQueue
		case "InboundConn":
			id = &ev.InboundConn
		case "OutboundQueue":
			id = &ev.OutboundQueue
		case "OutboundConn":
			id = &ev.OutboundConn
		case "InboundAdded":
			counts = &ev.InboundAdded
		case "InboundRemoved":
			counts = &ev.InboundRemoved
		case "InboundTime":
			counts = &ev.InboundTime
		case "OutboundAdded":
			counts = &ev.OutboundAdded
		case "OutboundRemoved":
			counts = &ev.OutboundRemoved
		case "OutboundTime":
			counts = &ev.OutboundTime
		default:
			t.keep(&ev.Extra)
			continue
		}
		ok := false
		if id != nil {
			*id, ok = t.value, isID(t.value)
		} else {
			*counts, ok = CellCounts(t.value), validCellCounts(t.value)
		}
		if !ok {
			return t.bad("CELL_STATS")
		}
	}
	return t.end("CELL_STATS")
}

// StatusEvent is "650 STATUS_SERVER Severity Action [Arguments]" (or
// STATUS_CLIENT, STATUS_GENERAL). Arguments are kept in order, values as
// sent (possibly quoted).
type StatusEvent struct {
	Kind     EventKind
	Severity []byte // NOTICE, WARN or ERR
	Action   []byte // e.g. EXTERNAL_ADDRESS, CHECKING_REACHABILITY
	Args     []Field
}

// Arg returns the raw value of the first argument named key.
func (e *StatusEvent) Arg(key string) ([]byte, bool) {
	for _, f := range e.Args {
		if string(f.Key) == key {
			return f.Value, true
		}
	}
	return nil, false
}

// ParseStatus parses a STATUS_SERVER, STATUS_CLIENT or STATUS_GENERAL
// event line.
func ParseStatus(line []byte, ev *StatusEvent) error {
	*ev = StatusEvent{Args: ev.Args[:0]}
	line = trimEventLine(line)
	t := tokens{b: line, quoted: true}
	kw := t.next()
	ev.Kind = eventKindOf(kw)
	switch ev.Kind {
	case EventStatusServer, EventStatusClient, EventStatusGeneral:
	default:
		return eventErr("STATUS", "not a STATUS_* event", kw)
	}
	name := ev.Kind.String()
	if ev.Severity = t.next(); ev.Severity == nil {
		return eventErr(name, "missing severity", nil)
	}
	if ev.Action = t.next(); ev.Action == nil {
		return eventErr(name, "missing action", nil)
	}
	for t.nextKeyword(&ev.Args) {
		t.keep(&ev.Args)
	}
	return t.end(name)
}

// ParseStatusServer parses a STATUS_SERVER event line.
func ParseStatusServer(line []byte, ev *StatusEvent) error {
	if err := ParseStatus(line, ev); err != nil {
		return err
	}
	if ev.Kind != EventStatusServer {
		return eventErr("STATUS_SERVER", "not a STATUS_SERVER event", []byte(ev.Kind.String()))
	}
	return nil
}

// missing names the first required field whose bit is not set in seen.
func missing(seen uint8, names ...string) string {
	for i, n := range names {
		if seen&(1<<i) == 0 {
			return n
		}
	}
	return fmt.Sprint(names)
}

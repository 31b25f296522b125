package torctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLines returns the sample event lines of testdata/events.txt.
func eventLines(t testing.TB) []string {
	t.Helper()
	lines, err := sampleEvents()
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// sampleEvents reads the file once: fuzz targets ask for it on every input.
var sampleEvents = sync.OnceValues(func() ([]string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "events.txt"))
	var lines []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines, err
})

// parseAny parses a line with the parser for its type, as a collector
// would. It returns nil for types without a parser.
func parseAny(line []byte) (any, error) {
	switch EventType(line) {
	case EventBW:
		var ev BWEvent
		return &ev, ParseBW(line, &ev)
	case EventORConn:
		var ev ORConnEvent
		return &ev, ParseORConn(line, &ev)
	case EventConnBW:
		var ev ConnBWEvent
		return &ev, ParseConnBW(line, &ev)
	case EventCellStats:
		var ev CellStatsEvent
		return &ev, ParseCellStats(line, &ev)
	case EventCirc:
		var ev CircEvent
		return &ev, ParseCirc(line, &ev)
	case EventStream:
		var ev StreamEvent
		return &ev, ParseStream(line, &ev)
	case EventStatusServer:
		var ev StatusEvent
		return &ev, ParseStatusServer(line, &ev)
	case EventPrivCountStreamEnded:
		var ev PrivCountStreamEndedEvent
		return &ev, ParsePrivCountStreamEnded(line, &ev)
	case EventPrivCountConnectionClose:
		var ev PrivCountConnectionCloseEvent
		return &ev, ParsePrivCountConnectionClose(line, &ev)
	case EventPrivCountCircuitClose:
		var ev PrivCountCircuitCloseEvent
		return &ev, ParsePrivCountCircuitClose(line, &ev)
	case EventPrivCountHSDirCacheStore:
		var ev PrivCountHSDirCacheEvent
		return &ev, ParsePrivCountHSDirCacheStore(line, &ev)
	case EventPrivCountHSDirCacheFetch:
		var ev PrivCountHSDirCacheEvent
		return &ev, ParsePrivCountHSDirCacheFetch(line, &ev)
	}
	return nil, nil
}

func TestSampleEventsParse(t *testing.T) {
	parsed := map[EventKind]int{}
	for _, l := range eventLines(t) {
		ev, err := parseAny([]byte(l))
		if err != nil {
			t.Errorf("%s\n  %v", l, err)
		}
		if ev != nil {
			parsed[EventType([]byte(l))]++
		}
	}
	for _, k := range []EventKind{EventBW, EventORConn, EventConnBW, EventCellStats, EventCirc, EventStream,
		EventStatusServer, EventPrivCountStreamEnded, EventPrivCountConnectionClose, EventPrivCountCircuitClose,
		EventPrivCountHSDirCacheStore, EventPrivCountHSDirCacheFetch} {
		if parsed[k] == 0 {
			t.Errorf("testdata/events.txt has no %v event", k)
		}
	}
}

func TestMalformedEventsAreRejected(t *testing.T) {
	for l := range strings.SplitSeq(readTestdata(t, "events_invalid.txt"), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		reason, line, _ := strings.Cut(l, "\t")
		_, err := parseAny([]byte(line))
		var ee *EventError
		if !errors.As(err, &ee) || ee.Reason != reason {
			t.Errorf("%s\n  err = %v, want reason %q", line, err, reason)
		}
	}
}

func TestEventType(t *testing.T) {
	for line, want := range map[string]EventKind{
		"650 BW 1 2":                       EventBW,
		"BW 1 2":                           EventBW,
		"650-CIRC 1 BUILT":                 EventCirc,
		"650+NS":                           EventNS,
		"650 STATUS_SEVER NOTICE X\r\n":    EventStatusServer,
		"650 NOTICE Bootstrapped 100%":     EventLog,
		"650 PRIVCOUNT_CIRCUIT_CLOSE A=1":  EventPrivCountCircuitClose,
		"650 BWX 1 2":                      EventUnknown,
		"":                                 EventUnknown,
		"650 ":                             EventUnknown,
		"650 TB_EMPTY GLOBAL READ=0":       EventUnknown,
		"650 PRIVCOUNT_STREAM_ENDED 1 2 3": EventPrivCountStreamEnded,
		// Found by FuzzParseBW: parsers skip extra spaces, so EventType must.
		"650  BW 1 2":   EventBW,
		" CIRC 1 BUILT": EventCirc,
	} {
		if got := EventType([]byte(line)); got != want {
			t.Errorf("EventType(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestParsersCheckTheEventName(t *testing.T) {
	var bw BWEvent
	err := ParseBW([]byte("650 ORCONN 1.2.3.4:1 NEW"), &bw)
	var ee *EventError
	if !errors.As(err, &ee) || ee.Reason != "not a BW event" {
		t.Errorf("ParseBW(ORCONN line) err = %v", err)
	}
	var st StatusEvent
	if err := ParseStatusServer([]byte("650 STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED"), &st); err == nil {
		t.Error("ParseStatusServer accepted STATUS_CLIENT")
	}
}

// eq compares a field, turning byte slices into strings.
func eq(t *testing.T, name string, got, want any) {
	t.Helper()
	if b, ok := got.([]byte); ok {
		got = string(b)
	}
	if b, ok := got.(Path); ok {
		got = string(b)
	}
	if b, ok := got.(CellCounts); ok {
		got = string(b)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func fields(fs []Field) string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.Write(f.Key)
		if f.Value != nil {
			b.WriteByte('=')
			b.Write(f.Value)
		}
	}
	return b.String()
}

func TestParseBW(t *testing.T) {
	var ev BWEvent
	if err := ParseBW([]byte("650 BW 1048576 2097152 OR=1000000 EXIT=48576 FUTURE"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Read", ev.Read, 1048576)
	eq(t, "Written", ev.Written, 2097152)
	eq(t, "Extra", fields(ev.Extra), "OR=1000000 EXIT=48576 FUTURE")
	// Reusing the struct clears what the last line set.
	if err := ParseBW([]byte("650 BW 155 593"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Extra after reuse", len(ev.Extra), 0)
}

func TestParseORConn(t *testing.T) {
	tests := []struct {
		line             string
		fp, nick, status string
		reason, id       string
		ncircs           uint64
		hasNCircs, relay bool
		statusKind       ORStatus
	}{
		{"650 ORCONN $0EB7C8AAD759B26D37B857E7080FD2B138B75A1C~relay1 CONNECTED NCIRCS=0 ID=12",
			"0EB7C8AAD759B26D37B857E7080FD2B138B75A1C", "relay1", "CONNECTED", "", "12", 0, true, true, ORConnected},
		{"650 ORCONN 198.51.100.7:49152 NEW ID=13", "", "", "NEW", "", "13", 0, false, false, ORNew},
		{"650 ORCONN $5C4D4C146B3207B8D212369EDB3313BD65548347=oldnamed CLOSED REASON=DONE NCIRCS=3 ID=7",
			"5C4D4C146B3207B8D212369EDB3313BD65548347", "oldnamed", "CLOSED", "DONE", "7", 3, true, true, ORClosed},
		{"650 ORCONN $1D1AB57D498E37021931C0F436AD8B5B64B881B9 LAUNCHED ID=14",
			"1D1AB57D498E37021931C0F436AD8B5B64B881B9", "", "LAUNCHED", "", "14", 0, false, true, ORLaunched},
		{"650 ORCONN moria1 SOMETHING_NEW", "", "", "SOMETHING_NEW", "", "", 0, false, false, ORStatusUnknown},
	}
	var ev ORConnEvent
	for _, tt := range tests {
		if err := ParseORConn([]byte(tt.line), &ev); err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		eq(t, "Fingerprint", ev.Fingerprint, tt.fp)
		eq(t, "Nickname", ev.Nickname, tt.nick)
		eq(t, "StatusText", ev.StatusText, tt.status)
		eq(t, "Status", ev.Status, tt.statusKind)
		eq(t, "Reason", ev.Reason, tt.reason)
		eq(t, "ID", ev.ID, tt.id)
		eq(t, "NCircs", ev.NCircs, tt.ncircs)
		eq(t, "HasNCircs", ev.HasNCircs, tt.hasNCircs)
		eq(t, "IsRelay", ev.IsRelay(), tt.relay)
	}
}

func TestParseConnBW(t *testing.T) {
	var ev ConnBWEvent
	if err := ParseConnBW([]byte("650 CONN_BW ID=5 TYPE=EXIT READ=1234 WRITTEN=567 NEWTHING=1"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "ID", ev.ID, "5")
	eq(t, "Type", ev.Type, ConnExit)
	eq(t, "Read", ev.Read, 1234)
	eq(t, "Written", ev.Written, 567)
	eq(t, "Extra", fields(ev.Extra), "NEWTHING=1")
	if err := ParseConnBW([]byte("650 CONN_BW ID=6 TYPE=QUIC READ=1 WRITTEN=2"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Type", ev.Type, ConnTypeUnknown)
	eq(t, "TypeText", ev.TypeText, "QUIC")
}

func TestParseCirc(t *testing.T) {
	var ev CircEvent
	line := "650 CIRC 2 CLOSED $6FB0700FCD1BC001536E474C67006DD8359970A0~guard1,$3CEE67464592BC120948BAD87AEE645CE148BDDF~intro " +
		"BUILD_FLAGS=IS_INTERNAL,NEED_CAPACITY PURPOSE=HS_SERVICE_INTRO HS_STATE=HSSI_ESTABLISHED REND_QUERY=nlembgzd37nfyivz " +
		"TIME_CREATED=2024-03-01T11:58:41.000517 REASON=FINISHED REMOTE_REASON=DESTROYED SOCKS_USERNAME=\"a b\\\"c\" NEW=1"
	if err := ParseCirc([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "ID", ev.ID, "2")
	eq(t, "Status", ev.Status, CircClosed)
	eq(t, "Path.Len", ev.Path.Len(), 2)
	eq(t, "Path.Hop(1)", ev.Path.Hop(1), "$3CEE67464592BC120948BAD87AEE645CE148BDDF~intro")
	eq(t, "Path.Hop(2)", ev.Path.Hop(2), "")
	eq(t, "BuildFlags", ev.BuildFlags, "IS_INTERNAL,NEED_CAPACITY")
	eq(t, "Purpose", ev.Purpose, "HS_SERVICE_INTRO")
	eq(t, "HSState", ev.HSState, "HSSI_ESTABLISHED")
	eq(t, "RendQuery", ev.RendQuery, "nlembgzd37nfyivz")
	eq(t, "Reason", ev.Reason, "FINISHED")
	eq(t, "RemoteReason", ev.RemoteReason, "DESTROYED")
	eq(t, "SocksUsername", ev.SocksUsername, `"a b\"c"`)
	eq(t, "Extra", fields(ev.Extra), "NEW=1")
	created, err := ev.Created()
	if err != nil || !created.Equal(time.Date(2024, 3, 1, 11, 58, 41, 517000, time.UTC)) {
		t.Errorf("Created = %v, %v", created, err)
	}
	user, _ := Field{Value: ev.SocksUsername}.Unquoted()
	eq(t, "unquoted SocksUsername", user, `a b"c`)

	// A circuit with no hops yet has no path.
	if err := ParseCirc([]byte("650 CIRC 1 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Path", ev.Path, "")
	eq(t, "Path.Len", ev.Path.Len(), 0)
}

func TestParseStream(t *testing.T) {
	var ev StreamEvent
	for _, tt := range []struct {
		line, host string
		port       uint16
		status     StreamStatus
	}{
		{"650 STREAM 12 SUCCEEDED 3 127.0.0.1:80", "127.0.0.1", 80, StreamSucceeded},
		{"650 STREAM 13 FAILED 3 [2001:db8::1]:443 REASON=END REMOTE_REASON=EXITPOLICY", "[2001:db8::1]", 443, StreamFailed},
		{"650 STREAM 15 NEWRESOLVE 0 example.com:0 SOURCE_ADDR=127.0.0.1:51300 PURPOSE=DNS_REQUEST", "example.com", 0, StreamNewResolve},
		{"650 STREAM 16 XOFF_SENT 3 example.com:443", "example.com", 443, StreamStatusUnknown},
	} {
		if err := ParseStream([]byte(tt.line), &ev); err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		eq(t, "TargetHost", ev.TargetHost, tt.host)
		eq(t, "TargetPort", ev.TargetPort, tt.port)
		eq(t, "Status", ev.Status, tt.status)
	}
	eq(t, "CircID", ev.CircID, "3")
	if err := ParseStream([]byte("650 STREAM 15 NEW 0 example.com:80 SOURCE_ADDR=127.0.0.1:51300 PURPOSE=USER"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "SourceAddr", ev.SourceAddr, "127.0.0.1:51300")
	eq(t, "Purpose", ev.Purpose, "USER")
}

func TestParseCellStats(t *testing.T) {
	var ev CellStatsEvent
	line := "650 CELL_STATS InboundQueue=19403 InboundConn=32 InboundAdded=relay:1,created_fast:1 " +
		"InboundRemoved=relay:1,created_fast:1 InboundTime=relay:0,created_fast:0 OutboundQueue=6710 OutboundConn=18 " +
		"OutboundAdded=create:1,relay_early:3 OutboundRemoved=create:1,relay_early:1 OutboundTime=create:0,relay_early:0"
	if err := ParseCellStats([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "ID", ev.ID, "")
	eq(t, "InboundConn", ev.InboundConn, "32")
	eq(t, "OutboundQueue", ev.OutboundQueue, "6710")
	eq(t, "OutboundAdded.Total", ev.OutboundAdded.Total(), 4)
	n, ok := ev.OutboundAdded.Get("relay_early")
	eq(t, "relay_early", n, 3)
	eq(t, "found", ok, true)
	_, ok = ev.InboundAdded.Get("destroy")
	eq(t, "destroy found", ok, false)
}

func TestParseStatusServer(t *testing.T) {
	var ev StatusEvent
	line := `650 STATUS_SERVER WARN BAD_SERVER_DESCRIPTOR DIRAUTH=127.0.0.1:7001 REASON="Fingerprint is marked rejected"`
	if err := ParseStatusServer([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Severity", ev.Severity, "WARN")
	eq(t, "Action", ev.Action, "BAD_SERVER_DESCRIPTOR")
	reason, _ := ev.Arg("REASON")
	eq(t, "REASON", reason, `"Fingerprint is marked rejected"`)
	dirauth, _ := ev.Arg("DIRAUTH")
	eq(t, "DIRAUTH", dirauth, "127.0.0.1:7001")
	if err := ParseStatusServer([]byte("650 STATUS_SERVER NOTICE GOOD_SERVER_DESCRIPTOR"), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Args", len(ev.Args), 0)
}

func TestParsePrivCountStreamEnded(t *testing.T) {
	var ev PrivCountStreamEndedEvent
	positional := "650 PRIVCOUNT_STREAM_ENDED 17 2147483651 1 443 53412 1893 1490000000.123456 1490000012.654321 www.example.com 93.184.216.34"
	tagged := "650 PRIVCOUNT_STREAM_ENDED ChanID=17 CircID=2147483651 StreamID=1 ExitPort=443 ReadBytesExit=53412 " +
		"WriteBytesExit=1893 CreatedTimestamp=1490000000.123456 TimeStamp=1490000012.654321 RemoteHostName=www.example.com " +
		"RemoteIPAddress=93.184.216.34 FutureField=x"
	for _, line := range []string{positional, tagged} {
		if err := ParsePrivCountStreamEnded([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		eq(t, "ChannelID", ev.ChannelID, 17)
		eq(t, "CircuitID", ev.CircuitID, 2147483651)
		eq(t, "StreamID", ev.StreamID, 1)
		eq(t, "RemotePort", ev.RemotePort, 443)
		eq(t, "ReadBytes", ev.ReadBytes, 53412)
		eq(t, "WrittenBytes", ev.WrittenBytes, 1893)
		eq(t, "Created", ev.Created, time.Unix(1490000000, 123456000).UTC())
		eq(t, "Ended", ev.Ended, time.Unix(1490000012, 654321000).UTC())
		eq(t, "RemoteHost", ev.RemoteHost, "www.example.com")
		eq(t, "RemoteIP", ev.RemoteIP, "93.184.216.34")
	}
	eq(t, "Tagged", ev.Tagged, true)
	eq(t, "Fields", len(ev.Fields), 11)
}

func TestParsePrivCountConnectionClose(t *testing.T) {
	var ev PrivCountConnectionCloseEvent
	line := "650 PRIVCOUNT_CONNECTION_CLOSE ChannelId=17 CreatedTimestamp=1490000000.000100 EventTimestamp=1490003600.25 " +
		"RemoteIPAddress=198.51.100.7 RemoteIsClientFlag=1 RemoteIPAddressConnectionCount=1 PeerIPAddressConsensusRelayCount=0 " +
		"InboundByteCount=1048576 OutboundByteCount=524288 InboundCircuitCount=3 OutboundCircuitCount=0 RemoteCountryCode=AU NewKey=v"
	if err := ParsePrivCountConnectionClose([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "ChannelID", ev.ChannelID, 17)
	eq(t, "Created", ev.Created, time.Unix(1490000000, 100000).UTC())
	eq(t, "EventTime", ev.EventTime, time.Unix(1490003600, 250000000).UTC())
	eq(t, "RemoteIP", ev.RemoteIP, "198.51.100.7")
	eq(t, "RemoteIsClient", ev.RemoteIsClient, true)
	eq(t, "InboundBytes", ev.InboundBytes, 1048576)
	eq(t, "InboundCircuits", ev.InboundCircuits, 3)
	eq(t, "RemoteCountryCode", ev.RemoteCountryCode, "AU")
	last := ev.Fields[len(ev.Fields)-1]
	eq(t, "unknown key kept", fields([]Field{last}), "NewKey=v")
}

func TestParsePrivCountCircuitClose(t *testing.T) {
	var ev PrivCountCircuitCloseEvent
	line := "650 PRIVCOUNT_CIRCUIT_CLOSE EventTimestamp=1490000061.5 CreatedTimestamp=1490000001.5 PreviousChannelId=21 " +
		"PreviousCircuitId=3 IsEndFlag=1 IsExitFlag=1 StateString=open PurposeString=OR InboundExitCellCount=40 " +
		"OutboundExitCellCount=300 InboundExitByteCount=19872 OutboundExitByteCount=149000 OnionHandshakeType=2"
	if err := ParsePrivCountCircuitClose([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "EventTime", ev.EventTime, time.Unix(1490000061, 500000000).UTC())
	eq(t, "PreviousChannelID", ev.PreviousChannelID, 21)
	eq(t, "NextChannelID", ev.NextChannelID, 0)
	eq(t, "IsExit", ev.IsExit, true)
	eq(t, "IsEntry", ev.IsEntry, false)
	eq(t, "State", ev.State, "open")
	eq(t, "OutboundExitBytes", ev.OutboundExitBytes, 149000)
	eq(t, "Fields", len(ev.Fields), 13)
}

func TestParsePrivCountHSDirCache(t *testing.T) {
	var ev PrivCountHSDirCacheEvent
	store := "650 PRIVCOUNT_HSDIR_CACHE_STORE HiddenServiceVersionNumber=3 EventTimestamp=1490000500.000002 " +
		"CacheReasonString=updated WasAddedToCacheFlag=1 HasExistingCacheEntryFlag=1 EncodedDescriptorByteCount=13102 " +
		"BlindedEd25519PublicKeyBase64String=PUv0togvS+bJ0cQWM6qaGc+LZi6J3pPtlwKWbooGEIQ RevisionNumber=64 DescriptorLifetime=10800"
	if err := ParsePrivCountHSDirCacheStore([]byte(store), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Kind", ev.Kind, EventPrivCountHSDirCacheStore)
	eq(t, "HSVersion", ev.HSVersion, 3)
	eq(t, "CacheReason", ev.CacheReason, "updated")
	eq(t, "WasAddedToCache", ev.WasAddedToCache, true)
	eq(t, "BlindedKey", ev.BlindedKey, "PUv0togvS+bJ0cQWM6qaGc+LZi6J3pPtlwKWbooGEIQ")
	eq(t, "RevisionNumber", ev.RevisionNumber, 64)

	fetch := "650 PRIVCOUNT_HSDIR_CACHE_FETCH HiddenServiceVersionNumber=2 EventTimestamp=1490000700.25 OnionAddress=nlembgzd37nfyivz"
	if err := ParsePrivCountHSDirCacheFetch([]byte(fetch), &ev); err != nil {
		t.Fatal(err)
	}
	eq(t, "Kind", ev.Kind, EventPrivCountHSDirCacheFetch)
	eq(t, "OnionAddress", ev.OnionAddress, "nlembgzd37nfyivz")
	eq(t, "CacheReason", ev.CacheReason, "")
	if err := ParsePrivCountHSDirCacheStore([]byte(strings.Replace(fetch, "FETCH", "STORE", 1)), &ev); err == nil {
		t.Error("STORE without CacheReasonString accepted")
	}
}

func TestSplitLongName(t *testing.T) {
	fp, nick, err := SplitLongName([]byte("$0EB7C8AAD759B26D37B857E7080FD2B138B75A1C~relay1"))
	if err != nil || string(fp) != "0EB7C8AAD759B26D37B857E7080FD2B138B75A1C" || string(nick) != "relay1" {
		t.Errorf("got %s %s %v", fp, nick, err)
	}
	for _, bad := range []string{"relay1", "$0EB7", "$0EB7C8AAD759B26D37B857E7080FD2B138B75A1C!x", "$0EB7C8AAD759B26D37B857E7080FD2B138B75A1C~"} {
		if _, _, err := SplitLongName([]byte(bad)); err == nil {
			t.Errorf("SplitLongName(%q) accepted", bad)
		}
	}
}

func TestParseUnixTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1490000000":            time.Unix(1490000000, 0),
		"1490000000.5":          time.Unix(1490000000, 500000000),
		"1490000000.123456":     time.Unix(1490000000, 123456000),
		"1490000000.1234567891": time.Unix(1490000000, 123456789),
	} {
		got, ok := ParseUnixTime([]byte(in))
		if !ok || !got.Equal(want) {
			t.Errorf("ParseUnixTime(%q) = %v, %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", ".5", "1.", "1.x", "-1", "99999999999999999999"} {
		if _, ok := ParseUnixTime([]byte(bad)); ok {
			t.Errorf("ParseUnixTime(%q) accepted", bad)
		}
	}
}

// The hot path: stock events must parse without allocating.
func TestParsersDoNotAllocate(t *testing.T) {
	for _, tt := range hotPathCases() {
		tt.parse() // warm up reused slices
		if allocs := testing.AllocsPerRun(200, func() { tt.parse() }); allocs != 0 {
			t.Errorf("%s: %v allocations per event", tt.name, allocs)
		}
	}
}

type hotPathCase struct {
	name  string
	parse func()
}

// hotPathCases parses one representative line per event type into a
// struct reused across calls, as a collector would.
func hotPathCases() []hotPathCase {
	var (
		bw     BWEvent
		orconn ORConnEvent
		connbw ConnBWEvent
		circ   CircEvent
		stream StreamEvent
		cells  CellStatsEvent
		status StatusEvent
		pse    PrivCountStreamEndedEvent
		pcc    PrivCountConnectionCloseEvent
		pci    PrivCountCircuitCloseEvent
		phs    PrivCountHSDirCacheEvent
	)
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	line := func(s string) []byte { return []byte(s) }
	var (
		lBW     = line("650 BW 155 593")
		lORConn = line("650 ORCONN $0EB7C8AAD759B26D37B857E7080FD2B138B75A1C~relay1 CLOSED REASON=DONE NCIRCS=3 ID=12")
		lConnBW = line("650 CONN_BW ID=5 TYPE=EXIT READ=1234 WRITTEN=567")
		lCirc   = line("650 CIRC 1 BUILT $6FB0700FCD1BC001536E474C67006DD8359970A0~guard1,$6105F89BA2C8F51934FB64043B56E06927EAF739~middle1,$C1032C7046EF1D28E5D6D3EE402C21B0036EC52F~exit1 BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2024-03-01T12:00:00.123456")
		lStream = line("650 STREAM 12 SUCCEEDED 3 127.0.0.1:80 SOURCE_ADDR=127.0.0.1:51234 PURPOSE=USER")
		lCells  = line("650 CELL_STATS ID=14 OutboundQueue=19403 OutboundConn=15 OutboundAdded=create_fast:1,relay_early:2 OutboundRemoved=create_fast:1,relay_early:2 OutboundTime=create_fast:0,relay_early:0")
		lStatus = line(`650 STATUS_SERVER NOTICE EXTERNAL_ADDRESS ADDRESS=203.0.113.5 METHOD=CONFIGURED`)
		lPSE    = line("650 PRIVCOUNT_STREAM_ENDED 17 2147483651 1 443 53412 1893 1490000000.123456 1490000012.654321 www.example.com 93.184.216.34")
		lPCC    = line("650 PRIVCOUNT_CONNECTION_CLOSE ChannelId=17 CreatedTimestamp=1490000000.000100 EventTimestamp=1490003600.250000 RemoteIPAddress=198.51.100.7 RemoteIsClientFlag=1 RemoteIPAddressConnectionCount=1 PeerIPAddressConsensusRelayCount=0 InboundByteCount=1048576 OutboundByteCount=524288 InboundCircuitCount=3 OutboundCircuitCount=0 RemoteCountryCode=AU")
		lPCI    = line("650 PRIVCOUNT_CIRCUIT_CLOSE EventTimestamp=1490000061.5 CreatedTimestamp=1490000001.5 PreviousChannelId=21 PreviousCircuitId=3 IsEndFlag=1 IsExitFlag=1 StateString=open PurposeString=OR InboundExitCellCount=40 OutboundExitCellCount=300 InboundExitByteCount=19872 OutboundExitByteCount=149000")
		lPHS    = line("650 PRIVCOUNT_HSDIR_CACHE_STORE HiddenServiceVersionNumber=2 EventTimestamp=1490000400.100000 CacheReasonString=new WasAddedToCacheFlag=1 HasExistingCacheEntryFlag=0 EncodedDescriptorByteCount=3342 OnionAddress=nlembgzd37nfyivz IntroPointCount=3")
	)
	return []hotPathCase{
		{"EventType", func() {
			if EventType(lORConn) != EventORConn {
				panic("EventType")
			}
		}},
		{"BW", func() { must(ParseBW(lBW, &bw)) }},
		{"ORCONN", func() { must(ParseORConn(lORConn, &orconn)) }},
		{"CONN_BW", func() { must(ParseConnBW(lConnBW, &connbw)) }},
		{"CIRC", func() { must(ParseCirc(lCirc, &circ)) }},
		{"STREAM", func() { must(ParseStream(lStream, &stream)) }},
		{"CELL_STATS", func() { must(ParseCellStats(lCells, &cells)) }},
		{"STATUS_SERVER", func() { must(ParseStatusServer(lStatus, &status)) }},
		{"PRIVCOUNT_STREAM_ENDED", func() { must(ParsePrivCountStreamEnded(lPSE, &pse)) }},
		{"PRIVCOUNT_CONNECTION_CLOSE", func() { must(ParsePrivCountConnectionClose(lPCC, &pcc)) }},
		{"PRIVCOUNT_CIRCUIT_CLOSE", func() { must(ParsePrivCountCircuitClose(lPCI, &pci)) }},
		{"PRIVCOUNT_HSDIR_CACHE_STORE", func() { must(ParsePrivCountHSDirCacheStore(lPHS, &phs)) }},
	}
}

package torctl

import "time"

// Parsers for the events of PrivCount-patched tor (privcount/tor; field
// names from privcount's doc/TorEvents.markdown and data_collector.py).
// They are enabled with "SETCONF EnablePrivCount=1". Most are "tagged":
// Key=Value fields in any order, values without spaces or quoting. Every
// field, known or not, is kept in Fields in the order it came; the fields
// a collector counts are also parsed into typed struct fields.
//
// Timestamps are Unix seconds with a microsecond fraction and are
// returned in UTC. Absent optional numbers are 0; tor numbers channels and
// circuits from 1, so 0 never names one.

// PrivCountStreamEndedEvent is PRIVCOUNT_STREAM_ENDED: an exit stream to
// a remote destination closed.
//
// PrivCount tor sends it with ten positional fields: ChanID CircID
// StreamID ExitPort ReadBW WriteBW TimeStart TimeEnd RemoteHost RemoteIP.
// A tagged form with fields ChanID, CircID, StreamID, ExitPort,
// ReadBytesExit, WriteBytesExit, CreatedTimestamp, TimeStamp,
// RemoteHostName and RemoteIPAddress is accepted too (Tagged is then
// true and Fields holds every field).
type PrivCountStreamEndedEvent struct {
	ChannelID    uint64
	CircuitID    uint64
	StreamID     uint64
	RemotePort   uint16
	ReadBytes    uint64 // from the remote destination
	WrittenBytes uint64 // to the remote destination
	Created      time.Time
	Ended        time.Time
	RemoteHost   []byte // as the client asked: hostname or address
	RemoteIP     []byte // the address tor connected to
	Tagged       bool
	Fields       []Field
}

const privcountStreamEnded = "PRIVCOUNT_STREAM_ENDED"

// ParsePrivCountStreamEnded parses a PRIVCOUNT_STREAM_ENDED event line.
func ParsePrivCountStreamEnded(line []byte, ev *PrivCountStreamEndedEvent) error {
	*ev = PrivCountStreamEndedEvent{Fields: ev.Fields[:0]}
	var t tokens
	if err := t.begin(line, privcountStreamEnded, false); err != nil {
		return err
	}
	mark := t.i
	first := t.next()
	if first == nil {
		return eventErr(privcountStreamEnded, "no fields", nil)
	}
	if _, _, ok := splitKeyword(first); ok {
		t.i = mark // the first field, read again as one
		return parseStreamEndedTagged(&t, ev)
	}
	var f [10][]byte
	f[0] = first
	n := 1
	for tok := t.next(); tok != nil; tok = t.next() {
		if n == len(f) {
			return eventErr(privcountStreamEnded, "more than 10 positional fields", tok)
		}
		f[n] = tok
		n++
	}
	if n != len(f) {
		return eventErr(privcountStreamEnded, "fewer than 10 positional fields", trimEventLine(line))
	}
	nums := [...]*uint64{&ev.ChannelID, &ev.CircuitID, &ev.StreamID}
	names := [...]string{"bad channel ID", "bad circuit ID", "bad stream ID"}
	for i, p := range nums {
		var ok bool
		if *p, ok = ParseDecimal(f[i]); !ok {
			return eventErr(privcountStreamEnded, names[i], f[i])
		}
	}
	var ok bool
	if !setPort(&ev.RemotePort, f[3]) {
		return eventErr(privcountStreamEnded, "bad port", f[3])
	}
	if ev.ReadBytes, ok = ParseDecimal(f[4]); !ok {
		return eventErr(privcountStreamEnded, "bad bytes read", f[4])
	}
	if ev.WrittenBytes, ok = ParseDecimal(f[5]); !ok {
		return eventErr(privcountStreamEnded, "bad bytes written", f[5])
	}
	if ev.Created, ok = ParseUnixTime(f[6]); !ok {
		return eventErr(privcountStreamEnded, "bad start time", f[6])
	}
	if ev.Ended, ok = ParseUnixTime(f[7]); !ok {
		return eventErr(privcountStreamEnded, "bad end time", f[7])
	}
	ev.RemoteHost, ev.RemoteIP = f[8], f[9]
	return nil
}

func parseStreamEndedTagged(t *tokens, ev *PrivCountStreamEndedEvent) error {
	ev.Tagged = true
	var seen uint8
	for t.nextField(&ev.Fields) {
		ok := true
		switch v := t.value; string(t.key) {
		case "ChanID":
			ok = setUint(&ev.ChannelID, v)
		case "CircID":
			ok = setUint(&ev.CircuitID, v)
		case "StreamID":
			ok = setUint(&ev.StreamID, v)
		case "ExitPort":
			ok = setPort(&ev.RemotePort, v)
			seen |= 1
		case "ReadBytesExit":
			ok = setUint(&ev.ReadBytes, v)
			seen |= 2
		case "WriteBytesExit":
			ok = setUint(&ev.WrittenBytes, v)
			seen |= 4
		case "CreatedTimestamp":
			ok = setTime(&ev.Created, v)
			seen |= 8
		case "TimeStamp":
			ok = setTime(&ev.Ended, v)
			seen |= 16
		case "RemoteHostName":
			ev.RemoteHost = v
		case "RemoteIPAddress":
			ev.RemoteIP = v
		}
		if !ok {
			return t.bad(privcountStreamEnded)
		}
	}
	if err := t.end(privcountStreamEnded); err != nil {
		return err
	}
	if seen != 31 {
		return eventErr(privcountStreamEnded, "missing "+missing(seen, "ExitPort", "ReadBytesExit", "WriteBytesExit", "CreatedTimestamp", "TimeStamp"), nil)
	}
	return nil
}

// PrivCountConnectionCloseEvent is PRIVCOUNT_CONNECTION_CLOSE: an OR
// connection closed.
type PrivCountConnectionCloseEvent struct {
	EventTime             time.Time // EventTimestamp
	Created               time.Time // CreatedTimestamp
	ChannelID             uint64    // ChannelId
	RemoteIsClient        bool      // RemoteIsClientFlag
	RemoteIP              []byte    // RemoteIPAddress
	RemoteIPConnections   uint64    // RemoteIPAddressConnectionCount
	PeerIPConsensusRelays uint64    // PeerIPAddressConsensusRelayCount
	PeerIP                []byte    // PeerIPAddress: only for authenticated relay peers
	InboundBytes          uint64    // InboundByteCount (newer patches)
	OutboundBytes         uint64    // OutboundByteCount
	InboundCircuits       uint64    // InboundCircuitCount
	OutboundCircuits      uint64    // OutboundCircuitCount
	RemoteCountryCode     []byte    // RemoteCountryCode
	Fields                []Field
}

const privcountConnectionClose = "PRIVCOUNT_CONNECTION_CLOSE"

// ParsePrivCountConnectionClose parses a PRIVCOUNT_CONNECTION_CLOSE event
// line. The fields PrivCount requires (EventTimestamp, CreatedTimestamp,
// ChannelId, RemoteIsClientFlag, RemoteIPAddress,
// RemoteIPAddressConnectionCount, PeerIPAddressConsensusRelayCount) must
// be present.
func ParsePrivCountConnectionClose(line []byte, ev *PrivCountConnectionCloseEvent) error {
	*ev = PrivCountConnectionCloseEvent{Fields: ev.Fields[:0]}
	var t tokens
	if err := t.begin(line, privcountConnectionClose, false); err != nil {
		return err
	}
	var seen uint8
	for t.nextField(&ev.Fields) {
		ok := true
		switch v := t.value; string(t.key) {
		case "EventTimestamp":
			ok = setTime(&ev.EventTime, v)
			seen |= 1
		case "CreatedTimestamp":
			ok = setTime(&ev.Created, v)
			seen |= 2
		case "ChannelId":
			ok = setUint(&ev.ChannelID, v)
			seen |= 4
		case "RemoteIsClientFlag":
			ok = setFlag(&ev.RemoteIsClient, v)
			seen |= 8
		case "RemoteIPAddress":
			ev.RemoteIP = v
			ok = len(v) > 0
			seen |= 16
		case "RemoteIPAddressConnectionCount":
			ok = setUint(&ev.RemoteIPConnections, v)
			seen |= 32
		case "PeerIPAddressConsensusRelayCount":
			ok = setUint(&ev.PeerIPConsensusRelays, v)
			seen |= 64
		case "PeerIPAddress":
			ev.PeerIP = v
		case "InboundByteCount":
			ok = setUint(&ev.InboundBytes, v)
		case "OutboundByteCount":
			ok = setUint(&ev.OutboundBytes, v)
		case "InboundCircuitCount":
			ok = setUint(&ev.InboundCircuits, v)
		case "OutboundCircuitCount":
			ok = setUint(&ev.OutboundCircuits, v)
		case "RemoteCountryCode":
			ev.RemoteCountryCode = v
		}
		if !ok {
			return t.bad(privcountConnectionClose)
		}
	}
	if err := t.end(privcountConnectionClose); err != nil {
		return err
	}
	if seen != 127 {
		return eventErr(privcountConnectionClose, "missing "+missing(seen, "EventTimestamp", "CreatedTimestamp",
			"ChannelId", "RemoteIsClientFlag", "RemoteIPAddress", "RemoteIPAddressConnectionCount",
			"PeerIPAddressConsensusRelayCount"), nil)
	}
	return nil
}

// PrivCountCircuitCloseEvent is PRIVCOUNT_CIRCUIT_CLOSE: a circuit through
// (or from) this relay closed. The position flags say where this relay
// was on the circuit; flags tor leaves out are false.
type PrivCountCircuitCloseEvent struct {
	EventTime         time.Time // EventTimestamp (required)
	Created           time.Time // CreatedTimestamp
	PreviousChannelID uint64    // PreviousChannelId
	PreviousCircuitID uint64    // PreviousCircuitId
	NextChannelID     uint64    // NextChannelId
	NextCircuitID     uint64    // NextCircuitId

	IsOrigin, IsEntry, IsMid, IsEnd              bool
	IsExit, IsDir, IsHSDir, IsIntro, IsRend      bool
	IsHSClientSide, IsMarkedForClose             bool
	HSVersion                                    uint64 // HiddenServiceVersionNumber
	State, Purpose, HSState, FailureReason       []byte // *String fields
	PreviousNodeIP, NextNodeIP                   []byte // {Previous,Next}NodeIPAddress
	PreviousNodeFingerprint, NextNodeFingerprint []byte // {Previous,Next}NodeFingerprint
	InboundSentCells, InboundReceivedCells       uint64
	OutboundSentCells, OutboundReceivedCells     uint64
	InboundExitCells, OutboundExitCells          uint64
	InboundExitBytes, OutboundExitBytes          uint64
	InboundDirBytes, OutboundDirBytes            uint64
	Fields                                       []Field
}

const privcountCircuitClose = "PRIVCOUNT_CIRCUIT_CLOSE"

// ParsePrivCountCircuitClose parses a PRIVCOUNT_CIRCUIT_CLOSE event line.
// EventTimestamp is required.
func ParsePrivCountCircuitClose(line []byte, ev *PrivCountCircuitCloseEvent) error {
	*ev = PrivCountCircuitCloseEvent{Fields: ev.Fields[:0]}
	var t tokens
	if err := t.begin(line, privcountCircuitClose, false); err != nil {
		return err
	}
	seen := false
	for t.nextField(&ev.Fields) {
		ok := true
		var u *uint64
		var flag *bool
		switch v := t.value; string(t.key) {
		case "EventTimestamp":
			ok = setTime(&ev.EventTime, v)
			seen = true
		case "CreatedTimestamp":
			ok = setTime(&ev.Created, v)
		case "PreviousChannelId":
			u = &ev.PreviousChannelID
		case "PreviousCircuitId":
			u = &ev.PreviousCircuitID
		case "NextChannelId":
			u = &ev.NextChannelID
		case "NextCircuitId":
			u = &ev.NextCircuitID
		case "IsOriginFlag":
			flag = &ev.IsOrigin
		case "IsEntryFlag":
			flag = &ev.IsEntry
		case "IsMidFlag":
			flag = &ev.IsMid
		case "IsEndFlag":
			flag = &ev.IsEnd
		case "IsExitFlag":
			flag = &ev.IsExit
		case "IsDirFlag":
			flag = &ev.IsDir
		case "IsHSDirFlag":
			flag = &ev.IsHSDir
		case "IsIntroFlag":
			flag = &ev.IsIntro
		case "IsRendFlag":
			flag = &ev.IsRend
		case "IsHSClientSideFlag":
			flag = &ev.IsHSClientSide
		case "IsMarkedForCloseFlag":
			flag = &ev.IsMarkedForClose
		case "HiddenServiceVersionNumber":
			u = &ev.HSVersion
		case "StateString":
			ev.State = v
		case "PurposeString":
			ev.Purpose = v
		case "HSStateString":
			ev.HSState = v
		case "FailureReasonString":
			ev.FailureReason = v
		case "PreviousNodeIPAddress":
			ev.PreviousNodeIP = v
		case "NextNodeIPAddress":
			ev.NextNodeIP = v
		case "PreviousNodeFingerprint":
			ev.PreviousNodeFingerprint = v
		case "NextNodeFingerprint":
			ev.NextNodeFingerprint = v
		case "InboundSentCellCount":
			u = &ev.InboundSentCells
		case "InboundReceivedCellCount":
			u = &ev.InboundReceivedCells
		case "OutboundSentCellCount":
			u = &ev.OutboundSentCells
		case "OutboundReceivedCellCount":
			u = &ev.OutboundReceivedCells
		case "InboundExitCellCount":
			u = &ev.InboundExitCells
		case "OutboundExitCellCount":
			u = &ev.OutboundExitCells
		case "InboundExitByteCount":
			u = &ev.InboundExitBytes
		case "OutboundExitByteCount":
			u = &ev.OutboundExitBytes
		case "InboundDirByteCount":
			u = &ev.InboundDirBytes
		case "OutboundDirByteCount":
			u = &ev.OutboundDirBytes
		}
		switch {
		case u != nil:
			ok = setUint(u, t.value)
		case flag != nil:
			ok = setFlag(flag, t.value)
		}
		if !ok {
			return t.bad(privcountCircuitClose)
		}
	}
	if err := t.end(privcountCircuitClose); err != nil {
		return err
	}
	if !seen {
		return eventErr(privcountCircuitClose, "missing EventTimestamp", nil)
	}
	return nil
}

// PrivCountHSDirCacheEvent is PRIVCOUNT_HSDIR_CACHE_STORE (an onion
// service descriptor was uploaded to this HSDir) or
// PRIVCOUNT_HSDIR_CACHE_FETCH (one was asked for). Kind says which.
type PrivCountHSDirCacheEvent struct {
	Kind                   EventKind
	HSVersion              uint64    // HiddenServiceVersionNumber (required)
	EventTime              time.Time // EventTimestamp (required)
	CacheReason            []byte    // CacheReasonString: new, updated, obsolete, ... (required for STORE)
	WasAddedToCache        bool      // WasAddedToCacheFlag (required for STORE)
	HasExistingCacheEntry  bool      // HasExistingCacheEntryFlag
	OnionAddress           []byte    // v2 only
	DescriptorID           []byte    // DescriptorIdBase32String, v2 only
	BlindedKey             []byte    // BlindedEd25519PublicKeyBase64String, v3 only
	EncodedDescriptorBytes uint64    // EncodedDescriptorByteCount
	IntroPointCount        uint64
	RevisionNumber         uint64 // v3 only
	Fields                 []Field
}

// ParsePrivCountHSDirCacheStore parses a PRIVCOUNT_HSDIR_CACHE_STORE event
// line. HiddenServiceVersionNumber, EventTimestamp, CacheReasonString and
// WasAddedToCacheFlag are required.
func ParsePrivCountHSDirCacheStore(line []byte, ev *PrivCountHSDirCacheEvent) error {
	return parseHSDirCache(line, "PRIVCOUNT_HSDIR_CACHE_STORE", EventPrivCountHSDirCacheStore, ev)
}

// ParsePrivCountHSDirCacheFetch parses a PRIVCOUNT_HSDIR_CACHE_FETCH event
// line. HiddenServiceVersionNumber and EventTimestamp are required; the
// other fields are read when present.
func ParsePrivCountHSDirCacheFetch(line []byte, ev *PrivCountHSDirCacheEvent) error {
	return parseHSDirCache(line, "PRIVCOUNT_HSDIR_CACHE_FETCH", EventPrivCountHSDirCacheFetch, ev)
}

func parseHSDirCache(line []byte, name string, kind EventKind, ev *PrivCountHSDirCacheEvent) error {
	*ev = PrivCountHSDirCacheEvent{Kind: kind, Fields: ev.Fields[:0]}
	var t tokens
	if err := t.begin(line, name, false); err != nil {
		return err
	}
	var seen uint8
	for t.nextField(&ev.Fields) {
		ok := true
		switch v := t.value; string(t.key) {
		case "HiddenServiceVersionNumber":
			ok = setUint(&ev.HSVersion, v)
			seen |= 1
		case "EventTimestamp":
			ok = setTime(&ev.EventTime, v)
			seen |= 2
		case "CacheReasonString":
			ev.CacheReason = v
			ok = len(v) > 0
			seen |= 4
		case "WasAddedToCacheFlag":
			ok = setFlag(&ev.WasAddedToCache, v)
			seen |= 8
		case "HasExistingCacheEntryFlag":
			ok = setFlag(&ev.HasExistingCacheEntry, v)
		case "OnionAddress":
			ev.OnionAddress = v
		case "DescriptorIdBase32String":
			ev.DescriptorID = v
		case "BlindedEd25519PublicKeyBase64String":
			ev.BlindedKey = v
		case "EncodedDescriptorByteCount":
			ok = setUint(&ev.EncodedDescriptorBytes, v)
		case "IntroPointCount":
			ok = setUint(&ev.IntroPointCount, v)
		case "RevisionNumber":
			ok = setUint(&ev.RevisionNumber, v)
		}
		if !ok {
			return t.bad(name)
		}
	}
	if err := t.end(name); err != nil {
		return err
	}
	want := uint8(15)
	if kind == EventPrivCountHSDirCacheFetch {
		want = 3
	}
	if seen&want != want {
		return eventErr(name, "missing "+missing(seen, "HiddenServiceVersionNumber", "EventTimestamp",
			"CacheReasonString", "WasAddedToCacheFlag"), nil)
	}
	return nil
}

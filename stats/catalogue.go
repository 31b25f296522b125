package stats

import (
	"slices"
	"strings"
	"time"

	"github.com/privstats/privstats/torctl"
)

// The activity privstats protects by default is one Tor user's day. These
// bounds on that activity set each statistic's sensitivity; a privacy plan
// may choose others.
const (
	// actionBytes is the application data of a heavy day of browsing.
	actionBytes = 64 << 20
	// actionDirBytes is the directory data a client fetches in a day.
	actionDirBytes = 16 << 20
	// actionConnections is how many OR connections a client opens to its
	// guards in a day, reconnections included (PrivCount's bound).
	actionConnections = 12
	// actionCircuits is a circuit every two minutes, all day.
	actionCircuits = 720
	// actionStreams is 30 streams every 10 minutes, all day.
	actionStreams = 4320
	// actionOnionVisits is onion-service connections a client makes in a
	// day; each may be retried up to three times.
	actionOnionVisits = 100
	// actionDescriptorStores is what one v3 onion service uploads in a day:
	// 8 HSDirs about every hour, and both time periods around the change.
	actionDescriptorStores = 400
	// actionIntroPoints is how many intro points one service establishes in
	// a day, rotations and failures included.
	actionIntroPoints = 480

	// hops and cellOverhead turn a user's bytes into what relays carry:
	// three relays carry each byte, in 514-byte cells of 498 data bytes,
	// with TLS records around them.
	hops         = 3
	cellOverhead = 1.1

	// connectionsCaused bounds the OR connections a user's day can cause
	// anywhere: its own guard connections, and for each circuit at most a
	// new guard–middle and middle–exit connection, each seen at both ends.
	connectionsCaused = actionConnections + 4*actionCircuits
)

// MaxRoundDuration is the longest round for which MaxPerCollector bounds
// hold.
const MaxRoundDuration = 7 * 24 * time.Hour

// perRound is the most a relay doing rate things a second can count in a
// round of MaxRoundDuration.
func perRound(rate float64) uint64 { return uint64(rate * MaxRoundDuration.Seconds()) }

// One tor process relays at most ~2 Gbit/s, and handles at most these
// many events a second; MaxPerCollector derives from them.
var (
	maxBytes       = perRound(250e6)
	maxConnections = perRound(2000)
	maxStreams     = perRound(20000)
	maxCircuits    = perRound(5000)
	maxCells       = perRound(5000)
	maxHSDirOps    = perRound(1000)
	// CONN_BW reports each busy connection once a second.
	maxConnSeconds = perRound(65536)
)

// Histogram edges the catalogue uses unless a round chooses others.
var (
	lifetimeEdges  = []uint64{0, 1, 10, 60, 300, 1800, 3600, 21600, 86400}
	ncircsEdges    = []uint64{0, 1, 2, 4, 8, 16, 64, 256, 1024}
	connBytesEdges = []uint64{0, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20}
	streamEdges    = []uint64{0, 512, 2 << 10, 8 << 10, 32 << 10, 128 << 10, 512 << 10, 2 << 20, 8 << 20, 32 << 20}
	perIPEdges     = []uint64{1, 2, 3, 4, 6, 11, 21, 51}
)

// Tor's label values of the MetricsPort families the catalogue reads.
var (
	streamTypes   = []string{"BEGIN", "BEGIN_DIR", "RESOLVE"}
	intro1Actions = []string{"success", "circuit_dead", "malformed", "unknown_service", "rate_limited", "circuit_reused", "single_hop"}
	rend1Actions  = []string{"success", "unsuitable_circuit", "malformed", "unknown_cookie", "circuit_dead"}
	estIntro      = []string{"success", "malformed", "unsuitable_circuit", "circuit_dead"}
	estRend       = []string{"success", "unsuitable_circuit", "single_hop", "malformed", "duplicate_cookie", "circuit_dead"}
)

// catalogue is every statistic, sorted by name in init.
var catalogue = []Statistic{
	// Stock tor: BW.
	{
		Name: "relay_bytes_read", Source: SourceControl, on: torctl.EventBW, Unit: "bytes",
		Description: "Bytes the relay read, over all its connections (BW events, once a second).",
		Sensitivity: hops * cellOverhead * actionBytes, BinsTouched: 1,
		Estimate: 3.5e15, MaxPerCollector: maxBytes,
		measure: func(e *event) (uint64, uint64, bool) { return 0, e.bw.Read, true },
	},
	{
		Name: "relay_bytes_written", Source: SourceControl, on: torctl.EventBW, Unit: "bytes",
		Description: "Bytes the relay wrote, over all its connections (BW events, once a second).",
		Sensitivity: hops * cellOverhead * actionBytes, BinsTouched: 1,
		Estimate: 3.5e15, MaxPerCollector: maxBytes,
		measure: func(e *event) (uint64, uint64, bool) { return 0, e.bw.Written, true },
	},

	// Stock tor: ORCONN.
	{
		Name: "or_connections", Source: SourceControl, on: torctl.EventORConn, Unit: "connections", trackConn: true,
		Description: "OR connections that opened, by peer: inbound from a client, inbound from a relay, or outbound. " +
			"Direction comes from the connection's NEW (inbound) or LAUNCHED (outbound) event, the peer's kind from CONNECTED: " +
			"a relay is named $fingerprint~nickname, a client by address. Connections whose NEW or LAUNCHED was not seen are not counted.",
		Bins:        Bins{Categories: []string{"inbound_client", "inbound_relay", "outbound"}},
		Sensitivity: 2 * actionCircuits, BinsTouched: 3,
		Estimate: 4e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) {
			if e.orconn.Status != torctl.ORConnected || !e.tracked {
				return 0, 0, false
			}
			switch {
			case !e.inbound:
				return 2, 1, true
			case e.orconn.IsRelay():
				return 1, 1, true
			}
			return 0, 1, true
		},
	},
	{
		Name: "or_connection_lifetime", Source: SourceControl, on: torctl.EventORConn, Unit: "connections", trackConn: true,
		Description: "OR connections that closed, by seconds from NEW or LAUNCHED to CLOSED. " +
			"Connections opened before the collector started, or forgotten by its bounded connection table, are not counted.",
		Bins: Bins{Edges: lifetimeEdges}, BinUnit: "seconds",
		Sensitivity: connectionsCaused, BinsTouched: int64(len(lifetimeEdges)),
		Estimate: 4e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) {
			if e.orconn.Status != torctl.ORClosed || !e.tracked {
				return 0, 0, false
			}
			return uint64(e.lifetime / time.Second), 1, true
		},
	},
	{
		Name: "or_connection_circuits", Source: SourceControl, on: torctl.EventORConn, Unit: "connections",
		Description: "OR connections that closed, by how many circuits they carried (NCIRCS of the CLOSED event).",
		Bins:        Bins{Edges: ncircsEdges}, BinUnit: "circuits",
		Sensitivity: connectionsCaused, BinsTouched: int64(len(ncircsEdges)),
		Estimate: 4e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) {
			if e.orconn.Status != torctl.ORClosed || !e.orconn.HasNCircs {
				return 0, 0, false
			}
			return e.orconn.NCircs, 1, true
		},
	},

	// Stock tor on test networks: CONN_BW.
	{
		Name: "exit_bytes", Source: SourceTestNetwork, on: torctl.EventConnBW, Unit: "bytes",
		Description: "Bytes read plus written on exit connections to the internet (CONN_BW TYPE=EXIT; TestingTorNetwork only).",
		Sensitivity: actionBytes, BinsTouched: 1,
		Estimate: 1e15, MaxPerCollector: 2 * maxBytes,
		measure: connBytes(torctl.ConnExit),
	},
	{
		Name: "or_bytes", Source: SourceTestNetwork, on: torctl.EventConnBW, Unit: "bytes",
		Description: "Bytes read plus written on OR connections between clients and relays (CONN_BW TYPE=OR; TestingTorNetwork only).",
		// Guard and middle each read a byte on one OR connection and write
		// it on another; the exit has one OR side.
		Sensitivity: (2*hops - 1) * cellOverhead * actionBytes, BinsTouched: 1,
		Estimate: 6e15, MaxPerCollector: 2 * maxBytes,
		measure: connBytes(torctl.ConnOR),
	},
	{
		Name: "dir_bytes", Source: SourceTestNetwork, on: torctl.EventConnBW, Unit: "bytes",
		Description: "Bytes read plus written on directory connections (CONN_BW TYPE=DIR; TestingTorNetwork only).",
		Sensitivity: 2 * actionDirBytes, BinsTouched: 1,
		Estimate: 5e13, MaxPerCollector: 2 * maxBytes,
		measure: connBytes(torctl.ConnDir),
	},
	{
		Name: "exit_connection_bytes", Source: SourceTestNetwork, on: torctl.EventConnBW, Unit: "reports",
		Description: "CONN_BW reports of exit connections, by bytes read plus written since the connection's previous report " +
			"(tor reports each busy connection about once a second; TestingTorNetwork only).",
		Bins: Bins{Edges: connBytesEdges}, BinUnit: "bytes",
		Sensitivity: 10 * actionStreams, BinsTouched: int64(len(connBytesEdges)),
		Estimate: 1e10, MaxPerCollector: maxConnSeconds,
		measure: func(e *event) (uint64, uint64, bool) {
			if e.connBW.Type != torctl.ConnExit {
				return 0, 0, false
			}
			return addSat(e.connBW.Read, e.connBW.Written), 1, true
		},
	},

	// Tor's MetricsPort.
	{
		Name: "exit_streams_by_type", Source: SourceMetricsPort, Metric: "tor_relay_streams_total", Unit: "streams",
		Description: "Streams the relay opened for clients, by request: BEGIN (exit), BEGIN_DIR (directory) or RESOLVE (DNS) (tor_relay_streams_total{type}).",
		Bins:        Bins{Categories: []string{"begin", "begin_dir", "resolve"}},
		Sensitivity: actionStreams, BinsTouched: 3,
		Estimate: 2e9, MaxPerCollector: maxStreams,
		measure: byLabel("type", streamTypes, false),
	},
	{
		Name: "onion_intro1_cells", Source: SourceMetricsPort, Metric: "tor_relay_intro1_total", Unit: "cells",
		Description: "INTRODUCE1 cells the relay received as an onion-service introduction point, by outcome (tor_relay_intro1_total{action}).",
		Bins:        Bins{Categories: withOther(intro1Actions)},
		Sensitivity: 3 * actionOnionVisits, BinsTouched: int64(len(intro1Actions) + 1),
		Estimate: 2e8, MaxPerCollector: maxCells,
		measure: byLabel("action", intro1Actions, true),
	},
	{
		Name: "onion_rend1_cells", Source: SourceMetricsPort, Metric: "tor_relay_rend1_total", Unit: "cells",
		Description: "RENDEZVOUS1 cells the relay received as a rendezvous point, by outcome (tor_relay_rend1_total{action}).",
		Bins:        Bins{Categories: withOther(rend1Actions)},
		Sensitivity: 3 * actionOnionVisits, BinsTouched: int64(len(rend1Actions) + 1),
		Estimate: 2e8, MaxPerCollector: maxCells,
		measure: byLabel("action", rend1Actions, true),
	},
	{
		Name: "onion_est_intro_cells", Source: SourceMetricsPort, Metric: "tor_relay_est_intro_total", Unit: "cells",
		Description: "ESTABLISH_INTRO cells the relay received from onion services, by outcome (tor_relay_est_intro_total{action}).",
		Bins:        Bins{Categories: withOther(estIntro)},
		Sensitivity: actionIntroPoints, BinsTouched: int64(len(estIntro) + 1),
		Estimate: 5e6, MaxPerCollector: maxCells,
		measure: byLabel("action", estIntro, true),
	},
	{
		Name: "onion_est_rend_cells", Source: SourceMetricsPort, Metric: "tor_relay_est_rend_total", Unit: "cells",
		Description: "ESTABLISH_RENDEZVOUS cells the relay received from onion-service clients, by outcome (tor_relay_est_rend_total{action}).",
		Bins:        Bins{Categories: withOther(estRend)},
		Sensitivity: 3 * actionOnionVisits, BinsTouched: int64(len(estRend) + 1),
		Estimate: 2e8, MaxPerCollector: maxCells,
		measure: byLabel("action", estRend, true),
	},
	{
		Name: "relay_traffic_bytes", Source: SourceMetricsPort, Metric: "tor_relay_traffic_bytes", Unit: "bytes",
		Description: "Bytes the relay read and wrote (tor_relay_traffic_bytes{direction}).",
		Bins:        Bins{Categories: []string{"read", "written"}},
		Sensitivity: hops * cellOverhead * actionBytes, BinsTouched: 2,
		Estimate: 7e15, MaxPerCollector: maxBytes,
		measure: byLabel("direction", []string{"read", "written"}, false),
	},
	{
		Name: "or_connections_created", Source: SourceMetricsPort, Metric: "tor_relay_connections_total", Unit: "connections",
		Description: "OR connections created inbound and outbound, and inbound ones rejected " +
			"(tor_relay_connections_total{type=\"OR\",direction,state}).",
		Bins:        Bins{Categories: []string{"inbound", "outbound", "inbound_rejected"}},
		Sensitivity: connectionsCaused, BinsTouched: 3,
		Estimate: 4e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) {
			m := &e.metric
			if !m.labelIs("type", "OR") {
				return 0, 0, false
			}
			switch {
			case m.labelIs("state", "created") && m.labelIs("direction", "received"):
				return 0, m.Increase, true
			case m.labelIs("state", "created") && m.labelIs("direction", "initiated"):
				return 1, m.Increase, true
			case m.labelIs("state", "rejected") && m.labelIs("direction", "received"):
				return 2, m.Increase, true
			}
			return 0, 0, false
		},
	},

	// PrivCount tor: exit streams.
	{
		Name: "exit_streams", Source: SourcePrivCount, on: torctl.EventPrivCountStreamEnded, Unit: "streams",
		Description: "Exit streams to the internet that ended having carried data (PRIVCOUNT_STREAM_ENDED; streams with no bytes are left out, as PrivCount does).",
		Sensitivity: actionStreams, BinsTouched: 1,
		Estimate: 2e9, MaxPerCollector: maxStreams,
		measure: func(e *event) (uint64, uint64, bool) { return 0, 1, streamBytes(e) > 0 },
	},
	{
		Name: "exit_streams_by_port", Source: SourcePrivCount, on: torctl.EventPrivCountStreamEnded, Unit: "streams",
		Description: "Exit streams that carried data, by remote port class: web (80, 443), interactive (SSH, telnet, IRC, XMPP), " +
			"p2p (BitTorrent, Gnutella, eDonkey, …) or other.",
		Bins:        Bins{Categories: portClassNames},
		Sensitivity: actionStreams, BinsTouched: numPortClasses,
		Estimate: 2e9, MaxPerCollector: maxStreams,
		measure: func(e *event) (uint64, uint64, bool) {
			return uint64(PortClass(e.stream.RemotePort)), 1, streamBytes(e) > 0
		},
	},
	{
		Name: "exit_stream_bytes_by_port", Source: SourcePrivCount, on: torctl.EventPrivCountStreamEnded, Unit: "bytes",
		Description: "Bytes exit streams carried (read plus written), by remote port class.",
		Bins:        Bins{Categories: portClassNames},
		Sensitivity: actionBytes, BinsTouched: numPortClasses,
		Estimate: 1e15, MaxPerCollector: 2 * maxBytes,
		measure: func(e *event) (uint64, uint64, bool) {
			return uint64(PortClass(e.stream.RemotePort)), streamBytes(e), true
		},
	},
	streamHistogram(PortWeb, 1.6e9),
	streamHistogram(PortInteractive, 5e6),
	streamHistogram(PortP2P, 5e7),
	streamHistogram(PortOther, 3e8),

	// PrivCount tor: circuits.
	{
		Name: "exit_circuits", Source: SourcePrivCount, on: torctl.EventPrivCountCircuitClose, Unit: "circuits",
		Description: "Circuits that closed on which the relay was the exit (PRIVCOUNT_CIRCUIT_CLOSE with IsExitFlag=1).",
		Sensitivity: actionCircuits, BinsTouched: 1,
		Estimate: 2e8, MaxPerCollector: maxCircuits,
		measure: func(e *event) (uint64, uint64, bool) { return 0, 1, e.circuit.IsExit && !e.circuit.IsOrigin },
	},
	{
		Name: "entry_circuits", Source: SourcePrivCount, on: torctl.EventPrivCountCircuitClose, Unit: "circuits",
		Description: "Circuits that closed on which the relay was the client's first hop (IsEntryFlag=1; the relay's own circuits are left out).",
		Sensitivity: actionCircuits, BinsTouched: 1,
		Estimate: 1e9, MaxPerCollector: maxCircuits,
		measure: func(e *event) (uint64, uint64, bool) { return 0, 1, e.circuit.IsEntry && !e.circuit.IsOrigin },
	},

	// PrivCount tor: client connections.
	{
		Name: "entry_connections", Source: SourcePrivCount, on: torctl.EventPrivCountConnectionClose, Unit: "connections",
		Description: "Connections from clients that closed (PRIVCOUNT_CONNECTION_CLOSE with RemoteIsClientFlag=1).",
		Sensitivity: actionConnections, BinsTouched: 1,
		Estimate: 3e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) { return 0, 1, e.conn.RemoteIsClient },
	},
	{
		Name: "entry_client_ip_connections", Source: SourcePrivCount, on: torctl.EventPrivCountConnectionClose, Unit: "connections",
		Description: "Client connections that closed, by how many connections their client's address had open at the time " +
			"(RemoteIPAddressConnectionCount).",
		Bins: Bins{Edges: perIPEdges}, BinUnit: "connections per address",
		Sensitivity: actionConnections, BinsTouched: int64(len(perIPEdges)),
		Estimate: 3e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) {
			return e.conn.RemoteIPConnections, 1, e.conn.RemoteIsClient
		},
	},
	{
		Name: "entry_connection_lifetime", Source: SourcePrivCount, on: torctl.EventPrivCountConnectionClose, Unit: "connections",
		Description: "Client connections that closed, by seconds from CreatedTimestamp to EventTimestamp.",
		Bins:        Bins{Edges: lifetimeEdges}, BinUnit: "seconds",
		Sensitivity: actionConnections, BinsTouched: int64(len(lifetimeEdges)),
		Estimate: 3e7, MaxPerCollector: maxConnections,
		measure: func(e *event) (uint64, uint64, bool) {
			c := &e.conn
			if !c.RemoteIsClient || c.EventTime.Before(c.Created) {
				return 0, 0, false
			}
			return uint64(c.EventTime.Sub(c.Created) / time.Second), 1, true
		},
	},

	// PrivCount tor: onion-service directories.
	{
		Name: "hsdir_v3_stores", Source: SourcePrivCount, on: torctl.EventPrivCountHSDirCacheStore, Unit: "descriptors",
		Description: "v3 onion-service descriptors uploaded to the relay as an HSDir, by whether it added them to its cache " +
			"(PRIVCOUNT_HSDIR_CACHE_STORE, WasAddedToCacheFlag).",
		Bins:        Bins{Categories: []string{"added", "rejected"}},
		Sensitivity: actionDescriptorStores, BinsTouched: 2,
		Estimate: 1e8, MaxPerCollector: maxHSDirOps,
		measure: func(e *event) (uint64, uint64, bool) {
			if e.hsdir.HSVersion != 3 {
				return 0, 0, false
			}
			if e.hsdir.WasAddedToCache {
				return 0, 1, true
			}
			return 1, 1, true
		},
	},
	{
		Name: "hsdir_v3_fetches", Source: SourcePrivCount, on: torctl.EventPrivCountHSDirCacheFetch, Unit: "fetches",
		Description: "v3 onion-service descriptor fetches from the relay as an HSDir, by whether it had the descriptor " +
			"(PRIVCOUNT_HSDIR_CACHE_FETCH, HasExistingCacheEntryFlag).",
		Bins:        Bins{Categories: []string{"cached", "uncached"}},
		Sensitivity: 3 * actionOnionVisits, BinsTouched: 2,
		Estimate: 1e8, MaxPerCollector: maxHSDirOps,
		measure: func(e *event) (uint64, uint64, bool) {
			if e.hsdir.HSVersion != 3 {
				return 0, 0, false
			}
			if e.hsdir.HasExistingCacheEntry {
				return 0, 1, true
			}
			return 1, 1, true
		},
	},
}

func init() {
	slices.SortFunc(catalogue, func(a, b Statistic) int { return strings.Compare(a.Name, b.Name) })
	for i := range catalogue {
		s := &catalogue[i]
		if !s.IsMetric() {
			s.Events = []string{s.on.String()}
		}
	}
}

// streamHistogram declares the per-stream byte histogram of one port class.
func streamHistogram(class int, estimate float64) Statistic {
	name := portClassNames[class]
	return Statistic{
		Name: "exit_stream_bytes_" + name, Source: SourcePrivCount, on: torctl.EventPrivCountStreamEnded, Unit: "streams",
		Description: "Exit streams of the " + name + " port class that carried data, by bytes read plus written.",
		Bins:        Bins{Edges: streamEdges}, BinUnit: "bytes",
		Sensitivity: actionStreams, BinsTouched: int64(len(streamEdges)),
		Estimate: estimate, MaxPerCollector: maxStreams,
		measure: func(e *event) (uint64, uint64, bool) {
			b := streamBytes(e)
			return b, 1, b > 0 && PortClass(e.stream.RemotePort) == class
		},
	}
}

func streamBytes(e *event) uint64 { return addSat(e.stream.ReadBytes, e.stream.WrittenBytes) }

// connBytes counts the bytes of one type of CONN_BW connection.
func connBytes(t torctl.ConnType) measureFunc {
	return func(e *event) (uint64, uint64, bool) {
		return 0, addSat(e.connBW.Read, e.connBW.Written), e.connBW.Type == t
	}
}

// byLabel bins a metric's increase by the value of one label; values not
// listed go to a final "other" bin when other is set, and are dropped
// otherwise.
func byLabel(key string, values []string, other bool) measureFunc {
	return func(e *event) (uint64, uint64, bool) {
		v, ok := e.metric.Label(key)
		if !ok {
			return 0, 0, false
		}
		for i, want := range values {
			if string(v) == want {
				return uint64(i), e.metric.Increase, true
			}
		}
		return uint64(len(values)), e.metric.Increase, other
	}
}

// withOther returns categories for byLabel values with an "other" bin.
func withOther(values []string) []string {
	return append(slices.Clone(values), "other")
}

// addSat adds without wrapping: a bogus event must not turn a huge count
// into a small one.
func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return inf
}

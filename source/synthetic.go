package source

import (
	"container/heap"
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/privstats/privstats/internal/wait"
	"github.com/privstats/privstats/stats"
)

// DefaultSyntheticRate is the event rate of a synthetic source when none is
// given.
const DefaultSyntheticRate = 200

// SyntheticOptions shapes a synthetic workload.
type SyntheticOptions struct {
	// Rate is the mean number of events per second; DefaultSyntheticRate
	// if zero.
	Rate float64
	// Seed makes the workload repeatable; 0 draws one at random.
	Seed uint64
	// Fingerprint (40 hex digits) and Nickname name the simulated relay.
	// The fingerprint is mixed into the seed, so relays of a demo that
	// share a seed still see different traffic. Defaults are made up.
	Fingerprint string
	Nickname    string
	// Start is the simulated clock's start; zero means now.
	Start time.Time
	// Duration stops the source after this much simulated time; Limit
	// after this many events. Zero means no limit.
	Duration time.Duration
	Limit    int
	// Fast emits events as fast as they can be made, with simulated
	// times; otherwise they are paced in real time.
	Fast bool
}

// Synthetic returns a source of made-up but Tor-like events from an exit
// relay that is also an HSDir and an onion-service introduction and
// rendezvous point, running PrivCount tor on a test network with its
// MetricsPort scraped: BW once a second; ORCONN connections that open
// (NEW inbound, LAUNCHED outbound), connect and close with NCIRCS after
// lognormal lifetimes; CONN_BW; the relay's own CIRC and STREAM events;
// PRIVCOUNT_STREAM_ENDED with heavy-tailed (lognormal and Pareto) byte
// counts on web, interactive, P2P and other ports; PRIVCOUNT circuit and
// connection closes; HSDir descriptor stores and fetches; and every ten
// seconds the MetricsPort's stream and onion-service cell counters as
// PRIVSTATS_METRIC lines. Addresses are from documentation ranges.
func Synthetic(opts SyntheticOptions) Source {
	return &synthetic{opts: opts}
}

type synthetic struct {
	opts SyntheticOptions
}

func (s *synthetic) Run(ctx context.Context, _ *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	o := s.opts
	wallStart := time.Now()
	if o.Start.IsZero() {
		o.Start = wallStart
	}
	g := newGenerator(o)
	for n := 0; o.Limit == 0 || n < o.Limit; n++ {
		at, line := g.next()
		if o.Duration > 0 && at.Sub(o.Start) >= o.Duration {
			return nil
		}
		if !o.Fast {
			// Sleep only when ahead by more than a millisecond, so that
			// high rates are paced in batches rather than per event.
			if d := time.Until(wallStart.Add(at.Sub(o.Start))); d > time.Millisecond && !wait.Sleep(ctx, d) {
				return nil
			}
		}
		if n&255 == 0 && ctx.Err() != nil {
			return nil
		}
		emit(at, line)
	}
	return nil
}

// SyntheticTrace returns the first n event lines of a fast synthetic
// workload (without timestamps), for benchmarks and tests. The same seed
// gives the same lines.
func SyntheticTrace(n int, seed uint64) [][]byte {
	g := newGenerator(SyntheticOptions{Seed: seed, Rate: 1000, Fast: true,
		Start: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	out := make([][]byte, n)
	for i := range out {
		_, line := g.next()
		out[i] = append([]byte(nil), line...)
	}
	return out
}

// What a generator can do at a random moment, with relative weights.
type action uint8

const (
	actOpenClient action = iota
	actOpenRelay
	actLaunch
	actConnBW
	actStreamEnded
	actCircuitClose
	actConnectionClose
	actHSDirStore
	actHSDirFetch
	actOwnCirc
	actOwnStream
	actStatus
	numActions
)

var actionWeights = [numActions]float64{
	actOpenClient:      8,
	actOpenRelay:       2,
	actLaunch:          2,
	actConnBW:          25,
	actStreamEnded:     30,
	actCircuitClose:    15,
	actConnectionClose: 4,
	actHSDirStore:      1,
	actHSDirFetch:      2,
	actOwnCirc:         1,
	actOwnStream:       0.5,
	actStatus:          0.05,
}

// eventsPer is how many events an action makes (an opened connection
// also connects, or fails, and closes).
var eventsPer = [numActions]float64{actOpenClient: 3, actOpenRelay: 3, actLaunch: 3}

// scheduled is a future event of an open connection.
type scheduled struct {
	at     time.Time
	id     uint64
	closed bool // CLOSED (or FAILED) rather than CONNECTED
}

type schedule []scheduled

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].at.Before(s[j].at) }
func (s schedule) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)        { *s = append(*s, x.(scheduled)) }
func (s *schedule) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

// orConn is an open OR connection of the simulated relay.
type orConn struct {
	target   []byte // as ORCONN names it once connected
	early    []byte // as ORCONN names it before (an inbound relay's address)
	inbound  bool
	fails    bool
	ncircs   uint64
	openedAt int // index in generator.open
}

// maxOpenConns bounds the simulated relay's open OR connections.
const maxOpenConns = 20000

type generator struct {
	rng      *rand.Rand
	now      time.Time
	arrival  time.Time // next random action
	nextBW   time.Time
	nextScr  time.Time // next MetricsPort scrape
	meanGap  float64   // seconds between actions
	cumul    [numActions]float64
	sched    schedule
	conns    map[uint64]*orConn
	open     []uint64
	nextID   uint64
	chanID   uint64
	circID   uint64
	peers    [][]byte // "$FP~nick" of other relays
	pending  [][]byte // lines of a scrape still to hand out
	pendBufs [][]byte
	buf      []byte
	labels   []byte
}

func newGenerator(o SyntheticOptions) *generator {
	seed := o.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	h := fnv.New64a()
	h.Write([]byte(o.Fingerprint))
	h.Write([]byte(o.Nickname))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	rate := o.Rate
	if rate <= 0 {
		rate = DefaultSyntheticRate
	}
	g := &generator{
		rng:   rng,
		now:   o.Start,
		conns: map[uint64]*orConn{},
		// Tor numbers connections from a global counter shared with
		// other kinds of connection, so IDs are sparse.
		nextID: 100 + rng.Uint64N(900),
		chanID: 1 + rng.Uint64N(50),
		circID: 1 + rng.Uint64N(1000),
	}
	var total, events float64
	for a := range numActions {
		total += actionWeights[a]
		g.cumul[a] = total
		events += actionWeights[a] * max(1, eventsPer[a])
	}
	// BW (1/s) and the scrape lines (~1.6/s) come on their own.
	perAction := events / total
	g.meanGap = perAction / max(rate-2.6, rate/4)
	g.arrival = g.now.Add(g.expGap())
	g.nextBW = g.now.Truncate(time.Second).Add(time.Second)
	g.nextScr = g.now.Add(10 * time.Second)
	for i := range 300 {
		var fp [20]byte
		for j := range fp {
			fp[j] = byte(rng.Uint32())
		}
		name := []byte{'$'}
		name = appendHex(name, fp[:])
		name = append(name, '~')
		name = append(name, nicknames[rng.IntN(len(nicknames))]...)
		name = strconv.AppendInt(name, int64(i), 10)
		g.peers = append(g.peers, name)
	}
	return g
}

var nicknames = []string{"relay", "torexit", "freedom", "noisebridge", "artikel", "quetzalcoatl", "nothingtohide", "privacyrepublic"}

func (g *generator) expGap() time.Duration {
	return time.Duration(g.rng.ExpFloat64() * g.meanGap * float64(time.Second))
}

// next returns the next event and its simulated time. The line is valid
// until the following call.
func (g *generator) next() (time.Time, []byte) {
	if len(g.pending) > 0 {
		l := g.pending[0]
		g.pending = g.pending[1:]
		return g.now, l
	}
	t := g.arrival
	if len(g.sched) > 0 && g.sched[0].at.Before(t) {
		t = g.sched[0].at
	}
	switch {
	case !g.nextBW.After(t):
		g.now = g.nextBW
		g.nextBW = g.nextBW.Add(time.Second)
		return g.now, g.bw()
	case !g.nextScr.After(t):
		g.now = g.nextScr
		g.nextScr = g.nextScr.Add(10 * time.Second)
		g.scrape()
		return g.next()
	case len(g.sched) > 0 && g.sched[0].at.Equal(t):
		s := heap.Pop(&g.sched).(scheduled)
		g.now = t
		return t, g.connEvent(s)
	}
	g.now = t
	g.arrival = t.Add(g.expGap())
	r := g.rng.Float64() * g.cumul[numActions-1]
	a := action(0)
	for g.cumul[a] <= r {
		a++
	}
	return t, g.act(a)
}

func (g *generator) act(a action) []byte {
	switch a {
	case actOpenClient, actOpenRelay, actLaunch:
		if len(g.open) < maxOpenConns {
			return g.openConn(a)
		}
		return g.connBW()
	case actConnBW:
		return g.connBW()
	case actStreamEnded:
		return g.streamEnded()
	case actCircuitClose:
		return g.circuitClose()
	case actConnectionClose:
		return g.connectionClose()
	case actHSDirStore:
		return g.hsdirStore()
	case actHSDirFetch:
		return g.hsdirFetch()
	case actOwnCirc:
		return g.ownCirc()
	case actOwnStream:
		return g.ownStream()
	}
	return append(g.buf[:0], "650 STATUS_SERVER NOTICE CHECKING_REACHABILITY ORADDRESS=203.0.113.5:9001"...)
}

func (g *generator) bw() []byte {
	read := uint64(4e6 * (0.5 + g.rng.Float64()))
	written := read - read/50 + uint64(g.rng.IntN(4096))
	b := append(g.buf[:0], "650 BW "...)
	b = strconv.AppendUint(b, read, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, written, 10)
	g.buf = b
	return b
}

func (g *generator) openConn(a action) []byte {
	id := g.nextID
	g.nextID += 1 + g.rng.Uint64N(3)
	c := &orConn{inbound: a != actLaunch, fails: g.rng.IntN(20) == 0}
	switch a {
	case actOpenClient:
		c.target = g.clientAddr(nil)
		c.early = c.target
	case actOpenRelay:
		c.early = g.clientAddr(nil)
		c.target = g.peers[g.rng.IntN(len(g.peers))]
	default:
		c.target = g.peers[g.rng.IntN(len(g.peers))]
		c.early = c.target
	}
	// Lifetimes are lognormal: most connections last minutes, some days.
	life := time.Duration(math.Exp(math.Log(90)+1.6*g.rng.NormFloat64()) * float64(time.Second))
	c.ncircs = uint64(math.Exp(math.Log(3) + 1.3*g.rng.NormFloat64()))
	if c.fails {
		c.ncircs = 0
		life = time.Duration(g.rng.IntN(3000)+50) * time.Millisecond
	}
	g.conns[id] = c
	c.openedAt = len(g.open)
	g.open = append(g.open, id)
	if !c.fails {
		heap.Push(&g.sched, scheduled{at: g.now.Add(time.Duration(20+g.rng.IntN(400)) * time.Millisecond), id: id})
	}
	heap.Push(&g.sched, scheduled{at: g.now.Add(life + 500*time.Millisecond), id: id, closed: true})
	status := " NEW ID="
	if a == actLaunch {
		status = " LAUNCHED ID="
	}
	b := append(g.buf[:0], "650 ORCONN "...)
	b = append(b, c.early...)
	b = append(b, status...)
	b = strconv.AppendUint(b, id, 10)
	g.buf = b
	return b
}

var closeReasons = []string{"DONE", "DONE", "DONE", "IOERROR", "CONNECTRESET", "TIMEOUT", "MISC"}

func (g *generator) connEvent(s scheduled) []byte {
	c := g.conns[s.id]
	b := append(g.buf[:0], "650 ORCONN "...)
	b = append(b, c.target...)
	switch {
	case !s.closed:
		b = append(b, " CONNECTED"...)
	case c.fails:
		b = append(b, " FAILED REASON=CONNECTREFUSED NCIRCS=0"...)
	default:
		b = append(b, " CLOSED REASON="...)
		b = append(b, closeReasons[g.rng.IntN(len(closeReasons))]...)
		b = append(b, " NCIRCS="...)
		b = strconv.AppendUint(b, c.ncircs, 10)
	}
	b = append(b, " ID="...)
	b = strconv.AppendUint(b, s.id, 10)
	if s.closed {
		last := g.open[len(g.open)-1]
		g.open[c.openedAt] = last
		g.conns[last].openedAt = c.openedAt
		g.open = g.open[:len(g.open)-1]
		delete(g.conns, s.id)
	}
	g.buf = b
	return b
}

func (g *generator) connBW() []byte {
	b := append(g.buf[:0], "650 CONN_BW ID="...)
	var typ string
	var read, written uint64
	switch r := g.rng.IntN(10); {
	case r < 5 && len(g.open) > 0:
		b = strconv.AppendUint(b, g.open[g.rng.IntN(len(g.open))], 10)
		typ = "OR"
		read = uint64(math.Exp(math.Log(20e3) + 1.5*g.rng.NormFloat64()))
		written = read + uint64(g.rng.IntN(2048))
	case r < 9:
		b = strconv.AppendUint(b, g.nextID+uint64(g.rng.IntN(5000)), 10)
		typ = "EXIT"
		read = uint64(math.Exp(math.Log(8e3) + 2*g.rng.NormFloat64()))
		written = read/8 + uint64(g.rng.IntN(1500))
	default:
		b = strconv.AppendUint(b, g.nextID+uint64(g.rng.IntN(5000)), 10)
		typ = "DIR"
		read = uint64(200 + g.rng.IntN(800))
		written = uint64(math.Exp(math.Log(30e3) + g.rng.NormFloat64()))
	}
	b = append(b, " TYPE="...)
	b = append(b, typ...)
	b = append(b, " READ="...)
	b = strconv.AppendUint(b, read, 10)
	b = append(b, " WRITTEN="...)
	b = strconv.AppendUint(b, written, 10)
	g.buf = b
	return b
}

// Remote ports of exit streams, with weights: mostly web.
var streamPorts = []struct {
	port   uint16
	weight int
	host   string
}{
	{443, 620, "www.example.com"}, {80, 180, "example.org"}, {22, 8, "ssh.example.net"},
	{6697, 4, "irc.example.net"}, {5222, 3, "xmpp.example.org"}, {6881, 20, ""},
	{51413, 10, ""}, {8080, 40, "api.example.com"}, {853, 25, "dns.example.net"},
	{993, 30, "mail.example.org"}, {9999, 60, ""},
}

func (g *generator) streamPort() (uint16, string) {
	total := 0
	for _, p := range streamPorts {
		total += p.weight
	}
	r := g.rng.IntN(total)
	for _, p := range streamPorts {
		if r < p.weight {
			return p.port, p.host
		}
		r -= p.weight
	}
	return 443, "www.example.com"
}

// streamBytes draws a stream's bytes from the remote and to it: lognormal
// for web and interactive traffic, Pareto for file sharing; some streams
// carry nothing (failed connects).
func (g *generator) streamBytes(port uint16) (read, written uint64) {
	if g.rng.IntN(25) == 0 {
		return 0, 0
	}
	var total float64
	switch stats.PortClass(port) {
	case stats.PortP2P:
		total = 100e3 / math.Pow(1-g.rng.Float64(), 1/1.2)
	case stats.PortInteractive:
		total = math.Exp(math.Log(12e3) + 1.5*g.rng.NormFloat64())
	default:
		total = math.Exp(math.Log(25e3) + 2*g.rng.NormFloat64())
	}
	total = min(total, 4e9)
	read = uint64(total * (0.85 + 0.1*g.rng.Float64()))
	return read, uint64(total) - read + 300
}

func (g *generator) streamEnded() []byte {
	port, host := g.streamPort()
	read, written := g.streamBytes(port)
	ip := g.clientIP(nil)
	if host == "" {
		host = string(ip)
	}
	dur := time.Duration(math.Exp(math.Log(5)+1.5*g.rng.NormFloat64()) * float64(time.Second))
	g.circID += uint64(g.rng.IntN(3))
	b := append(g.buf[:0], "650 PRIVCOUNT_STREAM_ENDED "...)
	b = strconv.AppendUint(b, g.chanID+uint64(g.rng.IntN(200)), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, g.circID, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(1+g.rng.IntN(30)), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(port), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, read, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, written, 10)
	b = append(b, ' ')
	b = appendUnixTime(b, g.now.Add(-dur))
	b = append(b, ' ')
	b = appendUnixTime(b, g.now)
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, ' ')
	b = append(b, ip...)
	g.buf = b
	return b
}

func (g *generator) circuitClose() []byte {
	g.circID++
	b := append(g.buf[:0], "650 PRIVCOUNT_CIRCUIT_CLOSE EventTimestamp="...)
	b = appendUnixTime(b, g.now)
	b = append(b, " CreatedTimestamp="...)
	b = appendUnixTime(b, g.now.Add(-time.Duration(g.rng.IntN(600_000))*time.Millisecond))
	b = append(b, " PreviousChannelId="...)
	b = strconv.AppendUint(b, g.chanID+uint64(g.rng.IntN(200)), 10)
	b = append(b, " PreviousCircuitId="...)
	b = strconv.AppendUint(b, g.circID, 10)
	cells := uint64(math.Exp(math.Log(40) + 2*g.rng.NormFloat64()))
	switch r := g.rng.IntN(20); {
	case r < 8:
		b = append(b, " IsEndFlag=1 IsExitFlag=1 InboundExitByteCount="...)
		b = strconv.AppendUint(b, cells*498, 10)
	case r < 15:
		b = append(b, " NextChannelId="...)
		b = strconv.AppendUint(b, g.chanID+uint64(g.rng.IntN(200)), 10)
		b = append(b, " IsMidFlag=1"...)
	case r < 19:
		b = append(b, " NextChannelId="...)
		b = strconv.AppendUint(b, g.chanID+uint64(g.rng.IntN(200)), 10)
		b = append(b, " IsEntryFlag=1"...)
	default:
		b = append(b, " IsOriginFlag=1 IsEntryFlag=1"...)
	}
	b = append(b, " InboundSentCellCount="...)
	b = strconv.AppendUint(b, cells, 10)
	b = append(b, " OutboundReceivedCellCount="...)
	b = strconv.AppendUint(b, cells/10+1, 10)
	g.buf = b
	return b
}

func (g *generator) connectionClose() []byte {
	g.chanID++
	client := g.rng.IntN(4) != 0
	b := append(g.buf[:0], "650 PRIVCOUNT_CONNECTION_CLOSE EventTimestamp="...)
	b = appendUnixTime(b, g.now)
	b = append(b, " CreatedTimestamp="...)
	life := time.Duration(math.Exp(math.Log(300)+2*g.rng.NormFloat64()) * float64(time.Second))
	b = appendUnixTime(b, g.now.Add(-life))
	b = append(b, " ChannelId="...)
	b = strconv.AppendUint(b, g.chanID, 10)
	addr := g.clientIP(nil)
	if client {
		b = append(b, " RemoteIsClientFlag=1 RemoteIPAddress="...)
		b = append(b, addr...)
		b = append(b, " RemoteIPAddressConnectionCount="...)
		n := 1
		if g.rng.IntN(5) == 0 {
			n += int(math.Exp(1.5 * math.Abs(g.rng.NormFloat64())))
		}
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, " PeerIPAddressConsensusRelayCount=0"...)
	} else {
		b = append(b, " RemoteIsClientFlag=0 RemoteIPAddress="...)
		b = append(b, addr...)
		b = append(b, " RemoteIPAddressConnectionCount=1 PeerIPAddressConsensusRelayCount=1 PeerIPAddress="...)
		b = append(b, addr...)
	}
	g.buf = b
	return b
}

var cacheReasons = []string{"new", "new", "updated", "updated", "updated", "obsolete", "duplicate"}

func (g *generator) hsdirStore() []byte {
	b := append(g.buf[:0], "650 PRIVCOUNT_HSDIR_CACHE_STORE HiddenServiceVersionNumber="...)
	reason := cacheReasons[g.rng.IntN(len(cacheReasons))]
	added := reason == "new" || reason == "updated"
	if g.rng.IntN(20) == 0 {
		b = append(b, "2 EventTimestamp="...)
		b = appendUnixTime(b, g.now)
		b = append(b, " CacheReasonString="...)
		b = append(b, reason...)
		b = append(b, " WasAddedToCacheFlag="...)
		b = appendFlag(b, added)
		b = append(b, " OnionAddress="...)
		b = g.appendBase32(b, 16)
		b = append(b, " DescriptorIdBase32String="...)
		b = g.appendBase32(b, 32)
	} else {
		b = append(b, "3 EventTimestamp="...)
		b = appendUnixTime(b, g.now)
		b = append(b, " CacheReasonString="...)
		b = append(b, reason...)
		b = append(b, " WasAddedToCacheFlag="...)
		b = appendFlag(b, added)
		b = append(b, " HasExistingCacheEntryFlag="...)
		b = appendFlag(b, reason != "new")
		b = append(b, " BlindedEd25519PublicKeyBase64String="...)
		b = g.appendBase32(b, 43)
		b = append(b, " EncodedDescriptorByteCount="...)
		b = strconv.AppendInt(b, int64(9000+g.rng.IntN(12000)), 10)
		b = append(b, " IntroPointCount="...)
		b = strconv.AppendInt(b, int64(3+g.rng.IntN(8)), 10)
		b = append(b, " RevisionNumber="...)
		b = strconv.AppendInt(b, g.now.Unix()-int64(g.rng.IntN(7200)), 10)
	}
	g.buf = b
	return b
}

func (g *generator) hsdirFetch() []byte {
	b := append(g.buf[:0], "650 PRIVCOUNT_HSDIR_CACHE_FETCH HiddenServiceVersionNumber=3 EventTimestamp="...)
	b = appendUnixTime(b, g.now)
	b = append(b, " HasExistingCacheEntryFlag="...)
	b = appendFlag(b, g.rng.IntN(7) != 0)
	b = append(b, " BlindedEd25519PublicKeyBase64String="...)
	b = g.appendBase32(b, 43)
	g.buf = b
	return b
}

var circStatuses = []string{"LAUNCHED", "EXTENDED", "BUILT", "CLOSED"}

func (g *generator) ownCirc() []byte {
	g.circID++
	b := append(g.buf[:0], "650 CIRC "...)
	b = strconv.AppendUint(b, g.circID%65536, 10)
	b = append(b, ' ')
	b = append(b, circStatuses[g.rng.IntN(len(circStatuses))]...)
	b = append(b, ' ')
	for i := range 3 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, g.peers[g.rng.IntN(len(g.peers))]...)
	}
	b = append(b, " BUILD_FLAGS=IS_INTERNAL,NEED_CAPACITY PURPOSE=TESTING TIME_CREATED="...)
	b = g.now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000")
	g.buf = b
	return b
}

func (g *generator) ownStream() []byte {
	b := append(g.buf[:0], "650 STREAM "...)
	b = strconv.AppendInt(b, int64(1+g.rng.IntN(9999)), 10)
	b = append(b, " SUCCEEDED "...)
	b = strconv.AppendUint(b, g.circID%65536, 10)
	b = append(b, " 198.51.100.1:80 PURPOSE=DIR_FETCH"...)
	g.buf = b
	return b
}

// scrape queues one MetricsPort scrape's increases.
func (g *generator) scrape() {
	g.pending = g.pending[:0]
	add := func(name string, mean float64, labels ...string) {
		inc := uint64(g.rng.ExpFloat64() * mean)
		if inc == 0 {
			return
		}
		g.labels = g.labels[:0]
		for i := 0; i+1 < len(labels); i += 2 {
			g.labels = stats.AppendMetricLabel(g.labels, labels[i], labels[i+1])
		}
		i := len(g.pending)
		if i == len(g.pendBufs) {
			g.pendBufs = append(g.pendBufs, nil)
		}
		g.pendBufs[i] = stats.MetricLine(g.pendBufs[i][:0], name, string(g.labels), inc)
		g.pending = append(g.pending, g.pendBufs[i])
	}
	add("tor_relay_streams_total", 400, "type", "BEGIN")
	add("tor_relay_streams_total", 60, "type", "BEGIN_DIR")
	add("tor_relay_streams_total", 20, "type", "RESOLVE")
	add("tor_relay_intro1_total", 8, "action", "success")
	add("tor_relay_intro1_total", 0.5, "action", "circuit_dead")
	add("tor_relay_rend1_total", 6, "action", "success")
	add("tor_relay_rend1_total", 0.3, "action", "unknown_cookie")
	add("tor_relay_est_intro_total", 1, "action", "success")
	add("tor_relay_est_rend_total", 7, "action", "success")
	add("tor_relay_traffic_bytes", 4e7, "direction", "read")
	add("tor_relay_traffic_bytes", 4e7, "direction", "written")
	add("tor_relay_connections_total", 30, "direction", "received", "family", "ipv4", "state", "created", "type", "OR")
	add("tor_relay_connections_total", 5, "direction", "received", "family", "ipv6", "state", "created", "type", "OR")
	add("tor_relay_connections_total", 8, "direction", "initiated", "family", "ipv4", "state", "created", "type", "OR")
	add("tor_relay_connections_total", 0.5, "direction", "received", "family", "ipv4", "state", "rejected", "type", "OR")
	add("tor_relay_connections_total", 60, "direction", "initiated", "family", "ipv4", "state", "created", "type", "Exit")
}

// clientIP appends a made-up IPv4 address from the documentation ranges.
func (g *generator) clientIP(dst []byte) []byte {
	nets := [...]string{"192.0.2.", "198.51.100.", "203.0.113."}
	dst = append(dst, nets[g.rng.IntN(len(nets))]...)
	return strconv.AppendInt(dst, int64(1+g.rng.IntN(254)), 10)
}

// clientAddr appends a made-up address:port.
func (g *generator) clientAddr(dst []byte) []byte {
	dst = append(g.clientIP(dst), ':')
	return strconv.AppendInt(dst, int64(1024+g.rng.IntN(64000)), 10)
}

func (g *generator) appendBase32(dst []byte, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for range n {
		dst = append(dst, alphabet[g.rng.IntN(len(alphabet))])
	}
	return dst
}

func appendFlag(dst []byte, f bool) []byte {
	if f {
		return append(dst, '1')
	}
	return append(dst, '0')
}

func appendHex(dst, b []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

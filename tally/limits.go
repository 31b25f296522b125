package tally

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privstats/privstats/transport"
)

// Defaults of the per-peer and global caps on posts in flight
// (Options.MaxInFlightPerPeer, Options.MaxInFlight). Posted bodies are what
// costs memory: each up to MaxBodyBytes read plus about as much decoded,
// so by default at most 64 × 2 × 8 MiB. Long polls and bundle fetches are
// capped per peer only: they hold a goroutine and little else, and only
// listed nodes get past the handshake.
const (
	DefaultMaxInFlightPerPeer = 4
	DefaultMaxInFlight        = 64
)

// DefaultMaxBodyMemory is the default of Options.MaxBodyMemory. The caps
// on posts in flight alone let 64 bodies of up to 8 MiB be read at once,
// each costing up to six times its size in JSON: about 3 GB
// (docs/robustness.md). 128 MiB holds 16 of the largest binary bodies or 2
// of the largest JSON ones, and keeps a flood within 256 MiB of the
// server's memory.
const DefaultMaxBodyMemory = 64 << 20

// What reading a body costs in memory, per byte of body, as measured
// (docs/robustness.md): a binary body is allocated once, as its envelopes
// declare; a JSON body is buffered, tokenized for its keys into strings,
// buffered again by the decoder and its base64 decoded, about 6 times.
const (
	binaryExpansion = 1
	jsonExpansion   = 6
)

// bodyBudget caps the memory the bodies being read and held may cost at
// once, across all peers: a post is charged its declared size (or the
// body limit, if it declares none) times its format's expansion before
// its body is read, and refused (server_busy, 503) unread if the charge
// does not fit. The per-request caps bound how many bodies are in flight;
// this bounds what they weigh.
type bodyBudget struct {
	max int64

	mu   sync.Mutex
	used int64
}

func (b *bodyBudget) reserve(n int64) *rejection {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return refuse(reasonServerBusy, "the server is reading bodies of %d MiB, at most %d MiB at once; retry later", b.used>>20, b.max>>20)
	}
	b.used += n
	return nil
}

func (b *bodyBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// bodyCost is what reading req's body is charged: its declared size, or
// limit if it declares none or more (a body over the limit is refused
// unread, but charging it keeps the arithmetic simple), times expansion.
func bodyCost(req *http.Request, limit, expansion int64) int64 {
	n := req.ContentLength
	if n < 0 || n > limit {
		n = limit
	}
	return n * expansion
}

// inFlight caps the requests being served at once, per peer and in all.
// A request over the peer's cap is refused (too_many_requests, 429), one
// over the global cap (server_busy, 503), before its body is read, so a
// peer that floods the server costs it a handshake and a header per
// request, not a body.
type inFlight struct {
	perPeer, global int

	mu     sync.Mutex
	byPeer map[string]int
	total  int
}

func newInFlight(perPeer, global int) *inFlight {
	return &inFlight{perPeer: perPeer, global: global, byPeer: map[string]int{}}
}

func (f *inFlight) acquire(peer string) *rejection {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byPeer[peer] >= f.perPeer {
		return refuse(reasonTooManyRequests, "%d requests from this node are already being served, at most %d at once", f.byPeer[peer], f.perPeer)
	}
	if f.total >= f.global {
		return refuse(reasonServerBusy, "the server is serving %d requests, at most %d at once; retry later", f.total, f.global)
	}
	f.byPeer[peer]++
	f.total++
	return nil
}

func (f *inFlight) release(peer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total--
	if f.byPeer[peer]--; f.byPeer[peer] <= 0 {
		delete(f.byPeer, peer)
	}
}

// of is the number of requests of peer being served.
func (f *inFlight) of(peer string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byPeer[peer]
}

// limit serves a request only within the caps: collectors' and observers'
// posts under s.posts, keepers' under s.keeperPosts (per keeper only), the
// rest (long polls, bundle fetches) under s.polls.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		peer := transport.PeerFingerprint(req)
		f := s.polls
		switch {
		case req.Method == http.MethodPost && s.allowed[peer] == "keeper":
			// Keepers' acks and commits are the round's critical path
			// and keepers are few (each still capped): a crowd of
			// collectors posting at once must not crowd them out.
			f = s.keeperPosts
		case req.Method == http.MethodPost:
			f = s.posts
		}
		if rej := f.acquire(peer); rej != nil {
			// The body is not read; closing the connection spares the
			// server reading it to reuse the connection.
			w.Header().Set("Connection", "close")
			s.respond(w, req, 0, rej)
			return
		}
		defer f.release(peer)
		next.ServeHTTP(w, req)
	})
}

// Refusal logging is rate-limited per source (a peer's fingerprint, or the
// address of a refused handshake): a flood of bad requests must not become
// a flood of log lines. So is the logging of the server's own failures,
// per operation: a full disk fails every post (journal_write), and each
// failure is counted in /metrics, but logged only a few times an interval.
const (
	refusalLogBurst    = 3
	refusalLogInterval = 10 * time.Second
)

// rateLog writes lines at its level, at most burst lines per source per
// interval; the rest are counted by kind and summed up in one line when
// the interval is over (on the source's next line, or flush).
type rateLog struct {
	log      *slog.Logger
	level    slog.Level
	what     string // what is summed up, e.g. "refusals"
	attr     string // the attribute naming the source in the summary
	burst    int
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	sources map[string]*logWindow
}

type logWindow struct {
	start      time.Time
	logged     int
	suppressed map[string]int
}

// newRefusalLog logs refusals at WARN, per peer (or address).
func newRefusalLog(log *slog.Logger) *rateLog {
	return newRateLog(log, slog.LevelWarn, "refusals", "peer")
}

// newInternalLog logs the server's failures at ERROR, per operation.
func newInternalLog(log *slog.Logger) *rateLog {
	return newRateLog(log, slog.LevelError, "failures", "op")
}

func newRateLog(log *slog.Logger, level slog.Level, what, attr string) *rateLog {
	return &rateLog{log: log, level: level, what: what, attr: attr, burst: refusalLogBurst, interval: refusalLogInterval,
		now: time.Now, sources: map[string]*logWindow{}}
}

// warn logs msg with attrs for a line of source of the given kind (a
// refusal's reason, a failure's operation), unless source used up its
// lines in this interval.
func (l *rateLog) warn(source, kind, msg string, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.sources[source]
	if w != nil && now.Sub(w.start) >= l.interval {
		l.summarize(source, w)
		w = nil
	}
	if w == nil {
		w = &logWindow{start: now, suppressed: map[string]int{}}
		l.sources[source] = w
	}
	if w.logged < l.burst {
		w.logged++
		l.log.Log(context.Background(), l.level, msg, attrs...)
		return
	}
	w.suppressed[kind]++
}

// flush sums up and forgets every interval that is over, so a source that
// stopped is summed up too and the map holds only recent sources.
func (l *rateLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for src, w := range l.sources {
		if now.Sub(w.start) >= l.interval {
			l.summarize(src, w)
			delete(l.sources, src)
		}
	}
}

// summarize logs the lines of one interval that were not logged.
func (l *rateLog) summarize(source string, w *logWindow) {
	n := 0
	var parts []string
	for _, kind := range slices.Sorted(maps.Keys(w.suppressed)) {
		n += w.suppressed[kind]
		parts = append(parts, fmt.Sprintf("%s %d", kind, w.suppressed[kind]))
	}
	if n == 0 {
		return
	}
	l.log.Log(context.Background(), l.level, fmt.Sprintf("suppressed %d %s from %s since %s: %s", n, l.what, source, w.start.Format(time.TimeOnly), strings.Join(parts, ", ")),
		l.attr, source, "suppressed", n)
}

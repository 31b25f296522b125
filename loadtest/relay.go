package loadtest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/source"
)

// Statistic is the one statistic a load-test round measures: a numeric
// histogram whose bins are the counters. A stream of b bytes (b ≥ 1) falls
// in bin b−1 of bins with lower edges 1, 2, …, n, so the load generator puts
// a count in any counter by sending that many streams of the right size.
const Statistic = "exit_stream_bytes_web"

// webPort is an exit port of the web port class, which Statistic counts.
const webPort = 443

// Bins are the lower edges of Statistic's n bins, as tally.yaml gives them.
func Bins(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i + 1)
	}
	return out
}

// Counts are the counts the load generator gives collector i in round r:
// 0, 1 or 2 per counter, drawn from a generator seeded by both, so the load
// test knows every collector's true counts without keeping them.
func Counts(r uint64, i, counters int) []uint64 {
	rng := rand.New(rand.NewPCG(r, uint64(i)))
	out := make([]uint64, counters)
	for k := range out {
		out[k] = uint64(rng.IntN(3))
	}
	return out
}

// appendStream appends a PRIVCOUNT_STREAM_ENDED line for one web stream of
// b bytes that ended at Unix time ts (as tor writes it).
func appendStream(dst []byte, b uint64, ts string) []byte {
	dst = append(dst, "650 PRIVCOUNT_STREAM_ENDED 1 1 1 "...)
	dst = strconv.AppendUint(dst, webPort, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, b, 10)
	dst = append(dst, " 0 "...)
	dst = append(dst, ts...)
	dst = append(dst, ' ')
	dst = append(dst, ts...)
	return append(dst, " example.com 192.0.2.1"...)
}

// relay is the event source of one simulated collector. It must emit its
// counts into a window only once the collector counts that window, and the
// collector's report must hold all of them; the collector tells its
// sources of a window exactly when it has set up for the round (adding it
// to source.Windows), and waits for its sampling sources' reads at the
// window's end before it reports. So the relay is a sampling source
// (source.Sampled) that reads nothing: its read at a window's start is the
// signal that the collector counts the window, and starts the streams
// (stamped with the window's start, on a goroutine of their own so the
// edge read stays on time); its read at the window's end waits until they
// are all sent. A collector that sets up only after the window opened
// misses the start read, is sent nothing, and its true counts are zero.
type relay struct {
	index    int
	counters int

	mu     sync.Mutex
	emit   func(time.Time, []byte)
	ctx    context.Context
	rounds map[int64]*relayRound // by window start (UnixNano)
}

// relayRound is one round as the relay sees it.
type relayRound struct {
	round      uint64
	start, end time.Time
	triggered  bool
	done       chan struct{}
	// sent are the counts sent into the window, set once all are sent.
	sent []uint64
}

func newRelay(index, counters int) *relay {
	return &relay{index: index, counters: counters, rounds: map[int64]*relayRound{}}
}

// record is the collector's Record hook: it is told of every round the
// collector takes part in, before it sets up.
func (r *relay) record(cfg *round.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.rounds[cfg.Start.UnixNano()]; !ok {
		r.rounds[cfg.Start.UnixNano()] = &relayRound{round: cfg.Round, start: cfg.Start, end: cfg.End, done: make(chan struct{})}
	}
	return nil
}

// Run implements source.Source.
func (r *relay) Run(ctx context.Context, w *source.Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	r.mu.Lock()
	r.emit, r.ctx = emit, ctx
	r.mu.Unlock()
	// Reads between edges would only cost time: read at the edges alone.
	return source.Sampled("loadgen relay", r, 24*time.Hour).Run(ctx, w, emit, gap)
}

// Sample implements source.Sampler; see relay.
func (r *relay) Sample(context.Context) (map[source.Series]uint64, error) {
	now := time.Now()
	r.mu.Lock()
	var wait []*relayRound
	for _, rr := range r.rounds {
		switch {
		case !rr.triggered && !now.Before(rr.start) && now.Before(rr.end):
			rr.triggered = true
			go r.send(rr)
		case rr.triggered && !now.Before(rr.end):
			wait = append(wait, rr)
		}
	}
	ctx := r.ctx
	r.mu.Unlock()
	// The read at the end may be late (a failed edge is only a gap in
	// the report); the counts must all be in before the collector reports.
	for _, rr := range wait {
		select {
		case <-rr.done:
		case <-ctx.Done():
		}
	}
	return nil, nil
}

// send emits the round's streams.
func (r *relay) send(rr *relayRound) {
	defer close(rr.done)
	counts := Counts(rr.round, r.index, r.counters)
	r.mu.Lock()
	emit := r.emit
	r.mu.Unlock()
	var line []byte
	ts := strconv.FormatInt(rr.start.Unix(), 10) + ".000000"
	for k, n := range counts {
		for range n {
			line = appendStream(line[:0], uint64(k+1), ts)
			emit(rr.start, line)
		}
	}
	r.mu.Lock()
	rr.sent = counts
	r.mu.Unlock()
}

// sent returns the counts sent into the round's window, or nil if none
// were (the collector did not count the window from its start).
func (r *relay) sentIn(roundNum uint64) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rr := range r.rounds {
		if rr.round == roundNum {
			return rr.sent
		}
	}
	return nil
}

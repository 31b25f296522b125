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

// relay is the event source of one simulated collector. Its streams must
// reach the collector while the collector counts the round (between its
// setup and its report), stamped inside the window, and the report must
// hold all of them. The collector's poll loop tells the relay both: it
// calls the Record hook while it sets up for a round, and the Health hook
// after every poll, before acting on the view. The first poll after
// Record is therefore after the setup finished, and before the report
// (which only follows a later view): the relay sends the round's streams
// then, on the poll loop's goroutine, stamped with the window's start. A
// collector whose setup failed has dropped the round and counts none of
// them; it is then not in S either.
type relay struct {
	index    int
	counters int

	mu     sync.Mutex
	emit   func(time.Time, []byte)
	rounds []*relayRound
}

// relayRound is one round as the relay sees it.
type relayRound struct {
	round uint64
	start time.Time
	// sent are the counts sent into the window, set once all are sent.
	sent []uint64
}

func newRelay(index, counters int) *relay {
	return &relay{index: index, counters: counters}
}

// record is the collector's Record hook: it is told of every round the
// collector takes part in, while it sets up.
func (r *relay) record(cfg *round.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rounds = append(r.rounds, &relayRound{round: cfg.Round, start: cfg.Start})
	return nil
}

// polled is called by the collector's Health hook after every poll.
func (r *relay) polled() {
	r.mu.Lock()
	emit := r.emit
	var todo []*relayRound
	for _, rr := range r.rounds {
		if rr.sent == nil {
			todo = append(todo, rr)
		}
	}
	r.mu.Unlock()
	if emit == nil {
		return
	}
	for _, rr := range todo {
		counts := r.send(rr, emit)
		r.mu.Lock()
		rr.sent = counts
		r.mu.Unlock()
	}
}

// Run implements source.Source: the relay sends from polled, not here.
func (r *relay) Run(ctx context.Context, _ *source.Windows, emit func(time.Time, []byte), _ func(start, end time.Time)) error {
	r.mu.Lock()
	r.emit = emit
	r.mu.Unlock()
	<-ctx.Done()
	return nil
}

// send emits the round's streams and returns the counts they make.
func (r *relay) send(rr *relayRound, emit func(time.Time, []byte)) []uint64 {
	counts := Counts(rr.round, r.index, r.counters)
	var line []byte
	ts := strconv.FormatInt(rr.start.Unix(), 10) + ".000000"
	for k, n := range counts {
		for range n {
			line = appendStream(line[:0], uint64(k+1), ts)
			emit(rr.start, line)
		}
	}
	return counts
}

// sentIn returns the counts sent into the round's window, or nil if none
// were.
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

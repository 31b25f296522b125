package demo

import (
	"context"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// tee is a collector's event source as the demo sees it: it forwards every
// event to the collector and also counts it in the clear, so the demo can
// show true totals beside the published ones. Only the demo can do this; it
// owns the synthetic relays. The collector itself never counts in the
// clear.
type tee struct {
	src source.Source

	mu sync.Mutex
	// rounds are the rounds announced so far, by number: each counts the
	// events inside its own window, as the collector does, so one
	// round's truth is still there when the next round has begun.
	rounds map[uint64]*clearRound
}

// clearRound counts one round in the clear.
type clearRound struct {
	cfg *round.Config
	// program counts into counts; a program tracks connections, so it
	// must not be shared with another count.
	program *stats.Program
	counts  *plain
}

// Run runs the wrapped source, counting each event before the collector
// gets it.
func (t *tee) Run(ctx context.Context, w *source.Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	return t.src.Run(ctx, w, func(at time.Time, line []byte) {
		t.count(at, line)
		emit(at, line)
	}, gap)
}

func (t *tee) count(at time.Time, line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.rounds {
		if !at.Before(r.cfg.Start) && at.Before(r.cfg.End) {
			r.program.CountAt(at, line, r.counts)
		}
	}
}

// round starts counting a newly announced round. The demo's collectors
// join during the round's setup, before its window opens, so counting the
// window's events from the announcement on counts what they count.
func (t *tee) round(cfg *round.Config) error {
	program, err := stats.Compile(cfg.Statistics)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rounds == nil {
		t.rounds = map[uint64]*clearRound{}
	}
	t.rounds[cfg.Round] = &clearRound{cfg: cfg, program: program, counts: &plain{v: make([]uint64, cfg.NumCounters())}}
	return nil
}

// totals returns a copy of the counts of round number n, or nil.
func (t *tee) totals(n uint64) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rounds[n]
	if !ok {
		return nil
	}
	return append([]uint64(nil), r.counts.v...)
}

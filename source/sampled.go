package source

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/privstats/privstats/stats"
)

// EdgeTolerance is the accuracy a sampling source keeps at a window's
// edges: a read that completes later than this after its edge is logged as
// a warning with its lateness. (Measured on loopback, edge reads complete
// a few milliseconds after their edge; see docs/sources.md.)
const EdgeTolerance = 100 * time.Millisecond

// MaxEdgeLateness is how late a read at a window edge may complete. A
// read that fails or completes later is a failed edge: the source reports
// a gap over the span it cannot place in time instead of shifting the
// window.
const MaxEdgeLateness = time.Second

// Series names one counter: a metric name and its labels as
// stats.AppendMetricLabel writes them, sorted by label name ("" for none).
type Series struct {
	Name, Labels string
}

// A Sampler reads counters that only grow (until the process keeping them
// restarts), such as tor's MetricsPort: something a collector must sample
// rather than receive as a stream of events. Sampled makes a Source of it.
type Sampler interface {
	// Sample reads every counter now. It must honour ctx's deadline: a
	// read at a window edge that misses it is a failed edge.
	Sample(ctx context.Context) (map[Series]uint64, error)
}

// Sampled returns the Source for a sampler: the one way to make a sampling
// source, so that every sampling source counts exactly a round's window.
// name (e.g. "tor MetricsPort http://…") is for logs.
//
// The source reads the sampler at every window edge it is told of
// (Windows), when the edge comes, and every interval in between, so that
// a restart between the edges is noticed. For every counter that grew
// between two reads it emits a stats.MetricEvent line with the increase,
// stamped just before the second read; a read at an edge counts as made at
// the edge. So the increases a collector counts in a window [start, end)
// sum to counter(end) − counter(start), plus the counts after any restart
// in between; an increase seen at the read at start belongs before it.
//
// Counters follow Prometheus semantics: a value lower than the previous
// one means the process restarted, so the new value is the increase and
// the span between the two reads is a gap (the increase before the
// restart is lost); a series that appears between reads started from
// zero. The first read, and the first after a failed one, only set the
// baseline.
//
// A read that fails is a gap from the last good read to the next one: the
// increase in between cannot be placed in time and is not counted. A read
// at an edge that fails, or completes more than MaxEdgeLateness after the
// edge, fails that edge: the gap is reported up to the edge at once, so
// the collector has it before it reports. An edge the source learns of
// only after it passed is a gap from the edge to the source's last read.
func Sampled(name string, s Sampler, interval time.Duration) Source {
	if interval <= 0 {
		interval = DefaultMetricsInterval
	}
	return &sampled{name: name, sampler: s, interval: interval}
}

type sampled struct {
	name     string
	sampler  Sampler
	interval time.Duration
	link     link
}

// Status says whether the latest read worked and when the last one that
// did completed; reads come every interval and at window edges, whatever
// the relay's traffic.
func (s *sampled) Status() Status { return s.link.status() }

// fixer is a Sampler that can tell the operator how to fix a failed read
// (the MetricsPort's: its port and policy in torrc).
type fixer interface {
	Fix(err error) string
}

// sampling is one Run of a sampled source.
type sampling struct {
	*sampled
	r    *edgeReader
	emit func(time.Time, []byte)
	gap  func(start, end time.Time)
	log  *slog.Logger

	prev map[Series]uint64
	// lastGood is when the counters were last read well: the edge for a
	// read at an edge, otherwise when the read completed.
	lastGood time.Time
	// blind: there is no baseline, so the next good read only sets one.
	// Events from blindSince on are lost; the span is reported as a gap
	// if failing (a read failed, or an edge passed inside it): the source
	// merely starting is not a gap.
	blind      bool
	blindSince time.Time
	failing    bool

	keys []Series
	line []byte
}

func (s *sampled) Run(ctx context.Context, w *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	now := time.Now()
	st := &sampling{sampled: s, r: w.join(now), emit: emit, gap: gap, log: slog.Default(), blind: true, blindSince: now}
	defer st.r.leave()
	// A read between edges is not started this close to an edge: it
	// could only hold up the edge's read.
	guard := min(s.interval/2, MaxEdgeLateness)
	next := now // the next read between edges
	for ctx.Err() == nil {
		st.reportMissed()
		edge, hasEdge, changed := st.r.next()
		now = time.Now()
		if hasEdge && !now.Before(edge) {
			st.readEdge(ctx, edge, now)
			next = time.Now().Add(s.interval)
			continue
		}
		wake := next
		if hasEdge && !next.Before(edge.Add(-guard)) {
			wake = edge
		}
		if !now.Before(wake) {
			var deadline time.Time
			if hasEdge {
				deadline = edge
			}
			st.readBetween(ctx, deadline)
			next = time.Now().Add(s.interval)
			continue
		}
		timer := time.NewTimer(wake.Sub(now))
		select {
		case <-timer.C:
		case <-changed:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	if st.blind && st.failing {
		gap(st.blindSince, time.Now())
	}
	return nil
}

// read samples with the given deadline (none if zero) and returns when the
// read completed.
func (st *sampling) read(ctx context.Context, deadline time.Time) (map[Series]uint64, time.Time, error) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	vals, err := st.sampler.Sample(ctx)
	return vals, time.Now(), err
}

// readBetween reads between edges; deadline is the next edge, if any.
func (st *sampling) readBetween(ctx context.Context, deadline time.Time) {
	vals, done, err := st.read(ctx, deadline)
	if ctx.Err() != nil {
		return
	}
	if err == nil && !deadline.IsZero() && done.After(deadline) {
		err = fmt.Errorf("the read completed %.1f ms after the next window edge", ms(done.Sub(deadline)))
	}
	if err != nil {
		st.fail(err)
		return
	}
	st.good(vals, done)
	st.r.readAt(done)
}

// readEdge reads at window edge e, which came at now.
func (st *sampling) readEdge(ctx context.Context, e, now time.Time) {
	var (
		vals map[Series]uint64
		done = now
		err  error
	)
	if now.Sub(e) > MaxEdgeLateness {
		err = fmt.Errorf("the source was busy until %.1f ms after the edge", ms(now.Sub(e)))
	} else {
		vals, done, err = st.read(ctx, e.Add(MaxEdgeLateness))
		if ctx.Err() != nil {
			return
		}
	}
	late := done.Sub(e)
	if err == nil && late > MaxEdgeLateness {
		err = fmt.Errorf("the read completed %.1f ms after the edge", ms(late))
	}
	if err != nil {
		st.fail(err)
		st.log.Warn(st.name+": no read at a window edge; reporting a gap over the span that cannot be placed in time",
			"edge", e, "late_ms", ms(late), "err", err)
		st.splitBlind(e)
		st.r.edgeDone(e, late, false)
		return
	}
	level := slog.LevelDebug
	if late > EdgeTolerance {
		level = slog.LevelWarn
	}
	st.log.Log(ctx, level, st.name+": read at a window edge", "edge", e, "late_ms", ms(late))
	st.good(vals, e)
	st.r.edgeDone(e, late, true)
}

// fail records a failed read: counting stops until a read works again.
func (st *sampling) fail(err error) {
	st.link.down()
	if !st.blind {
		st.blind, st.blindSince = true, st.lastGood
	}
	if !st.failing {
		args := []any{"err", err}
		if f, ok := st.sampler.(fixer); ok {
			if fix := f.Fix(err); fix != "" {
				args = append(args, "fix", fix)
			}
		}
		st.log.Warn(st.name+": read failed; counting stops until it works again", args...)
	}
	st.failing = true
}

// splitBlind reports the blind span up to edge e now, so that a window
// ending at e has its gap before the collector reports; the rest follows
// when reads work again.
func (st *sampling) splitBlind(e time.Time) {
	if st.blindSince.Before(e) {
		st.gap(st.blindSince, e)
		st.blindSince = e
	}
}

// good takes a successful read made at t (the edge, for a read at an edge).
func (st *sampling) good(vals map[Series]uint64, t time.Time) {
	st.link.up(time.Now())
	defer func() { st.prev, st.lastGood = vals, t }()
	if st.blind {
		if st.failing {
			st.log.Info(st.name + ": reads work again")
			st.gap(st.blindSince, t)
		}
		st.blind, st.failing = false, false
		return
	}
	st.keys = st.keys[:0]
	for k := range vals {
		st.keys = append(st.keys, k)
	}
	slices.SortFunc(st.keys, func(a, b Series) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Labels, b.Labels)) })
	// Stamped just before the read, so that what the read at a window's
	// start saw falls before the window and what the read at its end saw
	// falls inside.
	at := t.Add(-time.Nanosecond)
	reset := false
	for _, k := range st.keys {
		v := vals[k]
		inc := v
		if old, ok := st.prev[k]; ok {
			if v >= old {
				inc = v - old
			} else {
				reset = true
			}
		}
		if inc > 0 {
			st.line = stats.MetricLine(st.line[:0], k.Name, k.Labels, inc)
			st.emit(at, st.line)
		}
	}
	if reset {
		st.log.Warn(st.name + ": counters went back, so the process restarted; what it counted before the restart is lost and reported as a gap")
		st.gap(st.lastGood, t)
	}
}

// reportMissed reports a gap for each edge the source let pass unread.
func (st *sampling) reportMissed() {
	missed := st.r.missedEdges()
	for _, e := range missed {
		switch {
		case !st.lastGood.IsZero() && e.Before(st.lastGood):
			// Counted from the edge to the first read after it, which
			// is at most the last read: lost.
			st.gap(e, st.lastGood)
		case st.blind:
			if e.Before(st.blindSince) {
				st.blindSince = e
			}
			st.failing = true
			st.splitBlind(e)
		}
	}
	st.r.reported(len(missed))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

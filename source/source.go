// Package source is where a collector's events come from: a live tor
// control port, tor's MetricsPort, a recorded trace, or a synthetic
// workload. It is not where events are counted (package stats) or where a
// round's window is enforced (package collector).
//
// Every source hands out the same thing: tor event lines as tor's control
// port sends them, without line end ("650 BW 155 593"), each with the time
// it happened, ready for stats.Program.CountAt. A source that samples
// counters rather than receiving events (the MetricsPort) is made with
// Sampled, which reads at the edges of the windows the collector gives it
// (Windows) and turns counter increases into stats.MetricEvent lines, so
// one counting path serves every source. A source also reports gaps:
// periods in which it could not see events (a lost control connection, a
// failed read), so a collector can say when it was blind.
//
// Check connects to a tor once, as a live source would, to say which
// statistics it can feed (privstats collect --check), and DiagnoseControl
// turns a control-port failure into the fix an operator should make.
//
// Privacy: event lines describe the relay's traffic. Sources keep none of
// them; only Record writes them, to a file the operator chose.
package source

import (
	"context"
	"time"
)

// Source produces tor event lines.
type Source interface {
	// Run calls emit for every event, in order, from one goroutine at a
	// time; line is valid only during the call. It calls gap for each
	// period in which it could not see events, once the period is over.
	// w holds the windows of the rounds being counted: a sampling source
	// reads at their edges, a streaming one ignores them, and a source
	// that wraps others passes w on. Run returns nil when ctx ends or a
	// finite source (a trace) is exhausted, and an error when the source
	// fails for good.
	Run(ctx context.Context, w *Windows, emit func(at time.Time, line []byte), gap func(start, end time.Time)) error
}

// Speed is how a trace is replayed.
type Speed int

const (
	// Fast replays a trace as fast as it can be read, each event with its
	// recorded time (or the current time if it has none).
	Fast Speed = iota
	// Recorded replays a trace at the pace it was recorded, each event
	// with the current time.
	Recorded
)

func (s Speed) String() string {
	if s == Recorded {
		return "recorded"
	}
	return "fast"
}

// ParseSpeed parses "fast" or "recorded".
func ParseSpeed(s string) (Speed, bool) {
	switch s {
	case "fast":
		return Fast, true
	case "recorded":
		return Recorded, true
	}
	return Fast, false
}

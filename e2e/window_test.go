package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/torctl"
)

// relayTruth is a collector's event source as the test sees it: it keeps
// the relay's BW events and MetricsPort increases, with the times the
// collector got them, so the test can count the round's window in the
// clear and hold the two sources of the same bytes against each other.
// Only a test of its own network may do this; a collector never does.
type relayTruth struct {
	src source.Source

	mu     sync.Mutex
	events []timedLine
}

type timedLine struct {
	at   time.Time
	line []byte
}

func (r *relayTruth) Run(ctx context.Context, w *source.Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	return r.src.Run(ctx, w, func(at time.Time, line []byte) {
		if bytes.HasPrefix(line, []byte("650 BW ")) || bytes.HasPrefix(line, []byte("650 "+stats.MetricEvent+" ")) {
			r.mu.Lock()
			r.events = append(r.events, timedLine{at, bytes.Clone(line)})
			r.mu.Unlock()
		}
		emit(at, line)
	}, gap)
}

// windowTruth is what one relay's collector counted in a window, by
// source, and the BW seconds that straddle the window's edges.
type windowTruth struct {
	bwRead, bwWritten         uint64 // relay_bytes_read, relay_bytes_written
	metricRead, metricWritten uint64 // relay_traffic_bytes{read, written}
	begin                     uint64 // exit_streams_by_type begin
	edgeRead, edgeWritten     uint64 // the BW seconds at each edge (see withinEdges), both edges summed
}

// window counts the events with a time in [start, end), as the collector
// does.
func (r *relayTruth) window(start, end time.Time) (w windowTruth, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bw torctl.BWEvent
	var m stats.Metric
	edgeSeen := [2]bool{}
	for _, ev := range r.events {
		if bytes.HasPrefix(ev.line, []byte("650 BW ")) {
			if err := torctl.ParseBW(ev.line, &bw); err != nil {
				return w, err
			}
			for i, edge := range []time.Time{start, end} {
				if !edgeSeen[i] && !ev.at.Before(edge) {
					edgeSeen[i] = !ev.at.Before(edge.Add(source.EdgeTolerance))
					w.edgeRead += bw.Read
					w.edgeWritten += bw.Written
				}
			}
			if !ev.at.Before(start) && ev.at.Before(end) {
				w.bwRead += bw.Read
				w.bwWritten += bw.Written
			}
			continue
		}
		if ev.at.Before(start) || !ev.at.Before(end) {
			continue
		}
		if err := stats.ParseMetricLine(ev.line, &m); err != nil {
			return w, err
		}
		switch {
		case string(m.Name) == "tor_relay_traffic_bytes" && string(m.Labels) == `direction="read"`:
			w.metricRead += m.Increase
		case string(m.Name) == "tor_relay_traffic_bytes" && string(m.Labels) == `direction="written"`:
			w.metricWritten += m.Increase
		case string(m.Name) == "tor_relay_streams_total" && string(m.Labels) == `type="BEGIN"`:
			w.begin += m.Increase
		}
	}
	if !edgeSeen[0] || !edgeSeen[1] {
		return w, fmt.Errorf("no BW event after one of the window's edges (%v)", edgeSeen)
	}
	return w, nil
}

// withinEdges checks that the MetricsPort's count of a window equals the
// BW events' within the bytes of one BW second at each edge: BW counts
// whole seconds, each ending when its event arrives, so at the start it
// may hold up to the first second's bytes from before the window and at
// the end lack up to the bytes of the second that straddles it. The
// MetricsPort's edges are up to source.EdgeTolerance late, so a BW event
// that arrives within that of an edge counts the next second in too.
func withinEdges(metric, bw, edges uint64) bool {
	return metric+edges >= bw && metric <= bw+edges
}

// measureEdgeReads reads a real tor's MetricsPort at the edges of n short
// windows, one after another, and returns how late each read completed.
func measureEdgeReads(ctx context.Context, t *testing.T, metricsAddr string, n int) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := source.NewWindows()
	done := make(chan error, 1)
	go func() {
		done <- source.MetricsPort("http://"+metricsAddr+"/metrics", time.Hour, nil).Run(ctx, w, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	}()
	time.Sleep(200 * time.Millisecond) // the source has joined and read its baseline
	var late []time.Duration
	for range n {
		s := time.Now().Add(50 * time.Millisecond)
		win := source.Window{Start: s, End: s.Add(100 * time.Millisecond)}
		w.Add(win)
		start, end, err := w.Wait(ctx, win)
		if err != nil {
			t.Fatal(err)
		}
		w.Remove(win)
		if start.Read != 1 || end.Read != 1 {
			t.Errorf("a read at an edge of a window failed on real tor: start %+v, end %+v", start, end)
		}
		late = append(late, start.Late, end.Late)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	slices.Sort(late)
	return late
}

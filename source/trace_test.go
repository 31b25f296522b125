package source_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
)

type event struct {
	at   time.Time
	line string
}

type gap struct{ start, end time.Time }

// collect runs src to the end and returns what it emitted.
func collect(t *testing.T, ctx context.Context, src source.Source) ([]event, []gap, error) {
	t.Helper()
	var evs []event
	var gaps []gap
	err := src.Run(ctx, nil,
		func(at time.Time, line []byte) { evs = append(evs, event{at, string(line)}) },
		func(s, e time.Time) { gaps = append(gaps, gap{s, e}) })
	return evs, gaps, err
}

func writeTrace(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "relay.trace")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTraceReadsTimestampsCommentsAndBlankLines(t *testing.T) {
	path := writeTrace(t, "# recorded by hand\n\n"+
		"1795316008.199 650 BW 155 593\r\n"+
		"   \n"+
		"650 ORCONN 192.0.2.1:443 NEW ID=7\n"+
		"# gap 1795316009 1795316012.5\n"+
		"1795316013.000000001 650 BW 1 2\n")
	before := time.Now()
	evs, gaps, err := collect(t, context.Background(), source.Trace(path, source.Fast))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].line != "650 BW 155 593" || evs[1].line != "650 ORCONN 192.0.2.1:443 NEW ID=7" || evs[2].line != "650 BW 1 2" {
		t.Fatalf("events = %v", evs)
	}
	if !evs[0].at.Equal(time.Unix(1795316008, 199e6)) || !evs[2].at.Equal(time.Unix(1795316013, 1)) {
		t.Errorf("recorded times = %v, %v", evs[0].at, evs[2].at)
	}
	if evs[1].at.Before(before) {
		t.Errorf("an event without a timestamp got %v, not the current time", evs[1].at)
	}
	if len(gaps) != 1 || !gaps[0].start.Equal(time.Unix(1795316009, 0)) || !gaps[0].end.Equal(time.Unix(1795316012, 5e8)) {
		t.Errorf("gaps = %v", gaps)
	}
}

func TestTraceErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{"650 BW 1 2\n1795316008.x 650 BW 1 2\n", ":2: bad timestamp \"1795316008.x\""},
		{"# c\n\n-5 650 BW 1 2\n", ":3: bad timestamp"},
		{"1795316008. 650 BW 1 2\n", ":1: bad timestamp"},
		{"1795316008 BW 1 2\n", ":1: want an event line"},
		{"1795316008\n", ":1: want an event line"},
		{"BW 1 2\n", ":1: bad timestamp \"BW\""},
		{"650 BW 1 2\n# gap 5\n", ":2: bad gap comment"},
		{"# gap 10 5\n", ":1: bad gap comment"},
		{"650 BW 1 2\n650 BW " + strings.Repeat("9", 70000) + "\n", ":2: line longer than"},
	} {
		path := writeTrace(t, tc.text)
		_, _, err := collect(t, context.Background(), source.Trace(path, source.Fast))
		if err == nil || !strings.Contains(err.Error(), path+tc.want) {
			t.Errorf("trace %q: error %v, want one with %q", clipped(tc.text), err, filepath.Base(path)+tc.want)
		}
	}
	_, _, err := collect(t, context.Background(), source.Trace(filepath.Join(t.TempDir(), "none.trace"), source.Fast))
	if err == nil || !strings.Contains(err.Error(), "none.trace") {
		t.Errorf("missing trace: %v", err)
	}
}

func clipped(s string) string { return s[:min(len(s), 40)] }

func TestTraceRecordedSpeedKeepsSpacing(t *testing.T) {
	path := writeTrace(t, "1000.00 650 BW 1 1\n1000.06 650 BW 2 2\n1000.12 650 BW 3 3\n")
	start := time.Now()
	evs, _, err := collect(t, context.Background(), source.Trace(path, source.Recorded))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("events = %v", evs)
	}
	if d := evs[2].at.Sub(evs[0].at); d < 110*time.Millisecond || d > 2*time.Second {
		t.Errorf("replayed 120 ms of trace in %v", d)
	}
	if evs[0].at.Before(start) {
		t.Error("recorded speed should stamp events with the current time")
	}
	// A replay that would take an hour stops when its context ends.
	slow := writeTrace(t, "1000 650 BW 1 1\n4600 650 BW 2 2\n")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	evs, _, err = collect(t, ctx, source.Trace(slow, source.Recorded))
	if err != nil || len(evs) != 1 {
		t.Errorf("cancelled replay: %v, %v", evs, err)
	}
}

// Recording a source and replaying the recording gives the same events,
// times (to the microsecond) and gaps.
func TestRecordTraceRoundTrip(t *testing.T) {
	path := writeTrace(t, "# a recording\n"+
		"1795316000.000000 650 BW 155 593\n"+
		"1795316000.112000 650 ORCONN 198.51.100.23:41234 NEW ID=101\n"+
		"# gap 1795316001.000000 1795316003.250000\n"+
		"1795316003.455123 650 PRIVCOUNT_STREAM_ENDED 7 3 12 443 48213 1312 1795315990.120001 1795316003.455002 www.example.com 203.0.113.80\n")
	var rec bytes.Buffer
	evs, gaps, err := collect(t, context.Background(), source.Record(&rec, source.Trace(path, source.Fast)))
	if err != nil {
		t.Fatal(err)
	}
	again := writeTrace(t, rec.String())
	evs2, gaps2, err := collect(t, context.Background(), source.Trace(again, source.Fast))
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.String())
	}
	if len(evs) != 3 || !slices.EqualFunc(evs, evs2, func(a, b event) bool { return a.line == b.line && a.at.Equal(b.at) }) {
		t.Errorf("recorded %v\nreplayed %v", evs, evs2)
	}
	if len(gaps) != 1 || !slices.EqualFunc(gaps, gaps2, func(a, b gap) bool { return a.start.Equal(b.start) && a.end.Equal(b.end) }) {
		t.Errorf("gaps recorded %v, replayed %v", gaps, gaps2)
	}

	// A synthetic workload records and replays the same way.
	rec.Reset()
	syn := source.Synthetic(source.SyntheticOptions{Seed: 9, Limit: 2000, Fast: true})
	evs, _, err = collect(t, context.Background(), source.Record(&rec, syn))
	if err != nil {
		t.Fatal(err)
	}
	evs2, _, err = collect(t, context.Background(), source.Trace(writeTrace(t, rec.String()), source.Fast))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2000 || !slices.EqualFunc(evs, evs2, func(a, b event) bool { return a.line == b.line && a.at.Sub(b.at).Abs() < time.Microsecond }) {
		t.Errorf("synthetic round trip differs: %d events recorded, %d replayed", len(evs), len(evs2))
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestRecordStopsOnWriteError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := collect(t, ctx, source.Record(failingWriter{}, source.Synthetic(source.SyntheticOptions{Seed: 1, Fast: true})))
	if err == nil || !strings.Contains(err.Error(), "recording trace") {
		t.Errorf("Run = %v, want a recording error", err)
	}
	if ctx.Err() != nil {
		t.Error("Record kept running after its writer failed")
	}
}

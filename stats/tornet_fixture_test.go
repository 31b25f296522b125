package stats_test

import (
	"context"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// TestTornetExitTrace replays a trace recorded from the exit relay of the
// private Tor network (package e2e, with PRIVSTATS_RECORD_TRACE) while the
// test drove 4 downloads of 1 MiB through it: real tor's lines, counted by
// the catalogue, must show that traffic.
func TestTornetExitTrace(t *testing.T) {
	var specs []round.StatisticSpec
	for _, name := range []string{"exit_bytes", "exit_streams_by_type", "relay_bytes_read", "relay_bytes_written", "or_bytes"} {
		spec, err := stats.Resolve(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	prog, err := stats.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	counts := make(plainCounters, prog.NumCounters())
	err = source.Trace("../testdata/tornet-exit.trace", source.Fast).Run(context.Background(), nil,
		func(at time.Time, line []byte) { prog.CountAt(at, line, counts) }, func(time.Time, time.Time) {})
	if err != nil {
		t.Fatal(err)
	}
	if prog.Malformed() != 0 {
		t.Errorf("%d of real tor's lines did not parse", prog.Malformed())
	}
	exitBytes, begin, beginDir, read, written, orBytes := counts[0], counts[1], counts[2], counts[4], counts[5], counts[6]
	const driven = 4 << 20
	if exitBytes < driven || exitBytes > driven+driven/10 {
		t.Errorf("exit_bytes = %d, want the %d bytes driven plus HTTP overhead", exitBytes, driven)
	}
	if begin != 4 {
		t.Errorf("exit streams (BEGIN) = %d, want the 4 downloads", begin)
	}
	if beginDir == 0 {
		t.Error("no BEGIN_DIR streams: the relay serves directory requests on a test network")
	}
	if read < exitBytes/2 || written == 0 || orBytes == 0 {
		t.Errorf("relay bytes read %d, written %d, OR bytes %d: implausible next to %d exit bytes", read, written, orBytes, exitBytes)
	}
}

type plainCounters []uint64

func (p plainCounters) Add(c int, n uint64) { p[c] += n }

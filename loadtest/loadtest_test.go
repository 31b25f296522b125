package loadtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/stats"
)

// sliceCounters counts into a slice.
type sliceCounters []uint64

func (s sliceCounters) Add(c int, n uint64) { s[c] += n }

// TestRelayStreamsLandInTheirBins checks that the streams a relay sends
// for a collector's chosen counts are counted by the collector's own
// counting program into exactly those counters: the load test's truth is
// what a collector counts.
func TestRelayStreamsLandInTheirBins(t *testing.T) {
	const counters = 37
	spec, err := stats.Resolve(Statistic, Bins(counters))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := stats.Compile([]round.StatisticSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	got := make(sliceCounters, counters)
	r := newRelay(5, counters)
	start := time.Now()
	r.emit = func(at time.Time, line []byte) {
		if !at.Equal(start) {
			t.Errorf("stream stamped %v, not at the window's start %v", at, start)
		}
		prog.CountAt(at, line, got)
	}
	r.polled() // no round yet: nothing to send
	if slices.Max(got) != 0 {
		t.Fatalf("sent %v before any round was recorded", got)
	}
	if err := r.record(&round.Config{Round: 7, Start: start, End: start.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	r.polled()
	r.polled() // sent once only
	want := Counts(7, 5, counters)
	if !slices.Equal([]uint64(got), want) || !slices.Equal(r.sentIn(7), want) {
		t.Fatalf("counted %v\nsent    %v\nwant    %v", got, r.sentIn(7), want)
	}
	if prog.Malformed() != 0 {
		t.Fatalf("%d stream lines did not parse", prog.Malformed())
	}
	if slices.Max(want) == 0 || slices.Equal(want, Counts(7, 6, counters)) {
		t.Fatalf("collectors' counts are all zero or all alike: %v", want)
	}
}

// TestLoadTest runs a small load test end to end: the tally server and
// three keepers as processes of a freshly built privstats binary, 20
// simulated collectors in this process, 10 counters, no noise, so every
// published total must equal the counts the collectors were given.
func TestLoadTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a round of about 10 seconds across four processes")
	}
	bin := filepath.Join(t.TempDir(), "privstats")
	build := exec.Command("go", "build", "-o", bin, "github.com/privstats/privstats/cmd/privstats")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	res, err := Run(ctx, Options{Binary: bin, Collectors: 20, Counters: 10, Keepers: 3, Exact: true,
		Window: 3 * time.Second, SetupTime: 3 * time.Second, Dir: dir, Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() || res.Failure != "" {
		for _, name := range []string{"tally.log", "keeper1.log", "loadgen.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			t.Logf("--- %s:\n%s", name, b)
		}
	}
	if !res.Completed || res.CollectorsInS != 20 || !res.TotalsOK || res.Failure != "" {
		t.Fatalf("completed %t, %d collectors in S, totals ok %t: %s", res.Completed, res.CollectorsInS, res.TotalsOK, res.Failure)
	}
	if r := res.Rounds[0]; r.Uncounted != 0 {
		t.Errorf("%d collectors in S were sent no streams", r.Uncounted)
	}
	roles := map[string]int{}
	for _, p := range res.Processes {
		roles[p.Role]++
		if p.CPUSeconds <= 0 || p.PeakRSSBytes <= 0 {
			t.Errorf("%s: cpu %v s, peak RSS %d bytes: not measured", p.Name, p.CPUSeconds, p.PeakRSSBytes)
		}
	}
	if roles["tally"] != 1 || roles["keeper"] != 3 || roles["loadgen"] != 1 {
		t.Errorf("processes by role: %v", roles)
	}
	// Phases shorter than one /metrics poll (all but setup and the window,
	// on a round this small) may go unseen; those lasting seconds may not.
	for _, p := range []string{"setup", "collect"} {
		if _, ok := res.Phases[p]; !ok {
			t.Errorf("phase %s was not timed: %v", p, res.Phases)
		}
	}
	if res.JournalBytes <= 0 || res.CiphertextBytes <= 0 || res.CollectorBytesIn < res.CiphertextBytes/2 || res.KeeperBytesOut <= 0 {
		t.Errorf("journal %d B, ciphertext %d B, collectors → tally %d B, tally → keepers %d B",
			res.JournalBytes, res.CiphertextBytes, res.CollectorBytesIn, res.KeeperBytesOut)
	}
	if res.WindowEndToOutcomeSeconds <= 0 || res.CollectorSetupMS <= 0 {
		t.Errorf("window end → outcome %v s, collector setup %v ms", res.WindowEndToOutcomeSeconds, res.CollectorSetupMS)
	}
}

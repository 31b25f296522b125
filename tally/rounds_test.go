package tally_test

import (
	"context"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/tally"
)

// TestRoundsRepeatWithTheirPeriod runs two rounds back to back with real
// keepers and collectors over loopback TLS: both publish, the second starts
// one period after the first, and each carries its own round number.
func TestRoundsRepeatWithTheirPeriod(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two rounds of a few seconds")
	}
	spec, err := stats.Resolve("relay_bytes_read", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := deploytest.Start(ctx, deploytest.Options{
		Dir: t.TempDir(), Keepers: 3, Collectors: 2,
		Tally: tally.Options{Series: "repeat", Rounds: 2, RoundLength: 2 * time.Second, SetupTime: 2 * time.Second, Period: 4 * time.Second,
			ReportGrace: 3 * time.Second, Threshold: 2, MinCollectors: 2, Epsilon: 1, Delta: 1e-6, Statistics: []round.StatisticSpec{spec}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the rounds did not finish: %+v", d.Tally.Status())
	}
	published := d.Outcomes()
	if len(published) != 2 {
		t.Fatalf("%d outcomes published, want 2 (status %+v)", len(published), d.Tally.Status())
	}
	a, b := published[0].Outcome, published[1].Outcome
	if a.Round != 1 || b.Round != 2 {
		t.Fatalf("rounds %d and %d, want 1 and 2", a.Round, b.Round)
	}
	// The next round is announced once the previous one has ended, so it
	// starts one period after the previous start, or setup_time after the
	// previous round finished, whichever is later.
	if got := b.Window.Start.Sub(a.Window.Start); got < 4*time.Second || got > 8*time.Second {
		t.Fatalf("second round starts %s after the first, want the 4s period (or the setup time after round 1 ended)", got)
	}
	for _, p := range published {
		o := p.Outcome
		if o.Collectors.Count != 2 || o.Statistics[0].Bins[0].NoisyTotal <= 0 {
			t.Fatalf("round %d: %d collectors, total %d", o.Round, o.Collectors.Count, o.Statistics[0].Bins[0].NoisyTotal)
		}
		if err := outcome.Verify(o); err != nil {
			t.Fatalf("round %d: %v", o.Round, err)
		}
	}
}

// TestKeeperDeadBeforeItAcknowledgesIsSkipped: a keeper that publishes its
// round key and then dies before acknowledging any bundle must not stop
// the round; S is chosen among the keepers that did acknowledge.
func TestKeeperDeadBeforeItAcknowledgesIsSkipped(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round of a few seconds")
	}
	spec, _ := stats.Resolve("relay_bytes_read", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	d, err := deploytest.Start(ctx, deploytest.Options{
		Dir: t.TempDir(), Keepers: 3, Collectors: 2,
		Tally: tally.Options{Series: "dead", Rounds: 1, RoundLength: 2 * time.Second, SetupTime: 3 * time.Second, ReportGrace: 2 * time.Second,
			Threshold: 2, MinCollectors: 2, Epsilon: 1, Delta: 1e-6, Statistics: []round.StatisticSpec{spec}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	// Keeper 3 dies as soon as every round key is in.
	if _, err := d.WaitStatus(ctx, "every round key", func(st tally.Status) bool { return st.KeepersKeyed == 3 }); err != nil {
		t.Fatal(err)
	}
	d.Keeper(2).Stop()
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	st := d.Tally.Status()
	if st.Completed != 1 || st.Reported != 2 {
		t.Fatalf("status %+v: want the round published with both collectors", st)
	}
}

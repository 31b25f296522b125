package tally

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// TestRoundsRepeatWithTheirPeriod runs two rounds back to back with real
// keepers and collectors over loopback TLS: both publish, the second starts
// one period after the first, and each carries its own round number.
func TestRoundsRepeatWithTheirPeriod(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two rounds of a few seconds")
	}
	ids := newIDs(t, 6)
	ts, keepers, collectors := ids[0], ids[1:4], ids[4:6]
	spec, err := stats.Resolve("relay_bytes_read", nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var published []*outcome.Outcome
	srv, err := New(Options{
		Identity: ts, Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		Series: "repeat", Rounds: 2, RoundLength: 2 * time.Second, SetupTime: 2 * time.Second, Period: 4 * time.Second,
		ReportGrace: 3 * time.Second, Keepers: fps(keepers), Threshold: 2, Collectors: fps(collectors), MinCollectors: 2,
		Epsilon: 1, Delta: 1e-6, Statistics: []round.StatisticSpec{spec}, Logger: discardLogger(),
		Published: func(o *outcome.Outcome, _ string) {
			mu.Lock()
			published = append(published, o)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx, true) })
	for _, id := range keepers {
		k, err := keeper.New(keeper.Options{Identity: id, Tally: srv.Addr(), TallyFingerprint: ts.Fingerprint, Keepers: fps(keepers), Roster: keeper.FixedRoster(fps(collectors)), ExitWhenFinished: true, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { k.Run(ctx) })
	}
	for i, id := range collectors {
		c, err := collector.New(collector.Options{Identity: id, Tally: srv.Addr(), TallyFingerprint: ts.Fingerprint, Keepers: fps(keepers),
			Source: source.Synthetic(source.SyntheticOptions{Rate: 100, Seed: uint64(i + 1)}), ExitWhenFinished: true, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { c.Run(ctx) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the rounds did not finish: %+v", srv.Status())
	}
	if len(published) != 2 {
		t.Fatalf("%d outcomes published, want 2 (status %+v)", len(published), srv.Status())
	}
	a, b := published[0], published[1]
	if a.Round != 1 || b.Round != 2 {
		t.Fatalf("rounds %d and %d, want 1 and 2", a.Round, b.Round)
	}
	// The next round is announced once the previous one has ended, so it
	// starts one period after the previous start, or setup_time after the
	// previous round finished, whichever is later.
	if got := b.Window.Start.Sub(a.Window.Start); got < 4*time.Second || got > 8*time.Second {
		t.Fatalf("second round starts %s after the first, want the 4s period (or the setup time after round 1 ended)", got)
	}
	for _, o := range published {
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
	ids := newIDs(t, 6)
	ts, keepers, collectors := ids[0], ids[1:4], ids[4:6]
	spec, _ := stats.Resolve("relay_bytes_read", nil)
	srv, err := New(Options{
		Identity: ts, Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		Series: "dead", Rounds: 1, RoundLength: 2 * time.Second, SetupTime: 3 * time.Second, ReportGrace: 2 * time.Second,
		Keepers: fps(keepers), Threshold: 2, Collectors: fps(collectors), MinCollectors: 2,
		Epsilon: 1, Delta: 1e-6, Statistics: []round.StatisticSpec{spec}, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx, true) })
	for i, id := range keepers {
		kctx := ctx
		if i == 2 {
			// Keeper 3 dies as soon as every round key is in.
			var kcancel context.CancelFunc
			kctx, kcancel = context.WithCancel(ctx)
			go func() {
				for ctx.Err() == nil {
					if srv.Status().KeepersKeyed == 3 {
						kcancel()
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		k, _ := keeper.New(keeper.Options{Identity: id, Tally: srv.Addr(), TallyFingerprint: ts.Fingerprint, Keepers: fps(keepers), Roster: keeper.FixedRoster(fps(collectors)), ExitWhenFinished: true, Logger: discardLogger()})
		wg.Go(func() { k.Run(kctx) })
	}
	for i, id := range collectors {
		c, _ := collector.New(collector.Options{Identity: id, Tally: srv.Addr(), TallyFingerprint: ts.Fingerprint, Keepers: fps(keepers),
			Source: source.Synthetic(source.SyntheticOptions{Rate: 100, Seed: uint64(i + 1)}), ExitWhenFinished: true, Logger: discardLogger()})
		wg.Go(func() { c.Run(ctx) })
	}
	wg.Wait()
	st := srv.Status()
	if st.Completed != 1 || st.Reported != 2 {
		t.Fatalf("status %+v: want the round published with both collectors", st)
	}
}

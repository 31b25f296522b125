package collector_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/internal/deploytest/slow"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/tally"
)

// step is what a test has an event source do: emit events, report gaps.
type step func(emit func(at time.Time, line []byte), gap func(start, end time.Time))

// feed is an event source the test writes to: every step it receives is
// run, in order, on the source's goroutine, as tor's events would arrive.
type feed chan step

func (f feed) Run(ctx context.Context, _ *source.Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case step := <-f:
			step(emit, gap)
		}
	}
}

// send runs step on the source and returns once the collector has seen it:
// the feed is unbuffered, so the empty step that follows is taken only
// after step has returned.
func (f feed) send(ctx context.Context, t *testing.T, s step) {
	t.Helper()
	for _, s := range []step{s, func(func(time.Time, []byte), func(time.Time, time.Time)) {}} {
		select {
		case f <- s:
		case <-ctx.Done():
			t.Fatal("the collector stopped reading its event source")
		}
	}
}

// A collector joins a round once the keepers' round keys are in, counts
// exactly the events of the window [start, end) by their time, reports
// its gaps clipped to the window, and its report, with the keepers'
// shares, yields the true total.
func TestCollectorCountsItsWindowAndReports(t *testing.T) {
	src := make(feed)
	announced := make(chan *round.Config, 1)
	opts := deploytest.ShortRound()
	opts.Record = func(cfg *round.Config) error { announced <- cfg; return nil }
	ctx, d := slow.Start(t, 60*time.Second, deploytest.Options{Keepers: 3, Collectors: 1, Tally: opts,
		Collector: func(_ int, o *collector.Options) { o.Source = src }})
	fp := d.CollectorIDs[0].Fingerprint

	var cfg *round.Config
	select {
	case cfg = <-announced:
	case <-ctx.Done():
		t.Fatal("no round announced")
	}
	if _, err := d.WaitStatus(ctx, "the collector to join", func(st tally.Status) bool { return st.CollectorsJoined == 1 }); err != nil {
		t.Fatal(err)
	}
	gapEnd := cfg.Start.Add(250 * time.Millisecond)
	src.send(ctx, t, func(emit func(time.Time, []byte), gap func(start, end time.Time)) {
		emit(cfg.Start.Add(-time.Nanosecond), []byte("650 BW 1000 7")) // before the window
		emit(cfg.Start, []byte("650 BW 1 0"))
		emit(cfg.Start.Add(time.Second), []byte("650 BW 20 0"))
		emit(cfg.End.Add(-time.Nanosecond), []byte("650 BW 300 0"))
		emit(cfg.End, []byte("650 BW 4000 0")) // after it
		gap(cfg.Start.Add(-time.Second), gapEnd)
		gap(cfg.End.Add(time.Second), cfg.End.Add(2*time.Second)) // outside: not the round's business
	})

	o, err := d.VerifiedOutcome(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Collectors.Fingerprints, []string{fp}) {
		t.Fatalf("collectors in S: %v, want only %s", o.Collectors.Fingerprints, fp)
	}
	if got := o.Statistics[0].Bins[0].NoisyTotal; got != 321 {
		t.Errorf("relay_bytes_read = %d, want 321 (the three events inside the window)", got)
	}
	want := []wire.Gap{{Start: cfg.Start, End: gapEnd}}
	if got := o.Collectors.Gaps[fp]; len(got) != 1 || !got[0].Start.Equal(want[0].Start) || !got[0].End.Equal(want[0].End) {
		t.Errorf("gaps %v, want %v (the gap clipped to the window, the one outside it left out)", got, want)
	}
}

// A collector sits out a round it will not take part in and tells the
// tally server why, before it draws any noise or sends any bundle.
func TestCollectorRefusesWithItsReason(t *testing.T) {
	stranger, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		adjust func(d *deploytest.Deployment, o *collector.Options)
		reason string
	}{
		{
			name: "its policy says no",
			adjust: func(_ *deploytest.Deployment, o *collector.Options) {
				o.Policy = func(*round.Config, time.Time) error {
					return errors.New("policy: max_epsilon 0.5 is below the round's ε 1")
				}
			},
			reason: "policy: max_epsilon 0.5 is below the round's ε 1",
		},
		{
			name: "the round names keepers it has not pinned",
			adjust: func(d *deploytest.Deployment, o *collector.Options) {
				o.Keepers = []string{d.KeeperIDs[0].Fingerprint, d.KeeperIDs[1].Fingerprint, stranger.Fingerprint}
			},
			reason: "round names keepers that are not this collector's pinned keepers",
		},
		{
			name: "its pinned keepers are in another order",
			adjust: func(d *deploytest.Deployment, o *collector.Options) {
				o.Keepers = []string{d.KeeperIDs[1].Fingerprint, d.KeeperIDs[0].Fingerprint, d.KeeperIDs[2].Fingerprint}
			},
			reason: "round names keepers that are not this collector's pinned keepers",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Tally: deploytest.PendingRound(), Idle: true})
			for i := range d.KeeperIDs {
				if _, err := d.StartKeeper(i, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := d.StartCollector(0, func(o *collector.Options) { tc.adjust(d, o) }); err != nil {
				t.Fatal(err)
			}
			fp := d.CollectorIDs[0].Fingerprint
			st, err := d.WaitRefusal(ctx, fp)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Refusals[fp]; got != tc.reason {
				t.Errorf("refusal %q, want %q", got, tc.reason)
			}
			if st.CollectorsJoined != 0 {
				t.Errorf("%d collectors joined; the refusing collector sent bundles", st.CollectorsJoined)
			}
		})
	}
}

// A collector refuses a composed round whose σ fall 1% short of its whole
// (ε, δ) before it draws any noise, even when the tally server announces
// it.
func TestCollectorRefusesAnUndernoisedComposedRound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Tally: deploytest.UndernoisedComposedRound(0.01), Idle: true})
	// Real keepers refuse the round too, so it would never reach setup,
	// where collectors join: the test posts the keepers' round keys.
	for _, id := range d.KeeperIDs {
		c, err := wire.NewClient(id, d.Addr(), d.TallyID.Fingerprint, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.PollRound(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, pub, err := wire.NewRoundKey()
		if err != nil {
			t.Fatal(err)
		}
		msg, err := wire.SignBody(id, wire.KindRoundKey, wire.RoundKey{ConfigHash: v.ConfigHash, Keeper: id.Fingerprint, PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PostRoundKey(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.WaitStatus(ctx, "the round's setup", func(st tally.Status) bool { return st.Phase == round.PhaseSetup }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartCollector(0, nil); err != nil {
		t.Fatal(err)
	}
	fp := d.CollectorIDs[0].Fingerprint
	st, err := d.WaitRefusal(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Refusals[fp]; !strings.Contains(got, "claims more privacy than its noise gives") || !strings.Contains(got, "weaker than the claimed ε = 1") {
		t.Errorf("refusal %q, want the composed claim refused", got)
	}
	if st.CollectorsJoined != 0 {
		t.Errorf("%d collectors joined; the refusing collector sent bundles", st.CollectorsJoined)
	}
}

// A collector that restarts after joining has lost its blinding: it says
// so and sits the round out, and the round publishes without it.
func TestRestartedCollectorSitsOut(t *testing.T) {
	ctx, d := slow.Start(t, 60*time.Second, deploytest.Options{Keepers: 3, Collectors: 2, Tally: deploytest.ShortRound()})
	if _, err := d.WaitStatus(ctx, "both collectors to join", func(st tally.Status) bool { return st.CollectorsJoined == 2 }); err != nil {
		t.Fatal(err)
	}
	restarted, kept := d.CollectorIDs[0].Fingerprint, d.CollectorIDs[1].Fingerprint
	if _, err := d.Collector(0).Restart(); err != nil {
		t.Fatal(err)
	}
	const reason = "collector restarted during the round and no longer holds its blinding"
	o, err := d.VerifiedOutcome(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Refusals[restarted]; got != reason {
		t.Errorf("restarted collector's refusal %q, want %q", got, reason)
	}
	if !slices.Equal(o.Collectors.Fingerprints, []string{kept}) {
		t.Errorf("collectors in S: %v, want only the one that did not restart (%s)", o.Collectors.Fingerprints, kept[:12])
	}
	if o.Statistics[0].Bins[0].NoisyTotal <= 0 {
		t.Errorf("relay_bytes_read = %d; the collector that stayed counted nothing", o.Statistics[0].Bins[0].NoisyTotal)
	}
}

// edgeSampler is a sampling source's counter, as tor's MetricsPort would
// give it for a round's window: 7 before the window, 27 from its start
// (20 counted just before the start, which the read at the start sees),
// 327 from its end; the read at the end answers slowly.
type edgeSampler struct {
	cfg  <-chan *round.Config
	win  *round.Config
	slow time.Duration
}

func (s *edgeSampler) Sample(ctx context.Context) (map[source.Series]uint64, error) {
	if s.win == nil {
		select {
		case s.win = <-s.cfg:
		default:
		}
	}
	v := uint64(7)
	switch now := time.Now(); {
	case s.win != nil && !now.Before(s.win.End):
		select {
		case <-time.After(s.slow):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		v = 327
	case s.win != nil && !now.Before(s.win.Start):
		v = 27
	}
	return map[source.Series]uint64{{Name: "tor_relay_traffic_bytes", Labels: `direction="read"`}: v}, nil
}

// A collector whose source samples counters waits, before it reports,
// until the source has read at the window's end, however slowly: the
// report holds exactly the counters' increase between the reads at the
// window's start and end, and the collector logs how late those reads were.
func TestCollectorReportsTheSampledWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round of a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	announced := make(chan *round.Config, 1)
	opts := deploytest.ShortRound()
	spec, err := stats.Resolve("relay_traffic_bytes", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Statistics = []round.StatisticSpec{spec}
	opts.Record = func(cfg *round.Config) error { announced <- cfg; return nil }
	var logs deploytest.Log
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Tally: opts,
		// An interval longer than the test: only the edges are read.
		Collector: func(_ int, o *collector.Options) {
			o.Source = source.Sampled("test counter", &edgeSampler{cfg: announced, slow: 300 * time.Millisecond}, time.Hour)
		},
		Logger: func(role string, _ int) *slog.Logger {
			if role == "collector" {
				return slog.New(slog.NewTextHandler(&logs, nil))
			}
			return slog.New(slog.DiscardHandler)
		}})
	o, err := d.VerifiedOutcome(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Statistics[0].Bins[0].NoisyTotal; got != 300 {
		t.Errorf("relay_traffic_bytes/read = %d, want 300 (the increase between the reads at the start and the end)", got)
	}
	if gaps := o.Collectors.Gaps[d.CollectorIDs[0].Fingerprint]; len(gaps) != 0 {
		t.Errorf("gaps %v, want none", gaps)
	}
	if log := logs.String(); !strings.Contains(log, `msg="sampling sources read at the window's edges"`) ||
		!strings.Contains(log, "start_late_ms=") || !strings.Contains(log, "end_late_ms=") || !strings.Contains(log, "end_failed=0") {
		t.Errorf("the collector did not log how late the edge reads were:\n%s", logs.String())
	}
}

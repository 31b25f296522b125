// The tests in package tally_test run real keepers and collectors against
// the tally server, through deploytest (which imports tally, so they cannot
// be in package tally).
package tally_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/internal/deploytest/slow"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/tally"
)

// TestRoundsRepeatWithTheirPeriod runs two rounds back to back with real
// keepers and collectors over loopback TLS: both publish, the second starts
// one period after the first, and each carries its own round number.
func TestRoundsRepeatWithTheirPeriod(t *testing.T) {
	opts := deploytest.ShortRound()
	opts.Series, opts.Rounds, opts.Period, opts.MinCollectors = "repeat", 2, 4*time.Second, 2
	var log, collectorLog deploytest.Log
	tallyLog := slog.New(slog.NewTextHandler(&log, nil))
	discard := slog.New(slog.DiscardHandler)
	ctx, d := slow.Start(t, 60*time.Second, deploytest.Options{Keepers: 3, Collectors: 2, Tally: opts,
		Logger: func(role string, i int) *slog.Logger {
			switch {
			case role == "tally":
				return tallyLog
			case role == "collector" && i == 0:
				return slog.New(slog.NewTextHandler(&collectorLog, nil))
			}
			return discard
		}})
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the rounds did not finish: %+v", d.Tally.Status())
	}
	if n := strings.Count(log.String(), `msg="series finished: no more rounds will run" series=repeat rounds=2 completed=2 failed=0`); n != 1 {
		t.Errorf("the end of the series was logged %d times, want once:\n%s", n, log.String())
	}
	if n := strings.Count(collectorLog.String(), "the tally server's series finished: no more rounds will run"); n != 1 {
		t.Errorf("a collector logged the end of the series %d times, want once:\n%s", n, collectorLog.String())
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
	opts := deploytest.ShortRound()
	opts.Series, opts.SetupTime, opts.ReportGrace, opts.MinCollectors = "dead", 3*time.Second, 2*time.Second, 2
	ctx, d := slow.Start(t, 40*time.Second, deploytest.Options{Keepers: 3, Collectors: 2, Tally: opts})
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

// A keeper whose own policy allows less than the tally server's round
// spends refuses the round; the tally server records its reason, counts
// the refusal and shows it in /api/v1/status.
func TestStricterKeeperRefusesWithItsReason(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := deploytest.PendingRound()
	opts.HTTPListen = "127.0.0.1:0"
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 2, Idle: true, Tally: opts})
	pol := policy.Defaults()
	pol.MaxEpsilon = 0.1
	led, err := policy.OpenLedger(filepath.Join(t.TempDir(), policy.LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	strict := func(cfg *round.Config, now time.Time) error { return pol.Check(cfg, led, now) }
	if _, err := d.StartKeeper(0, func(o *keeper.Options) { o.Policy = strict }); err != nil {
		t.Fatal(err)
	}
	fp := d.KeeperIDs[0].Fingerprint
	st, err := d.WaitRefusal(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	reason := st.Refusals[fp]
	if !strings.Contains(reason, "max_epsilon 0.1") || !strings.HasPrefix(reason, "policy: ") {
		t.Fatalf("recorded refusal %q, want the keeper's policy reason", reason)
	}
	metrics := get(t, "http://"+d.Tally.HTTPAddr()+"/metrics")
	if want := "\n" + `privstats_round_refusals_total{role="keeper"} 1` + "\n"; !strings.Contains(string(metrics), want) {
		t.Fatalf("/metrics lacks %q", strings.TrimSpace(want))
	}
	var api tally.Status
	if err := json.Unmarshal(get(t, "http://"+d.Tally.HTTPAddr()+"/api/v1/status"), &api); err != nil || api.Refusals[fp] != reason {
		t.Fatalf("/api/v1/status refusals %v (%v), want the keeper's reason", api.Refusals, err)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return body
}

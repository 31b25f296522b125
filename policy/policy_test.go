package policy_test

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/stats"
)

// day1 is the end of the first round in these tests.
var day1 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// stat is the catalogue's statistic with ε = 0.1, δ = 3·10⁻⁴ and the given
// σ, which must be at least what that budget needs for its sensitivity.
func stat(name string, sigma float64) round.StatisticSpec {
	s, err := stats.Resolve(name, nil)
	if err != nil {
		panic(err)
	}
	s.Sigma, s.Epsilon, s.Delta, s.MaxPerCollector = sigma, 0.1, 3e-4, 1<<40
	return s
}

// testRound is a round of the series "relays" within the default policy: three
// statistics, ε 0.3, δ 9e-4, 3 of 5 collectors, and the given window.
func testRound(n uint64, start, end time.Time, stats ...round.StatisticSpec) *round.Config {
	if stats == nil {
		stats = []round.StatisticSpec{
			stat("relay_bytes_read", 2.5e10),
			stat("exit_streams", 4.0e5),
			stat("or_connection_lifetime", 1e6),
		}
	}
	cfg := &round.Config{
		Version:       round.ConfigVersion,
		Series:        "relays",
		Round:         n,
		Start:         start,
		End:           end,
		Epsilon:       0.3,
		Delta:         1e-3,
		Statistics:    stats,
		Threshold:     2,
		MinCollectors: 3,
	}
	for i := range 3 {
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: strings.Repeat(string(rune('a'+i)), 64), X: i + 1})
	}
	for i := range 5 {
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: strings.Repeat(string(rune('0'+i)), 64), NoiseWeight: math.Sqrt(1.0 / 3)}) // any 3 carry σ²
	}
	return cfg
}

// firstRound is round 1 of the series: the 24 hours before day1.
func firstRound() *round.Config { return testRound(1, day1.Add(-24*time.Hour), day1) }

func refusal(t *testing.T, err error) string {
	t.Helper()
	var r *policy.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v, want a *policy.Refusal", err)
	}
	if !strings.HasPrefix(err.Error(), "policy: ") {
		t.Errorf("refusal %q does not start with \"policy: \"", err)
	}
	return r.Reason
}

func TestDefaultsAreValidAndDocumented(t *testing.T) {
	p := policy.Defaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := policy.Policy{
		MaxEpsilon:     0.3,
		MaxDelta:       1e-3,
		MinCollectors:  3,
		MinRoundLength: policy.Duration(time.Hour),
		DelayPeriod:    policy.Duration(24 * time.Hour),
		SigmaTolerance: 0.01,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Defaults() = %+v, want %+v", p, want)
	}
}

// A node that forgets to configure a limit must not end up with none.
func TestZeroPolicyRefusesToCheck(t *testing.T) {
	err := policy.Policy{}.Check(firstRound(), nil, day1)
	if err == nil {
		t.Fatal("a zero Policy accepted a round")
	}
	var r *policy.Refusal
	if errors.As(err, &r) {
		t.Fatalf("got refusal %v, want an invalid-policy error", err)
	}
	for _, field := range []string{"max_epsilon", "max_delta", "min_collectors", "delay_period"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

func TestValidateNamesEachBadField(t *testing.T) {
	p := policy.Defaults()
	p.MaxDelta = 1.5
	p.SigmaTolerance = -0.1
	p.MaxStatistics = -1
	err := p.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *policy.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	if got := strings.Join(fields, ","); got != "max_delta,max_statistics,sigma_tolerance" {
		t.Errorf("bad fields %s", got)
	}
}

func TestRoundWithinPolicyIsAccepted(t *testing.T) {
	if err := policy.Defaults().Check(firstRound(), nil, day1); err != nil {
		t.Fatal(err)
	}
}

// Three statistics of ε 0.1 sum to 0.30000000000000004 in floating point;
// that is not more than a limit of 0.3.
func TestBudgetSumToleratesRounding(t *testing.T) {
	cfg := firstRound()
	if err := policy.Defaults().Check(cfg, nil, day1); err != nil {
		t.Fatal(err)
	}
}

func TestEachLimitRefusesWithAClearReason(t *testing.T) {
	strict := policy.Defaults()
	strict.MaxStatistics = 2
	tests := []struct {
		name   string
		policy policy.Policy
		change func(*round.Config)
		want   string
	}{
		{"noise weights", policy.Defaults(), func(c *round.Config) {
			for i := range c.Collectors {
				c.Collectors[i].NoiseWeight = 0
			}
		}, "noise weights: noise: coverage"},
		{"round epsilon", policy.Defaults(), func(c *round.Config) { c.Epsilon = 0.5 },
			"round ε = 0.5 is more than this node's max_epsilon 0.3"},
		{"statistics' epsilon", policy.Defaults(), func(c *round.Config) { c.Statistics[0].Epsilon = 0.2 },
			"the statistics' ε add up to 0.4, more than this node's max_epsilon 0.3"},
		{"round delta", policy.Defaults(), func(c *round.Config) { c.Delta = 0.01 },
			"round δ = 0.01 is more than this node's max_delta 0.001"},
		{"statistics' delta", policy.Defaults(), func(c *round.Config) { c.Statistics[2].Delta = 1e-3 },
			"the statistics' δ add up to 0.0016, more than this node's max_delta 0.001"},
		{"min collectors", policy.Defaults(), func(c *round.Config) { c.MinCollectors = 2 },
			"round releases totals of as few as 2 collectors (min_collectors), this node requires at least 3"},
		{"round length", policy.Defaults(), func(c *round.Config) { c.End = c.Start.Add(30 * time.Minute) },
			"round lasts 30m0s, shorter than this node's min_round_length 1h0m0s"},
		{"statistics count", strict, func(*round.Config) {},
			"round has 3 statistics, more than this node's max_statistics 2"},
		{"no noise", policy.Defaults(), func(c *round.Config) { c.Statistics[1].Sigma = 0 },
			"statistic exit_streams has σ = 0: its total would not carry finite, positive noise"},
		{"NaN epsilon", policy.Defaults(), func(c *round.Config) { c.Epsilon = math.NaN() },
			"round ε = NaN is not a privacy budget"},
		{"NaN statistic delta", policy.Defaults(), func(c *round.Config) { c.Statistics[0].Delta = math.NaN() },
			"statistic relay_bytes_read has ε = 0.1, δ = NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := firstRound()
			tt.change(cfg)
			reason := refusal(t, tt.policy.Check(cfg, nil, day1))
			if !strings.Contains(reason, tt.want) {
				t.Errorf("reason %q\nwant it to contain %q", reason, tt.want)
			}
		})
	}
}

// A tally server cannot claim a budget its noise does not give: every node
// recomputes σ from each statistic's (ε, δ) and sensitivity, and holds the
// sensitivity to the catalogue's action bound or its own min_sensitivity.
func TestNoiseMustMatchTheClaimedBudget(t *testing.T) {
	need, err := noise.Sigma(0.1, 3e-4, 1, 4320) // exit_streams
	if err != nil {
		t.Fatal(err)
	}
	lowered := policy.Defaults()
	lowered.MinSensitivity = map[string]float64{"exit_streams": 10}
	tests := []struct {
		name   string
		policy policy.Policy
		change func(*round.Config)
		want   string // "" means accepted
	}{
		{"σ exactly what the budget needs", policy.Defaults(), func(c *round.Config) { c.Statistics[1].Sigma = need }, ""},
		{"σ below what the budget needs", policy.Defaults(), func(c *round.Config) { c.Statistics[1].Sigma = need * 0.99 },
			fmt.Sprintf("statistic exit_streams: σ = %v is less than the %.6g that ε = 0.1, δ = 0.0003 need for sensitivity 4320 over 1 bins", need*0.99, need)},
		{"a smaller ε claimed for the same noise", policy.Defaults(), func(c *round.Config) {
			c.Statistics[1].Sigma = need
			c.Statistics[1].Epsilon = 0.05
		}, fmt.Sprintf("statistic exit_streams: σ = %v is less than", need)},
		{"sensitivity below the catalogue's", policy.Defaults(), func(c *round.Config) {
			c.Statistics[1].Sensitivity = 10
			c.Statistics[1].Sigma = 1000
		}, "statistic exit_streams: its noise is calibrated for sensitivity 10, less than the catalogue's action bound 4320"},
		{"sensitivity the node's min_sensitivity allows", lowered, func(c *round.Config) {
			c.Statistics[1].Sensitivity = 10
			c.Statistics[1].Sigma = 1000
		}, ""},
		{"sensitivity below the node's min_sensitivity", lowered, func(c *round.Config) {
			c.Statistics[1].Sensitivity = 5
			c.Statistics[1].Sigma = 1000
		}, "statistic exit_streams: its noise is calibrated for sensitivity 5, less than this node's min_sensitivity 10"},
		{"sensitivity not declared", policy.Defaults(), func(c *round.Config) { c.Statistics[1].Sensitivity = 0 },
			"its noise is calibrated for sensitivity 0"},
		{"fewer bins touched than the catalogue's", policy.Defaults(), func(c *round.Config) { c.Statistics[2].BinsTouched = 3 },
			"statistic or_connection_lifetime: its noise is calibrated for changes to 3 bins, fewer than the 9 one user's activity can change"},
		{"statistic outside the catalogue", policy.Defaults(), func(c *round.Config) { c.Statistics[1].Name = "exit_streamz" },
			`statistic exit_streamz: this node cannot check its noise: unknown statistic "exit_streamz"`},
		{"zero ε cannot pay for noise", policy.Defaults(), func(c *round.Config) { c.Statistics[1].Epsilon = 0 },
			"statistic exit_streams: σ cannot be checked against ε = 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := firstRound()
			tt.change(cfg)
			err := tt.policy.Check(cfg, nil, day1)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if reason := refusal(t, err); !strings.Contains(reason, tt.want) {
				t.Errorf("reason %q\nwant it to contain %q", reason, tt.want)
			}
		})
	}
}

// The planner's output is exactly what nodes accept.
func TestPlannerOutputPassesTheCalibrationCheck(t *testing.T) {
	var budgets []noise.StatisticBudget
	for _, name := range []string{"relay_bytes_read", "exit_streams", "or_connection_lifetime"} {
		st, _ := stats.Lookup(name)
		budgets = append(budgets, noise.StatisticBudget{Name: name, L0: st.BinsTouched, LInf: st.Sensitivity, Estimate: st.Estimate})
	}
	plan, err := noise.Allocate(0.3, 9e-4, budgets)
	if err != nil {
		t.Fatal(err)
	}
	cfg := firstRound()
	for i, a := range plan {
		cfg.Statistics[i].Sigma, cfg.Statistics[i].Epsilon, cfg.Statistics[i].Delta = a.Sigma, a.Epsilon, a.Delta
	}
	if err := policy.Defaults().Check(cfg, nil, day1); err != nil {
		t.Fatal(err)
	}
}

func TestMinSensitivityIsValidated(t *testing.T) {
	p := policy.Defaults()
	p.MinSensitivity = map[string]float64{"exit_streams": -1, "no_such_statistic": 5}
	err := p.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"min_sensitivity.exit_streams: -1 must be a positive number", `min_sensitivity.no_such_statistic: unknown statistic "no_such_statistic"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nwant it to contain %q", err, want)
		}
	}
}

func TestRefusalNamesEveryBrokenLimit(t *testing.T) {
	cfg := firstRound()
	cfg.Epsilon = 1
	cfg.MinCollectors = 1
	reason := refusal(t, policy.Defaults().Check(cfg, nil, day1))
	for _, want := range []string{"max_epsilon", "min_collectors"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q does not mention %s", reason, want)
		}
	}
}

func TestStricterPolicyRefusesWhatALaxerOneAccepts(t *testing.T) {
	lax := policy.Defaults()
	lax.MaxEpsilon = 1
	lax.MinCollectors = 2
	strict := policy.Defaults()
	strict.MaxEpsilon = 0.1
	strict.MinCollectors = 5

	cfg := firstRound()
	cfg.MinCollectors = 4
	if err := lax.Check(cfg, nil, day1); err != nil {
		t.Fatalf("lax policy: %v", err)
	}
	reason := refusal(t, strict.Check(cfg, nil, day1))
	for _, want := range []string{"max_epsilon 0.1", "requires at least 5"} {
		if !strings.Contains(reason, want) {
			t.Errorf("strict reason %q does not contain %q", reason, want)
		}
	}
}

// take checks cfg and, if it is accepted, records it the way a node does.
func take(t *testing.T, p policy.Policy, led *policy.Ledger, cfg *round.Config, now time.Time) error {
	t.Helper()
	if err := p.Check(cfg, led, now); err != nil {
		return err
	}
	if err := led.Record(cfg, p); err != nil {
		t.Fatal(err)
	}
	return nil
}

// newLedger is an empty ledger in a fresh directory.
func newLedger(t *testing.T) *policy.Ledger {
	t.Helper()
	led, err := policy.OpenLedger(filepath.Join(t.TempDir(), policy.LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	return led
}

// afterFirstRound is a node's ledger once it has taken firstRound.
func afterFirstRound(t *testing.T, p policy.Policy) *policy.Ledger {
	t.Helper()
	led := newLedger(t)
	if err := take(t, p, led, firstRound(), day1); err != nil {
		t.Fatal(err)
	}
	return led
}

// reopen is a node restart: the ledger comes back from its file alone.
func reopen(t *testing.T, led *policy.Ledger) *policy.Ledger {
	t.Helper()
	again, err := policy.OpenLedger(led.Path())
	if err != nil {
		t.Fatal(err)
	}
	return again
}

func TestDelayRuleHoldsAcrossRestarts(t *testing.T) {
	p := policy.Defaults()
	next := day1.Add(24 * time.Hour) // when a changed round may start

	tests := []struct {
		name   string
		change func(*round.Config)
		want   string
	}{
		{"statistic added", func(c *round.Config) {
			c.Statistics = append(c.Statistics, stat("exit_bytes", 2e9))
			for i := range c.Statistics {
				c.Statistics[i].Epsilon, c.Statistics[i].Delta = 0.075, 2.5e-4
			}
		}, "statistic set changed (added exit_bytes) less than 24h0m0s after the previous round ended at 2026-11-22T10:00:00Z; the next round may start at 2026-11-23T10:00:00Z"},
		{"statistic replaced", func(c *round.Config) {
			c.Statistics[2] = stat("exit_bytes", 2e9)
		}, "statistic set changed (added exit_bytes; removed or_connection_lifetime)"},
		{"statistic removed", func(c *round.Config) {
			c.Statistics = c.Statistics[:2]
		}, "statistic set changed (removed or_connection_lifetime) less than 24h0m0s after"},
		{"sigma lowered", func(c *round.Config) {
			c.Statistics[1].Sigma = 2e5
		}, "σ fell more than 1% below the baseline of round 1 (exit_streams from 400000 to 200000) less than 24h0m0s after the previous round ended at 2026-11-22T10:00:00Z; the next round may start at 2026-11-23T10:00:00Z"},
		{"bins changed", func(c *round.Config) {
			c.Statistics[2].Bins = []string{"[0,60)", "[60,inf)"}
			c.Statistics[2].BinsTouched = 2
		}, "bins changed (or_connection_lifetime)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			led := newLedger(t)
			if err := take(t, p, led, firstRound(), day1.Add(-25*time.Hour)); err != nil {
				t.Fatalf("first round: %v", err)
			}
			led = reopen(t, led)

			// Announced just before round 1 ends, to start as it ends.
			early := testRound(2, day1, day1.Add(24*time.Hour))
			tt.change(early)
			reason := refusal(t, take(t, p, led, early, day1.Add(-time.Minute)))
			if !strings.Contains(reason, tt.want) {
				t.Errorf("reason %q\nwant it to contain %q", reason, tt.want)
			}
			if !strings.Contains(reason, "(in 24h1m0s)") {
				t.Errorf("reason %q does not say how long until the round may start", reason)
			}

			led = reopen(t, led)
			late := testRound(2, next, next.Add(24*time.Hour))
			tt.change(late)
			if err := take(t, p, led, late, next.Add(-time.Minute)); err != nil {
				t.Fatalf("changed round after the delay: %v", err)
			}

			// The accepted change is the series' new baseline: the next
			// round like it may follow at once, even after a restart.
			led = reopen(t, led)
			third := testRound(3, next.Add(24*time.Hour), next.Add(48*time.Hour))
			tt.change(third)
			if err := take(t, p, led, third, next.Add(24*time.Hour)); err != nil {
				t.Fatalf("round after the new baseline: %v", err)
			}
		})
	}
}

func TestSigmaWithinToleranceOrHigherIsNoChange(t *testing.T) {
	p := policy.Defaults()
	led := afterFirstRound(t, p)
	start := day1
	for n, factor := range []float64{0.995, 1.5, 0.991, 0.9901} {
		cfg := testRound(uint64(n+2), start, start.Add(time.Hour))
		cfg.Statistics[0].Sigma *= factor
		if err := take(t, p, led, cfg, start); err != nil {
			t.Fatalf("σ × %v: %v", factor, err)
		}
		start = start.Add(time.Hour)
	}
	// Small cuts do not add up unnoticed: the baseline stays round 1's.
	cfg := testRound(6, start, start.Add(time.Hour))
	cfg.Statistics[0].Sigma *= 0.985
	reason := refusal(t, take(t, p, led, cfg, start))
	if !strings.Contains(reason, "baseline of round 1 (relay_bytes_read from 2.5e+10 to 2.4625e+10)") {
		t.Errorf("reason %q", reason)
	}
}

func TestRoundsOfASeriesMustNotOverlap(t *testing.T) {
	p := policy.Defaults()
	led := afterFirstRound(t, p)
	overlapping := testRound(2, day1.Add(-time.Hour), day1.Add(23*time.Hour))
	reason := refusal(t, p.Check(overlapping, reopen(t, led), day1))
	want := `round 2 of series "relays" starts at 2026-11-22T09:00:00Z, before round 1 ended at 2026-11-22T10:00:00Z`
	if !strings.Contains(reason, want) {
		t.Errorf("reason %q\nwant it to contain %q", reason, want)
	}

	other := testRound(1, day1.Add(-time.Hour), day1.Add(23*time.Hour))
	other.Series = "exits"
	if err := p.Check(other, led, day1); err != nil {
		t.Errorf("a round of another series: %v", err)
	}
}

// A node resuming a round it already recorded is not refused by its own
// history, and recording it again changes nothing.
func TestRecordedRoundIsAcceptedAgain(t *testing.T) {
	p := policy.Defaults()
	led := newLedger(t)
	cfg := firstRound()
	for range 2 {
		if err := take(t, p, led, cfg, day1); err != nil {
			t.Fatal(err)
		}
		led = reopen(t, led)
	}
}

// TestRenamingTheSeriesDoesNotDodgeTheDelayRule: a series the node has not
// seen is held to the node's latest round of any series.
func TestRenamingTheSeriesDoesNotDodgeTheDelayRule(t *testing.T) {
	p := policy.Defaults()
	led := newLedger(t)
	if err := led.Record(firstRound(), p); err != nil {
		t.Fatal(err)
	}
	lowered := testRound(1, day1, day1.Add(24*time.Hour),
		stat("relay_bytes_read", 1e10), stat("exit_streams", 4.0e5), stat("or_connection_lifetime", 1e6))
	lowered.Series = "renamed"
	reason := refusal(t, p.Check(lowered, led, day1))
	if !strings.Contains(reason, `compared with series "relays"`) || !strings.Contains(reason, "relay_bytes_read") {
		t.Fatalf("refusal %q, want the σ decrease measured against series relays", reason)
	}
	// The same statistics under a new name change nothing.
	same := testRound(1, day1, day1.Add(24*time.Hour))
	same.Series = "renamed"
	if err := p.Check(same, led, day1); err != nil {
		t.Fatalf("renamed series with the same statistics: %v", err)
	}
	// After the delay period the change is allowed.
	later := *lowered
	later.Start, later.End = day1.Add(24*time.Hour), day1.Add(48*time.Hour)
	if err := p.Check(&later, led, later.Start); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
}

func TestReleaseQuorum(t *testing.T) {
	for _, tc := range []struct{ n, k, dishonest, want int }{
		{3, 2, 0, 2}, {3, 2, 1, 3}, {5, 3, 0, 3}, {5, 3, 1, 4}, {5, 3, 2, 4}, {7, 4, 2, 5}, {7, 6, 1, 6},
	} {
		q := policy.ReleaseQuorum(tc.n, tc.k, tc.dishonest)
		if q != tc.want {
			t.Errorf("ReleaseQuorum(%d, %d, %d) = %d, want %d", tc.n, tc.k, tc.dishonest, q, tc.want)
		}
		// Any two quorums share more than the dishonest keepers.
		if 2*q-tc.n <= tc.dishonest {
			t.Errorf("N=%d, t=%d: two quorums of %d may share only dishonest keepers", tc.n, tc.dishonest, q)
		}
	}
}

func TestTooManyDishonestKeepersForTheRoundIsRefused(t *testing.T) {
	p := policy.Defaults()
	p.DishonestKeepers = 3 // 3 keepers cannot out-vote 3 dishonest ones
	cfg := firstRound()
	cfg.Keepers = cfg.Keepers[:3]
	cfg.Threshold = 2
	err := p.Check(cfg, nil, day1)
	if err == nil || !strings.Contains(err.Error(), "no release quorum can tolerate 3 dishonest keepers") {
		t.Fatalf("Check = %v", err)
	}
	p.DishonestKeepers = -1
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "dishonest_keepers") {
		t.Fatalf("Validate with -1: %v", err)
	}
}

// composedRound is testRound accounted as one composed mechanism, each σ
// the least that reaches the round's (ε, δ) on its weakest set, times
// 1 − short.
func composedRound(n uint64, start, end time.Time, short float64) *round.Config {
	cfg := testRound(n, start, end)
	roundtest.Composed(cfg, short)
	return cfg
}

// A composed round is held to its whole (ε, δ): accepted when its σ reach
// it, refused when they fall 1% short or the round's ε exceeds the node's;
// the per-statistic sensitivity floor and the delay rule still apply.
func TestComposedRoundIsCheckedAsAWhole(t *testing.T) {
	p := policy.Defaults()
	if err := p.Check(composedRound(1, day1.Add(-24*time.Hour), day1, 0), nil, day1); err != nil {
		t.Fatalf("a calibrated composed round was refused: %v", err)
	}
	short := composedRound(1, day1.Add(-24*time.Hour), day1, 0.01)
	if reason := refusal(t, p.Check(short, nil, day1)); !strings.Contains(reason, "composed privacy: ") || !strings.Contains(reason, "weaker than the claimed ε = 0.3") {
		t.Errorf("σ 1%% short: reason %q", reason)
	}
	strict := policy.Defaults()
	strict.MaxEpsilon = 0.2
	if reason := refusal(t, strict.Check(composedRound(1, day1.Add(-24*time.Hour), day1, 0), nil, day1)); !strings.Contains(reason, "round ε = 0.3 is more than this node's max_epsilon 0.2") {
		t.Errorf("ε over max_epsilon: reason %q", reason)
	}
	low := composedRound(1, day1.Add(-24*time.Hour), day1, 0)
	low.Statistics[1].Sensitivity = 10
	if reason := refusal(t, p.Check(low, nil, day1)); !strings.Contains(reason, "statistic exit_streams: its noise is calibrated for sensitivity 10, less than the catalogue's action bound 4320") {
		t.Errorf("sensitivity below the catalogue's: reason %q", reason)
	}

	// The next round moves noise from one statistic to another: as private
	// in sum, but exit_streams' σ falls 2%, so the delay rule holds it back.
	led := newLedger(t)
	if err := take(t, p, led, composedRound(1, day1.Add(-24*time.Hour), day1, 0), day1); err != nil {
		t.Fatal(err)
	}
	next := composedRound(2, day1, day1.Add(24*time.Hour), 0)
	next.Statistics[1].Sigma *= 0.98
	next.Statistics[0].Sigma *= 2
	next.Statistics[2].Sigma *= 2
	if err := noise.CheckClaim(next); err != nil {
		t.Fatalf("the moved noise does not reach the claim: %v", err)
	}
	if reason := refusal(t, p.Check(next, led, day1)); !strings.Contains(reason, "σ fell more than 1% below the baseline of round 1 (exit_streams from") {
		t.Errorf("σ moved between statistics: reason %q", reason)
	}
}

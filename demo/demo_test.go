package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/stats"
)

// TestRoundSurvivesFailedKeeperAndSilentCollectors runs the real roles over
// loopback TLS with σ = 0, one keeper dying before release (N−K = 1) and two
// collectors never reporting: the published totals must equal what the
// reporting collectors counted, exactly.
func TestRoundSurvivesFailedKeeperAndSilentCollectors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round of several seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Collectors: 6, Keepers: 3, Threshold: 2, Duration: 4 * time.Second,
		FailKeepers: 1, FailCollectors: 2, NoNoise: true, Rate: 300, Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collectors != 4 {
		t.Fatalf("%d collectors in S, want the 4 that reported", rep.Collectors)
	}
	if rep.Keepers != 2 {
		t.Fatalf("%d keeper shares, want 2 (one keeper died)", rep.Keepers)
	}
	nonzero := 0
	for _, r := range rep.Results {
		if r.NoisyTotal != r.TrueTotal {
			t.Errorf("%s/%s: published %d, true %d", r.Statistic, r.Bin, r.NoisyTotal, r.TrueTotal)
		}
		if r.TrueTotal != 0 {
			nonzero++
		}
	}
	if nonzero < len(rep.Results)/2 {
		t.Fatalf("only %d of %d counters counted anything; the workload did not reach the collectors", nonzero, len(rep.Results))
	}
	checkVerify(t, rep.OutcomePath)
}

// checkVerify checks that the outcome verifies and that changing any single
// published number makes verification fail.
func checkVerify(t *testing.T, path string) {
	t.Helper()
	o, err := outcome.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := outcome.Verify(o); err != nil {
		t.Fatalf("the published outcome does not verify: %v", err)
	}
	raw, _ := os.ReadFile(path)
	for i, st := range o.Statistics {
		for j := range st.Bins {
			for _, field := range []string{"total", "low", "high", "sigma"} {
				var m outcome.Outcome
				json.Unmarshal(raw, &m)
				b := &m.Statistics[i].Bins[j]
				switch field {
				case "total":
					b.NoisyTotal++
				case "low":
					b.CI95Low -= 1
				case "high":
					b.CI95High += 1
				case "sigma":
					m.Statistics[i].TotalSigma += 1
				}
				if err := outcome.Verify(&m); err == nil {
					t.Fatalf("changing %s of %s/%s went unnoticed", field, st.Name, b.Label)
				}
			}
		}
	}
	var m outcome.Outcome
	json.Unmarshal(raw, &m)
	m.Collectors.Count--
	if err := outcome.Verify(&m); err == nil || !strings.Contains(err.Error(), "collector") {
		t.Fatalf("changing the collector count: %v", err)
	}
}

// The demo's round config declares the sensitivity its σ is calibrated
// for, and a node whose policy accepts that sensitivity (the demo scales
// the catalogue's daily bounds to its seconds-long round) accepts the noise.
func TestPlanDeclaresWhatItsNoiseIsCalibratedFor(t *testing.T) {
	opts := Options{Dir: t.TempDir()}
	if err := opts.defaults(); err != nil {
		t.Fatal(err)
	}
	specs, err := plan(opts, 50)
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.Defaults()
	pol.MaxEpsilon, pol.MaxDelta, pol.MinCollectors, pol.MinRoundLength = opts.Epsilon, opts.Delta, 1, 0
	pol.MinSensitivity = map[string]float64{}
	for _, s := range specs {
		st, _ := stats.Lookup(s.Name)
		if s.Sensitivity <= 0 || s.Sensitivity > st.Sensitivity || s.BinsTouched != st.BinsTouched {
			t.Errorf("%s: declares sensitivity %v over %d bins; the catalogue has %v over %d", s.Name, s.Sensitivity, s.BinsTouched, st.Sensitivity, st.BinsTouched)
		}
		pol.MinSensitivity[s.Name] = s.Sensitivity
	}
	cfg := &round.Config{Series: "demo", Epsilon: opts.Epsilon, Delta: opts.Delta, Accounting: round.AccountingComposed, Statistics: specs, MinCollectors: 1,
		Start: time.Unix(0, 0), End: time.Unix(0, 0).Add(opts.Duration),
		Collectors: []round.CollectorSpec{{Fingerprint: "dc", NoiseWeight: 1}}}
	if err := pol.Check(cfg, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Spread over the 50 honest collectors it was planned for, each adds at
	// least the per-collector floor, and every node accepts the claim.
	spread := *cfg
	spread.Collectors, spread.MinCollectors = nil, 50
	for i := range 50 {
		spread.Collectors = append(spread.Collectors, round.CollectorSpec{Fingerprint: fmt.Sprint(i), NoiseWeight: 1 / math.Sqrt(50)})
	}
	if err := noise.CheckClaim(&spread); err != nil {
		t.Fatalf("the plan for 50 collectors is refused: %v", err)
	}
	// Claiming the catalogue's full daily bound would not match the noise.
	specs[0].Sensitivity *= 10
	if err := pol.Check(cfg, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "weaker than the claimed ε") {
		t.Errorf("a sensitivity the noise was not calibrated for was accepted: %v", err)
	}
}

// Rounds run back to back, and each round's totals are what S counted in
// that round's own window: with σ = 0 every published total equals the
// true total of its round, so the demo's truth of one round is not mixed
// with the next one's.
func TestRoundsRunBackToBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three rounds of several seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Collectors: 3, Keepers: 3, Duration: 2 * time.Second, Rounds: 3, NoNoise: true, Rate: 300, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.History) != 3 || rep.Failed != 0 || rep.Round != 3 {
		t.Fatalf("rounds %+v, %d failed, report of round %d; want rounds 1, 2, 3 and the report of 3", rep.History, rep.Failed, rep.Round)
	}
	firsts := map[int64]bool{}
	for i, h := range rep.History {
		if h.Round != uint64(i+1) || h.Bins == 0 || h.Covered != h.Bins {
			t.Errorf("round line %+v: want round %d with every σ = 0 total equal to its true total", h, i+1)
		}
		o, err := outcome.Read(h.OutcomePath)
		if err != nil {
			t.Fatal(err)
		}
		if o.Round != h.Round {
			t.Errorf("%s holds round %d", h.OutcomePath, o.Round)
		}
		firsts[o.Statistics[0].Bins[0].NoisyTotal] = true
	}
	if len(firsts) < 2 {
		t.Error("every round published the same first total: the rounds did not count their own windows")
	}
	if rep.History[2].OutcomePath != rep.OutcomePath {
		t.Errorf("the report's results are of %s, not of the last round", rep.OutcomePath)
	}
}

func TestRoundsOptions(t *testing.T) {
	for _, o := range []Options{{Rounds: -1}, {Rounds: 2, Attack: "thin-noise"}} {
		if err := o.defaults(); err == nil || !strings.Contains(err.Error(), "round") {
			t.Errorf("%+v: %v, want a refusal naming the rounds", o, err)
		}
	}
}

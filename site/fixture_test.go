package site_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

// fixtureStats are the statistics of the fixture rounds: a single counter,
// categories and a numeric histogram, each with its σ.
var fixtureStats = []struct {
	name  string
	sigma float64
	// base is each bin's total in round 1; later rounds grow by 10%.
	base []float64
}{
	{"relay_bytes_read", 4e6, []float64{7.7e8}},
	{"or_connections", 105, []float64{2584, 632, 659}},
	// The second-to-last bin's total is negative in every round: its
	// true count is 0 and the noise pulled it below.
	{"or_connection_lifetime", 60, []float64{900, 400, 300, 200, 120, 80, 40, -55, 10}},
}

// writeRounds writes n outcome files of series "demo" as a tally server
// publishes them, one round every 20 s, round 2 with a collector's gap and
// round 3 with a keeper's refusal. The site reads outcomes and does not
// verify them, so the signed artefacts are left empty.
func writeRounds(tb testing.TB, dir string, n int) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		o := fixtureRound(tb, uint64(i))
		b, err := json.MarshalIndent(o, "", "  ")
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("demo-%06d.json", i)), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func fixtureRound(tb testing.TB, n uint64) *outcome.Outcome {
	start := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC).Add(time.Duration(n-1) * 20 * time.Second)
	end := start.Add(20 * time.Second)
	cfg := &round.Config{Version: round.ConfigVersion, Series: "demo", Round: n, Start: start, End: end,
		Epsilon: 1, Delta: 1e-6, Threshold: 2, MinCollectors: 3}
	for x := 1; x <= 3; x++ {
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: fmt.Sprintf("%064x", 100+x), X: x})
	}
	var S []string
	for c := range 4 {
		fp := fmt.Sprintf("%064x", 200+c)
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: fp, NoiseWeight: 1.0 / 3})
		if c < 3 {
			S = append(S, fp)
		}
	}
	o := &outcome.Outcome{Version: outcome.FormatVersion, Series: "demo", Round: n, ConfigHash: fmt.Sprintf("%064x", n),
		Config: cfg, Tally: fmt.Sprintf("%064x", 1), Window: outcome.Window{Start: start, End: end},
		Collectors: outcome.Collectors{Count: len(S), Fingerprints: S}, PublishedAt: end.Add(2 * time.Second)}
	grow := math.Pow(1.1, float64(n-1))
	for _, fs := range fixtureStats {
		spec, err := stats.Resolve(fs.name, nil)
		if err != nil {
			tb.Fatal(err)
		}
		// Calibrated as the demo's rounds are: for the activity of a
		// round, not a day.
		spec.Sigma, spec.Epsilon, spec.Delta, spec.Sensitivity = fs.sigma, 1.0/3, 1e-6/3, fs.sigma/100
		cfg.Statistics = append(cfg.Statistics, spec)
		st := outcome.Statistic{Name: fs.name, Epsilon: spec.Epsilon, Delta: spec.Delta, Sigma: fs.sigma, TotalSigma: fs.sigma}
		for i, label := range spec.Bins {
			v := int64(fs.base[i] * grow)
			if fs.base[i] < 0 {
				v = int64(fs.base[i])
			}
			st.Bins = append(st.Bins, outcome.Bin{Label: label, NoisyTotal: v, CI95Low: float64(v) - 1.96*fs.sigma, CI95High: float64(v) + 1.96*fs.sigma})
		}
		if len(spec.Bins) == 0 {
			v := int64(fs.base[0] * grow)
			st.Bins = []outcome.Bin{{Label: "total", NoisyTotal: v, CI95Low: float64(v) - 1.96*fs.sigma, CI95High: float64(v) + 1.96*fs.sigma}}
		}
		o.Statistics = append(o.Statistics, st)
	}
	if n == 2 {
		o.Collectors.Gaps = map[string][]wire.Gap{S[1]: {{Start: start.Add(5 * time.Second), End: start.Add(8 * time.Second)}}}
	}
	if n == 3 {
		o.Refusals = map[string]string{fmt.Sprintf("%064x", 103): "policy: round ε = 1 is more than this node's max_epsilon 0.5"}
	}
	return o
}

package aggregator

import (
	"fmt"
	"math"
	"testing"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/noise"
)

// TestNoisyTotalsHaveTheConfiguredVariance runs rounds with the noise
// collectors really draw (exact discrete Gaussians from crypto/rand) and
// checks that the totals scatter around the true sums with the variance
// the outcome publishes. Every counter of every round is an independent
// draw.
//
// With n = 20,000 draws the sample variance of a Gaussian has relative
// standard deviation √(2/n) = 1%; the bound of 6% is six of those, and the
// mean bound is six standard errors, so a false failure has probability
// below 1e-8.
func TestNoisyTotalsHaveTheConfiguredVariance(t *testing.T) {
	const (
		sigma      = 1000.0
		collectors = 5
		weight     = 0.5
		bins       = 2000
		rounds     = 10
	)
	if testing.Short() {
		t.Skip("draws 100,000 secure Gaussian samples")
	}
	cfg := testConfig(3, 2, collectors, sigma, weight)
	labels := make([]string, bins)
	for i := range labels {
		labels[i] = fmt.Sprint(i)
	}
	cfg.Statistics = []round.StatisticSpec{{Name: "h", Bins: labels, Sigma: sigma, MaxPerCollector: 1 << 20}}
	counts, want := randomCounts(cfg, nil)
	var sum, sumSq float64
	n := 0
	for range rounds {
		out, err := LocalRound{Config: cfg, Counts: counts, Sample: noise.SampleDiscrete}.Run()
		if err != nil {
			t.Fatal(err)
		}
		for c, total := range out.Totals {
			d := float64(total - want[c])
			sum += d
			sumSq += d * d
			n++
		}
	}
	mean := sum / float64(n)
	variance := sumSq/float64(n) - mean*mean
	wantVar := noise.DiscreteTotalSigma(sigma, []float64{weight, weight, weight, weight, weight})
	wantVar *= wantVar
	if math.Abs(mean) > 6*math.Sqrt(wantVar/float64(n)) {
		t.Errorf("mean noise %.1f over %d draws, want ≈ 0 (σ_total = %.0f)", mean, n, math.Sqrt(wantVar))
	}
	if rel := math.Abs(variance/wantVar - 1); rel > 0.06 {
		t.Errorf("noise variance %.4g, want Σw²σ² = %.4g (off by %.1f%%, bound 6%%)", variance, wantVar, 100*rel)
	}
}

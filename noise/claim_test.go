package noise_test

import (
	"math"
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
	"github.com/privstats/privstats/internal/vectortest"
	"github.com/privstats/privstats/noise"
)

func TestCheckClaim(t *testing.T) {
	calibrated := func() *round.Config {
		cfg := roundtest.Config(3, 2, 4, 0, 0.5)
		cfg.Epsilon, cfg.Delta, cfg.MinCollectors = 0.3, 1e-6, 4
		for i := range cfg.Statistics {
			s := &cfg.Statistics[i]
			s.Epsilon, s.Delta, s.Sensitivity, s.BinsTouched = 0.15, 5e-7, 10, 1
			need, err := noise.Needed(*s)
			if err != nil {
				t.Fatal(err)
			}
			s.Sigma = need
		}
		return cfg
	}
	if err := noise.CheckClaim(calibrated()); err != nil {
		t.Fatalf("a calibrated round was refused: %v", err)
	}
	zero := calibrated()
	for i := range zero.Statistics {
		zero.Statistics[i].Sigma = 0
	}
	if err := noise.CheckClaim(zero); err != nil {
		t.Fatalf("a zero-noise round claims nothing and is for the policy to judge: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(c *round.Config)
		want string
	}{
		"σ 1% short":         {func(c *round.Config) { c.Statistics[0].Sigma *= 0.99 }, "σ = "},
		"smaller ε claimed":  {func(c *round.Config) { c.Statistics[1].Epsilon /= 2 }, "is less than the"},
		"no sensitivity":     {func(c *round.Config) { c.Statistics[0].Sensitivity = 0 }, "no sensitivity declared"},
		"ε over the budget":  {func(c *round.Config) { c.Epsilon = 0.2 }, "ε add up to 0.3"},
		"δ over the budget":  {func(c *round.Config) { c.Delta = 5e-7 }, "δ add up to"},
		"bins touched unset": {func(c *round.Config) { c.Statistics[1].BinsTouched = 0 }, "no sensitivity declared"},
	} {
		cfg := calibrated()
		tc.edit(cfg)
		err := noise.CheckClaim(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "claims more privacy than its noise gives") {
			t.Errorf("%s: CheckClaim = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// The vector round is one every node accepts.
func TestVectorRoundIsCalibrated(t *testing.T) {
	if err := noise.CheckClaim(vectortest.Config()); err != nil {
		t.Fatal(err)
	}
}

// With 1,000 collectors whose per-collector noise w·σ is 0.16, 0.5 or 1,
// every node refuses the round: the sum's privacy cannot be proven (and at
// 0.16 the draws are almost all 0). At 5 it is accepted, and
// TestTotalsVariance shows the totals' variance is the published σ².
func TestSmallPerCollectorNoiseIsRefused(t *testing.T) {
	const n = 1000
	for _, s := range []float64{0.16, 0.5, 1, 5} {
		cfg := roundtest.Config(3, 2, n, 0, 1/math.Sqrt(n))
		cfg.Epsilon, cfg.Delta, cfg.MinCollectors = 0.2, 2e-6, n
		cfg.Statistics = cfg.Statistics[:1]
		st := &cfg.Statistics[0]
		st.Sigma, st.Epsilon, st.Delta, st.Sensitivity, st.BinsTouched, st.MaxPerCollector = s*math.Sqrt(n), 0.2, 2e-6, 1, 1, 1<<20
		err := noise.CheckClaim(cfg)
		switch {
		case s < noise.MinCollectorSigma && (err == nil || !strings.Contains(err.Error(), "too little for the sum's privacy to be proven")):
			t.Errorf("per-collector σ %v: CheckClaim = %v, want a refusal", s, err)
		case s >= noise.MinCollectorSigma && err != nil:
			t.Errorf("per-collector σ %v: refused: %v", s, err)
		}
	}
}

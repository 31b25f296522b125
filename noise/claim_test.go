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
	wantRefused(t, calibrated, map[string]edit{
		"σ 1% short":         {func(c *round.Config) { c.Statistics[0].Sigma *= 0.99 }, "σ = "},
		"smaller ε claimed":  {func(c *round.Config) { c.Statistics[1].Epsilon /= 2 }, "is less than the"},
		"no sensitivity":     {func(c *round.Config) { c.Statistics[0].Sensitivity = 0 }, "no sensitivity declared"},
		"ε over the budget":  {func(c *round.Config) { c.Epsilon = 0.2 }, "ε add up to 0.3"},
		"δ over the budget":  {func(c *round.Config) { c.Delta = 5e-7 }, "δ add up to"},
		"bins touched unset": {func(c *round.Config) { c.Statistics[1].BinsTouched = 0 }, "no sensitivity declared"},
	})
}

// edit changes a calibrated round so that CheckClaim must refuse it with
// an error containing want.
type edit struct {
	edit func(c *round.Config)
	want string
}

func wantRefused(t *testing.T, calibrated func() *round.Config, edits map[string]edit) {
	t.Helper()
	for name, tc := range edits {
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
	if err := noise.CheckClaim(vectortest.ComposedConfig()); err != nil {
		t.Fatalf("composed: %v", err)
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

// A composed round claims only the round's (ε, δ): calibrated to it on the
// weakest releasable set it is accepted, and every way of claiming more
// than the noise gives is refused with the reason.
func TestCheckClaimComposed(t *testing.T) {
	calibrated := func() *round.Config {
		cfg := roundtest.Config(3, 2, 6, 0, 0.5)
		cfg.Epsilon, cfg.Delta, cfg.MinCollectors = 0.3, 1e-6, 4
		for i := range cfg.Statistics {
			s := &cfg.Statistics[i]
			s.Sigma, s.Sensitivity, s.BinsTouched = 1000*float64(i+1), 10, 1
		}
		roundtest.Composed(cfg, 0)
		return cfg
	}
	cfg := calibrated()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := noise.CheckClaim(cfg); err != nil {
		t.Fatalf("a calibrated composed round was refused: %v", err)
	}
	// The weakest set is four collectors of weight ½: Σw² = 1, so the
	// continuous μ of the σ is just below the exact curve's for (ε, δ).
	mu, err := noise.GDPMu(cfg.Epsilon, cfg.Delta)
	if err != nil {
		t.Fatal(err)
	}
	var mu2 float64
	for _, s := range cfg.Statistics {
		mu2 += s.Sensitivity * s.Sensitivity * float64(s.BinsTouched) / (s.Sigma * s.Sigma)
	}
	if r := math.Sqrt(mu2) / mu; r > 1 || r < 0.999 {
		t.Errorf("calibrated σ give μ = %g, %g times the exact curve's %g", math.Sqrt(mu2), r, mu)
	}
	wantRefused(t, calibrated, map[string]edit{
		"every σ 1% short":                {func(c *round.Config) { roundtest.Composed(c, 0.01) }, "weaker than the claimed ε = 0.3"},
		"one σ 1% short":                  {func(c *round.Config) { c.Statistics[1].Sigma *= 0.99 }, "weaker than the claimed ε = 0.3"},
		"a smaller ε":                     {func(c *round.Config) { c.Epsilon = 0.29 }, "weaker than the claimed ε = 0.29"},
		"a smaller δ":                     {func(c *round.Config) { c.Delta = 1e-7 }, "-private, weaker than"},
		"no sensitivity":                  {func(c *round.Config) { c.Statistics[0].Sensitivity = 0 }, "no sensitivity declared"},
		"a larger sensitivity undeclared": {func(c *round.Config) { c.Statistics[0].Sensitivity = 11 }, "every σ would have to rise by"},
	})
	// Its statistics carry no budget of their own.
	own := calibrated()
	own.Statistics[0].Epsilon = 0.1
	if err := own.Validate(); err == nil || !strings.Contains(err.Error(), "composed round") {
		t.Errorf("a composed round with a statistic's own ε validated: %v", err)
	}
}

package outcome

import (
	"math"
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/round/roundtest"
	"github.com/privstats/privstats/noise"
)

// calibrated is a round whose two statistics get exactly the σ their
// (ε, δ) need, spread over collectors with the given weight.
func calibrated(t *testing.T, collectors int, w float64) *Outcome {
	t.Helper()
	cfg := roundtest.Config(3, 2, collectors, 0, w)
	cfg.Epsilon, cfg.Delta = 0.3, 1e-6
	for i := range cfg.Statistics {
		s := &cfg.Statistics[i]
		s.Epsilon, s.Delta, s.Sensitivity, s.BinsTouched = 0.15, 5e-7, 10, 1
		need, err := noise.Sigma(s.Epsilon, s.Delta, s.BinsTouched, s.Sensitivity)
		if err != nil {
			t.Fatal(err)
		}
		s.Sigma = need
	}
	o := &Outcome{Config: cfg}
	for _, c := range cfg.Collectors {
		o.Collectors.Fingerprints = append(o.Collectors.Fingerprints, c.Fingerprint)
	}
	return o
}

func TestCheckPrivacy(t *testing.T) {
	// Four collectors of weight ½ carry exactly σ² between them.
	p := CheckPrivacy(calibrated(t, 4, 0.5))
	if !p.Private {
		t.Fatalf("a calibrated round is not private: %v", p.Why)
	}
	// Sensitivity 10 is far below relay_bytes_read's daily action bound:
	// private as claimed, with a note that the claim covers less.
	if n := p.Statistics[0].Note; !strings.Contains(n, "below the catalogue's action bound 2.21459e+08") {
		t.Errorf("note %q, want the catalogue's bound named", n)
	}
	for name, tc := range map[string]struct {
		edit func(o *Outcome)
		want string
	}{
		"no noise": {func(o *Outcome) {
			for i := range o.Config.Statistics {
				o.Config.Statistics[i].Sigma = 0
			}
		}, "no noise was added"},
		"σ short of what ε buys": {func(o *Outcome) { o.Config.Statistics[0].Sigma *= 0.99 }, "weaker than the claimed ε = 0.15"},
		"a smaller ε claimed":    {func(o *Outcome) { o.Config.Statistics[1].Epsilon /= 2 }, "weaker than the claimed ε = 0.075"},
		"per-collector σ below the floor": {func(o *Outcome) {
			for i := range o.Config.Collectors {
				o.Config.Collectors[i].NoiseWeight = 1e-3
			}
		}, "too little for the sum's privacy to be proven"},
		"S carries too little noise": {func(o *Outcome) {
			o.Collectors.Fingerprints = o.Collectors.Fingerprints[:3]
		}, "carries noise σ"},
		"no sensitivity":       {func(o *Outcome) { o.Config.Statistics[0].Sensitivity = 0 }, "no sensitivity declared"},
		"budget overspent (ε)": {func(o *Outcome) { o.Config.Epsilon = 0.2 }, "ε add up to 0.3"},
		"budget overspent (δ)": {func(o *Outcome) { o.Config.Delta = 5e-7 }, "δ add up to"},
		"ε is not a number":    {func(o *Outcome) { o.Config.Statistics[0].Epsilon = math.NaN() }, "ε"},
	} {
		o := calibrated(t, 4, 0.5)
		tc.edit(o)
		p := CheckPrivacy(o)
		if p.Private || !strings.Contains(strings.Join(p.Why, "; "), tc.want) {
			t.Errorf("%s: private=%v why=%q, want not private because %q", name, p.Private, p.Why, tc.want)
		}
	}
}

// verify holds a composed round to its whole (ε, δ) over the released S.
func TestCheckPrivacyComposed(t *testing.T) {
	composed := func(short float64) *Outcome {
		o := calibrated(t, 4, 0.5)
		o.Config.MinCollectors = 4
		roundtest.Composed(o.Config, short)
		return o
	}
	p := CheckPrivacy(composed(0))
	if !p.Private || !p.Composed {
		t.Fatalf("a calibrated composed round: private=%v composed=%v why=%v", p.Private, p.Composed, p.Why)
	}
	if !(p.Achieved <= 0.3*(1+1e-9)) || p.Achieved < 0.29 || p.Mu <= 0 {
		t.Errorf("S's noise gives μ = %g, ε = %g; want just within the claimed 0.3", p.Mu, p.Achieved)
	}
	if m0, m1 := p.Statistics[0].Mu, p.Statistics[1].Mu; math.Abs(math.Hypot(m0, m1)-p.Mu) > 1e-9*p.Mu {
		t.Errorf("shares μ_i %g, %g do not compose to μ = %g", m0, m1, p.Mu)
	}
	for name, tc := range map[string]struct {
		edit func(o *Outcome)
		want string
	}{
		"σ 1% short": {func(o *Outcome) {
			for i := range o.Config.Statistics {
				o.Config.Statistics[i].Sigma *= 0.99
			}
		}, "weaker than the claimed ε = 0.3"},
		"S carries too little noise": {func(o *Outcome) { o.Collectors.Fingerprints = o.Collectors.Fingerprints[:3] }, "composed over 3 collectors"},
		"a smaller ε claimed":        {func(o *Outcome) { o.Config.Epsilon = 0.25 }, "weaker than the claimed ε = 0.25"},
		"no sensitivity":             {func(o *Outcome) { o.Config.Statistics[1].Sensitivity = 0 }, "no sensitivity declared"},
		"per-collector σ below the floor": {func(o *Outcome) {
			for i := range o.Config.Collectors {
				o.Config.Collectors[i].NoiseWeight = 1e-3
			}
		}, "the sum's privacy cannot be proven"},
	} {
		o := composed(0)
		tc.edit(o)
		p := CheckPrivacy(o)
		if p.Private || !strings.Contains(strings.Join(p.Why, "; "), tc.want) {
			t.Errorf("%s: private=%v why=%q, want not private because %q", name, p.Private, p.Why, tc.want)
		}
	}
}

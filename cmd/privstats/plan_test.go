package main

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/noise"
)

// planOutput is what plan --json prints, as a script reads it.
type planOutput struct {
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	Statistics []struct {
		noise.ComposedAllocation
		LinearRelativeError float64 `json:"linear_relative_error"`
	} `json:"statistics"`
}

// The σ and sensitivities plan --json prints compose, μ = √Σ(s_i/σ_i)², to
// at most the round's (ε, δ) on the exact GDP curve; the relative errors
// are equal to 0.1%; and the worst is within 5% of the exact-composition
// optimum √Σ(s_i/E_i)²/μ(ε, δ), computed here from the plan file alone.
func TestPlanJSONComposesToTheBudget(t *testing.T) {
	for _, tc := range []struct {
		file       string
		minGain    float64 // over the linear split's worst relative error
		wantWorstA float64 // the worst relative error lies in [A, B]
		wantWorstB float64
	}{
		{"../../testdata/privacy.yaml", 1.4, 0.0185, 0.0195},
		{"../../testdata/privacy-catalogue.yaml", 1.5, 0.035, 0.037},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"plan", "--json", tc.file}, &out, &errb); code != 0 {
			t.Fatalf("%s: plan --json exited %d: %s", tc.file, code, errb.String())
		}
		var got planOutput
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v\n%s", tc.file, err, out.String())
		}
		plan, err := config.LoadPrivacyPlan(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if got.Epsilon != plan.Epsilon || got.Delta != plan.Delta || len(got.Statistics) != len(plan.Statistics) {
			t.Fatalf("%s: plan for ε = %v, δ = %v over %d statistics, the file has %v, %v, %d", tc.file, got.Epsilon, got.Delta, len(got.Statistics), plan.Epsilon, plan.Delta, len(plan.Statistics))
		}
		var mu2, opt2, lo, hi, worstLinear float64
		lo = math.Inf(1)
		for i, s := range got.Statistics {
			want := plan.Statistics[i]
			if s.Name != want.Name || s.Sensitivity != want.Sensitivity || s.BinsTouched != want.BinsTouched {
				t.Errorf("%s: statistic %d is %s with sensitivity %v over %d, the file says %s, %v over %d", tc.file, i, s.Name, s.Sensitivity, s.BinsTouched, want.Name, want.Sensitivity, want.BinsTouched)
			}
			l2 := s.Sensitivity * math.Sqrt(float64(s.BinsTouched))
			mu2 += (l2 / s.Sigma) * (l2 / s.Sigma)
			opt2 += (l2 / want.Estimate) * (l2 / want.Estimate)
			if r := s.Sigma / want.Estimate; math.Abs(r-s.ExpectedRelativeError) > 1e-12*r {
				t.Errorf("%s: %s: relative error %v, σ/estimate = %v", tc.file, s.Name, s.ExpectedRelativeError, r)
			}
			if math.Abs(s.Mu-l2/s.Sigma) > 1e-12*s.Mu {
				t.Errorf("%s: %s: μ_i = %v, s/σ = %v", tc.file, s.Name, s.Mu, l2/s.Sigma)
			}
			lo, hi = min(lo, s.ExpectedRelativeError), max(hi, s.ExpectedRelativeError)
			worstLinear = max(worstLinear, s.LinearRelativeError)
		}
		if d := noise.GDPDelta(math.Sqrt(mu2), got.Epsilon); !(d <= got.Delta) {
			t.Errorf("%s: the printed σ compose to μ = %v, δ = %v at ε = %v, more than %v", tc.file, math.Sqrt(mu2), d, got.Epsilon, got.Delta)
		}
		if hi > lo*1.001 {
			t.Errorf("%s: relative errors from %v to %v, not equal to 0.1%%", tc.file, lo, hi)
		}
		mu, err := noise.GDPMu(got.Epsilon, got.Delta)
		if err != nil {
			t.Fatal(err)
		}
		optimum := math.Sqrt(opt2) / mu
		if hi > 1.05*optimum || hi < optimum*(1-1e-9) {
			t.Errorf("%s: worst relative error %v, the exact-composition optimum is %v", tc.file, hi, optimum)
		}
		if hi < tc.wantWorstA || hi > tc.wantWorstB {
			t.Errorf("%s: worst relative error %.4g, want it in [%v, %v]", tc.file, hi, tc.wantWorstA, tc.wantWorstB)
		}
		if worstLinear < tc.minGain*hi {
			t.Errorf("%s: the linear split's worst relative error %v is less than %v times the composed %v", tc.file, worstLinear, tc.minGain, hi)
		}
	}
}

package noise

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	dpnoise "github.com/google/differential-privacy/go/v3/noise"
)

// privcountStats resembles a PrivCount deployment: counts of very different
// sizes and sensitivities sharing one round.
var privcountStats = []StatisticBudget{
	{Name: "exit_streams", L0: 1, LInf: 20, Estimate: 2e9},
	{Name: "exit_bytes", L0: 1, LInf: 1e8, Estimate: 5e14},
	{Name: "entry_connections", L0: 1, LInf: 12, Estimate: 1e7},
	{Name: "circuits_by_length", L0: 2, LInf: 500, Estimate: 1e8},
	{Name: "onion_descriptor_stores", L0: 10, LInf: 3, Estimate: 5e4},
}

const (
	roundEpsilon = 0.3
	roundDelta   = 1e-11
)

func TestAllocateEqualisesRelativeError(t *testing.T) {
	plan, err := Allocate(roundEpsilon, roundDelta, privcountStats)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(privcountStats) {
		t.Fatalf("%d allocations for %d statistics", len(plan), len(privcountStats))
	}
	k := float64(len(privcountStats))
	var epsSum float64
	minRel, maxRel := math.Inf(1), 0.0
	minTight, maxTight := math.Inf(1), 0.0
	for i, a := range plan {
		st := privcountStats[i]
		if a.Name != st.Name {
			t.Errorf("allocation %d is for %q, want %q", i, a.Name, st.Name)
		}
		if a.Delta != roundDelta/k {
			t.Errorf("%s: δ = %v, want an even share %v", a.Name, a.Delta, roundDelta/k)
		}
		if want := dpnoise.SigmaForGaussian(st.L0, st.LInf, a.Epsilon, a.Delta); a.Sigma != want {
			t.Errorf("%s: σ = %v, but SigmaForGaussian(ε_i, δ_i) = %v", a.Name, a.Sigma, want)
		}
		if a.ExpectedRelativeError != a.Sigma/st.Estimate {
			t.Errorf("%s: relative error %v, want σ/estimate = %v", a.Name, a.ExpectedRelativeError, a.Sigma/st.Estimate)
		}
		if a.CI95HalfWidth != z95*a.Sigma {
			t.Errorf("%s: 95%% half-width %v, want 1.96σ = %v", a.Name, a.CI95HalfWidth, z95*a.Sigma)
		}
		if a.ClassicSigma != ClassicSigma(a.Epsilon, a.Delta, st.L0, st.LInf) || a.ClassicSigma < a.Sigma {
			t.Errorf("%s: classic σ %v, want ClassicSigma(ε_i, δ_i) ≥ σ = %v", a.Name, a.ClassicSigma, a.Sigma)
		}
		epsSum += a.Epsilon
		minRel, maxRel = min(minRel, a.ExpectedRelativeError), max(maxRel, a.ExpectedRelativeError)
		tight := tightSigma(a.Epsilon, a.Delta, l2Sensitivity(st.L0, st.LInf)) / st.Estimate
		minTight, maxTight = min(minTight, tight), max(maxTight, tight)
		t.Logf("%-24s ε=%.5f σ=%.4g relerr=%.4g classic σ=%.4g", a.Name, a.Epsilon, a.Sigma, a.ExpectedRelativeError, a.ClassicSigma)
	}
	if math.Abs(epsSum-roundEpsilon) > 1e-12*roundEpsilon {
		t.Errorf("Σε_i = %.17g, want %v", epsSum, roundEpsilon)
	}
	// On the exact analytic Gaussian curve the split equalises relative
	// error; SigmaForGaussian then rounds each σ up by at most 0.1%.
	if maxTight > minTight*(1+1e-6) {
		t.Errorf("exact relative errors range over [%v, %v], want equal within 1e-6", minTight, maxTight)
	}
	if maxRel > minRel*(1+2e-3) {
		t.Errorf("reported relative errors range over [%v, %v], want equal within SigmaForGaussian's 0.1%%", minRel, maxRel)
	}
}

func TestAllocateBeatsEvenSplitOnWorstError(t *testing.T) {
	// Equal relative errors minimise the worst one: any other split of ε
	// must take budget from some statistic and raise its error.
	plan, err := Allocate(roundEpsilon, roundDelta, privcountStats)
	if err != nil {
		t.Fatal(err)
	}
	even, err := AllocateEven(roundEpsilon, roundDelta, privcountStats)
	if err != nil {
		t.Fatal(err)
	}
	worst := func(as []Allocation) float64 {
		w := 0.0
		for _, a := range as {
			w = max(w, a.ExpectedRelativeError)
		}
		return w
	}
	if worst(plan) >= worst(even) {
		t.Errorf("worst relative error %v with the planner, %v with an even split", worst(plan), worst(even))
	}
	t.Logf("worst relative error: planner %.4g, even split %.4g", worst(plan), worst(even))
	// The statistic with the smallest estimate relative to its noise needs
	// the most budget.
	if plan[4].Epsilon <= even[4].Epsilon {
		t.Errorf("onion_descriptor_stores got ε = %v, no more than the even share %v", plan[4].Epsilon, even[4].Epsilon)
	}
}

func TestAllocateEven(t *testing.T) {
	even, err := AllocateEven(roundEpsilon, roundDelta, privcountStats)
	if err != nil {
		t.Fatal(err)
	}
	k := float64(len(privcountStats))
	for i, a := range even {
		st := privcountStats[i]
		if a.Epsilon != roundEpsilon/k || a.Delta != roundDelta/k {
			t.Errorf("%s: (ε, δ) = (%v, %v), want (%v, %v)", a.Name, a.Epsilon, a.Delta, roundEpsilon/k, roundDelta/k)
		}
		if want := dpnoise.SigmaForGaussian(st.L0, st.LInf, a.Epsilon, a.Delta); a.Sigma != want {
			t.Errorf("%s: σ = %v, want %v", a.Name, a.Sigma, want)
		}
		if a.ClassicSigma < a.Sigma {
			t.Errorf("%s: classic σ %v below analytic %v", a.Name, a.ClassicSigma, a.Sigma)
		}
	}
}

func TestAllocateSpecialCases(t *testing.T) {
	one := []StatisticBudget{{Name: "exit_streams", L0: 1, LInf: 20, Estimate: 2e9}}
	plan, err := Allocate(roundEpsilon, roundDelta, one)
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Epsilon != roundEpsilon || plan[0].Delta != roundDelta {
		t.Errorf("a lone statistic gets (%v, %v), want the whole budget", plan[0].Epsilon, plan[0].Delta)
	}

	// Statistics alike in sensitivity and estimate share ε evenly.
	same := []StatisticBudget{
		{Name: "a", L0: 2, LInf: 5, Estimate: 1e6},
		{Name: "b", L0: 2, LInf: 5, Estimate: 1e6},
		{Name: "c", L0: 2, LInf: 5, Estimate: 1e6},
	}
	plan, err = Allocate(1, 1e-9, same)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range plan {
		if math.Abs(a.Epsilon-1.0/3) > 1e-12 {
			t.Errorf("%s: ε = %v, want 1/3", a.Name, a.Epsilon)
		}
	}

	// Scaling every estimate and sensitivity together changes nothing.
	scaled := make([]StatisticBudget, len(privcountStats))
	for i, st := range privcountStats {
		st.LInf *= 8
		st.Estimate *= 8
		scaled[i] = st
	}
	a, _ := Allocate(roundEpsilon, roundDelta, privcountStats)
	b, err := Allocate(roundEpsilon, roundDelta, scaled)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if math.Abs(a[i].Epsilon-b[i].Epsilon) > 1e-9*a[i].Epsilon {
			t.Errorf("%s: ε = %v, but %v with sensitivity and estimate ×8", a[i].Name, a[i].Epsilon, b[i].Epsilon)
		}
	}
}

func TestAllocateTokenBudgetForStatisticsDeltaCovers(t *testing.T) {
	// With δ = 1e-3 split two ways, noise of about 800·s hides a statistic
	// with no ε at all. Aiming "huge" at the relative error of "small" would
	// give it far more noise than that, so it needs no ε: it gets a token
	// share and comes out more accurate than "small".
	stats := []StatisticBudget{
		{Name: "small", L0: 1, LInf: 1, Estimate: 100},
		{Name: "huge", L0: 1, LInf: 1, Estimate: 1e12},
	}
	plan, err := Allocate(1, 1e-3, stats)
	if err != nil {
		t.Fatal(err)
	}
	small, huge := plan[0], plan[1]
	if huge.Epsilon > 2*tokenEpsilonShare {
		t.Errorf("huge got ε = %v, want a token share", huge.Epsilon)
	}
	if huge.ExpectedRelativeError >= small.ExpectedRelativeError {
		t.Errorf("huge has relative error %v, small %v", huge.ExpectedRelativeError, small.ExpectedRelativeError)
	}
	if sum := small.Epsilon + huge.Epsilon; math.Abs(sum-1) > 1e-12 {
		t.Errorf("Σε_i = %v, want 1", sum)
	}
}

// Random rounds, from a single statistic to a dozen, with sensitivities,
// estimates and budgets over many orders of magnitude: the plan always spends
// exactly ε, and every statistic that needs ε gets the same exact relative
// error.
func TestAllocateRandomRounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 60 {
		stats := make([]StatisticBudget, 1+rng.IntN(12))
		for i := range stats {
			lInf := math.Pow(10, rng.Float64()*8-1)
			stats[i] = StatisticBudget{
				Name:     fmt.Sprint("stat", i),
				L0:       1 + rng.Int64N(50),
				LInf:     lInf,
				Estimate: lInf * math.Pow(10, 2+rng.Float64()*7),
			}
		}
		epsilon := math.Pow(10, rng.Float64()*3-2)
		delta := math.Pow(10, -1-rng.Float64()*13)
		plan, err := Allocate(epsilon, delta, stats)
		if err != nil {
			t.Fatalf("trial %d: Allocate(%v, %v, %v): %v", trial, epsilon, delta, stats, err)
		}
		var sum, tokenMax float64
		lo, hi := math.Inf(1), 0.0
		for i, a := range plan {
			st := stats[i]
			if want, _ := Sigma(a.Epsilon, a.Delta, st.L0, st.LInf); a.Sigma != want {
				t.Errorf("trial %d: %s: σ = %v, want Sigma(ε_i, δ_i) = %v", trial, a.Name, a.Sigma, want)
			}
			sum += a.Epsilon
			r := tightSigma(a.Epsilon, a.Delta, l2Sensitivity(st.L0, st.LInf)) / st.Estimate
			if a.Epsilon < 2*tokenEpsilonShare*epsilon {
				tokenMax = max(tokenMax, r)
				continue
			}
			lo, hi = min(lo, r), max(hi, r)
		}
		if math.Abs(sum-epsilon) > 1e-12*epsilon {
			t.Errorf("trial %d: Σε_i = %.17g, want %v", trial, sum, epsilon)
		}
		if hi > lo*(1+1e-6) {
			t.Errorf("trial %d: exact relative errors range over [%v, %v]", trial, lo, hi)
		}
		if tokenMax > hi {
			t.Errorf("trial %d: a statistic with token ε has relative error %v, above the common %v", trial, tokenMax, hi)
		}
	}
}

func TestAllocateRejects(t *testing.T) {
	good := StatisticBudget{Name: "exit_streams", L0: 1, LInf: 20, Estimate: 2e9}
	with := func(f func(*StatisticBudget)) []StatisticBudget {
		st := good
		f(&st)
		return []StatisticBudget{good, st}
	}
	tests := []struct {
		name           string
		epsilon, delta float64
		stats          []StatisticBudget
		want           string
	}{
		{"no statistics", 1, 1e-9, nil, "no statistics"},
		{"zero ε", 0, 1e-9, []StatisticBudget{good}, "round budget: ε = 0"},
		{"δ of 1", 1, 1, []StatisticBudget{good}, "round budget: δ = 1"},
		{"duplicate", 1, 1e-9, []StatisticBudget{good, good}, `"exit_streams" is listed twice`},
		{"no name", 1, 1e-9, with(func(s *StatisticBudget) { s.Name = "" }), "no name"},
		{"zero estimate", 1, 1e-9, with(func(s *StatisticBudget) { s.Name, s.Estimate = "x", 0 }), `statistic "x": estimate = 0`},
		{"negative estimate", 1, 1e-9, with(func(s *StatisticBudget) { s.Name, s.Estimate = "x", -4 }), `statistic "x": estimate = -4`},
		{"NaN estimate", 1, 1e-9, with(func(s *StatisticBudget) { s.Name, s.Estimate = "x", math.NaN() }), `statistic "x": estimate = NaN`},
		{"zero L0", 1, 1e-9, with(func(s *StatisticBudget) { s.Name, s.L0 = "x", 0 }), `statistic "x": sensitivity L0 = 0`},
		{"zero L∞", 1, 1e-9, with(func(s *StatisticBudget) { s.Name, s.LInf = "x", 0 }), `statistic "x": sensitivity L∞ = 0`},
	}
	for _, tt := range tests {
		for fn, allocate := range map[string]func(float64, float64, []StatisticBudget) ([]Allocation, error){
			"Allocate": Allocate, "AllocateEven": AllocateEven,
		} {
			_, err := allocate(tt.epsilon, tt.delta, tt.stats)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %s error = %v, want one mentioning %q", tt.name, fn, err, tt.want)
			}
		}
	}
}

func BenchmarkAllocate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Allocate(roundEpsilon, roundDelta, privcountStats); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRaiseToFloor(t *testing.T) {
	alloc := []Allocation{
		{Name: "small", Sigma: 50, ExpectedRelativeError: 0.01, CI95HalfWidth: 98},
		{Name: "large", Sigma: 500, ExpectedRelativeError: 0.01, CI95HalfWidth: 980},
	}
	raised := RaiseToFloor(alloc, 100)
	if len(raised) != 1 || raised[0] != "small" {
		t.Fatalf("raised %v, want [small]", raised)
	}
	if a := alloc[0]; a.Sigma != 100 || a.ExpectedRelativeError != 0.02 || a.CI95HalfWidth != 196 {
		t.Errorf("small after raising: %+v", a)
	}
	if a := alloc[1]; a.Sigma != 500 {
		t.Errorf("large was changed: %+v", a)
	}
}

package noise

import (
	"math"
	"testing"
)

// GDPDelta is the δ of the privacy-loss law of a μ-GDP mechanism, whose
// loss is N(μ²/2, μ²): δ(ε) = E[(1 − e^(ε−L))₊]. Checked against that
// integral by Simpson's rule, which shares no code with the closed form.
func TestGDPDeltaIsThePrivacyLossIntegral(t *testing.T) {
	integral := func(mu, eps float64) float64 {
		m, s := mu*mu/2, mu
		lo, hi := eps, m+40*s
		if lo >= hi {
			return 0
		}
		const n = 200000
		h := (hi - lo) / n
		f := func(l float64) float64 {
			z := (l - m) / s
			return -math.Expm1(eps-l) * math.Exp(-z*z/2) / (s * math.Sqrt(2*math.Pi))
		}
		sum := f(lo) + f(hi)
		for i := 1; i < n; i++ {
			w := 2.0
			if i%2 == 1 {
				w = 4
			}
			sum += w * f(lo+float64(i)*h)
		}
		return sum * h / 3
	}
	for _, mu := range []float64{0.05, 0.077, 0.3, 1, 3} {
		for _, eps := range []float64{0, 0.01, 0.3, 1, 3} {
			got, want := GDPDelta(mu, eps), integral(mu, eps)
			if want < 1e-250 {
				continue
			}
			if math.Abs(got-want) > 1e-7*want {
				t.Errorf("GDPDelta(μ=%g, ε=%g) = %.12g, the integral gives %.12g", mu, eps, got, want)
			}
		}
	}
}

// GDPMu and GDPEpsilon invert the curve, far into the tails, and for one
// statistic agree with Google's analytic Gaussian (which rounds σ up by at
// most 0.1%).
func TestGDPMuAndEpsilonInvertTheCurve(t *testing.T) {
	for _, eps := range []float64{0.01, 0.3, 1, 5, 20} {
		for _, delta := range []float64{1e-3, 1e-6, 1e-12, 1e-30, 1e-100} {
			mu, err := GDPMu(eps, delta)
			if err != nil {
				t.Fatalf("GDPMu(%g, %g): %v", eps, delta, err)
			}
			if d := GDPDelta(mu, eps); !(d <= delta) {
				t.Errorf("GDPMu(%g, %g) = %g gives δ = %g", eps, delta, mu, d)
			}
			if d := GDPDelta(mu*(1+1e-9), eps); !(d > delta) {
				t.Errorf("GDPMu(%g, %g) = %g is not the largest: %g more gives δ = %g", eps, delta, mu, 1e-9, d)
			}
			back, err := GDPEpsilon(mu, delta)
			if err != nil || math.Abs(back-eps) > 1e-9*eps {
				t.Errorf("GDPEpsilon(GDPMu(%g, %g)) = %g, %v", eps, delta, back, err)
			}
			if eps > 5 || delta < 1e-30 {
				continue // outside what SigmaForGaussian bisects reliably
			}
			sigma, err := Sigma(eps, delta, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r := mu * sigma; r < 1-1e-12 || r > 1.001+1e-9 {
				t.Errorf("ε = %g, δ = %g: Google's σ = %g is %g times 1/μ; want within [1, 1.001]", eps, delta, sigma, r)
			}
		}
	}
}

func TestLogNormalTailJoinsTheSeries(t *testing.T) {
	for x := 20.0; x <= 37; x += 0.5 {
		direct := math.Log(math.Erfc(x/math.Sqrt2) / 2)
		x2 := x * x
		series := -x2/2 - math.Log(x) - 0.5*math.Log(2*math.Pi) + math.Log(1-1/x2+3/(x2*x2)-15/(x2*x2*x2))
		if math.Abs(direct-series) > 1e-10*math.Abs(direct) {
			t.Errorf("x = %g: ln Φ(−x) = %.15g by erfc, %.15g by the series", x, direct, series)
		}
	}
	if v := logNormalTail(1000); math.IsInf(v, 0) || math.IsNaN(v) || v > -5e5 {
		t.Errorf("ln Φ(−1000) = %g", v)
	}
}

// lossLaw is the privacy-loss law of the pair (d + Y, Y), Y with pmf p
// (any centre): the losses ln(P/Q) with their mass under P, and the
// P-mass where Q is 0 (an infinite loss).
func lossLaw(p []float64, d int) (loss, mass []float64, inf float64) {
	for y := range len(p) + d {
		var P, Q float64
		if y-d >= 0 && y-d < len(p) {
			P = p[y-d]
		}
		if y < len(p) {
			Q = p[y]
		}
		switch {
		case P == 0:
		case Q == 0:
			inf += P
		default:
			loss, mass = append(loss, math.Log(P/Q)), append(mass, P)
		}
	}
	return loss, mass, inf
}

// exactDelta is the δ at ε of the product of the pairs: E_P[(1 − e^(ε−L))₊]
// with L the sum of independent losses, by enumeration.
func exactDelta(eps float64, laws [][2][]float64, infs []float64) float64 {
	var rec func(i int, l, m float64) float64
	rec = func(i int, l, m float64) float64 {
		if i == len(laws) {
			if l <= eps {
				return 0
			}
			return m * -math.Expm1(eps-l)
		}
		var sum float64
		for j, x := range laws[i][0] {
			if w := m * laws[i][1][j]; w > 1e-22 {
				sum += rec(i+1, l+x, w)
			}
		}
		return sum
	}
	// An infinite loss contributes its whole P-mass.
	pFinite := 1.0
	for _, inf := range infs {
		pFinite *= 1 - inf
	}
	return rec(0, 0, 1) + (1 - pFinite)
}

// The round's bound is sound: for two statistics, one summed over two
// collectors (σ 3 and 4, L∞ = 2) and one over a single collector on two
// counters (σ 6, L∞ = 1), the exact δ of the discrete release at the ε
// RoundEpsilon gives never exceeds δ, for the worst shifts and smaller
// ones; and the ε is nearly the least, the exact δ at 0.96·ε being above δ.
func TestRoundEpsilonIsSound(t *testing.T) {
	p3, r3 := dgPMF(9)
	p4, r4 := dgPMF(16)
	sumA, _ := convolve(p3, r3, p4, r4)
	pB, _ := dgPMF(36)
	stats := []RoundStatistic{
		{Name: "a", Sigmas: []float64{3, 4}, L0: 1, LInf: 2.5},
		{Name: "b", Sigmas: []float64{6}, L0: 2, LInf: 1},
	}
	for _, delta := range []float64{1e-2, 1e-4, 1e-6} {
		eps, err := RoundEpsilon(stats, delta)
		if err != nil {
			t.Fatal(err)
		}
		for _, shifts := range [][3]int{{2, 1, 1}, {1, 1, 1}, {2, 1, 0}, {2, 0, 0}} {
			var laws [][2][]float64
			var infs []float64
			for c, d := range shifts {
				p := pB
				if c == 0 {
					p = sumA
				}
				l, m, inf := lossLaw(p, d)
				laws, infs = append(laws, [2][]float64{l, m}), append(infs, inf)
			}
			if got := exactDelta(eps, laws, infs); got > delta {
				t.Errorf("δ = %g, shifts %v: the exact δ at ε = %.6g is %.6g", delta, shifts, eps, got)
			}
			if shifts == [3]int{2, 1, 1} {
				if got := exactDelta(0.96*eps, laws, infs); !(got > delta) {
					t.Errorf("δ = %g: at 0.96·ε = %.6g the exact δ is only %.6g; the bound is loose", delta, 0.96*eps, got)
				}
			}
		}
	}
}

// The composed planner's σ meet the bound it plans for, give every
// statistic the same relative error, and on the catalogue's example stay
// within 0.01% of the continuous optimum and 1.45× below the linear split.
func TestAllocateComposed(t *testing.T) {
	budgets := []StatisticBudget{
		{Name: "relay_bytes_read", L0: 1, LInf: 2.214592512e8, Estimate: 1e14},
		{Name: "relay_bytes_written", L0: 1, LInf: 2.214592512e8, Estimate: 1e14},
		{Name: "or_connections", L0: 3, LInf: 1440, Estimate: 2e6},
		{Name: "exit_streams_by_port", L0: 4, LInf: 4320, Estimate: 4e8},
		{Name: "hsdir_v3_stores", L0: 2, LInf: 800, Estimate: 1.5e6},
	}
	honest := HonestSet{N: 3, Weight: 1 / math.Sqrt(3)}
	plan, err := AllocateComposed(0.3, 1e-6, budgets, honest, 0)
	if err != nil {
		t.Fatal(err)
	}
	var round []RoundStatistic
	var mu2 float64
	first := plan.Statistics[0].ExpectedRelativeError
	for i, a := range plan.Statistics {
		round = append(round, RoundStatistic{Name: a.Name, Sigmas: honest.sigmas(a.Sigma), L0: a.BinsTouched, LInf: a.Sensitivity})
		mu2 += math.Pow(l2Sensitivity(budgets[i].L0, budgets[i].LInf)/a.Sigma, 2)
		if math.Abs(a.ExpectedRelativeError/first-1) > 1e-12 {
			t.Errorf("%s: relative error %g, the first statistic's %g", a.Name, a.ExpectedRelativeError, first)
		}
	}
	if d := GDPDelta(math.Sqrt(mu2), 0.3); d > 1e-6 {
		t.Errorf("the continuous σ compose to δ = %g at ε = 0.3", d)
	}
	if e, err := RoundEpsilon(round, 1e-6); err != nil || e > 0.3 {
		t.Errorf("the discrete bound gives ε = %v, %v", e, err)
	}
	if ratio := first / plan.OptimumRelativeError; ratio < 1 || ratio > 1.0001 {
		t.Errorf("relative error %g is %g times the continuous optimum %g", first, ratio, plan.OptimumRelativeError)
	}
	linear, err := Allocate(0.3, 1e-6, budgets)
	if err != nil {
		t.Fatal(err)
	}
	if ratio := linear[0].ExpectedRelativeError / first; ratio < 1.4 {
		t.Errorf("the linear split's relative error is only %.3g times the composed plan's", ratio)
	}

	// A floor above some σ raises them, and the rest spend what it frees.
	floored, err := AllocateComposed(0.3, 1e-6, budgets, honest, 1e5)
	if err != nil {
		t.Fatal(err)
	}
	if len(floored.Raised) != 2 || floored.Statistics[2].Sigma != 1e5 || floored.Statistics[4].Sigma != 1e5 {
		t.Fatalf("floor 10⁵ raised %v: σ %v, %v", floored.Raised, floored.Statistics[2].Sigma, floored.Statistics[4].Sigma)
	}
	if floored.Statistics[0].ExpectedRelativeError >= first {
		t.Errorf("with two statistics raised, the others' relative error %g did not fall below %g", floored.Statistics[0].ExpectedRelativeError, first)
	}
}

// With k statistics of equal weight the gain over the linear split grows
// about as √k.
func TestCompositionGainGrowsWithTheNumberOfStatistics(t *testing.T) {
	prev := 1.0
	for _, k := range []int{1, 5, 30} {
		budgets := make([]StatisticBudget, k)
		for i := range budgets {
			budgets[i] = StatisticBudget{Name: string(rune('a' + i)), L0: 1, LInf: 100, Estimate: 1e6}
		}
		plan, err := AllocateComposed(0.3, 1e-6, budgets, HonestSet{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		linear, err := Allocate(0.3, 1e-6, budgets)
		if err != nil {
			t.Fatal(err)
		}
		gain := linear[0].Sigma / plan.Statistics[0].Sigma
		if k == 1 && math.Abs(gain-1) > 2e-3 {
			t.Errorf("one statistic: the composed σ is %g times the analytic Gaussian's, want 1 (to Google's 0.1%%)", 1/gain)
		}
		if k > 1 && !(gain > prev*math.Sqrt(float64(k))/4) {
			t.Errorf("k = %d: gain %.3g over the linear split", k, gain)
		}
		prev = max(prev, gain)
	}
}

func BenchmarkAllocateComposed(b *testing.B) {
	b.ReportAllocs()
	honest := HonestSet{N: 4200, Weight: 1 / math.Sqrt(4200)}
	for b.Loop() {
		if _, err := AllocateComposed(roundEpsilon, roundDelta, privcountStats, honest, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// What every node computes for a composed round's claim: 30 statistics
// over a weakest set of 4,200 collectors (7,000 relays, β = 0.6).
func BenchmarkRoundEpsilon7000Collectors30Statistics(b *testing.B) {
	honest := HonestSet{N: 4200, Weight: 1 / math.Sqrt(4200)}
	stats := make([]RoundStatistic, 30)
	for i := range stats {
		stats[i] = RoundStatistic{Name: "s", Sigmas: honest.sigmas(1e6), L0: 4, LInf: 4320}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RoundEpsilon(stats, 1e-6); err != nil {
			b.Fatal(err)
		}
	}
}

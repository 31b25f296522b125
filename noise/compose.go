package noise

import (
	"fmt"
	"math"
)

// This file accounts for a whole round at once. A round releases k
// statistics, each with its own Gaussian noise; released together they are
// one mechanism, and for Gaussian noise that mechanism is exactly a
// Gaussian one: statistic i with L2 sensitivity s_i and noise σ_i is
// μ_i-GDP with μ_i = s_i/σ_i, and the round is μ-GDP with
// μ = √(Σ μ_i²) (Dong, Roth and Su, "Gaussian Differential Privacy", JRSS B
// 2022, Corollary 3.3). μ-GDP is the same as (ε, δ_μ(ε))-DP for every ε ≥ 0
// with
//
//	δ_μ(ε) = Φ(−ε/μ + μ/2) − e^ε·Φ(−ε/μ − μ/2)
//
// (their Corollary 2.13; Balle and Wang's analytic Gaussian curve), so the
// round's (ε, δ) is read off one exact curve instead of adding up k
// separate budgets. docs/noise.md, "Why composition beats the linear
// split", has the figures.
//
// The noise privstats adds is the discrete Gaussian, summed over
// collectors, which is not exactly a Gaussian mechanism. [RoundEpsilon]
// proves how far it is (docs/noise-discrete.md, "The whole round"): each
// counter's summed noise is within e^(±η) of N_Z(0, v) pointwise
// (distributed.go, step 2), and N_Z(m, v) for integer m is within e^(±ξ) of
// a post-processing of the continuous N(m, v − τ) that commutes with
// integer shifts (the smoothing lemma below). So the round is within
// e^(±A) of a continuous Gaussian mechanism with μ² = Σ_i L0_i·⌊L∞_i⌋²/(v_i − τ),
// A = Σ_i L0_i·(η_i + ξ), which makes it (ε' + 2A, e^A·δ_μ(ε'))-DP.

// smoothingVariance is τ, the variance of the smoothing kernel. The
// discrete law costs a factor 1/(1 − τ/v) in μ² and 2·L0·ξ(τ) in ε with
// ξ(τ) = ln((1+θ(τ))/(1−θ(τ))) ≈ 4e^(−2π²τ): at τ = 1, ξ = 1.07·10⁻⁸ and a
// statistic whose total noise has σ_total = 38·L∞ (the smallest of the
// catalogue's plans) pays 0.035% in μ; smaller τ makes ξ grow fast
// (2·10⁻⁴ at τ = 0.5), larger τ only adds to μ.
const smoothingVariance = 1

// GDPDelta is δ_μ(ε), the least δ for which a μ-GDP mechanism is
// (ε, δ)-differentially private. It is the analytic Gaussian curve
// (deltaFor with σ = 1/μ and unit sensitivity), with the e^ε·Φ term taken
// in log space so that large ε or far tails neither overflow nor lose the
// difference.
func GDPDelta(mu, epsilon float64) float64 {
	if !(mu > 0) || !(epsilon >= 0) {
		return math.NaN()
	}
	if math.IsInf(mu, 1) {
		return 1
	}
	a, b := mu/2, epsilon/mu
	if math.IsInf(b, 1) {
		return 0
	}
	// Φ(a−b) − e^ε·Φ(−a−b) = [Φ(a−b) − Φ(−a−b)] − (e^ε − 1)·Φ(−a−b).
	first := normalMass(-b, a)
	var second float64
	if epsilon > 0 {
		second = math.Exp(math.Log(math.Expm1(epsilon)) + logNormalTail(a+b))
	}
	return max(first-second, 0)
}

// logNormalTail is ln Φ(−x) = ln P[N(0,1) > x], accurate where Φ(−x)
// underflows (x > 37): there it uses the asymptotic series of the Mills
// ratio, whose error after the terms kept is below 10⁻¹⁵ for x > 37.
func logNormalTail(x float64) float64 {
	if x < 37 {
		return math.Log(math.Erfc(x/math.Sqrt2) / 2)
	}
	x2 := x * x
	series := 1 - 1/x2 + 3/(x2*x2) - 15/(x2*x2*x2)
	return -x2/2 - math.Log(x) - 0.5*math.Log(2*math.Pi) + math.Log(series)
}

// GDPMu is the largest μ for which a μ-GDP mechanism is (ε, δ)-DP: the μ a
// round with budget (ε, δ) may spend, to about 10⁻¹⁵ relative (rounded
// down).
func GDPMu(epsilon, delta float64) (float64, error) {
	if err := checkBudget(epsilon, delta); err != nil {
		return 0, fmt.Errorf("noise: %w", err)
	}
	ok := func(mu float64) bool { return GDPDelta(mu, epsilon) <= delta }
	lo, hi := 0.0, 1.0
	for ok(hi) {
		if lo, hi = hi, 2*hi; hi > 1e6 {
			return 0, fmt.Errorf("noise: no finite μ bounds ε = %g, δ = %g", epsilon, delta)
		}
	}
	// The largest μ that is ok: the lower end of the bracket on "not ok".
	lo, _ = bracket(lo, hi, func(mu float64) bool { return !ok(mu) })
	if !(lo > 0) {
		return 0, fmt.Errorf("noise: no μ > 0 gives ε = %g, δ = %g", epsilon, delta)
	}
	return lo, nil
}

// GDPEpsilon is the least ε ≥ 0 for which a μ-GDP mechanism is
// (ε, δ)-DP, to about 10⁻¹⁵ relative (rounded up).
func GDPEpsilon(mu, delta float64) (float64, error) {
	if !(delta > 0 && delta < 1) {
		return 0, fmt.Errorf("noise: δ = %g, must be strictly between 0 and 1", delta)
	}
	if !(mu >= 0) || math.IsInf(mu, 0) {
		return 0, fmt.Errorf("noise: μ = %g, must be finite and ≥ 0", mu)
	}
	if mu == 0 {
		return 0, nil
	}
	ok := func(epsilon float64) bool { return GDPDelta(mu, epsilon) <= delta }
	if ok(0) {
		return 0, nil
	}
	hi := 1.0
	for !ok(hi) {
		if hi *= 2; hi > 1e6 {
			return 0, fmt.Errorf("noise: μ = %g reaches δ = %g only beyond ε = 10⁶", mu, delta)
		}
	}
	return bisect(0, hi, ok), nil
}

// RoundStatistic is one statistic as the round-level accounting sees it.
type RoundStatistic struct {
	Name string
	// Sigmas are the per-collector σ (w_i·σ) of the collectors whose noise
	// counts: the weakest set the round may release, or the released S.
	// Zeros (collectors that add no noise) are ignored.
	Sigmas []float64
	// L0 and LInf are the declared sensitivity: bins touched and the most
	// one action adds to a counter.
	L0   int64
	LInf float64
}

// RoundAccount is what [AccountRound] proves about a round's noise.
type RoundAccount struct {
	// Mu is μ of the continuous Gaussian mechanism the round's discrete
	// noise is within e^(±Slack) of; Mus are its per-statistic shares,
	// Σ Mus² = Mu².
	Mu  float64
	Mus []float64
	// Slack is A: ln of the largest pointwise ratio between the discrete
	// release and that continuous one.
	Slack float64
}

// AccountRound computes the round's continuous-equivalent μ and the slack
// A of the discrete noise, as described at the top of this file. A
// statistic whose ⌊L∞⌋ is 0 cannot change an integer counter and adds
// nothing.
func AccountRound(stats []RoundStatistic) (RoundAccount, error) {
	acc := RoundAccount{Mus: make([]float64, len(stats))}
	xi, err := stepDivergence(smoothingVariance)
	if err != nil {
		return acc, err // unreachable: θ(1) < 10⁻⁸
	}
	var mu2 float64
	for i, st := range stats {
		if err := checkSensitivity(st.L0, st.LInf); err != nil {
			return acc, fmt.Errorf("noise: statistic %s: %w", st.Name, err)
		}
		vars := make([]float64, 0, len(st.Sigmas))
		for j, s := range st.Sigmas {
			if math.IsNaN(s) || s < 0 || math.IsInf(s, 0) {
				return acc, fmt.Errorf("noise: statistic %s: collector %d has σ = %g, must be non-negative and finite", st.Name, j, s)
			}
			if s > 0 {
				vars = append(vars, s*s)
			}
		}
		if len(vars) == 0 {
			return acc, fmt.Errorf("noise: statistic %s: no collector adds noise", st.Name)
		}
		d := math.Floor(st.LInf)
		if d == 0 {
			continue
		}
		eta, err := sumDivergence(vars)
		if err != nil {
			return acc, fmt.Errorf("noise: statistic %s: %w", st.Name, err)
		}
		var v float64
		for _, x := range vars {
			v += x
		}
		v *= 1 - float64(len(vars)+1)*0x1p-52 // round down past the summation error
		if !(v > smoothingVariance) {
			return acc, fmt.Errorf("noise: statistic %s: total noise σ = %.4g is too small for the round's privacy to be proven (σ_total must exceed %d)",
				st.Name, math.Sqrt(v), smoothingVariance)
		}
		l0 := float64(st.L0)
		share := l0 * d * d / (v - smoothingVariance)
		acc.Mus[i] = math.Sqrt(share)
		mu2 += share
		acc.Slack += l0 * (eta + xi)
	}
	acc.Mu = math.Sqrt(mu2) * (1 + 4*float64(len(stats)+1)*0x1p-52)
	return acc, nil
}

// Epsilon is the ε at which the accounted round is (ε, δ)-DP:
// GDPEpsilon(μ, δ·e^(−A)) + 2A.
func (a RoundAccount) Epsilon(delta float64) (float64, error) {
	if !(delta > 0 && delta < 1) {
		return 0, fmt.Errorf("noise: δ = %g, must be strictly between 0 and 1", delta)
	}
	if a.Mu == 0 {
		return 0, nil
	}
	e, err := GDPEpsilon(a.Mu, delta*math.Exp(-a.Slack))
	if err != nil {
		return 0, err
	}
	return e + 2*a.Slack, nil
}

// RoundEpsilon is the ε for which the round whose statistics carry the
// given discrete Gaussian noise is (ε, δ)-differentially private as a
// whole ([AccountRound], then [RoundAccount.Epsilon]).
func RoundEpsilon(stats []RoundStatistic, delta float64) (float64, error) {
	acc, err := AccountRound(stats)
	if err != nil {
		return 0, err
	}
	return acc.Epsilon(delta)
}

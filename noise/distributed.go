package noise

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// This file proves, for a given set S of collectors, how private a total is
// when each collector i ∈ S adds its own discrete Gaussian N_Z(0, s_i²) to
// every counter ([SampleDiscreteGaussian]) and only the sum is released.
// docs/noise-discrete.md states the theorem in full with its proof; in short,
// writing v = Σ s_i² and D = ⌊L∞⌋:
//
//  1. Sum of two discrete Gaussians (Kairouz, Liu and Steinke, "The
//     Distributed Discrete Gaussian Mechanism for Federated Learning with
//     Secure Aggregation", ICML 2021, §3). For independent X ~ N_Z(0, a),
//     X' ~ N_Z(0, b) and every integer z,
//
//     |ln P[X+X' = z] − ln P[N_Z(0, a+b) = z]| ≤ ln((1+θ)/(1−θ)),
//     θ = θ(ab/(a+b)), θ(ρ) = 2·Σ_{j≥1} e^(−2π²ρj²),
//
//     whenever θ < 1. Completing the square, P[X+X' = z] is
//     e^(−z²/(2(a+b))) times Σ_x e^(−(x−c_z)²/(2ρ)), ρ = ab/(a+b), and by
//     Poisson summation that sum is √(2πρ)·(1 + 2Σ_j e^(−2π²ρj²)cos(2πjc_z)),
//     within a factor 1±θ of a constant; both laws sum to 1, so the ratio is
//     within [(1−θ)/(1+θ), (1+θ)/(1−θ)].
//
//  2. Adding the collectors one at a time, largest s_i first, and using that
//     the log-ratio bound is a metric preserved by adding independent noise,
//     each counter's noise Y = Σ_{i∈S} X_i is within e^(±η) of N_Z(0, v)
//     pointwise, η = Σ_{k=1}^{n−1} ln((1+θ_k)/(1−θ_k)) with
//     θ_k = θ(V_k·s_{k+1}²/(V_k + s_{k+1}²)), V_k = s_1² + … + s_k². For equal
//     s_i this is KLS's τ = 10·Σ_k e^(−2π²s²k/(k+1)) with the constant 10
//     replaced by the exact ln((1+θ)/(1−θ)) ≈ 4e^(−2π²ρ).
//
//  3. Neighbouring inputs differ on at most L0 counters, each by an integer of
//     at most D (counters are integers). Where two output laws are within
//     e^(±a) pointwise of a pair that is (ε, δ)-DP, they are
//     (ε+2a, e^a·δ)-DP; so it suffices to bound the pair of products of
//     N_Z(0, v) on the ≤ L0 counters that differ, with a = L0·η.
//
//  4. The location family N_Z(μ, v), μ ∈ Z, is an exponential family in z,
//     so a larger shift is less private (Blackwell) and the worst neighbours
//     shift L0 counters by D each. For that pair the sum of the L0 counters is
//     a sufficient statistic: the pair is exactly as private as
//     (L0·D + T, T), T a sum of L0 independent N_Z(0, v), which by step 2
//     (with η_T for L0 equal variances v) is within e^(±η_T) of N_Z(0, L0·v).
//
//  5. Canonne, Kamath and Steinke (NeurIPS 2020, Theorem 7): N_Z(0, σ²) with
//     an integer shift Δ is (ε, δ)-DP for
//     δ = P[Z > εσ²/Δ − Δ/2] − e^ε·P[Z > εσ²/Δ + Δ/2], Z ~ N_Z(0, σ²),
//     here with σ² = L0·v and Δ = L0·D, so Δ/σ = D·√L0/√v is the L2
//     sensitivity over σ_total, as for the continuous Gaussian.
//
// Together: the total is (ε₅ + 2η', e^(η')·δ₅)-DP with η' = L0·η + η_T, and
// DistributedEpsilon returns ε₅ + 2η' for the smallest ε₅ whose δ₅ is at most
// δ·e^(−η').

// MinCollectorSigma is the smallest non-zero per-collector s_i = w_i·σ for
// which [CheckDistributed] accepts a set of collectors; nodes refuse rounds
// whose collectors would add less.
//
// The reason is step 2 above: the sum of small discrete Gaussians is close
// to a discrete Gaussian only once each added s_i² is large against
// 1/(2π²). With every s_i ≥ 2, every step has ρ_k ≥ 2, so each collector
// adds at most ln((1+θ)/(1−θ)) < 4.1·e^(−4π²) < 3·10⁻¹⁷ to η, and even a
// million collectors on eight counters move ε by under 10⁻⁹. With equal s_i
// the first step alone adds 9·10⁻¹⁰ per counter at s_i = 1.5, 2·10⁻⁴ at
// s_i = 1 and 0.34 at s_i = 0.5, and below s_i ≈ 0.28 the bound does not
// hold at all. Noise that small is no use anyway: N_Z(0, 0.16²) is 0 in all
// but 7 draws in a billion.
const MinCollectorSigma = 2

// DistributedSlack is the relative amount by which [CheckDistributed] lets
// the ε the discrete sum gets exceed the ε a round claims. σ is calibrated
// for the continuous Gaussian (Google's SigmaForGaussian, which rounds σ up
// by up to 0.1%); the discrete Gaussian with the same σ gets the same ε to
// within about 0.05·(L∞/σ_total)² of itself, on either side: 10⁻⁴ at
// σ_total = 22·L∞, 5·10⁻⁶ at 100·L∞, 10⁻⁹ beyond 6000·L∞. So a round whose
// σ_total is at least about 22·L∞, as every statistic of the catalogue's
// plans is, passes with σ as calibrated; below that a planner must add up to
// 1% (at σ_total = 2·L∞) to σ.
const DistributedSlack = 1e-4

// DistributedEpsilon returns the ε for which a statistic's total is
// (ε, δ)-differentially private when every collector in the released set S
// adds N_Z(0, s_i²) to each of its counters, s_i = sigmas[i] (w_i·σ), and a
// user's action changes at most l0 counters by at most lInf each. It follows
// the analysis at the top of this file (docs/noise-discrete.md).
//
// sigmas should list only the collectors whose noise an adversary does not
// know; zeros (collectors that add no noise) are ignored. It fails if a
// non-zero s_i is too small for the bound to hold (see MinCollectorSigma) or
// if no ε up to 10⁴ reaches δ.
func DistributedEpsilon(sigmas []float64, delta float64, l0 int64, lInf float64) (float64, error) {
	if !(delta > 0 && delta < 1) {
		return 0, fmt.Errorf("noise: distributed privacy: δ = %g, must be strictly between 0 and 1", delta)
	}
	if err := checkSensitivity(l0, lInf); err != nil {
		return 0, fmt.Errorf("noise: distributed privacy: %w", err)
	}
	vars := make([]float64, 0, len(sigmas))
	for i, s := range sigmas {
		if math.IsNaN(s) || s < 0 || math.IsInf(s, 0) {
			return 0, fmt.Errorf("noise: distributed privacy: collector %d has σ = %g, must be non-negative and finite", i, s)
		}
		if s > 0 {
			vars = append(vars, s*s)
		}
	}
	if len(vars) == 0 {
		return 0, errors.New("noise: distributed privacy: no collector adds noise")
	}
	d := math.Floor(lInf)
	if d == 0 {
		return 0, nil // an action cannot change an integer counter
	}
	etaCounter, err := sumDivergence(vars)
	if err != nil {
		return 0, fmt.Errorf("noise: distributed privacy: %w", err)
	}
	var v float64
	for _, x := range vars {
		v += x
	}
	// Round v down by more than the float summation error.
	v *= 1 - float64(len(vars)+1)*0x1p-52
	etaSum, err := iidDivergence(v, l0)
	if err != nil {
		return 0, fmt.Errorf("noise: distributed privacy: %w", err)
	}
	eta := float64(l0)*etaCounter + etaSum
	target := delta * math.Exp(-eta)
	v1, d1 := float64(l0)*v, float64(l0)*d
	ok := func(epsilon float64) bool { return dgDelta(epsilon, v1, d1) <= target }
	if ok(0) {
		return 2 * eta, nil
	}
	hi := 1.0
	for !ok(hi) {
		if hi *= 2; hi > 1e4 {
			return 0, fmt.Errorf("noise: distributed privacy: no ε up to 10⁴ gives δ = %g with σ_total = %g and sensitivity %g over %d counters", delta, math.Sqrt(v), lInf, l0)
		}
	}
	return bisect(0, hi, ok) + 2*eta, nil
}

// CheckDistributed reports whether the released set of collectors, given by
// fingerprint with each one's s_i = w_i·σ, makes the statistic's total
// (ε, δ)-private with discrete Gaussian noise: every non-zero s_i must be at
// least MinCollectorSigma, and [DistributedEpsilon] at most ε·(1 +
// DistributedSlack). The error names the collectors below the floor or the
// ε the set actually gets.
func CheckDistributed(sigmas map[string]float64, epsilon, delta float64, l0 int64, lInf float64) error {
	if err := checkBudget(epsilon, delta); err != nil {
		return fmt.Errorf("noise: distributed privacy: %w", err)
	}
	fps := slices.SortedFunc(maps.Keys(sigmas), func(a, b string) int {
		return cmp.Or(cmp.Compare(sigmas[a], sigmas[b]), cmp.Compare(a, b))
	})
	var low []string
	for _, fp := range fps {
		if s := sigmas[fp]; math.IsNaN(s) || s < 0 || math.IsInf(s, 0) {
			return fmt.Errorf("noise: distributed privacy: collector %s has σ = %g, must be non-negative and finite", fp, s)
		}
		if s := sigmas[fp]; s > 0 && s < MinCollectorSigma {
			low = append(low, fmt.Sprintf("%s σ=%.4g", fp, s))
		}
	}
	if len(low) > 0 {
		if len(low) > 5 {
			low = append(low[:5], fmt.Sprintf("and %d more", len(low)-5))
		}
		return fmt.Errorf("noise: distributed privacy: %d collectors would add discrete Gaussian noise with σ below %d, "+
			"too little for the sum's privacy to be proven (%v); raise σ or their weights",
			len(low), MinCollectorSigma, low)
	}
	list := make([]float64, len(fps))
	for i, fp := range fps {
		list[i] = sigmas[fp]
	}
	got, err := DistributedEpsilon(list, delta, l0, lInf)
	if err != nil {
		return err
	}
	if got > epsilon*(1+DistributedSlack) {
		return fmt.Errorf("noise: distributed privacy: the %d collectors' discrete Gaussian noise (σ_total = %.6g) makes the total "+
			"(%.6g, %g)-private, weaker than the claimed ε = %g", len(list), TotalSigma(1, list), got, delta, epsilon)
	}
	return nil
}

// thetaBound is θ(ρ) = 2·Σ_{j≥1} e^(−2π²ρj²), the largest relative departure
// of Σ_x e^(−(x−c)²/(2ρ)) from √(2πρ) over all shifts c.
func thetaBound(rho float64) float64 {
	var sum float64
	for j := 1.0; j <= 64; j++ {
		term := math.Exp(-2 * math.Pi * math.Pi * rho * j * j)
		sum += term
		if term < 1e-18*sum || term == 0 {
			break
		}
	}
	return 2 * sum
}

// stepDivergence is ln((1+θ)/(1−θ)) for θ = θ(ρ): how far, in log-ratio,
// N_Z(0, a) + N_Z(0, b) is from N_Z(0, a+b) when ρ = ab/(a+b).
func stepDivergence(rho float64) (float64, error) {
	th := thetaBound(rho)
	if !(th < 1) {
		return 0, fmt.Errorf("a sum of discrete Gaussians with harmonic variance %.3g is too far from a discrete Gaussian to bound", rho)
	}
	// 1e-12 relative covers the float error of thetaBound and atanh.
	return 2 * math.Atanh(th) * (1 + 1e-12), nil
}

// sumDivergence is η for the sum of independent N_Z(0, vars[i]): the
// pointwise log-ratio bound against N_Z(0, Σ vars), adding the largest
// variances first.
func sumDivergence(vars []float64) (float64, error) {
	sorted := slices.Clone(vars)
	slices.SortFunc(sorted, func(a, b float64) int { return cmp.Compare(b, a) })
	acc := sorted[0]
	var eta float64
	for _, x := range sorted[1:] {
		step, err := stepDivergence(acc * x / (acc + x))
		if err != nil {
			return 0, err
		}
		eta += step
		acc += x
	}
	return eta, nil
}

// iidDivergence is sumDivergence for m copies of variance v, where the k-th
// step has ρ = v·k/(k+1). The steps shrink as k grows, so past the first
// thousand each is bounded by the thousandth.
func iidDivergence(v float64, m int64) (float64, error) {
	const exact = 1000
	var eta, step float64
	for k := int64(1); k < m && k <= exact; k++ {
		var err error
		if step, err = stepDivergence(v * float64(k) / float64(k+1)); err != nil {
			return 0, err
		}
		eta += step
	}
	if m-1 > exact {
		eta += float64(m-1-exact) * step
	}
	return eta, nil
}

// dgDelta is an upper bound on the δ at ε of the discrete Gaussian
// N_Z(0, v) for a query of integer sensitivity d (Canonne, Kamath and
// Steinke, Theorem 7), above it by at most about 10⁻⁶ of itself. The privacy loss of output
// y = d + Z against y = Z is ε exactly at Z = a = εv/d − d/2, so with m the
// first integer above a,
//
//	δ = P[Z ≥ m] − e^ε·P[Z ≥ m + d] = P[m ≤ Z < m+d] − (e^ε − 1)·P[Z ≥ m+d].
//
// Any other m gives a smaller value, so an m off by float rounding errs low;
// the last term bounds by how much. Every integer z between the computed and
// the true m lies within slop+1 of a, where the loss differs from ε by at
// most 2·slop·d/v, and contributes at most e^ε·P[Z = z]·(e^(2·slop·d/v) − 1),
// with P[Z = z] ≤ f(|a| − slop − 1)/Σf.
func dgDelta(epsilon, v, d float64) float64 {
	g := dgLaw{v: v, sigma: math.Sqrt(v)}
	mid := epsilon * v / d
	a := mid - d/2
	m := math.Floor(a) + 1
	massHi := g.rangeHi(m, m+d-1)
	tailLo := g.rangeLo(m+d, math.Inf(1))
	z := g.normalizer()
	slop := 1e-14 * (mid + d)
	near := g.f(max(0, math.Abs(a)-slop-1)) / z
	rounding := (2*slop + 3) * math.Exp(epsilon) * near * math.Expm1(2*slop*d/v)
	return max(massHi/z-math.Expm1(epsilon)*tailLo/z+rounding, 0)
}

// dgLaw evaluates sums of f(z) = e^(−z²/(2v)), the unnormalised mass of
// N_Z(0, v).
type dgLaw struct {
	v, sigma float64
}

func (g dgLaw) f(z float64) float64 { return math.Exp(-z * z / (2 * g.v)) }

// normalizer is Σ_z f(z) = σ√(2π)·(1 + θ(v)), exactly, by Poisson summation.
func (g dgLaw) normalizer() float64 {
	return g.sigma * math.Sqrt(2*math.Pi) * (1 + thetaBound(g.v))
}

// integral is ∫_x^y f.
func (g dgLaw) integral(x, y float64) float64 {
	if x >= y {
		return 0
	}
	return g.sigma * math.Sqrt(2*math.Pi) * normalBetween(x/g.sigma, y/g.sigma)
}

// directSigma is the σ up to which rangeSum adds the terms one by one.
// Beyond it the bounds by integrals below are as tight (within 10⁻⁶ of the
// sums that matter) and far faster.
const directSigma = 2000

func (g dgLaw) rangeLo(p, q float64) float64 { lo, _ := g.rangeSum(p, q); return lo }

func (g dgLaw) rangeHi(p, q float64) float64 { _, hi := g.rangeSum(p, q); return hi }

// rangeSum returns lower and upper bounds on Σ_{z=p}^{q} f(z) over the
// integers, p and q integral or q = +∞, each moved 10⁻¹⁰ of itself outward
// for float rounding.
func (g dgLaw) rangeSum(p, q float64) (lo, hi float64) {
	switch {
	case p > q:
		return 0, 0
	case q < 0:
		return g.rangeSum(-q, -p)
	case p < 0:
		lo1, hi1 := g.rangeSum(1, -p)
		lo2, hi2 := g.rangeSum(0, q)
		return lo1 + lo2, hi1 + hi2
	}
	if g.sigma <= directSigma {
		lo, hi = g.directSum(p, q)
	} else {
		lo, hi = g.bracketSum(p, q)
	}
	return lo * (1 - 1e-10), hi * (1 + 1e-10)
}

// directSum adds f(z) for z = p, p+1, … ≤ q, 0 ≤ p, until the terms fall
// below 10⁻¹⁸ of the sum or underflow, and bounds what is left by ∫ f over
// it (f decreases on z ≥ 0).
func (g dgLaw) directSum(p, q float64) (lo, hi float64) {
	z := p
	for ; z <= q; z++ {
		t := g.f(z)
		if t == 0 || t < 1e-18*lo {
			break
		}
		lo += t
	}
	if z <= q {
		hi = lo + g.integral(z-1, q)
	} else {
		hi = lo
	}
	return lo, hi
}

// bracketSum bounds Σ_{z=p}^{q} f(z), 0 ≤ p ≤ q, by integrals: f is concave
// on [−σ, σ] and convex beyond, so on a concave stretch each f(z) lies
// between ∫_{z−½}^{z+½} f and the trapezoid sum, and the other way round on
// a convex one (Hermite–Hadamard). The one or two integers where neither
// applies are added directly. From farStart on, where the Euler–Maclaurin
// bounds of emTail hold, it keeps whichever bounds are tighter.
func (g dgLaw) bracketSum(p, q float64) (lo, hi float64) {
	c1 := min(q, math.Floor(g.sigma-0.5)) // concave: [p, c1], with [z−½, z+½] ⊂ [−σ, σ]
	if p <= c1 {
		lo += g.integral(p-0.5, c1+0.5)
		hi += g.integral(p, c1) + (g.f(p)+g.f(c1))/2
	}
	c2 := max(p, math.Ceil(g.sigma+0.5)) // convex: [c2, q], with [z−½, ∞) ⊂ [σ, ∞)
	if start := max(p, c1+1); start < c2 && start <= q {
		if g.sigma < 0x1p50 {
			for z := start; z < c2 && z <= q; z++ {
				t := g.f(z)
				lo += t
				hi += t
			}
		} else {
			// z++ may not move z this far out: bound the ≤ 3 integers by
			// the largest of them, and leave them out of lo.
			hi += 3 * g.f(start)
		}
	}
	if c2 > q {
		return lo, hi
	}
	c3 := max(c2, g.farStart())
	if c2 < c3 {
		l, h := g.convexSum(c2, min(q, c3-1))
		lo, hi = lo+l, hi+h
	}
	if c3 <= q {
		l1, h1 := g.convexSum(c3, q)
		l2, h2 := g.emTail(c3)
		if !math.IsInf(q, 1) {
			l3, h3 := g.emTail(q + 1)
			l2, h2 = l2-h3, h2-l3
		}
		lo, hi = lo+max(l1, l2), hi+min(h1, h2)
	}
	return lo, hi
}

// convexSum bounds Σ_{z=p}^{q} f(z) for σ + ½ ≤ p ≤ q (q may be +∞).
func (g dgLaw) convexSum(p, q float64) (lo, hi float64) {
	fq := 0.0
	if !math.IsInf(q, 1) {
		fq = g.f(q)
	}
	return g.integral(p, q) + (g.f(p)+fq)/2, g.integral(p-0.5, q+0.5)
}

// farStart is an integer beyond which the fourth derivative of f is
// positive: z² ≥ (3+√6)·v.
func (g dgLaw) farStart() float64 {
	return math.Ceil(g.sigma*math.Sqrt(3+math.Sqrt(6))) + 1
}

// emTail bounds Σ_{z≥m} f(z) for m ≥ farStart by the Euler–Maclaurin
// formula to the third derivative,
//
//	Σ_{z≥m} f(z) = ∫_m^∞ f + f(m)/2 − f′(m)/12 + f‴(m)/720 + R,
//
// whose remainder is at most 2ζ(4)/(2π)⁴ = 1/720 times the integral of |f⁗|
// over [m, ∞), which is −f‴(m) since f⁗ > 0 there. Its relative width is
// about (m/σ)⁴/(360σ⁴), far below the brackets' at large σ.
func (g dgLaw) emTail(m float64) (lo, hi float64) {
	f := g.f(m)
	x := m / g.v
	d1 := x * f                   // −f′(m)
	d3 := x * (m*x - 3) / g.v * f // −f‴(m) > 0
	top := g.integral(m, math.Inf(1)) + f/2 + d1/12
	return top - d3/360, top
}

// normalBetween is Φ(w) − Φ(u) for u ≤ w (either may be infinite), to about
// 10⁻¹³ of itself unless it underflows: it takes differences of erfc only
// where they do not cancel and integrates the density otherwise.
func normalBetween(u, w float64) float64 {
	switch {
	case u >= w:
		return 0
	case w <= 0:
		return normalBetween(-w, -u)
	case u < 0:
		return (math.Erf(w/math.Sqrt2) + math.Erf(-u/math.Sqrt2)) / 2
	}
	cu, cw := math.Erfc(u/math.Sqrt2)/2, math.Erfc(w/math.Sqrt2)/2
	if d := cu - cw; d >= 1e-3*cu || math.IsInf(w, 1) {
		return d
	}
	return normalMassQuadrature((u+w)/2, (w-u)/2)
}

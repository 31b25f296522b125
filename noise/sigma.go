package noise

import (
	"errors"
	"fmt"
	"math"

	dpnoise "github.com/google/differential-privacy/go/v3/noise"
)

// Sigma returns the standard deviation of Gaussian noise that makes a
// statistic (ε, δ)-differentially private, by the analytic Gaussian mechanism
// (Balle and Wang 2018) as dpnoise.SigmaForGaussian computes it.
//
// l0 is how many counters (histogram bins) one user's action can change and
// lInf how much it can change each, so the L2 sensitivity is lInf·√l0.
//
// SigmaForGaussian finds σ by bisection and rounds it up to within 0.1% of the
// smallest σ that meets (ε, δ); every node that recomputes σ from a round
// config must therefore use this function, not its own calibration, so that
// all of them agree to the last bit.
func Sigma(epsilon, delta float64, l0 int64, lInf float64) (float64, error) {
	if err := checkBudget(epsilon, delta); err != nil {
		return 0, fmt.Errorf("noise: %w", err)
	}
	if err := checkSensitivity(l0, lInf); err != nil {
		return 0, fmt.Errorf("noise: %w", err)
	}
	s := dpnoise.SigmaForGaussian(l0, lInf, epsilon, delta)
	if math.IsInf(s, 0) || math.IsNaN(s) || s <= 0 {
		return 0, fmt.Errorf("noise: no finite σ for ε=%g, δ=%g, L0=%d, L∞=%g", epsilon, delta, l0, lInf)
	}
	return s, nil
}

// ClassicSigma returns the σ of PrivCount's classic Gaussian bound,
// σ = (s/ε)·√(2 ln(1.25/δ)) with s = lInf·√l0 the L2 sensitivity
// (Dwork and Roth, Theorem A.1). It is kept for comparison: for ε ≤ 1 it
// asks for more noise than [Sigma] does, and for large ε (the theorem assumes
// ε < 1) it can ask for less than (ε, δ) needs, so privstats never uses it to
// add noise.
//
// Invalid arguments (those [Sigma] rejects) give NaN.
func ClassicSigma(epsilon, delta float64, l0 int64, lInf float64) float64 {
	if checkBudget(epsilon, delta) != nil || checkSensitivity(l0, lInf) != nil {
		return math.NaN()
	}
	return l2Sensitivity(l0, lInf) / epsilon * math.Sqrt(2*math.Log(1.25/delta))
}

func checkBudget(epsilon, delta float64) error {
	if !(epsilon > 0) || math.IsInf(epsilon, 0) {
		return fmt.Errorf("ε = %g, must be positive and finite", epsilon)
	}
	if !(delta > 0 && delta < 1) {
		return fmt.Errorf("δ = %g, must be strictly between 0 and 1", delta)
	}
	return nil
}

func checkSensitivity(l0 int64, lInf float64) error {
	if l0 < 1 {
		return fmt.Errorf("sensitivity L0 = %d, must be at least 1 (the number of counters one action can touch)", l0)
	}
	if !(lInf > 0) || math.IsInf(lInf, 0) {
		return fmt.Errorf("sensitivity L∞ = %g, must be positive and finite", lInf)
	}
	return nil
}

func l2Sensitivity(l0 int64, lInf float64) float64 {
	return lInf * math.Sqrt(float64(l0))
}

// The functions below evaluate the analytic Gaussian mechanism without the
// 0.1% rounding of dpnoise.SigmaForGaussian. The planner needs them because
// that rounding makes σ a step function of ε, and equalising relative errors
// across statistics needs a continuous curve to bisect on. They never decide
// how much noise is added: Allocate reports σ from Sigma.

// deltaFor is the smallest δ for which Gaussian noise of standard deviation
// sigma makes a query of L2 sensitivity s (ε, δ)-private (Balle and Wang
// 2018, Theorem 8):
//
//	δ = Φ(s/(2σ) − εσ/s) − e^ε·Φ(−s/(2σ) − εσ/s).
//
// It decreases in both sigma and epsilon. It is evaluated as
// [Φ(a−b) − Φ(−a−b)] − (e^ε − 1)·Φ(−a−b), because the planner gives heavy
// statistics tiny ε and σ ≫ s, where the two Φ terms agree to many digits.
func deltaFor(sigma, s, epsilon float64) float64 {
	a := s / (2 * sigma)
	b := epsilon * sigma / s
	if math.IsInf(math.Exp(epsilon), 1) || math.IsInf(b, 1) {
		return 0 // δ tends to 0 as ε or σ/s grows without bound.
	}
	return normalMass(-b, a) - math.Expm1(epsilon)*normalCDF(-a-b)
}

func normalCDF(x float64) float64 {
	return 0.5 * math.Erfc(-x/math.Sqrt2)
}

// normalMass is Φ(x+h) − Φ(x−h) for h ≥ 0. For small h the difference of
// CDFs cancels, so it integrates the density by quadrature instead.
func normalMass(x, h float64) float64 {
	if h >= 1e-3 {
		return normalCDF(x+h) - normalCDF(x-h)
	}
	return normalMassQuadrature(x, h)
}

// normalMassQuadrature is Φ(x+h) − Φ(x−h) by 5-point Gauss–Legendre
// quadrature of the density, which is exact to float64 precision while the
// density varies little over [x−h, x+h] (h ≲ 10⁻² and h·|x| ≲ 10⁻²).
func normalMassQuadrature(x, h float64) float64 {
	nodes := [5]float64{0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640, 0.9061798459386640}
	weights := [5]float64{0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891, 0.2369268850561891}
	var sum float64
	for i, t := range nodes {
		u := x + h*t
		sum += weights[i] * math.Exp(-u*u/2)
	}
	return h * sum / math.Sqrt(2*math.Pi)
}

// tightSigma is the smallest σ with deltaFor(σ, s, ε) ≤ δ, to about 1e-15
// relative.
func tightSigma(epsilon, delta, s float64) float64 {
	lo, hi := 0.0, s
	for deltaFor(hi, s, epsilon) > delta {
		lo, hi = hi, 2*hi
	}
	return bisect(lo, hi, func(sigma float64) bool { return deltaFor(sigma, s, epsilon) <= delta })
}

// errEpsilonTooLarge reports that a σ would need more than the ε on offer.
var errEpsilonTooLarge = errors.New("needs more than the available ε")

// tightEpsilon is the smallest ε ≤ maxEpsilon with deltaFor(σ, s, ε) ≤ δ, to
// about 1e-15 relative, or errEpsilonTooLarge if there is none. It is 0 when σ
// is so large that δ alone covers the query.
func tightEpsilon(sigma, delta, s, maxEpsilon float64) (float64, error) {
	if deltaFor(sigma, s, 0) <= delta {
		return 0, nil
	}
	if deltaFor(sigma, s, maxEpsilon) > delta {
		return 0, errEpsilonTooLarge
	}
	return bisect(0, maxEpsilon, func(epsilon float64) bool { return deltaFor(sigma, s, epsilon) <= delta }), nil
}

// bisect returns the smallest x in (lo, hi] where ok holds, given that ok is
// false at lo, true at hi and monotone in between. It stops when the bracket
// can shrink no further in float64 or is narrower than 1e-15 relative.
func bisect(lo, hi float64, ok func(float64) bool) float64 {
	_, hi = bracket(lo, hi, ok)
	return hi
}

// bracket is bisect's final bracket: ok is false at lo and true at hi.
func bracket(lo, hi float64, ok func(float64) bool) (float64, float64) {
	for i := 0; i < 200 && hi-lo > 1e-15*hi; i++ {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo, hi
}

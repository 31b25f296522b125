package noise

import (
	"fmt"
	"math"
)

// HonestSet describes, to the planner, the collectors whose noise a round's
// accounting counts: the weakest set the tally server may release
// ([CheckClaim] checks that set), N collectors of noise weight Weight each.
// The zero value means one collector of weight 1, the whole σ.
type HonestSet struct {
	N      int
	Weight float64
}

func (h HonestSet) sigmas(sigma float64) []float64 {
	n, w := h.N, h.Weight
	if n <= 0 {
		n, w = 1, 1
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = w * sigma
	}
	return out
}

// ComposedAllocation is the composed planner's noise for one statistic.
type ComposedAllocation struct {
	Name string `json:"name"`
	// Sigma is the σ of the noise on each counter's total.
	Sigma float64 `json:"sigma"`
	// Mu is the statistic's share of the round's μ: s/σ with
	// s = Sensitivity·√BinsTouched its L2 sensitivity (the continuous
	// Gaussian's; the discrete accounting is a hair larger).
	Mu          float64 `json:"mu"`
	Sensitivity float64 `json:"sensitivity"`
	BinsTouched int64   `json:"bins_touched"`
	// ExpectedRelativeError is Sigma / Estimate.
	ExpectedRelativeError float64 `json:"expected_relative_error"`
	// CI95HalfWidth is 1.96·Sigma.
	CI95HalfWidth float64 `json:"ci95_half_width"`
}

// ComposedPlan is a round calibrated as one composed mechanism.
type ComposedPlan struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// Mu is the μ of the exact GDP curve for (Epsilon, Delta): what the
	// continuous Gaussian may spend.
	Mu float64 `json:"mu"`
	// OptimumRelativeError is the common relative error of the continuous
	// optimum, σ_i = s_i/μ_i with Σμ_i² = Mu²; the plan's σ are above it by
	// what the discrete noise's proof costs (and by any floor).
	OptimumRelativeError float64              `json:"optimum_relative_error"`
	Statistics           []ComposedAllocation `json:"statistics"`
	// Raised names the statistics whose σ the floor set.
	Raised []string `json:"raised,omitempty"`
}

// plannerHeadroom is the share of ε the composed planner leaves unspent,
// so that a round planned without knowing every collector's weight still
// passes every node's check: the weakest set's Σw² may fall 10⁻⁹ short
// of 1 (coverageSlack) and each extra collector at the floor adds about
// 10⁻¹⁷ to the slack A.
const plannerHeadroom = 1e-8

// AllocateComposed calibrates a round as one composed mechanism: the
// round's (ε, δ) gives μ on the exact GDP curve, and statistic i gets the
// share μ_i = s_i/σ_i, Σμ_i² = μ², that gives every statistic the same
// expected relative error σ_i/Estimate_i. For the continuous Gaussian the
// answer is closed-form: r = √(Σ(s_i/E_i)²)/μ. The noise privstats adds is
// the discrete Gaussian summed over the honest collectors, whose privacy
// [RoundEpsilon] proves; so the plan's σ_i = max(r·E_i, floor) use the
// least r for which that proof reaches ε (less plannerHeadroom), found by
// bisection, with floor the σ below which a collector would add less than
// MinCollectorSigma (0 for none). Statistics the floor raises come out
// more accurate than the rest, and the rest use the budget they free.
func AllocateComposed(epsilon, delta float64, stats []StatisticBudget, honest HonestSet, floor float64) (*ComposedPlan, error) {
	if err := checkPlan(epsilon, delta, stats); err != nil {
		return nil, err
	}
	mu, err := GDPMu(epsilon, delta)
	if err != nil {
		return nil, err
	}
	var sum2 float64
	for _, st := range stats {
		sum2 += math.Pow(l2Sensitivity(st.L0, st.LInf)/st.Estimate, 2)
	}
	plan := &ComposedPlan{Epsilon: epsilon, Delta: delta, Mu: mu, OptimumRelativeError: math.Sqrt(sum2) / mu}

	sigmaAt := func(r float64, st StatisticBudget) float64 { return max(r*st.Estimate, floor) }
	target := epsilon * (1 - plannerHeadroom)
	round := make([]RoundStatistic, len(stats))
	ok := func(r float64) bool {
		for i, st := range stats {
			round[i] = RoundStatistic{Name: st.Name, Sigmas: honest.sigmas(sigmaAt(r, st)), L0: st.L0, LInf: st.LInf}
		}
		e, err := RoundEpsilon(round, delta)
		return err == nil && e <= target
	}
	hi := plan.OptimumRelativeError
	for !ok(hi) {
		if hi *= 2; math.IsInf(hi, 0) || hi > 1e300 {
			return nil, fmt.Errorf("noise: no noise makes these statistics (%g, %g)-private", epsilon, delta) // unreachable for checked input
		}
	}
	r := bisect(0, hi, ok)
	for _, st := range stats {
		sigma := sigmaAt(r, st)
		if sigma > r*st.Estimate {
			plan.Raised = append(plan.Raised, st.Name)
		}
		plan.Statistics = append(plan.Statistics, ComposedAllocation{
			Name: st.Name, Sigma: sigma, Mu: l2Sensitivity(st.L0, st.LInf) / sigma,
			Sensitivity: st.LInf, BinsTouched: st.L0,
			ExpectedRelativeError: sigma / st.Estimate, CI95HalfWidth: z95 * sigma,
		})
	}
	return plan, nil
}

// AllocateClassic is PrivCount's own rule, for comparison: δ split evenly,
// ε split so that every statistic gets the same expected relative error,
// each σ_i from the classic bound (s_i/ε_i)·√(2 ln(1.25/δ_i)) ([ClassicSigma]).
// With σ_i = r·E_i that is ε_i = c·s_i/(r·E_i), c = √(2 ln(1.25k/δ)), and
// Σε_i = ε gives r = c·Σ(s_i/E_i)/ε. The bound assumes ε_i < 1.
func AllocateClassic(epsilon, delta float64, stats []StatisticBudget) ([]Allocation, error) {
	if err := checkPlan(epsilon, delta, stats); err != nil {
		return nil, err
	}
	k := float64(len(stats))
	c := math.Sqrt(2 * math.Log(1.25*k/delta))
	var sum float64
	for _, st := range stats {
		sum += l2Sensitivity(st.L0, st.LInf) / st.Estimate
	}
	r := c * sum / epsilon
	out := make([]Allocation, len(stats))
	for i, st := range stats {
		sigma := r * st.Estimate
		out[i] = Allocation{
			Name: st.Name, Epsilon: c * l2Sensitivity(st.L0, st.LInf) / sigma, Delta: delta / k,
			Sigma: sigma, ClassicSigma: sigma, ExpectedRelativeError: r, CI95HalfWidth: z95 * sigma,
		}
	}
	return out, nil
}

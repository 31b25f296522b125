package noise

import (
	"errors"
	"fmt"
	"math"
)

// StatisticBudget describes one statistic of a round to the planner.
type StatisticBudget struct {
	Name string
	// L0 is how many of the statistic's counters (histogram bins) one user's
	// action can change, and LInf how much it can change each.
	L0   int64
	LInf float64
	// Estimate is the expected true network-wide total, which must be
	// positive; the planner aims the noise at a relative error of it.
	Estimate float64
}

// Allocation is the planner's share of a round's budget for one statistic.
type Allocation struct {
	Name    string  `json:"name"`
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// Sigma is the noise σ that (Epsilon, Delta) buys, from [Sigma].
	Sigma float64 `json:"sigma"`
	// ClassicSigma is what PrivCount's classic bound would have asked for
	// with the same budget, for comparison only.
	ClassicSigma float64 `json:"classic_sigma"`
	// ExpectedRelativeError is Sigma / Estimate.
	ExpectedRelativeError float64 `json:"expected_relative_error"`
	// CI95HalfWidth is the half-width 1.96·Sigma of the 95% confidence
	// interval every result of the statistic will carry.
	CI95HalfWidth float64 `json:"ci95_half_width"`
}

// Allocate splits a round's privacy budget (ε, δ) across its statistics by
// PrivCount's rule: δ evenly, and ε so that every statistic has the same
// expected relative error σ_i / Estimate_i, with Σ ε_i = ε.
//
// The split is solved on the exact analytic Gaussian curve, where σ is a
// continuous, decreasing function of ε: an outer bisection on the common
// relative error r, and for each statistic an inner one for the ε_i whose
// σ is r·Estimate_i. The ε_i are then scaled so they sum to ε to float
// precision, and σ_i is recomputed from them with [Sigma], so that a node
// checking the round against its policy derives the same σ. Because Sigma
// rounds up by at most 0.1%, the reported relative errors agree to that
// precision rather than exactly.
//
// A statistic whose estimate is so large that its share of δ alone hides it
// at the common relative error needs no ε at all; it gets a token 10⁻⁹ of ε,
// for [Sigma] needs ε > 0, and comes out more accurate than the others.
func Allocate(epsilon, delta float64, stats []StatisticBudget) ([]Allocation, error) {
	if err := checkPlan(epsilon, delta, stats); err != nil {
		return nil, err
	}
	k := float64(len(stats))
	deltaEach := delta / k
	sens := make([]float64, len(stats))
	for i, st := range stats {
		sens[i] = l2Sensitivity(st.L0, st.LInf)
	}

	// epsilonsFor returns the ε_i that give every statistic relative error r,
	// or false if together they need more than ε.
	eps := make([]float64, len(stats))
	epsilonsFor := func(r float64) bool {
		var sum float64
		for i, st := range stats {
			e, err := tightEpsilon(r*st.Estimate, deltaEach, sens[i], epsilon)
			if err != nil {
				e = math.Inf(1)
			}
			e = max(e, tokenEpsilonShare*epsilon)
			eps[i] = e
			sum += e
		}
		return sum <= epsilon
	}

	// With an even split each statistic has some relative error r_i. At the
	// largest r_i every statistic needs at most ε/k and at the smallest at
	// least ε/k, so the common r lies between them. The bracket is widened a
	// little so that rounding in r·Estimate cannot put r outside it.
	lo, hi := math.Inf(1), 0.0
	for i, st := range stats {
		r := tightSigma(epsilon/k, deltaEach, sens[i]) / st.Estimate
		lo, hi = min(lo, r), max(hi, r)
	}
	r := bisect(lo*(1-1e-9), hi*(1+1e-9), epsilonsFor)
	epsilonsFor(r)

	var sum float64
	for _, e := range eps {
		sum += e
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return nil, fmt.Errorf("noise: planner found no split of ε = %g", epsilon) // unreachable for checked input
	}
	scale := epsilon / sum
	out := make([]Allocation, len(stats))
	for i, st := range stats {
		a, err := allocation(st, eps[i]*scale, deltaEach)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// tokenEpsilonShare is the share of ε given to a statistic that needs none:
// positive, as Sigma requires, and too small to matter to the others.
const tokenEpsilonShare = 1e-9

// AllocateEven splits (ε, δ) evenly across the statistics, the naive plan
// that [Allocate] improves on; it is reported alongside for comparison.
func AllocateEven(epsilon, delta float64, stats []StatisticBudget) ([]Allocation, error) {
	if err := checkPlan(epsilon, delta, stats); err != nil {
		return nil, err
	}
	k := float64(len(stats))
	out := make([]Allocation, len(stats))
	for i, st := range stats {
		a, err := allocation(st, epsilon/k, delta/k)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func allocation(st StatisticBudget, epsilon, delta float64) (Allocation, error) {
	sigma, err := Sigma(epsilon, delta, st.L0, st.LInf)
	if err != nil {
		return Allocation{}, fmt.Errorf("noise: statistic %q: %w", st.Name, err)
	}
	return Allocation{
		Name:                  st.Name,
		Epsilon:               epsilon,
		Delta:                 delta,
		Sigma:                 sigma,
		ClassicSigma:          ClassicSigma(epsilon, delta, st.L0, st.LInf),
		ExpectedRelativeError: sigma / st.Estimate,
		CI95HalfWidth:         z95 * sigma,
	}, nil
}

func checkPlan(epsilon, delta float64, stats []StatisticBudget) error {
	if err := checkBudget(epsilon, delta); err != nil {
		return fmt.Errorf("noise: round budget: %w", err)
	}
	if len(stats) == 0 {
		return errors.New("noise: no statistics to allocate the budget to")
	}
	seen := make(map[string]bool, len(stats))
	for _, st := range stats {
		if st.Name == "" {
			return errors.New("noise: a statistic has no name")
		}
		if seen[st.Name] {
			return fmt.Errorf("noise: statistic %q is listed twice", st.Name)
		}
		seen[st.Name] = true
		if err := checkSensitivity(st.L0, st.LInf); err != nil {
			return fmt.Errorf("noise: statistic %q: %w", st.Name, err)
		}
		if !(st.Estimate > 0) || math.IsInf(st.Estimate, 0) {
			return fmt.Errorf("noise: statistic %q: estimate = %g, must be positive and finite (the expected true total)", st.Name, st.Estimate)
		}
	}
	return nil
}

// RaiseToFloor raises every allocation's σ to at least floor, the σ below
// which some collector would add less than MinCollectorSigma and every node
// would refuse the round (CheckClaim): with weights whose smallest is w,
// floor = MinCollectorSigma / w. More noise than the budget needs is still
// as private; the statistic's ε_i and δ_i stay as allocated. It returns
// the names of the statistics it raised.
func RaiseToFloor(alloc []Allocation, floor float64) []string {
	var raised []string
	for i := range alloc {
		a := &alloc[i]
		if a.Sigma >= floor {
			continue
		}
		scale := floor / a.Sigma
		a.Sigma, a.ExpectedRelativeError, a.CI95HalfWidth = floor, a.ExpectedRelativeError*scale, a.CI95HalfWidth*scale
		raised = append(raised, a.Name)
	}
	return raised
}

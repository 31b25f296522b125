package noise

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/privstats/privstats/aggregator/round"
)

// claimSlack absorbs float rounding: a σ written out in decimal (a config
// file, JSON) and sums of per-statistic budgets (0.1 + 0.1 + 0.1 must not
// exceed 0.3).
const claimSlack = 1e-9

// Needed is the σ a noisy statistic needs for the (ε, δ) it claims, given
// the sensitivity (L∞) and bins touched (L0) it declares.
func Needed(s round.StatisticSpec) (float64, error) {
	if s.Sensitivity <= 0 || s.BinsTouched <= 0 {
		return 0, fmt.Errorf("no sensitivity declared (sensitivity %v, bins_touched %d), so no (ε, δ) can be claimed", s.Sensitivity, s.BinsTouched)
	}
	return Sigma(s.Epsilon, s.Delta, s.BinsTouched, s.Sensitivity)
}

// CheckClaim checks that a round's noise gives the privacy it claims: every
// noisy statistic declares its sensitivity and has at least the σ its
// (ε_i, δ_i) need for it, and the statistics' ε_i and δ_i add up to no more
// than the round's (ε, δ). Every node runs it on every round, whatever its
// local policy (docs/threat-model.md): a round that claims more privacy
// than its noise gives is refused, not merely disliked. Statistics with
// σ = 0 add no noise and claim nothing; whether to take part in such a
// round is the node policy's decision (allow_zero_noise), and verify
// reports their totals NOT PRIVATE.
func CheckClaim(cfg *round.Config) error {
	var problems []string
	var sumEps, sumDelta float64
	for _, s := range cfg.Statistics {
		sumEps += s.Epsilon
		sumDelta += s.Delta
		if s.Sigma == 0 {
			continue
		}
		need, err := Needed(s)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("statistic %s: %v", s.Name, err))
		case !(s.Sigma >= need*(1-claimSlack)):
			problems = append(problems, fmt.Sprintf("statistic %s: σ = %.6g is less than the %.6g that ε = %.6g, δ = %.3g need for sensitivity %v over %d bins",
				s.Name, s.Sigma, need, s.Epsilon, s.Delta, s.Sensitivity, s.BinsTouched))
		}
	}
	if !(sumEps <= cfg.Epsilon*(1+claimSlack)) || math.IsNaN(sumEps) {
		problems = append(problems, fmt.Sprintf("the statistics' ε add up to %.10g, more than the round's ε = %v", sumEps, cfg.Epsilon))
	}
	if !(sumDelta <= cfg.Delta*(1+claimSlack)) || math.IsNaN(sumDelta) {
		problems = append(problems, fmt.Sprintf("the statistics' δ add up to %.10g, more than the round's δ = %v", sumDelta, cfg.Delta))
	}
	if len(problems) > 0 {
		return errors.New("the round claims more privacy than its noise gives: " + strings.Join(problems, "; "))
	}
	return nil
}

package outcome

import (
	"fmt"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/stats"
)

// StatisticPrivacy is what a reader of an outcome can rely on for one
// statistic: the (ε, δ) the round claims for it, the σ its noise must have
// for that claim (recomputed here from ε, δ and the declared sensitivity,
// never taken from the file), the σ the released collector set S really
// carried, and whether the claim holds.
type StatisticPrivacy struct {
	Name           string
	Epsilon, Delta float64
	// Sensitivity (L∞) and BinsTouched (L0) are what the round declared.
	Sensitivity float64
	BinsTouched int64
	// Needed is the σ that (ε, δ) need for that sensitivity; Carried is
	// the true standard deviation of the noise S's collectors added (their
	// weights, not the requested σ).
	Needed, Carried float64
	// Achieved is the ε S's summed discrete Gaussian noise actually gives
	// at the claimed δ (noise.DistributedEpsilon); 0 when there is none or
	// the round is composed.
	Achieved float64
	// Mu is, in a composed round, the statistic's share of the round's μ
	// over S (noise.AccountRound).
	Mu      float64
	Private bool
	// Why says what is missing when Private is false.
	Why string
	// Note warns, without failing the check, that the declared sensitivity
	// is below the catalogue's action bound: (ε, δ) then protect less
	// activity than a Tor user's day (a test network, or the demo's
	// seconds-long rounds, do this on purpose).
	Note string
}

// Privacy is verify's account of a round's privacy: each statistic's, and
// the budget its statistics spend against the round's (ε, δ).
type Privacy struct {
	Statistics []StatisticPrivacy
	// Epsilon and Delta are the round's budget; SpentEpsilon and
	// SpentDelta what its statistics add up to (split rounds).
	Epsilon, Delta           float64
	SpentEpsilon, SpentDelta float64
	// Composed is set for a round accounted as one composed mechanism;
	// then Mu is the μ of S's noise over all statistics and Achieved the ε
	// it gives at the round's δ (noise.ComposedAccount).
	Composed     bool
	Mu, Achieved float64
	// Private is true only when every statistic's claim holds and the
	// statistics stay within the round's budget.
	Private bool
	// Why lists every reason the round is not private.
	Why []string
}

// budgetSlack absorbs float rounding when ε_i and δ_i are summed
// (0.1 + 0.1 + 0.1 must not exceed 0.3), and sigmaSlack the decimal
// rounding of a σ written out in JSON; both as policy/policy.go uses them.
const (
	budgetSlack = 1e-9
	sigmaSlack  = 1e-9
)

// CheckPrivacy recomputes, from the signed round config and the signed S
// alone, whether the outcome's totals are as private as the round claims.
// It does not check signatures: run Verify first.
func CheckPrivacy(o *Outcome) Privacy {
	cfg := o.Config
	p := Privacy{Epsilon: cfg.Epsilon, Delta: cfg.Delta, Private: true}
	weights := weightsOf(cfg, o.Collectors.Fingerprints)
	if cfg.Composed() {
		return composedPrivacy(o)
	}
	for _, s := range cfg.Statistics {
		sp := statisticPrivacy(s, weights)
		p.SpentEpsilon += s.Epsilon
		p.SpentDelta += s.Delta
		if !sp.Private {
			p.Private = false
			p.Why = append(p.Why, fmt.Sprintf("%s: %s", s.Name, sp.Why))
		}
		p.Statistics = append(p.Statistics, sp)
	}
	if p.SpentEpsilon > cfg.Epsilon*(1+budgetSlack) {
		p.Private = false
		p.Why = append(p.Why, fmt.Sprintf("the statistics' ε add up to %.10g, more than the round's ε = %v", p.SpentEpsilon, cfg.Epsilon))
	}
	if p.SpentDelta > cfg.Delta*(1+budgetSlack) {
		p.Private = false
		p.Why = append(p.Why, fmt.Sprintf("the statistics' δ add up to %.10g, more than the round's δ = %v", p.SpentDelta, cfg.Delta))
	}
	return p
}

// composedPrivacy is CheckPrivacy for a composed round: each noisy
// statistic must declare its sensitivity and have every collector of S add
// at least noise.MinCollectorSigma, and S's noise over all statistics must
// make the round (ε, δ)-private (noise.CheckComposed).
func composedPrivacy(o *Outcome) Privacy {
	cfg := o.Config
	S := o.Collectors.Fingerprints
	weights := weightsOf(cfg, S)
	p := Privacy{Epsilon: cfg.Epsilon, Delta: cfg.Delta, Composed: true, Private: true}
	acc, eps, accErr := noise.ComposedAccount(cfg, S)
	if accErr == nil {
		p.Mu, p.Achieved = acc.Mu, eps
	}
	noisy := 0
	for _, s := range cfg.Statistics {
		sp := StatisticPrivacy{Name: s.Name, Sensitivity: s.Sensitivity, BinsTouched: s.BinsTouched,
			Carried: noise.DiscreteTotalSigma(s.Sigma, weights), Note: sensitivityNote(s)}
		switch {
		case s.Sigma == 0:
			sp.Why = "no noise was added (σ = 0): the totals are exact"
		case s.Sensitivity <= 0 || s.BinsTouched <= 0:
			sp.Why = fmt.Sprintf("no sensitivity declared (sensitivity %v, bins_touched %d), so no (ε, δ) can be claimed", s.Sensitivity, s.BinsTouched)
		default:
			if accErr == nil {
				sp.Mu = acc.Mus[noisy]
			}
			noisy++
			sp.Private = true
			for i, w := range weights {
				if x := w * s.Sigma; x > 0 && x < noise.MinCollectorSigma {
					sp.Private = false
					sp.Why = fmt.Sprintf("collector %s adds noise with σ = %.4g, below %d: the sum's privacy cannot be proven", S[i], x, noise.MinCollectorSigma)
					break
				}
			}
		}
		if !sp.Private {
			p.Private = false
			p.Why = append(p.Why, fmt.Sprintf("%s: %s", s.Name, sp.Why))
		}
		p.Statistics = append(p.Statistics, sp)
	}
	if noisy > 0 && p.Private {
		if err := noise.CheckComposed(cfg, S); err != nil {
			p.Private = false
			p.Why = append(p.Why, err.Error())
		}
	}
	return p
}

// sensitivityNote warns when a noisy statistic declares less than the
// catalogue's action bound.
func sensitivityNote(s round.StatisticSpec) string {
	if floor, err := stats.Resolve(s.Name, s.Bins); err == nil && s.Sigma > 0 && s.Sensitivity < floor.Sensitivity {
		return fmt.Sprintf("%s declares sensitivity %.6g, below the catalogue's action bound %.6g: its (ε, δ) protect that much of one user's activity, not a Tor user's day",
			s.Name, s.Sensitivity, floor.Sensitivity)
	}
	return ""
}

func weightsOf(cfg *round.Config, S []string) []float64 {
	weights := make([]float64, 0, len(S))
	for _, fp := range S {
		dc, _ := cfg.Collector(fp)
		weights = append(weights, dc.NoiseWeight)
	}
	return weights
}

func statisticPrivacy(s round.StatisticSpec, weights []float64) StatisticPrivacy {
	sp := StatisticPrivacy{Name: s.Name, Epsilon: s.Epsilon, Delta: s.Delta, Sensitivity: s.Sensitivity, BinsTouched: s.BinsTouched,
		Carried: noise.DiscreteTotalSigma(s.Sigma, weights), Note: sensitivityNote(s)}
	switch {
	case s.Sigma == 0:
		sp.Why = "no noise was added (σ = 0): the totals are exact"
		return sp
	}
	need, err := noise.Needed(s)
	if err != nil {
		sp.Why = err.Error()
		return sp
	}
	sp.Needed = need
	// What S's noise gives: each collector's discrete Gaussian of σ w_i·σ,
	// summed (docs/noise-discrete.md). This is the check that counts;
	// Needed is shown for comparison with the plan.
	sigmas := make(map[string]float64, len(weights))
	list := make([]float64, 0, len(weights))
	for i, w := range weights {
		sigmas[fmt.Sprint(i)] = w * s.Sigma
		list = append(list, w*s.Sigma)
	}
	if eps, err := noise.DistributedEpsilon(list, s.Delta, s.BinsTouched, s.Sensitivity); err == nil {
		sp.Achieved = eps
	}
	if err := noise.CheckDistributed(sigmas, s.Epsilon, s.Delta, s.BinsTouched, s.Sensitivity); err != nil {
		sp.Why = fmt.Sprintf("its total carries noise σ = %.6g from %d collectors: %v", sp.Carried, len(list), err)
		return sp
	}
	sp.Private = true
	return sp
}

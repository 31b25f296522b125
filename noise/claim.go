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

// checkDistributedClaim checks what the collectors' discrete Gaussian noise
// gives: every collector that adds noise adds at least MinCollectorSigma to
// each counter, any min_collectors of them carry σ² between them
// (CheckCoverage), and the min_collectors with the smallest weights, the
// weakest set that can be released, make each statistic as private as it
// claims (CheckDistributed).
func checkDistributedClaim(cfg *round.Config) []string {
	weights := make(map[string]float64, len(cfg.Collectors))
	for _, c := range cfg.Collectors {
		weights[c.Fingerprint] = c.NoiseWeight
	}
	noisy := false
	var problems []string
	for _, s := range cfg.Statistics {
		if s.Sigma == 0 {
			continue
		}
		noisy = true
		var low int
		smallest := math.Inf(1)
		var high int
		for _, w := range weights {
			if w > 0 && w*s.Sigma < MinCollectorSigma {
				low++
				smallest = min(smallest, w)
			}
			if w*s.Sigma > MaxSampleSigma {
				high++
			}
		}
		if high > 0 {
			problems = append(problems, fmt.Sprintf("statistic %s: %d collectors would be asked for noise with σ above 2^53, more than a collector can draw", s.Name, high))
		}
		if low > 0 {
			problems = append(problems, fmt.Sprintf("statistic %s: %d collectors would add noise with σ below %d (w·σ = %.4g at the smallest weight), too little for the sum's privacy to be proven; raise σ to at least %.6g",
				s.Name, low, MinCollectorSigma, smallest*s.Sigma, MinCollectorSigma/smallest))
		}
	}
	if !noisy {
		return problems
	}
	if err := CheckCoverage(weights, cfg.MinCollectors); err != nil {
		return append(problems, err.Error())
	}
	if len(problems) > 0 {
		return problems
	}
	weakest := weakestSet(weights, cfg.MinCollectors)
	if cfg.Composed() {
		if err := CheckComposed(cfg, weakest); err != nil {
			problems = append(problems, err.Error())
		}
		return problems
	}
	for _, s := range cfg.Statistics {
		if s.Sigma == 0 || s.Sensitivity <= 0 || s.BinsTouched <= 0 {
			continue
		}
		sigmas := make(map[string]float64, len(weakest))
		for _, fp := range weakest {
			sigmas[fp] = weights[fp] * s.Sigma
		}
		if err := CheckDistributed(sigmas, s.Epsilon, s.Delta, s.BinsTouched, s.Sensitivity); err != nil {
			problems = append(problems, fmt.Sprintf("statistic %s: %v", s.Name, err))
		}
	}
	return problems
}

// WeakestSet is the releasable set whose noise a node checks a round's
// claim on: the min_collectors permitted collectors with the smallest
// noise weights (ties by fingerprint). Any larger set is at least as
// private, up to its η terms (docs/noise-discrete.md).
func WeakestSet(cfg *round.Config) []string {
	weights := make(map[string]float64, len(cfg.Collectors))
	for _, c := range cfg.Collectors {
		weights[c.Fingerprint] = c.NoiseWeight
	}
	return weakestSet(weights, cfg.MinCollectors)
}

// weakestSet is the m collectors with the smallest weights.
func weakestSet(weights map[string]float64, m int) []string {
	sorted, err := byVariance(weights)
	if err != nil || m > len(sorted) {
		return nil
	}
	out := make([]string, m)
	for i, c := range sorted[:m] {
		out[i] = c.fingerprint
	}
	return out
}

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
//
// A composed round (cfg.Composed) claims only the round's (ε, δ): each noisy
// statistic must declare its sensitivity, and the noise of all of them
// together, on the weakest releasable set, must reach (ε, δ)
// ([CheckComposed]).
func CheckClaim(cfg *round.Config) error {
	if cfg.Composed() {
		return checkComposedClaim(cfg)
	}
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
	problems = append(problems, checkDistributedClaim(cfg)...)
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

func checkComposedClaim(cfg *round.Config) error {
	var problems []string
	for _, s := range cfg.Statistics {
		if s.Sigma != 0 && (s.Sensitivity <= 0 || s.BinsTouched <= 0) {
			problems = append(problems, fmt.Sprintf("statistic %s: no sensitivity declared (sensitivity %v, bins_touched %d), so no (ε, δ) can be claimed",
				s.Name, s.Sensitivity, s.BinsTouched))
		}
	}
	if len(problems) == 0 {
		problems = checkDistributedClaim(cfg)
	}
	if len(problems) > 0 {
		return errors.New("the round claims more privacy than its noise gives: " + strings.Join(problems, "; "))
	}
	return nil
}

// ComposedAccount is the composed accounting of a round's noise over the
// collector set S (fingerprints): each noisy statistic's per-collector σ
// w_i·σ and declared sensitivity, through [AccountRound], and the ε at the
// round's δ. Collectors not in the config count as weight 0.
func ComposedAccount(cfg *round.Config, S []string) (RoundAccount, float64, error) {
	acc, err := AccountRound(roundStatistics(cfg, S, 1))
	if err != nil {
		return acc, 0, err
	}
	eps, err := acc.Epsilon(cfg.Delta)
	return acc, eps, err
}

// roundStatistics is the round's noisy statistics over S with every σ
// multiplied by scale.
func roundStatistics(cfg *round.Config, S []string, scale float64) []RoundStatistic {
	var out []RoundStatistic
	for _, s := range cfg.Statistics {
		if s.Sigma == 0 {
			continue
		}
		st := RoundStatistic{Name: s.Name, L0: s.BinsTouched, LInf: s.Sensitivity}
		for _, fp := range S {
			c, _ := cfg.Collector(fp)
			st.Sigmas = append(st.Sigmas, c.NoiseWeight*s.Sigma*scale)
		}
		out = append(out, st)
	}
	return out
}

// CheckComposed checks that the noise of a composed round's statistics,
// as carried by the collector set S, makes the round (ε, δ)-private as a
// whole, to claimSlack. The error gives the ε the noise does reach and by
// how much every σ would have to rise.
func CheckComposed(cfg *round.Config, S []string) error {
	if err := checkBudget(cfg.Epsilon, cfg.Delta); err != nil {
		return fmt.Errorf("the round's budget: %w", err)
	}
	stats := roundStatistics(cfg, S, 1)
	if len(stats) == 0 {
		return nil // no noise, no claim: the policy's call (allow_zero_noise)
	}
	acc, err := AccountRound(stats)
	if err != nil {
		return fmt.Errorf("composed over %d collectors: %w", len(S), err)
	}
	got, err := acc.Epsilon(cfg.Delta)
	if err != nil {
		return fmt.Errorf("composed over %d collectors: %w", len(S), err)
	}
	if got <= cfg.Epsilon*(1+claimSlack) {
		return nil
	}
	msg := fmt.Sprintf("the statistics' noise composed over %d collectors (μ = %.6g) makes the round (%.6g, %g)-private, weaker than the claimed ε = %v",
		len(S), acc.Mu, got, cfg.Delta, cfg.Epsilon)
	if scale, ok := ComposedScale(cfg, S); ok {
		msg += fmt.Sprintf("; every σ would have to rise by %.3g%%", 100*(scale-1))
	}
	return errors.New(msg)
}

// ComposedScale is the least factor by which multiplying every σ of a
// composed round makes its noise over S reach the round's claim, to 10⁻⁶
// relative (rounded up): above 1 by how much a round falls short, below 1
// by how much noise it could spare. It reports false if no factor up to
// 10¹² does.
func ComposedScale(cfg *round.Config, S []string) (float64, bool) {
	ok := func(scale float64) bool {
		e, err := RoundEpsilon(roundStatistics(cfg, S, scale), cfg.Delta)
		return err == nil && e <= cfg.Epsilon*(1+claimSlack)
	}
	var lo, hi float64
	if ok(1) {
		for lo, hi = 0.5, 1; ok(lo); lo, hi = lo/2, lo {
			if lo < 1e-12 {
				return lo, true
			}
		}
	} else {
		for lo, hi = 1, 2; !ok(hi); lo, hi = hi, 2*hi {
			if hi > 1e12 {
				return 0, false
			}
		}
	}
	for hi-lo > 1e-6*hi {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}

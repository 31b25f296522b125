// Package policy is the local privacy policy every privstats node enforces
// before it takes part in a round, and the ledger that makes the delay rule
// work across restarts (docs/noise.md, "Node policy").
//
// A round config comes from the tally server, which is trusted to publish
// honestly but not to choose the privacy parameters of every node. So each
// share keeper and collector, and the tally server itself before it
// announces, checks the round against limits its own operator set: the
// privacy budget (ε, δ), how many collectors must report, how long the round
// lasts, how many statistics it measures, and the delay rule. The delay rule
// stops a series of rounds from being reconfigured quickly to difference
// one measurement against another: if a round measures a different set of
// statistics than the series' first round, or gives some statistic less
// noise, it may start only delay_period after the previous round ended.
//
// A node calls [Policy.Check] before it takes part and [Ledger.Record] as
// soon as it does; the [Ledger] persists what the delay rule needs (never any
// counts) so that a restart does not reset it.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/stats"
)

// Policy is the set of limits a node puts on the rounds it takes part in.
// Start from [Defaults]: a zero Policy is invalid, so that a node cannot
// end up with no limits by forgetting to configure them.
type Policy struct {
	// MaxEpsilon bounds the round's ε, and the sum of its statistics' ε.
	MaxEpsilon float64 `yaml:"max_epsilon"`
	// MaxDelta bounds δ from above. δ is the probability that the ε
	// guarantee fails, so a smaller δ is more protection: this is a
	// "minimum δ" in the sense of the least protection a node accepts
	// (docs/noise.md). It bounds the round's δ and the sum of its statistics'.
	MaxDelta float64 `yaml:"max_delta"`
	// MinCollectors is the smallest min_collectors a round may declare: the
	// fewest collectors whose counts may be summed and released.
	MinCollectors int `yaml:"min_collectors"`
	// MinRoundLength is the shortest round accepted. Each round spends its
	// ε afresh, so short rounds spend budget quickly. Zero means no minimum.
	MinRoundLength Duration `yaml:"min_round_length"`
	// MaxStatistics bounds the number of statistics in a round. Zero means
	// no limit, which is safe because their ε and δ are bounded in sum.
	MaxStatistics int `yaml:"max_statistics"`
	// DelayPeriod is how long after the previous round of a series ended a
	// round that changes the statistic set or lowers a σ may start.
	DelayPeriod Duration `yaml:"delay_period"`
	// SigmaTolerance is the relative fall in σ that does not count as a
	// decrease: σ decreases when σ < (1 − SigmaTolerance)·σ_first. It keeps
	// rounding in the planner from triggering the delay rule.
	SigmaTolerance float64 `yaml:"sigma_tolerance"`
	// MinSensitivity sets, per statistic, the smallest action bound (L∞) a
	// round may calibrate its noise for. A statistic not listed is held to
	// the catalogue's action bound (privstats stats), which protects a
	// heavy day of one Tor user's activity; list one here to accept less
	// (for a test network) or to demand more.
	MinSensitivity map[string]float64 `yaml:"min_sensitivity,omitempty"`
	// AllowZeroNoise accepts statistics with σ = 0, whose totals are exact
	// and carry no privacy protection at all. It exists for protocol tests
	// (exact totals prove the arithmetic); never set it for real relays.
	AllowZeroNoise bool `yaml:"allow_zero_noise"`
	// DishonestKeepers is how many share keepers this node assumes may
	// collude with the tally server. A keeper releases its share only when
	// it sees commits on its agreement from more than (N + this)/2 keepers,
	// so two agreements can never both reach that quorum while at most this
	// many keepers sign both (docs/threat-model.md). With 0, the PrivCount
	// model, K commits suffice, and when 2K − N = 1 the tally server and a
	// single keeper that signs both could have two collector sets
	// released. A node refuses a round with too few keepers for it.
	DishonestKeepers int `yaml:"dishonest_keepers"`
}

// ReleaseQuorum is how many keepers' commits on one agreement a keeper
// needs to see before it releases its share, in a round of n keepers with
// threshold k when up to dishonest keepers may sign two agreements: at
// least k, and more than (n + dishonest)/2, so that any two quorums share
// an honest keeper, who commits only once.
func ReleaseQuorum(n, k, dishonest int) int {
	return max(k, (n+dishonest)/2+1)
}

// Defaults is the policy a node enforces unless its operator says
// otherwise: the budget PrivCount's published Tor measurements used per
// round (ε = 0.3, δ = 10⁻³), at least 3 reporting collectors (fewer comes
// close to publishing one relay's figures), rounds of at least an hour, no
// limit on the number of statistics, a 24-hour delay period and a 1% σ
// tolerance.
func Defaults() Policy {
	return Policy{
		MaxEpsilon:     0.3,
		MaxDelta:       1e-3,
		MinCollectors:  3,
		MinRoundLength: Duration(time.Hour),
		MaxStatistics:  0,
		DelayPeriod:    Duration(24 * time.Hour),
		SigmaTolerance: 0.01,
	}
}

// FieldError is a problem with one setting of a Policy, named by its YAML
// key so that a config loader can point at the line.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Validate reports every setting that is out of range, each as a
// *FieldError, joined with errors.Join.
func (p Policy) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if !(p.MaxEpsilon > 0) || math.IsInf(p.MaxEpsilon, 0) {
		bad("max_epsilon", "%v must be a positive number (PrivCount used 0.3 per round)", p.MaxEpsilon)
	}
	if !(p.MaxDelta > 0 && p.MaxDelta < 1) {
		bad("max_delta", "%v must be between 0 and 1, exclusive (a failure probability such as 1e-3)", p.MaxDelta)
	}
	if p.MinCollectors < 1 {
		bad("min_collectors", "%d must be at least 1", p.MinCollectors)
	}
	if p.DishonestKeepers < 0 {
		bad("dishonest_keepers", "%d is negative", p.DishonestKeepers)
	}
	if p.MinRoundLength < 0 {
		bad("min_round_length", "%s is negative", p.MinRoundLength)
	}
	if p.MaxStatistics < 0 {
		bad("max_statistics", "%d is negative (0 means no limit)", p.MaxStatistics)
	}
	if p.DelayPeriod <= 0 {
		bad("delay_period", "%s must be positive (a day, 24h, is usual; see docs/noise.md)", p.DelayPeriod)
	}
	if !(p.SigmaTolerance >= 0 && p.SigmaTolerance < 1) {
		bad("sigma_tolerance", "%v must be at least 0 and below 1 (a fraction: 0.01 is 1%%)", p.SigmaTolerance)
	}
	for _, name := range slices.Sorted(maps.Keys(p.MinSensitivity)) {
		if _, err := stats.Resolve(name, nil); err != nil {
			bad("min_sensitivity."+name, "%v", err)
		} else if v := p.MinSensitivity[name]; !(v > 0) || math.IsInf(v, 0) {
			bad("min_sensitivity."+name, "%v must be a positive number (the least action bound this node accepts)", v)
		}
	}
	return errors.Join(errs...)
}

// Refusal is the error Check returns when a round breaks the policy. Reason
// says which limits, in words an operator can act on; the node logs it and
// reports it to the tally server.
type Refusal struct {
	Reason string
}

func (r *Refusal) Error() string { return "policy: " + r.Reason }

// sumSlack absorbs floating-point rounding when per-statistic budgets are
// summed: 0.1 + 0.1 + 0.1 must not exceed a limit of 0.3.
const sumSlack = 1e-9

// Check decides whether this node may take part in the round cfg. It returns
// nil, a *Refusal naming every limit the round breaks, or another error if
// the policy itself is invalid. led holds the history of the node's earlier
// rounds for the delay rule; nil means none. now only makes messages more
// useful ("in 13h0m0s"): every decision is made on the round's own times.
func (p Policy) Check(cfg *round.Config, led *Ledger, now time.Time) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("policy: invalid local policy: %w", err)
	}
	var reasons []string
	refuse := func(format string, args ...any) {
		reasons = append(reasons, fmt.Sprintf(format, args...))
	}

	switch {
	case !(cfg.Epsilon >= 0):
		refuse("round ε = %v is not a privacy budget", cfg.Epsilon)
	case cfg.Epsilon > p.MaxEpsilon:
		refuse("round ε = %v is more than this node's max_epsilon %v", cfg.Epsilon, p.MaxEpsilon)
	}
	switch {
	case !(cfg.Delta >= 0):
		refuse("round δ = %v is not a probability", cfg.Delta)
	case cfg.Delta > p.MaxDelta:
		refuse("round δ = %v is more than this node's max_delta %v (a larger δ is a larger chance that the ε guarantee fails)", cfg.Delta, p.MaxDelta)
	}
	var sumEps, sumDelta float64
	for _, s := range cfg.Statistics {
		switch {
		case !(s.Epsilon >= 0) || math.IsInf(s.Epsilon, 0), !(s.Delta >= 0) || math.IsInf(s.Delta, 0):
			refuse("statistic %s has ε = %v, δ = %v: each must be a finite number ≥ 0", s.Name, s.Epsilon, s.Delta)
		case s.Sigma == 0 && p.AllowZeroNoise:
		case !(s.Sigma > 0) || math.IsInf(s.Sigma, 0):
			refuse("statistic %s has σ = %v: its total would not carry finite, positive noise", s.Name, s.Sigma)
		default:
			if reason := p.checkCalibration(s, !cfg.Composed()); reason != "" {
				refuse("statistic %s: %s", s.Name, reason)
			}
		}
		sumEps += s.Epsilon
		sumDelta += s.Delta
	}
	if sumEps > p.MaxEpsilon*(1+sumSlack) {
		refuse("the statistics' ε add up to %.10g, more than this node's max_epsilon %v", sumEps, p.MaxEpsilon)
	}
	if sumDelta > p.MaxDelta*(1+sumSlack) {
		refuse("the statistics' δ add up to %.10g, more than this node's max_delta %v", sumDelta, p.MaxDelta)
	}
	if cfg.Composed() && noisy(cfg) {
		// The same check noise.CheckClaim runs at every node, repeated so
		// that the refusal names this node's limits beside it.
		if err := noise.CheckComposed(cfg, noise.WeakestSet(cfg)); err != nil {
			refuse("composed privacy: %v", err)
		}
	}
	if noisy(cfg) {
		// Every permitted S must carry the full σ²: otherwise a tally
		// server could set weights that leave a small S nearly noiseless.
		weights := make(map[string]float64, len(cfg.Collectors))
		for _, dc := range cfg.Collectors {
			weights[dc.Fingerprint] = dc.NoiseWeight
		}
		if err := noise.CheckCoverage(weights, cfg.MinCollectors); err != nil {
			refuse("noise weights: %v", err)
		}
	}
	if q := ReleaseQuorum(len(cfg.Keepers), cfg.Threshold, p.DishonestKeepers); p.DishonestKeepers > 0 && q > len(cfg.Keepers) {
		refuse("with %d keepers no release quorum can tolerate %d dishonest keepers (dishonest_keepers): it would need %d commits", len(cfg.Keepers), p.DishonestKeepers, q)
	}
	if cfg.MinCollectors < p.MinCollectors {
		refuse("round releases totals of as few as %d collectors (min_collectors), this node requires at least %d", cfg.MinCollectors, p.MinCollectors)
	}
	if length := cfg.End.Sub(cfg.Start); length < time.Duration(p.MinRoundLength) {
		refuse("round lasts %s, shorter than this node's min_round_length %s", length, p.MinRoundLength)
	}
	if p.MaxStatistics > 0 && len(cfg.Statistics) > p.MaxStatistics {
		refuse("round has %d statistics, more than this node's max_statistics %d", len(cfg.Statistics), p.MaxStatistics)
	}
	if led != nil {
		reasons = append(reasons, p.checkHistory(cfg, led, now)...)
	}

	if len(reasons) > 0 {
		return &Refusal{Reason: strings.Join(reasons, "; ")}
	}
	return nil
}

// sigmaSlack absorbs the rounding of a σ written out in decimal (a config
// file, JSON); σ from the planner is the same float64 every node computes.
const sigmaSlack = 1e-9

// checkCalibration says why the noisy statistic s gives less privacy than
// it claims, or returns "". Its sensitivity must be at least this node's
// floor (min_sensitivity, else the catalogue's action bound; L0 at least
// the catalogue's for these bins), and, when ownBudget (a split round), its
// σ at least what its (ε, δ) need for that sensitivity, computed exactly as
// the planner does. A composed round's σ are checked together (Check).
func (p Policy) checkCalibration(s round.StatisticSpec, ownBudget bool) string {
	floor, err := stats.Resolve(s.Name, s.Bins)
	if err != nil {
		return fmt.Sprintf("this node cannot check its noise: %v", err)
	}
	if v, ok := p.MinSensitivity[s.Name]; ok {
		floor.Sensitivity = v
	}
	var reasons []string
	if s.Sensitivity < floor.Sensitivity {
		source := "the catalogue's action bound"
		if _, ok := p.MinSensitivity[s.Name]; ok {
			source = "this node's min_sensitivity"
		}
		reasons = append(reasons, fmt.Sprintf("its noise is calibrated for sensitivity %v, less than %s %v", s.Sensitivity, source, floor.Sensitivity))
	}
	if s.BinsTouched < floor.BinsTouched {
		reasons = append(reasons, fmt.Sprintf("its noise is calibrated for changes to %d bins, fewer than the %d one user's activity can change", s.BinsTouched, floor.BinsTouched))
	}
	if len(reasons) > 0 || !ownBudget {
		return strings.Join(reasons, "; ")
	}
	// The same computation noise.CheckClaim runs at every node; the policy
	// repeats it so that its refusal names this node's floor and σ together.
	need, err := noise.Needed(s)
	if err != nil {
		return fmt.Sprintf("σ cannot be checked against ε = %v, δ = %v: %v", s.Epsilon, s.Delta, err)
	}
	if s.Sigma < need*(1-sigmaSlack) {
		return fmt.Sprintf("σ = %v is less than the %.6g that ε = %v, δ = %v need for sensitivity %v over %d bins: the round would claim more privacy than its noise gives",
			s.Sigma, need, s.Epsilon, s.Delta, s.Sensitivity, s.BinsTouched)
	}
	return ""
}

// checkHistory applies the rules that depend on the series' earlier rounds:
// no overlap with the previous round, and the delay rule.
func (p Policy) checkHistory(cfg *round.Config, led *Ledger, now time.Time) []string {
	st, ok := led.lookup(cfg.Series)
	if !ok {
		// A new series is held to the node's latest round of any series:
		// otherwise renaming the series would dodge the delay rule.
		name, prev, any := led.latest()
		if !any {
			return nil // the node's first round sets the baseline
		}
		return p.delayRule(cfg, prev, now, fmt.Sprintf(" (compared with series %q, this node's latest)", name))
	}
	if hash, err := cfg.HashHex(); err == nil && hash == st.LastHash {
		// The round already recorded (a node resuming it): it spends
		// nothing more than it did when it was admitted.
		return nil
	}
	var reasons []string
	if cfg.Start.Before(st.LastEnd) {
		// Overlapping windows count the same events twice, each with its
		// own budget.
		reasons = append(reasons, fmt.Sprintf("round %d of series %q starts at %s, before round %d ended at %s; rounds of a series must not overlap",
			cfg.Round, cfg.Series, stamp(cfg.Start), st.LastRound, stamp(st.LastEnd)))
	}
	return append(reasons, p.delayRule(cfg, st, now, "")...)
}

// delayRule refuses a round that changes the statistic set or lowers a σ
// relative to st's baseline less than delay_period after st's last round.
func (p Policy) delayRule(cfg *round.Config, st *seriesState, now time.Time, against string) []string {
	changes := st.changes(cfg, p.SigmaTolerance)
	if len(changes) == 0 {
		return nil
	}
	earliest := st.LastEnd.Add(time.Duration(p.DelayPeriod))
	if !cfg.Start.Before(earliest) {
		return nil
	}
	when := stamp(earliest)
	if d := earliest.Sub(now); d > 0 {
		when += fmt.Sprintf(" (in %s)", d.Round(time.Second))
	}
	return []string{fmt.Sprintf("%s%s less than %s after the previous round ended at %s; the next round may start at %s",
		strings.Join(changes, " and "), against, p.DelayPeriod, stamp(st.LastEnd), when)}
}

// changes describes how cfg departs from the series' baseline in ways the
// delay rule cares about; empty means it does not.
func (st *seriesState) changes(cfg *round.Config, tolerance float64) []string {
	base := map[string]statBaseline{}
	for _, b := range st.Baseline {
		base[b.Name] = b
	}
	var added, removed, rebinned, lowered []string
	current := map[string]bool{}
	for _, s := range cfg.Statistics {
		current[s.Name] = true
		b, ok := base[s.Name]
		switch {
		case !ok:
			added = append(added, s.Name)
		case !slices.Equal(b.Bins, s.Bins):
			// New bin edges can difference one bin against another.
			rebinned = append(rebinned, s.Name)
		case s.Sigma < (1-tolerance)*b.Sigma:
			lowered = append(lowered, fmt.Sprintf("%s from %v to %v", s.Name, b.Sigma, s.Sigma))
		}
	}
	for _, b := range st.Baseline {
		if !current[b.Name] {
			removed = append(removed, b.Name)
		}
	}
	var out []string
	if len(added)+len(removed) > 0 {
		var parts []string
		if len(added) > 0 {
			parts = append(parts, "added "+strings.Join(added, ", "))
		}
		if len(removed) > 0 {
			parts = append(parts, "removed "+strings.Join(removed, ", "))
		}
		out = append(out, fmt.Sprintf("statistic set changed (%s)", strings.Join(parts, "; ")))
	}
	if len(rebinned) > 0 {
		out = append(out, fmt.Sprintf("bins changed (%s)", strings.Join(rebinned, ", ")))
	}
	if len(lowered) > 0 {
		out = append(out, fmt.Sprintf("σ fell more than %v%% below the baseline of round %d (%s)",
			100*tolerance, st.BaselineRound, strings.Join(lowered, ", ")))
	}
	return out
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// noisy reports whether any statistic of the round carries noise.
func noisy(cfg *round.Config) bool {
	for _, s := range cfg.Statistics {
		if s.Sigma > 0 {
			return true
		}
	}
	return false
}

package aggregator

import (
	"errors"
	"fmt"
	"slices"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/noise"
)

// KeeperRound is a share keeper's state for one round: the bundles it holds
// per collector and the one commit it may make.
type KeeperRound struct {
	cfg      *round.Config
	x        int
	counters int
	bundles  map[string][]field.Element
	// committed is S and ΣV mod p of the one agreement committed to.
	committed *committed
}

type committed struct {
	collectors []string
	sumV       commit.IntSum
	field      []field.Element
}

// Agreement is what the tally server asks keepers to commit to: the
// collector set S, the exact integer sum ΣV of their reports, and what
// shows that sum honest: S's commitments (in S's order, their signatures
// already checked by the caller) and the sum of their blindings.
type Agreement struct {
	Collectors  []string
	SumV        commit.IntSum
	SumBlinding commit.Scalar
	Commitments []commit.Commitment
}

// CheckSum checks that ΣV, with its blinding, opens the sum of S's
// commitments for a round of n counters: the check that stops a tally
// server from committing keepers to, and publishing, a sum other than the
// one S's collectors reported.
func CheckSum(a Agreement, n int) error {
	if len(a.SumV) != n {
		return fmt.Errorf("ΣV has %d values, the round has %d counters", len(a.SumV), n)
	}
	if len(a.Commitments) != len(a.Collectors) {
		return fmt.Errorf("%d commitments for the %d collectors of S", len(a.Commitments), len(a.Collectors))
	}
	if err := commit.Verify(a.Commitments, a.SumV, a.SumBlinding); err != nil {
		return fmt.Errorf("ΣV is not the sum S's collectors committed to: %w", err)
	}
	return nil
}

// NewKeeperRound starts the keeper with x-coordinate x on a round.
func NewKeeperRound(cfg *round.Config, x int) (*KeeperRound, error) {
	if x < 1 || x > len(cfg.Keepers) {
		return nil, fmt.Errorf("keeper: x = %d is not one of the round's %d keepers", x, len(cfg.Keepers))
	}
	return &KeeperRound{cfg: cfg, x: x, counters: cfg.NumCounters(), bundles: map[string][]field.Element{}}, nil
}

// Accept stores a collector's bundle for this keeper. A second bundle from
// the same collector is refused: the first is the one the collector's
// counters are blinded against.
func (k *KeeperRound) Accept(collector string, shares []field.Element) error {
	if _, ok := k.cfg.Collector(collector); !ok {
		return fmt.Errorf("keeper: collector %s is not permitted in this round", collector)
	}
	if _, dup := k.bundles[collector]; dup {
		return fmt.Errorf("keeper: already holds a bundle from collector %s", collector)
	}
	if err := field.CheckCounters("keeper: bundle from collector "+collector, shares, k.counters); err != nil {
		return err
	}
	k.bundles[collector] = slices.Clone(shares)
	return nil
}

// Holds reports whether the keeper has a bundle from the collector.
func (k *KeeperRound) Holds(collector string) bool {
	_, ok := k.bundles[collector]
	return ok
}

// Collectors lists the collectors whose bundles the keeper holds, sorted.
func (k *KeeperRound) Collectors() []string {
	out := make([]string, 0, len(k.bundles))
	for fp := range k.bundles {
		out = append(out, fp)
	}
	slices.Sort(out)
	return out
}

// ErrAlreadyCommitted is returned when a keeper is asked to commit to a
// second, different agreement in the same round. Refusing is what stops a
// tally server from releasing two sets and differencing them.
var ErrAlreadyCommitted = errors.New("keeper: already committed to a different collector set in this round")

// Commit checks an agreement (|S| ≥ min_collectors, a bundle for every
// member, S's noise, and that ΣV opens S's commitments) and records it.
// Committing again to the same agreement is allowed (a retry); to a
// different one is refused.
func (k *KeeperRound) Commit(a Agreement) error {
	if c := k.committed; c != nil {
		if slices.Equal(c.collectors, a.Collectors) && slices.Equal(c.sumV, a.SumV) {
			return nil
		}
		return ErrAlreadyCommitted
	}
	if len(a.Collectors) < k.cfg.MinCollectors {
		return fmt.Errorf("keeper: %d collectors in S, the round requires at least %d", len(a.Collectors), k.cfg.MinCollectors)
	}
	seen := map[string]bool{}
	for _, fp := range a.Collectors {
		if seen[fp] {
			return fmt.Errorf("keeper: collector %s appears twice in S", fp)
		}
		seen[fp] = true
		if !k.Holds(fp) {
			return fmt.Errorf("keeper: holds no bundle from collector %s in S", fp)
		}
	}
	if err := k.checkNoise(a.Collectors); err != nil {
		return err
	}
	if err := CheckSum(a, k.counters); err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	k.committed = &committed{collectors: slices.Clone(a.Collectors), sumV: slices.Clone(a.SumV), field: a.SumV.Field()}
	return nil
}

// coverageSlack absorbs float rounding in Σw² (see noise.CheckCoverage).
const coverageSlack = 1e-9

// checkNoise refuses a set S whose members' noise weights add up to less
// than the full σ² the round promises: the keeper's own check, so that no
// tally server can release a nearly noiseless total.
func (k *KeeperRound) checkNoise(S []string) error {
	noisy := false
	for _, s := range k.cfg.Statistics {
		noisy = noisy || s.Sigma > 0
	}
	if !noisy {
		return nil
	}
	var w2 float64
	for _, fp := range S {
		dc, _ := k.cfg.Collector(fp)
		w2 += dc.NoiseWeight * dc.NoiseWeight
	}
	if w2 < 1-coverageSlack {
		return fmt.Errorf("keeper: the %d collectors of S carry only %.4g of the round's noise variance σ²", len(S), w2)
	}
	// What S's discrete Gaussian noise actually gives, statistic by
	// statistic: every member adds at least noise.MinCollectorSigma and
	// the sum is as private as claimed (docs/noise-discrete.md). A
	// composed round's claim is the whole round's, over S.
	if k.cfg.Composed() {
		for _, s := range k.cfg.Statistics {
			for _, fp := range S {
				dc, _ := k.cfg.Collector(fp)
				if w := dc.NoiseWeight * s.Sigma; w > 0 && w < noise.MinCollectorSigma {
					return fmt.Errorf("keeper: statistic %s over S: collector %s would add noise with σ = %.4g, below %d", s.Name, fp, w, noise.MinCollectorSigma)
				}
			}
		}
		if err := noise.CheckComposed(k.cfg, S); err != nil {
			return fmt.Errorf("keeper: over S: %w", err)
		}
		return nil
	}
	for _, s := range k.cfg.Statistics {
		if s.Sigma == 0 || s.Sensitivity <= 0 || s.BinsTouched <= 0 {
			continue
		}
		sigmas := make(map[string]float64, len(S))
		for _, fp := range S {
			dc, _ := k.cfg.Collector(fp)
			sigmas[fp] = dc.NoiseWeight * s.Sigma
		}
		if err := noise.CheckDistributed(sigmas, s.Epsilon, s.Delta, s.BinsTouched, s.Sensitivity); err != nil {
			return fmt.Errorf("keeper: statistic %s over S: %w", s.Name, err)
		}
	}
	return nil
}

// Committed returns the collector set S the keeper committed to, if any.
func (k *KeeperRound) Committed() ([]string, bool) {
	if k.committed == nil {
		return nil, false
	}
	return slices.Clone(k.committed.collectors), true
}

// AggregateShare returns a_c = Σ_{i∈S} f_i,c(x) + ΣV_c for the committed
// agreement. Adding ΣV to every keeper's share shifts the interpolated value
// at 0 by ΣV (Lagrange coefficients sum to 1), so the tally recovers
// Σ(z_i − r_i) + Σ(r_i + count_i) = Σ(count_i + z_i).
func (k *KeeperRound) AggregateShare() ([]field.Element, error) {
	if k.committed == nil {
		return nil, errors.New("keeper: no commit yet; aggregate shares are released only for a committed set")
	}
	out := slices.Clone(k.committed.field)
	for _, fp := range k.committed.collectors {
		for c, s := range k.bundles[fp] {
			out[c] = field.Add(out[c], s)
		}
	}
	return out, nil
}

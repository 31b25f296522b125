package aggregator

import (
	"errors"
	"fmt"
	"slices"

	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
)

// LocalRound describes a complete round run inside one process: every role's
// arithmetic exactly as the networked roles perform it, without the network.
// Tests and benchmarks use it to check the protocol end to end.
type LocalRound struct {
	Config *round.Config
	// Counts are the true counts each collector sees, by fingerprint, one
	// entry per counter. A permitted collector with no entry counts nothing.
	Counts map[string][]uint64
	// FailedKeepers are the x-coordinates of keepers that die after setup,
	// before they commit or release (at most N−K).
	FailedKeepers []int
	// SilentCollectors set up but never report.
	SilentCollectors []string
	Sample           NoiseSampler
}

// LocalOutcome is what the tally learns from a local round.
type LocalOutcome struct {
	Totals    []int64
	Reporters []string // S, sorted
	Keepers   []int    // x-coordinates whose aggregate shares were combined
}

// Run executes the round: setup, counting, report, agreement, release, tally.
func (lr LocalRound) Run() (*LocalOutcome, error) {
	cfg := lr.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if lr.Sample == nil {
		return nil, errors.New("local round: no noise sampler")
	}
	n := cfg.NumCounters()
	failed := map[int]bool{}
	for _, x := range lr.FailedKeepers {
		failed[x] = true
	}
	keepers := make([]*KeeperRound, len(cfg.Keepers))
	for j, ks := range cfg.Keepers {
		k, err := NewKeeperRound(cfg, ks.X)
		if err != nil {
			return nil, err
		}
		keepers[j] = k
	}

	reports := map[string][]field.Element{}
	for _, dc := range cfg.Collectors {
		counters, bundles, err := SetupCollector(cfg, dc.NoiseWeight, lr.Sample, nil)
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", dc.Fingerprint, err)
		}
		for j, b := range bundles {
			if err := keepers[j].Accept(dc.Fingerprint, b.Shares); err != nil {
				return nil, err
			}
		}
		if counts, ok := lr.Counts[dc.Fingerprint]; ok {
			if len(counts) != n {
				return nil, fmt.Errorf("collector %s: %d counts for %d counters", dc.Fingerprint, len(counts), n)
			}
			for c, v := range counts {
				counters.Add(c, v)
			}
		}
		if !slices.Contains(lr.SilentCollectors, dc.Fingerprint) {
			reports[dc.Fingerprint] = counters.Report()
		}
	}

	S := make([]string, 0, len(reports))
	for fp := range reports {
		S = append(S, fp)
	}
	slices.Sort(S)
	agreement, err := honestAgreement(n, reports)
	if err != nil {
		return nil, err
	}
	shares := map[int][]field.Element{}
	for j, k := range keepers {
		x := cfg.Keepers[j].X
		if failed[x] {
			continue
		}
		if err := k.Commit(agreement); err != nil {
			return nil, fmt.Errorf("keeper x=%d: %w", x, err)
		}
		a, err := k.AggregateShare()
		if err != nil {
			return nil, err
		}
		shares[x] = a
	}
	if len(shares) < cfg.Threshold {
		return nil, fmt.Errorf("local round: %d keepers alive, threshold %d", len(shares), cfg.Threshold)
	}
	totals, err := Combine(cfg, shares)
	if err != nil {
		return nil, err
	}
	xs := make([]int, 0, len(shares))
	for x := range shares {
		xs = append(xs, x)
	}
	slices.Sort(xs)
	return &LocalOutcome{Totals: totals, Reporters: S, Keepers: xs}, nil
}

// Package aggregator is the protocol arithmetic of each privstats role on
// blinded counters and Shamir shares: a collector's setup and counting, a
// keeper's accept, commit-once and aggregate share, and the tally's sum and
// combine. The networked roles (packages collector, keeper, tally) only move
// the values it computes; the round it works on is package round, the
// messages that carry the values are package wire.
//
// The flow of one round (docs/protocol.md):
//
//	collector: SetupCollector → ShareBundles to keepers, BlindedCounters counting → Report V
//	tally:     SumReports over S → (S, ΣV) to keepers
//	keeper:    Accept bundles → Commit(S, ΣV) once → AggregateShare
//	tally:     Combine K aggregate shares → signed totals
package aggregator

import (
	"fmt"
	"io"
	"math"

	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/shamir"
)

// NoiseSampler draws one integer of noise with standard deviation σ.
// Production code passes noise.SampleDiscrete (the exact discrete Gaussian
// N_Z(0, σ²) from crypto/rand); it must never be math/rand.
type NoiseSampler func(sigma float64) (int64, error)

// ShareBundle is what a collector sends one keeper: f_c(x) for every
// counter c, in counter order.
type ShareBundle struct {
	X      int
	Shares []field.Element
}

// BlindedCounters is a collector's live state during a round. Each counter
// starts at a uniformly random r_c and only ever has counts added, so at
// every moment it is uniformly distributed whatever the relay saw.
type BlindedCounters struct {
	v []field.Element
}

// Add adds n to counter c: one modular add, no allocation.
func (b *BlindedCounters) Add(c int, n uint64) {
	b.v[c] = field.Add(b.v[c], field.Reduce(n))
}

// Len is the number of counters.
func (b *BlindedCounters) Len() int { return len(b.v) }

// Report returns V_c = r_c + count_c for every counter (a copy).
func (b *BlindedCounters) Report() []field.Element {
	out := make([]field.Element, len(b.v))
	copy(out, b.v)
	return out
}

// SetupCollector prepares a collector for a round: for every counter it draws
// noise z_c ~ N(0, (weight·σ_c)²) and blinding r_c, Shamir-splits
// z_c − r_c for the round's keepers, and returns counters initialised to r_c
// with one bundle per keeper (bundles[j] for cfg.Keepers[j]).
//
// z, r and the polynomials are cleared before it returns: afterwards the
// collector holds only the blinded counters (uniform) and the bundles, which
// it must seal and send and then drop.
func SetupCollector(cfg *round.Config, weight float64, sample NoiseSampler, rand io.Reader) (*BlindedCounters, []ShareBundle, error) {
	if math.IsNaN(weight) || math.IsInf(weight, 0) || weight < 0 {
		return nil, nil, fmt.Errorf("collector setup: noise weight %v", weight)
	}
	n := cfg.NumCounters()
	r := make([]field.Element, n)
	if err := field.Random(rand, r); err != nil {
		return nil, nil, fmt.Errorf("collector setup: %w", err)
	}
	secret := make([]field.Element, n)
	for c, sigma := range cfg.CounterSigmas() {
		var z int64
		if s := weight * sigma; s > 0 {
			var err error
			if z, err = sample(s); err != nil {
				return nil, nil, fmt.Errorf("collector setup: noise for counter %d: %w", c, err)
			}
		}
		secret[c] = field.Sub(field.FromInt64(z), r[c])
	}
	vectors, err := shamir.Split(rand, secret, cfg.Threshold, len(cfg.Keepers))
	clear(secret)
	if err != nil {
		clear(r)
		return nil, nil, fmt.Errorf("collector setup: %w", err)
	}
	bundles := make([]ShareBundle, len(vectors))
	for j, v := range vectors {
		bundles[j] = ShareBundle{X: cfg.Keepers[j].X, Shares: v}
	}
	return &BlindedCounters{v: r}, bundles, nil
}

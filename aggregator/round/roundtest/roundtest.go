// Package roundtest builds round configs for tests: valid, deterministic,
// with well-formed fingerprints that belong to no real identity. It is not
// for production code.
package roundtest

import (
	"fmt"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/noise"
)

// Fingerprint makes a well-formed fingerprint for test participant i of a
// kind (0, 1, 2, … give distinct first digits).
func Fingerprint(kind byte, i int) string {
	return fmt.Sprintf("%c%063x", 'a'+kind, i)
}

// Config builds a valid round config with n keepers (fingerprints of kind
// 1), threshold k and the given number of collectors (kind 2), each with
// noise weight w, counting two statistics (a scalar and a 4-bin histogram)
// with noise σ per counter.
func Config(n, k, collectors int, sigma, w float64) *round.Config {
	cfg := &round.Config{
		Version:       round.ConfigVersion,
		Series:        "test",
		Round:         1,
		Start:         time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
		End:           time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Epsilon:       1,
		Delta:         1e-6,
		Threshold:     k,
		MinCollectors: 1,
		Statistics: []round.StatisticSpec{
			{Name: "relay_bytes_read", Sigma: sigma, MaxPerCollector: 1 << 40},
			{Name: "exit_streams_by_port", Bins: []string{"web", "interactive", "p2p", "other"}, Sigma: sigma, MaxPerCollector: 1 << 30},
		},
	}
	for j := range n {
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: Fingerprint(1, j), X: j + 1})
	}
	for i := range collectors {
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: Fingerprint(2, i), NoiseWeight: w})
	}
	return cfg
}

// Composed makes cfg a composed round (round.AccountingComposed): the
// statistics lose their own ε and δ and every σ is scaled to the least
// that makes the round's noise reach its (ε, δ) on the weakest releasable
// set (noise.ComposedScale), times 1 − short. With short = 0.01 every
// node must refuse the round; with 0 every node accepts it. Every
// statistic must have σ > 0 and a declared sensitivity.
func Composed(cfg *round.Config, short float64) {
	cfg.Accounting = round.AccountingComposed
	for i := range cfg.Statistics {
		cfg.Statistics[i].Epsilon, cfg.Statistics[i].Delta = 0, 0
	}
	scale, ok := noise.ComposedScale(cfg, noise.WeakestSet(cfg))
	if !ok {
		panic("roundtest: no σ makes the round reach its claim")
	}
	for i := range cfg.Statistics {
		cfg.Statistics[i].Sigma *= scale * (1 - short)
	}
}

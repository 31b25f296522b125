package noise

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Weights says how a statistic's noise σ is shared among collectors:
// collector i adds N(0, (w_i·σ)²) to each of its counters, so a result summed
// over a set S of collectors carries noise of variance σ²·Σ_{i∈S} w_i².
//
// w_i comes from Explicit if the collector's fingerprint is there; otherwise,
// if HonestFraction β is set, every collector gets w_i² = 1/(β·n), so that any
// β·n of the n permitted collectors (for instance the honest ones) add
// variance σ² on their own; otherwise w_i is Default, where 0 means 1.
type Weights struct {
	// Explicit maps a relay fingerprint to that collector's weight.
	Explicit map[string]float64 `yaml:"explicit,omitempty" json:"explicit,omitempty"`
	// Default is the weight of collectors not in Explicit; 0 means 1.
	Default float64 `yaml:"default,omitempty" json:"default,omitempty"`
	// HonestFraction is β in (0, 1], the fraction of collectors assumed to
	// be honest; 0 means unused.
	HonestFraction float64 `yaml:"honest_fraction,omitempty" json:"honest_fraction,omitempty"`
}

// For returns the weight w_i of the collector with the given relay
// fingerprint, when n collectors are permitted in the round. n matters only
// for HonestFraction; values below 1 count as 1.
func (w Weights) For(fingerprint string, n int) float64 {
	if x, ok := w.Explicit[fingerprint]; ok {
		return x
	}
	if w.HonestFraction > 0 {
		return math.Sqrt(1 / (w.HonestFraction * float64(max(n, 1))))
	}
	if w.Default == 0 {
		return 1
	}
	return w.Default
}

// Resolve returns the weight of each of a round's permitted collectors, keyed
// by fingerprint, as [CheckCoverage] takes them. Explicit weights for
// collectors not listed are ignored.
func (w Weights) Resolve(fingerprints []string) map[string]float64 {
	out := make(map[string]float64, len(fingerprints))
	for _, fp := range fingerprints {
		out[fp] = 0
	}
	for fp := range out {
		out[fp] = w.For(fp, len(out))
	}
	return out
}

// Validate reports weights that cannot describe noise: negative, NaN or
// infinite weights, an empty fingerprint, β outside (0, 1], or both a
// default and β (they are alternatives, and β would win).
func (w Weights) Validate() error {
	var errs []error
	for _, fp := range slices.Sorted(maps.Keys(w.Explicit)) {
		if fp == "" {
			errs = append(errs, errors.New("noise: weights: explicit weight for an empty fingerprint"))
			continue
		}
		if err := checkWeight(w.Explicit[fp]); err != nil {
			errs = append(errs, fmt.Errorf("noise: weights: explicit weight of %s: %w", fp, err))
		}
	}
	if err := checkWeight(w.Default); err != nil {
		errs = append(errs, fmt.Errorf("noise: weights: default: %w", err))
	}
	switch b := w.HonestFraction; {
	case math.IsNaN(b) || b < 0 || b > 1:
		errs = append(errs, fmt.Errorf("noise: weights: honest_fraction = %g, must be in (0, 1], or 0 for unused", b))
	case b > 0 && w.Default != 0:
		errs = append(errs, errors.New("noise: weights: set default or honest_fraction, not both"))
	}
	return errors.Join(errs...)
}

func checkWeight(x float64) error {
	if math.IsNaN(x) || x < 0 || math.IsInf(x, 0) {
		return fmt.Errorf("weight = %g, must be non-negative and finite", x)
	}
	return nil
}

// TotalSigma is the standard deviation σ·√(Σ w_i²) of the noise in a result
// summed over the collectors with the given weights. The tally server
// publishes it with each result, since the reporting set decides it.
func TotalSigma(sigma float64, weights []float64) float64 {
	var sum float64
	for _, w := range weights {
		sum += w * w
	}
	return sigma * math.Sqrt(sum)
}

// DiscreteTotalSigma is the true standard deviation of a total to which
// collectors with the given weights each added exact discrete Gaussian
// noise N_Z(0, (w·σ)²): √Σ Var(N_Z(0, (w_i·σ)²)), a little below
// TotalSigma when some w_i·σ is small (docs/noise-discrete.md).
func DiscreteTotalSigma(sigma float64, weights []float64) float64 {
	var sum float64
	for _, w := range weights {
		if s := w * sigma; s > 0 {
			sum += DiscreteGaussianVariance(s)
		}
	}
	return math.Sqrt(sum)
}

// coverageTolerance absorbs float rounding in Σw²: with β weights the m = β·n
// smallest sum to exactly 1 in real arithmetic but may land an ulp below it in
// float64. A variance shortfall of 1e-9 changes σ by 5e-10 of itself.
const coverageTolerance = 1e-9

// CheckCoverage reports whether every set S of at least minCollectors of the
// permitted collectors, whose weights are given by fingerprint, carries noise
// variance Σ_{i∈S} w_i² ≥ 1 (in units of σ²), so that whichever collectors
// report, the result is as private as σ promises. The worst set is the
// minCollectors collectors with the smallest weights; if they fall short, the
// error says by how much, names them and says what min_collectors would do.
func CheckCoverage(weights map[string]float64, minCollectors int) error {
	n := len(weights)
	switch {
	case n == 0:
		return errors.New("noise: coverage: no permitted collectors")
	case minCollectors < 1:
		return fmt.Errorf("noise: coverage: min_collectors = %d, must be at least 1", minCollectors)
	case minCollectors > n:
		return fmt.Errorf("noise: coverage: min_collectors = %d exceeds the %d permitted collectors, so no round could release", minCollectors, n)
	}
	sorted, err := byVariance(weights)
	if err != nil {
		return err
	}
	var sum float64
	for _, c := range sorted[:minCollectors] {
		sum += c.variance
	}
	if sum >= 1-coverageTolerance {
		return nil
	}
	advice := "raise their weights"
	if need, ok := minCovering(sorted); ok {
		advice = fmt.Sprintf("raise min_collectors to at least %d or raise their weights", need)
	}
	return fmt.Errorf("noise: coverage: with min_collectors = %d of %d permitted collectors, a result may sum just %s, "+
		"whose noise variance is only %.4g·σ², %.4g·σ² short of σ²; %s",
		minCollectors, n, describe(sorted[:minCollectors], 5), sum, 1-sum, advice)
}

// MinCollectors is the smallest min_collectors for which [CheckCoverage]
// passes with these weights. With HonestFraction β it is ⌈β·n⌉, the rule the
// design asks the planner to state.
func MinCollectors(weights map[string]float64) (int, error) {
	if len(weights) == 0 {
		return 0, errors.New("noise: coverage: no permitted collectors")
	}
	sorted, err := byVariance(weights)
	if err != nil {
		return 0, err
	}
	need, ok := minCovering(sorted)
	if !ok {
		var sum float64
		for _, c := range sorted {
			sum += c.variance
		}
		return 0, fmt.Errorf("noise: coverage: all %d permitted collectors together add only %.4g·σ² of noise variance; raise their weights", len(sorted), sum)
	}
	return need, nil
}

type collectorVariance struct {
	fingerprint string
	weight      float64
	variance    float64 // w², in units of σ²
}

// byVariance lists the collectors from the smallest weight up, ties broken by
// fingerprint so that messages are stable.
func byVariance(weights map[string]float64) ([]collectorVariance, error) {
	out := make([]collectorVariance, 0, len(weights))
	for fp, w := range weights {
		if err := checkWeight(w); err != nil {
			return nil, fmt.Errorf("noise: coverage: collector %s: %w", fp, err)
		}
		out = append(out, collectorVariance{fp, w, w * w})
	}
	slices.SortFunc(out, func(a, b collectorVariance) int {
		return cmp.Or(cmp.Compare(a.variance, b.variance), strings.Compare(a.fingerprint, b.fingerprint))
	})
	return out, nil
}

// minCovering is the smallest m whose m smallest variances reach 1.
func minCovering(sorted []collectorVariance) (int, bool) {
	var sum float64
	for i, c := range sorted {
		sum += c.variance
		if sum >= 1-coverageTolerance {
			return i + 1, true
		}
	}
	return 0, false
}

func describe(cs []collectorVariance, limit int) string {
	var b strings.Builder
	for i, c := range cs {
		if i == limit {
			fmt.Fprintf(&b, " and %d more", len(cs)-limit)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s w=%.4g", c.fingerprint, c.weight)
	}
	return b.String()
}

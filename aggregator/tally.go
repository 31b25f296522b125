package aggregator

import (
	"fmt"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/shamir"
)

// SumReports returns ΣV over the given reports, counter by counter: the
// exact integer sum of the masked values values[fp][k] + p·masks[fp][k]
// the collectors committed to (never reduced mod p: the keepers check it
// against the commitments, and reduce it themselves). Every report must
// have n canonical values and n masks below commit.MaskBound.
func SumReports(n int, values, masks map[string][]field.Element) (commit.IntSum, error) {
	if len(masks) != len(values) {
		return nil, fmt.Errorf("%d reports with %d sets of masks", len(values), len(masks))
	}
	sum := commit.NewIntSum(n)
	for fp, v := range values {
		if err := field.CheckCounters("report from collector "+fp, v, n); err != nil {
			return nil, err
		}
		m, ok := masks[fp]
		if !ok {
			return nil, fmt.Errorf("report from collector %s has no masks", fp)
		}
		if err := sum.AddMasked(v, m); err != nil {
			return nil, fmt.Errorf("report from collector %s: %w", fp, err)
		}
	}
	return sum, nil
}

// Combine interpolates the keepers' aggregate shares (x-coordinate → share)
// at 0 and decodes each counter to a signed total. With more than K shares
// it checks them against each other; an inconsistent keeper is named in a
// *shamir.InconsistentError.
func Combine(cfg *round.Config, shares map[int][]field.Element) ([]int64, error) {
	list := make([]shamir.Share, 0, len(shares))
	for x, v := range shares {
		if len(v) != cfg.NumCounters() {
			return nil, fmt.Errorf("aggregate share from keeper x=%d has %d counters, want %d", x, len(v), cfg.NumCounters())
		}
		list = append(list, shamir.Share{X: x, Values: v})
	}
	raw, err := shamir.Combine(list, cfg.Threshold)
	if err != nil {
		return nil, err
	}
	totals := make([]int64, len(raw))
	for c, v := range raw {
		totals[c] = field.Decode(v)
	}
	return totals, nil
}

// InconsistentError is returned by Combine when keepers' shares disagree;
// Bad holds the x-coordinates of the keepers that do not fit.
type InconsistentError = shamir.InconsistentError

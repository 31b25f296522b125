package aggregator

import (
	"fmt"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/shamir"
)

// SumReports returns ΣV over the given reports, counter by counter, as
// exact integers (never reduced mod p: the keepers check the integer sum
// against the collectors' commitments). Every report must have n
// canonical values.
func SumReports(n int, reports map[string][]field.Element) (commit.IntSum, error) {
	sum := commit.NewIntSum(n)
	for fp, v := range reports {
		if err := field.CheckCounters("report from collector "+fp, v, n); err != nil {
			return nil, err
		}
		if err := sum.Add(v); err != nil {
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

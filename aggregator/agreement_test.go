package aggregator

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
)

// agree builds the honest agreement over reports, as a tally server does:
// S sorted, each collector's commitment to its masked report under fresh
// masks and blinding, the exact ΣV and the summed blinding.
func agree(t testing.TB, n int, reports map[string][]field.Element) Agreement {
	t.Helper()
	a, err := honestAgreement(n, reports)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func honestAgreement(n int, reports map[string][]field.Element) (Agreement, error) {
	a := Agreement{}
	for fp := range reports {
		a.Collectors = append(a.Collectors, fp)
	}
	slices.Sort(a.Collectors)
	var blindings []commit.Scalar
	masks := map[string][]uint64{}
	for _, fp := range a.Collectors {
		m, err := commit.NewMasks(rand.Reader, len(reports[fp]))
		if err != nil {
			return a, err
		}
		rho, err := commit.NewBlinding(rand.Reader)
		if err != nil {
			return a, err
		}
		c, err := commit.Commit(reports[fp], m, rho)
		if err != nil {
			return a, err
		}
		a.Commitments = append(a.Commitments, c)
		blindings = append(blindings, rho)
		masks[fp] = m
	}
	var err error
	if a.SumV, err = SumReports(n, reports, masks); err != nil {
		return a, err
	}
	a.SumBlinding, err = commit.SumScalars(blindings)
	return a, err
}

// firstKeeper is keeper x = 1 of cfg holding a bundle from each of cfg's
// collectors (σ = 0); it also returns the collectors' counters by
// fingerprint.
func firstKeeper(t *testing.T, cfg *round.Config) (*KeeperRound, map[string]*BlindedCounters) {
	t.Helper()
	k, err := NewKeeperRound(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	counters := map[string]*BlindedCounters{}
	for _, dc := range cfg.Collectors {
		ctr, bundles, err := SetupCollector(cfg, 1, noNoise, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Accept(dc.Fingerprint, bundles[0].Shares); err != nil {
			t.Fatal(err)
		}
		counters[dc.Fingerprint] = ctr
	}
	return k, counters
}

// zeros is a report of n zero values for each collector.
func zeros(n int, collectors ...string) map[string][]field.Element {
	out := map[string][]field.Element{}
	for _, fp := range collectors {
		out[fp] = make([]field.Element, n)
	}
	return out
}

// A keeper commits only to a ΣV that opens S's commitments: a tally server
// that shifts the sum, swaps a commitment or leaves one out is refused.
func TestKeeperRefusesASumThatDoesNotOpenTheCommitments(t *testing.T) {
	cfg := testConfig(3, 2, 3, 0, 1)
	n := cfg.NumCounters()
	k, counters := firstKeeper(t, cfg)
	reports := map[string][]field.Element{}
	for fp, ctr := range counters {
		ctr.Add(0, 10)
		reports[fp] = ctr.Report()
	}
	honest := agree(t, n, reports)
	other := agree(t, n, reports)
	for name, tc := range map[string]struct {
		edit func(a *Agreement)
		want string
	}{
		"ΣV shifted": {func(a *Agreement) {
			a.SumV[0].Lo += 1000000
		}, "not the sum S's collectors committed to"},
		"ΣV shifted by p": {func(a *Agreement) {
			a.SumV[1].Lo += field.P // the same mod p, not as an integer
			if a.SumV[1].Lo < field.P {
				a.SumV[1].Hi++
			}
		}, "not the sum"},
		"ΣV without the masks": {func(a *Agreement) {
			// The sum of the bare values: the same mod p, not what S's
			// collectors committed to.
			a.SumV = commit.NewIntSum(n)
			for _, fp := range a.Collectors {
				if err := a.SumV.AddMasked(reports[fp], make([]uint64, n)); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(a.SumV.Field(), honest.SumV.Field()) {
				t.Fatal("masks changed ΣV mod p")
			}
		}, "not the sum"},
		"a commitment swapped": {func(a *Agreement) { a.Commitments[1] = other.Commitments[1] }, "not the sum"},
		"a commitment missing": {func(a *Agreement) { a.Commitments = a.Commitments[:2] }, "2 commitments for the 3 collectors"},
		"blinding changed":     {func(a *Agreement) { a.SumBlinding = other.SumBlinding }, "not the sum"},
		"ΣV short":             {func(a *Agreement) { a.SumV = a.SumV[:n-1] }, "ΣV has"},
	} {
		a := honest
		a.SumV = slices.Clone(honest.SumV)
		a.Commitments = slices.Clone(honest.Commitments)
		tc.edit(&a)
		if err := k.Commit(a); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Commit = %v, want an error containing %q", name, err, tc.want)
		}
	}
	if err := k.Commit(honest); err != nil {
		t.Fatalf("the honest agreement was refused: %v", err)
	}
}

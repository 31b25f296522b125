package aggregator

import (
	crand "crypto/rand"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
)

var (
	fp         = roundtest.Fingerprint
	testConfig = roundtest.Config
)

func noNoise(float64) (int64, error) { return 0, nil }

// randomCounts gives each collector uniform counts below 2^20 and returns the
// true totals over the reporting collectors.
func randomCounts(cfg *round.Config, silent []string) (map[string][]uint64, []int64) {
	n := cfg.NumCounters()
	counts := map[string][]uint64{}
	want := make([]int64, n)
	for _, dc := range cfg.Collectors {
		v := make([]uint64, n)
		for c := range v {
			v[c] = rand.Uint64N(1 << 20)
			if !slices.Contains(silent, dc.Fingerprint) {
				want[c] += int64(v[c])
			}
		}
		counts[dc.Fingerprint] = v
	}
	return counts, want
}

// complementOf returns the x-coordinates 1..n not in keep.
func complementOf(n int, keep []int) []int {
	var out []int
	for x := 1; x <= n; x++ {
		if !slices.Contains(keep, x) {
			out = append(out, x)
		}
	}
	return out
}

func TestExactTotalsWithoutNoiseForEveryKeeperSubset(t *testing.T) {
	for trial := range 6 {
		n := 1 + rand.IntN(6)
		k := n/2 + 1 + rand.IntN(n-n/2)
		cfg := testConfig(n, k, 1+rand.IntN(12), 0, 1)
		counts, want := randomCounts(cfg, nil)
		for size := k; size <= n; size++ {
			forEachSubset(n, size, func(alive []int) {
				out, err := LocalRound{Config: cfg, Counts: counts, FailedKeepers: complementOf(n, alive), Sample: noNoise}.Run()
				if err != nil {
					t.Fatalf("trial %d N=%d K=%d keepers %v: %v", trial, n, k, alive, err)
				}
				if !slices.Equal(out.Totals, want) {
					t.Fatalf("trial %d N=%d K=%d keepers %v: totals %v, want %v", trial, n, k, alive, out.Totals, want)
				}
				if !slices.Equal(out.Keepers, alive) {
					t.Fatalf("combined keepers %v, want %v", out.Keepers, alive)
				}
			})
		}
	}
}

func TestExactTotalsWithFailedKeepersAndSilentCollectors(t *testing.T) {
	cfg := testConfig(5, 3, 9, 0, 1)
	silent := []string{cfg.Collectors[2].Fingerprint, cfg.Collectors[7].Fingerprint}
	counts, want := randomCounts(cfg, silent)
	out, err := LocalRound{Config: cfg, Counts: counts, FailedKeepers: []int{2, 5}, SilentCollectors: silent, Sample: noNoise}.Run()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Totals, want) {
		t.Fatalf("totals %v, want %v", out.Totals, want)
	}
	if len(out.Reporters) != 7 || slices.Contains(out.Reporters, silent[0]) {
		t.Fatalf("S = %v, want the 7 collectors that reported", out.Reporters)
	}
}

func TestTooManyFailedKeepersIsAnError(t *testing.T) {
	cfg := testConfig(5, 3, 3, 0, 1)
	if _, err := (LocalRound{Config: cfg, FailedKeepers: []int{1, 2, 3}, Sample: noNoise}).Run(); err == nil {
		t.Fatal("a round with 2 of 5 keepers alive (K = 3) completed")
	}
}

func forEachSubset(n, k int, f func([]int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			f(slices.Clone(cur))
			return
		}
		for x := start; x <= n; x++ {
			rec(x+1, append(cur, x))
		}
	}
	rec(1, nil)
}

func TestCountsOutsideTheFieldWrapAndDecodeNegative(t *testing.T) {
	// Noise makes totals negative sometimes; a total of −3 must decode as −3.
	cfg := testConfig(3, 2, 2, 1, 1)
	minusThree := func(float64) (int64, error) { return -3, nil }
	out, err := LocalRound{Config: cfg, Sample: minusThree}.Run()
	if err != nil {
		t.Fatal(err)
	}
	for c, v := range out.Totals {
		if v != -6 {
			t.Fatalf("counter %d total %d, want −6 (two collectors × −3)", c, v)
		}
	}
}

func TestInconsistentKeeperIsNamed(t *testing.T) {
	cfg := testConfig(5, 3, 4, 0, 1)
	counts, _ := randomCounts(cfg, nil)
	shares := aggregateShares(t, cfg, counts)
	shares[4][2] = field.Add(shares[4][2], 1)
	_, err := Combine(cfg, shares)
	if err == nil || !strings.Contains(err.Error(), "x = 4") {
		t.Fatalf("Combine with keeper 4 tampered: %v, want keeper x = 4 named", err)
	}
}

// aggregateShares runs setup, counting and commit for every keeper and
// returns their aggregate shares by x.
func aggregateShares(t testing.TB, cfg *round.Config, counts map[string][]uint64) map[int][]field.Element {
	t.Helper()
	keepers := make([]*KeeperRound, len(cfg.Keepers))
	for j := range keepers {
		keepers[j], _ = NewKeeperRound(cfg, j+1)
	}
	reports := map[string][]field.Element{}
	for _, dc := range cfg.Collectors {
		ctr, bundles, err := SetupCollector(cfg, dc.NoiseWeight, noNoise, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j, b := range bundles {
			if err := keepers[j].Accept(dc.Fingerprint, b.Shares); err != nil {
				t.Fatal(err)
			}
		}
		for c, v := range counts[dc.Fingerprint] {
			ctr.Add(c, v)
		}
		reports[dc.Fingerprint] = ctr.Report()
	}
	ag := agree(t, cfg.NumCounters(), reports)
	out := map[int][]field.Element{}
	for j, k := range keepers {
		if err := k.Commit(ag); err != nil {
			t.Fatal(err)
		}
		out[j+1], _ = k.AggregateShare()
	}
	return out
}

func TestKeeperCommitsOnce(t *testing.T) {
	cfg := testConfig(3, 2, 3, 0, 1)
	k, _ := firstKeeper(t, cfg)
	if _, err := k.AggregateShare(); err == nil {
		t.Fatal("aggregate share released before any commit")
	}
	n := cfg.NumCounters()
	all := agree(t, n, zeros(n, cfg.Collectors[0].Fingerprint, cfg.Collectors[1].Fingerprint, cfg.Collectors[2].Fingerprint))
	if err := k.Commit(all); err != nil {
		t.Fatal(err)
	}
	if err := k.Commit(all); err != nil {
		t.Fatalf("retrying the same commit: %v", err)
	}
	fewer := agree(t, n, zeros(n, all.Collectors[:2]...))
	if err := k.Commit(fewer); err != ErrAlreadyCommitted {
		t.Fatalf("second, different commit: %v, want ErrAlreadyCommitted", err)
	}
}

func TestKeeperRefusesBadAgreements(t *testing.T) {
	cfg := testConfig(3, 2, 3, 0, 1)
	cfg.MinCollectors = 2
	k, _ := NewKeeperRound(cfg, 2)
	_, bundles, _ := SetupCollector(cfg, 1, noNoise, nil)
	a, b := cfg.Collectors[0].Fingerprint, cfg.Collectors[1].Fingerprint
	if err := k.Accept(a, bundles[1].Shares); err != nil {
		t.Fatal(err)
	}
	n := cfg.NumCounters()
	for name, tc := range map[string]struct {
		ag   Agreement
		want string
	}{
		"too few":        {agree(t, n, zeros(n, a)), "at least 2"},
		"missing bundle": {agree(t, n, zeros(n, a, b)), "no bundle from collector " + b},
		"duplicate":      {Agreement{Collectors: []string{a, a}}, "twice"},
	} {
		if err := k.Commit(tc.ag); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Commit = %v, want error containing %q", name, err, tc.want)
		}
	}
	_, other, _ := SetupCollector(cfg, 1, noNoise, nil)
	if err := k.Accept(b, other[1].Shares); err != nil {
		t.Fatal(err)
	}
	short := agree(t, n, zeros(n, a, b))
	short.SumV = short.SumV[:n-1]
	if err := k.Commit(short); err == nil || !strings.Contains(err.Error(), "ΣV has") {
		t.Errorf("short ΣV: Commit = %v", err)
	}
	if err := k.Accept(a, bundles[1].Shares); err == nil {
		t.Error("second bundle from the same collector accepted")
	}
	if err := k.Accept(fp(3, 1), bundles[1].Shares); err == nil {
		t.Error("bundle from a collector outside the round accepted")
	}
	if err := k.Accept(cfg.Collectors[2].Fingerprint, bundles[1].Shares[:2]); err == nil {
		t.Error("short bundle accepted")
	}
}

func TestBlindedCountersHideCounts(t *testing.T) {
	// Two collectors with identical counts and no noise must hold unrelated
	// values: each counter is r_c + count_c for fresh uniform r_c.
	cfg := testConfig(3, 2, 1, 0, 1)
	a, _, _ := SetupCollector(cfg, 1, noNoise, nil)
	b, _, _ := SetupCollector(cfg, 1, noNoise, nil)
	for c := range a.Len() {
		a.Add(c, 5)
		b.Add(c, 5)
	}
	ra, rb := a.Report(), b.Report()
	for c := range ra {
		if ra[c] == rb[c] || ra[c] == 5 {
			t.Fatalf("counter %d: reports %d and %d reveal the count", c, ra[c], rb[c])
		}
	}
}

func TestSumReportsRejectsMalformedReports(t *testing.T) {
	type reports = map[string][]field.Element
	for name, tc := range map[string]struct{ values, masks reports }{
		"short report":         {reports{"x": {1}}, reports{"x": {0}}},
		"non-canonical report": {reports{"x": {field.P, 1}}, reports{"x": {0, 0}}},
		"mask 2^40":            {reports{"x": {1, 1}}, reports{"x": {0, commit.MaskBound}}},
		"one mask short":       {reports{"x": {1, 1}}, reports{"x": {0}}},
		"no masks":             {reports{"x": {1, 1}}, reports{}},
		"another's masks":      {reports{"x": {1, 1}}, reports{"y": {0, 0}}},
	} {
		if _, err := SumReports(2, tc.values, tc.masks); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	sum, err := SumReports(2, reports{"x": {1, 2}, "y": {3, field.P - 1}}, reports{"x": {0, 5}, "y": {7, 0}})
	if err != nil {
		t.Fatal(err)
	}
	// Counter 1: 2 + 5p + (p − 1) = 1 + 6p, kept whole, not reduced mod p.
	want := commit.IntSum{commit.Masked(4, 7), commit.Masked(1, 6)}
	if !slices.Equal(sum, want) {
		t.Errorf("SumReports = %v, want %v", sum, want)
	}
}

func TestNoiseWeightScalesSigma(t *testing.T) {
	cfg := testConfig(3, 2, 1, 8, 0.25)
	var asked []float64
	record := func(s float64) (int64, error) { asked = append(asked, s); return 0, nil }
	if _, _, err := SetupCollector(cfg, 0.25, record, nil); err != nil {
		t.Fatal(err)
	}
	if len(asked) != cfg.NumCounters() {
		t.Fatalf("sampler called %d times for %d counters", len(asked), cfg.NumCounters())
	}
	for _, s := range asked {
		if math.Abs(s-2) > 1e-12 {
			t.Fatalf("sampler asked for σ = %v, want weight·σ = 2", s)
		}
	}
}

func TestKeeperRefusesAnUndernoisedSet(t *testing.T) {
	cfg := testConfig(3, 2, 3, 10, 0.5) // any S carries 0.25·|S| of σ²
	k, _ := NewKeeperRound(cfg, 1)
	var S []string
	for _, dc := range cfg.Collectors {
		_, bundles, _ := SetupCollector(cfg, dc.NoiseWeight, noNoise, nil)
		if err := k.Accept(dc.Fingerprint, bundles[0].Shares); err != nil {
			t.Fatal(err)
		}
		S = append(S, dc.Fingerprint)
	}
	err := k.Commit(agree(t, cfg.NumCounters(), zeros(cfg.NumCounters(), S...)))
	if err == nil || !strings.Contains(err.Error(), "carry only 0.75") {
		t.Fatalf("Commit = %v, want a refusal naming the noise shortfall", err)
	}
}

// In a composed round the keeper holds S's noise to the round's whole
// (ε, δ): S carries σ² in full (four collectors of weight ½) but its σ are
// 1% short of what the composed claim needs, so it does not commit; with
// the σ the claim needs it does.
func TestKeeperRefusesAnUndernoisedSetInAComposedRound(t *testing.T) {
	for _, short := range []float64{0, 0.01} {
		cfg := roundtest.Config(3, 2, 4, 1, 0.5)
		cfg.Epsilon, cfg.Delta, cfg.MinCollectors = 0.3, 1e-6, 4
		for i := range cfg.Statistics {
			cfg.Statistics[i].Sensitivity, cfg.Statistics[i].BinsTouched = 10, 1
		}
		roundtest.Composed(cfg, short)
		k, err := NewKeeperRound(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		var S []string
		for _, dc := range cfg.Collectors {
			_, bundles, err := SetupCollector(cfg, dc.NoiseWeight, noNoise, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Accept(dc.Fingerprint, bundles[0].Shares); err != nil {
				t.Fatal(err)
			}
			S = append(S, dc.Fingerprint)
		}
		err = k.Commit(agree(t, cfg.NumCounters(), zeros(cfg.NumCounters(), S...)))
		switch {
		case short == 0 && err != nil:
			t.Errorf("σ the composed claim needs: Commit = %v", err)
		case short > 0 && (err == nil || !strings.Contains(err.Error(), "keeper: over S: the statistics' noise composed over 4 collectors")):
			t.Errorf("σ 1%% short: Commit = %v, want the composed claim refused", err)
		}
	}
}

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
		m, err := commit.NewMasks(crand.Reader, len(reports[fp]))
		if err != nil {
			return a, err
		}
		rho, err := commit.NewBlinding(crand.Reader)
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

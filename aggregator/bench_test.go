package aggregator

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
)

// benchConfig has one histogram of `counters` bins.
func benchConfig(n, k, collectors, counters int) *round.Config {
	cfg := testConfig(n, k, collectors, 0, 1)
	bins := make([]string, counters)
	for i := range bins {
		bins[i] = fmt.Sprint(i)
	}
	cfg.Statistics = []round.StatisticSpec{{Name: "h", Bins: bins, MaxPerCollector: 1 << 30}}
	return cfg
}

func BenchmarkCollectorAdd(b *testing.B) {
	b.ReportAllocs()
	ctr, _, err := SetupCollector(benchConfig(3, 2, 1, 1000), 1, noNoise, nil)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		ctr.Add(i%1000, 1500)
		i++
	}
}

func BenchmarkSetupCollector1000Counters5Keepers(b *testing.B) {
	b.ReportAllocs()
	cfg := benchConfig(5, 3, 1, 1000)
	for b.Loop() {
		if _, _, err := SetupCollector(cfg, 1, noNoise, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeeperAggregate1000Collectors1000Counters(b *testing.B) {
	b.ReportAllocs()
	cfg := benchConfig(5, 3, 1000, 1000)
	k, _ := NewKeeperRound(cfg, 1)
	shares := make([]field.Element, 1000)
	S := make([]string, 0, 1000)
	for _, dc := range cfg.Collectors {
		if err := field.Random(nil, shares); err != nil {
			b.Fatal(err)
		}
		if err := k.Accept(dc.Fingerprint, shares); err != nil {
			b.Fatal(err)
		}
		S = append(S, dc.Fingerprint)
	}
	// Every collector reports zeros under zero masks and one blinding ρ:
	// the commitments are all Commit(0, 0, ρ) and the agreement is honest,
	// at the cost of one commitment rather than a thousand. (What a keeper's
	// check costs does not depend on the values.)
	rho, _ := commit.NewBlinding(rand.Reader)
	c, err := commit.Commit(make([]field.Element, 1000), make([]uint64, 1000), rho)
	if err != nil {
		b.Fatal(err)
	}
	ag := Agreement{Collectors: S, SumV: commit.NewIntSum(1000)}
	rhos := make([]commit.Scalar, len(S))
	for i := range S {
		ag.Commitments = append(ag.Commitments, c)
		rhos[i] = rho
	}
	if ag.SumBlinding, err = commit.SumScalars(rhos); err != nil {
		b.Fatal(err)
	}
	if err := k.Commit(ag); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.AggregateShare(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTallyCombine1000Counters(b *testing.B) {
	for _, tc := range []struct{ n, k int }{{3, 2}, {5, 3}} {
		b.Run(fmt.Sprintf("N=%d,K=%d", tc.n, tc.k), func(b *testing.B) {
			b.ReportAllocs()
			cfg := benchConfig(tc.n, tc.k, 1, 1000)
			shares := aggregateShares(b, cfg, nil)
			for b.Loop() {
				if _, err := Combine(cfg, shares); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

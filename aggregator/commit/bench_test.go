package commit

import (
	"testing"

	"github.com/cloudflare/circl/group"
)

// synthetic returns m honest masked commitments over n counters with their
// sums.
// Committing m reports in full would take m × 76 ms, so it commits a few
// base reports B_j = Commit(V_j, M_j, ρ_j) and derives the rest as
// B_j + t·H = Commit(V_j, M_j, ρ_j + t): one point addition each. What Sum and
// Verify cost does not depend on how the commitments were made.
func synthetic(b *testing.B, m, n, bases int) ([]Commitment, IntSum, Scalar) {
	b.Helper()
	reports := newReports(b, 42, bases, n)
	_, h := generators(0)
	points := make([]group.Element, bases)
	rhos := make([]group.Scalar, bases)
	for j, rep := range reports {
		points[j] = mustElement(b, rep.c)
		rhos[j] = mustScalar(b, rep.rho)
	}
	oneS := mustScalar(b, one())
	cs := make([]Commitment, m)
	sumV := NewIntSum(n)
	sumRho := ristretto.NewScalar()
	for i := range cs {
		j := i % bases
		cs[i] = encodeElement(points[j])
		sumRho.Add(sumRho, rhos[j])
		if err := sumV.AddMasked(reports[j].v, reports[j].m); err != nil {
			b.Fatal(err)
		}
		points[j].Add(points[j], h)
		rhos[j].Add(rhos[j], oneS)
	}
	rho := encodeScalar(sumRho)
	if err := Verify(cs, sumV, rho); err != nil {
		b.Fatalf("synthetic data is not honest: %v", err)
	}
	return cs, sumV, rho
}

func mustElement(b testing.TB, c Commitment) group.Element {
	p, err := c.decode()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkCommit1000(b *testing.B) {
	rep := newReports(b, 1, 1, 1000)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Commit(rep.v, rep.m, rep.rho); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1000(b *testing.B) {
	rep := newReports(b, 1, 1, 1000)[0]
	b.ReportAllocs()
	for b.Loop() {
		if err := Open(rep.c, rep.v, rep.m, rep.rho); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSum7000(b *testing.B) {
	cs, _, _ := synthetic(b, 7000, 1000, 8)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sum(cs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify7000x1000 is the keeper's check, and privstats verify's,
// for 7,000 collectors and 1,000 counters.
func BenchmarkVerify7000x1000(b *testing.B) { benchmarkVerify(b, 7000, 1000) }

// BenchmarkVerify7000x100000 is the same at round.MaxCounters, once the
// generators are derived (BenchmarkGenerator prices that).
func BenchmarkVerify7000x100000(b *testing.B) { benchmarkVerify(b, 7000, MaxValues) }

func benchmarkVerify(b *testing.B, m, n int) {
	cs, sumV, sumRho := synthetic(b, m, n, 2)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(cs, sumV, sumRho); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerator is the one-time cost of deriving one generator.
func BenchmarkGenerator(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		hashToElement([]byte(msgH))
	}
}

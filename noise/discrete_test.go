package noise

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

func TestSampleDiscreteGaussianRejectsInvalidSigma(t *testing.T) {
	for _, sigma := range []float64{-1, -1e-300, math.NaN(), math.Inf(1), math.Inf(-1), 2 * MaxSampleSigma} {
		if _, err := SampleDiscreteGaussian(rand.Reader, sigma); err == nil || !strings.Contains(err.Error(), "σ") {
			t.Errorf("SampleDiscreteGaussian(%v) error = %v, want a σ error", sigma, err)
		}
	}
	if _, err := SampleDiscreteGaussian(rand.Reader, MaxSampleSigma); err != nil {
		t.Errorf("SampleDiscreteGaussian(MaxSampleSigma): %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy source unplugged") }

func TestSampleDiscreteGaussianZeroSigmaReadsNothing(t *testing.T) {
	if x, err := SampleDiscreteGaussian(failingReader{}, 0); x != 0 || err != nil {
		t.Fatalf("SampleDiscreteGaussian(σ = 0) = %v, %v; want 0, nil without reading", x, err)
	}
}

func TestSampleDiscreteGaussianReportsReaderErrors(t *testing.T) {
	for _, sigma := range []float64{1e-300, 0.5, 1e6} {
		_, err := SampleDiscreteGaussian(failingReader{}, sigma)
		if err == nil || !strings.Contains(err.Error(), "entropy source unplugged") || !strings.Contains(err.Error(), "reading randomness") {
			t.Errorf("σ = %v: error %v, want the reader's error", sigma, err)
		}
	}
}

// All randomness comes from the reader: the same stream gives the same
// draws, another stream other draws. For σ = 0.5 two different sequences of
// 200 draws agree with probability Σ_z P(z)² ^ 200 < 10⁻³⁸.
func TestSampleDiscreteGaussianReadsOnlyItsReader(t *testing.T) {
	draws := func(seed byte, sigma float64) []int64 {
		r := mrand.NewChaCha8([32]byte{seed})
		out := make([]int64, 200)
		for i := range out {
			x, err := SampleDiscreteGaussian(r, sigma)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = x
		}
		return out
	}
	for _, sigma := range []float64{0.5, 3, 1e6, 8.7e10, MaxSampleSigma} {
		a, b, c := draws(1, sigma), draws(1, sigma), draws(2, sigma)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("σ = %v: one seed gave two sequences:\n%v\n%v", sigma, a, b)
		}
		if fmt.Sprint(a) == fmt.Sprint(c) {
			t.Errorf("σ = %v: two seeds gave the same sequence %v", sigma, a)
		}
	}
}

// dgMass returns P[N_Z(0, s²) ∈ [lo, hi]] for integers lo ≤ hi (either may be
// infinite), from the bounds of dgLaw.rangeSum, which are exact sums for
// s ≤ directSigma and within 10⁻⁸ beyond.
func dgMass(s, lo, hi float64) float64 {
	g := dgLaw{v: s * s, sigma: s}
	l, h := g.rangeSum(lo, hi)
	return (l + h) / 2 / g.normalizer()
}

// chiSquareBound is a threshold that a χ² variable with k degrees of freedom
// exceeds with probability at most e^(−x) (Laurent and Massart 2000, Lemma 1:
// P[χ²_k ≥ k + 2√(kx) + 2x] ≤ e^(−x)).
func chiSquareBound(k, x float64) float64 { return k + 2*math.Sqrt(k*x) + 2*x }

// pearson is Pearson's statistic Σ (O − E)²/E.
func pearson(counts []int, probs []float64, n int) float64 {
	var x2 float64
	for i, c := range counts {
		e := probs[i] * float64(n)
		x2 += (float64(c) - e) * (float64(c) - e) / e
	}
	return x2
}

// goodnessOfFit bins n draws by bin() into len(probs) bins and reports
// Pearson's statistic and the threshold it exceeds with probability about
// 10⁻⁹ or less if the draws follow probs.
func goodnessOfFit(t *testing.T, draw func() int64, bin func(int64) int, probs []float64, n int) (x2, limit float64) {
	t.Helper()
	counts := make([]int, len(probs))
	for range n {
		counts[bin(draw())]++
	}
	return pearson(counts, probs, n), chiSquareBound(float64(len(probs)-1), math.Log(1e9))
}

// integerBins returns bins (−∞, −K], {−K+1}, …, {K−1}, [K, ∞) for the largest
// K whose tail bins still expect minCount of n draws from N_Z(0, s²).
func integerBins(s float64, n int, minCount float64) (bin func(int64) int, probs []float64) {
	k := int64(1)
	for dgMass(s, float64(k+1), math.Inf(1))*float64(n) >= minCount {
		k++
	}
	for z := -k; z <= k; z++ {
		lo, hi := float64(z), float64(z)
		if z == -k {
			lo = math.Inf(-1)
		}
		if z == k {
			hi = math.Inf(1)
		}
		probs = append(probs, dgMass(s, lo, hi))
	}
	return func(x int64) int { return int(min(max(x, -k), k) + k) }, probs
}

// rangeBins returns bins split at 0, ±s/2, ±s, …, ±5s/2.
func rangeBins(s float64) (bin func(int64) int, probs []float64) {
	var edges []float64 // bin i is [edges[i-1], edges[i]) in integers
	for h := -5; h <= 5; h++ {
		edges = append(edges, math.Ceil(float64(h)*s/2))
	}
	lo := math.Inf(-1)
	for _, e := range edges {
		probs = append(probs, dgMass(s, lo, e-1))
		lo = e
	}
	probs = append(probs, dgMass(s, lo, math.Inf(1)))
	return func(x int64) int {
		i := 0
		for i < len(edges) && float64(x) >= edges[i] {
			i++
		}
		return i
	}, probs
}

// TestDiscreteGaussianLaw checks the sampler against the exact law by
// Pearson's χ² test: per integer for small σ (tails merged so that every bin
// expects at least 200 draws), by half-σ ranges for large σ, and, for large
// σ, by z mod 8, which must be uniform (to within e^(−2π²σ²/64)): a sampler
// with floating-point artefacts in its low bits (Mironov 2012) would fail it.
//
// Each of the nine checks fails falsely with probability about 10⁻⁹ or less:
// the threshold k + 2√(kx) + 2x, x = ln 10⁹, bounds the χ²_k tail by e^(−x)
// (Laurent and Massart 2000), and for the k here (2 to 30) lies where the
// χ²_k tail is below 10⁻¹¹, a hundredfold margin for the departure of
// Pearson's statistic from χ²_k at ≥ 200 expected draws per bin. All nine:
// below 10⁻⁸.
//
// The old sampler, round(N(0, σ²)), must fail the same test at σ = 0.5, so
// the test can tell the two laws apart.
func TestDiscreteGaussianLaw(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 50000
	}
	for _, sigma := range []float64{0.5, 1, 5, 50, 1e6, 8.7e10} {
		s := newDGSampler(rand.Reader, sigma)
		draw := func() int64 {
			x, err := s.sample()
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		var bin func(int64) int
		var probs []float64
		if sigma < 50 {
			bin, probs = integerBins(sigma, n, 200)
		} else {
			bin, probs = rangeBins(sigma)
		}
		x2, limit := goodnessOfFit(t, draw, bin, probs, n)
		t.Logf("σ = %v: χ² = %.1f over %d bins (limit %.1f)", sigma, x2, len(probs), limit)
		if x2 > limit {
			t.Errorf("σ = %v: χ² = %.1f over %d bins exceeds %.1f: draws do not follow N_Z(0, σ²)", sigma, x2, len(probs), limit)
		}
		if sigma < 50 {
			continue
		}
		mod8 := func(x int64) int { return int((x%8 + 8) % 8) }
		uniform := []float64{1. / 8, 1. / 8, 1. / 8, 1. / 8, 1. / 8, 1. / 8, 1. / 8, 1. / 8}
		if x2, limit := goodnessOfFit(t, draw, mod8, uniform, n); x2 > limit {
			t.Errorf("σ = %v: χ² = %.1f of z mod 8 exceeds %.1f: low bits are not uniform", sigma, x2, limit)
		}
	}

	bin, probs := integerBins(0.5, n, 200)
	old := func() int64 {
		x, err := Sample(0.5)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	if x2, limit := goodnessOfFit(t, old, bin, probs, n); x2 <= limit {
		t.Errorf("round(N(0, 0.25)) passed as N_Z(0, 0.25): χ² = %.1f ≤ %.1f; the test cannot tell them apart", x2, limit)
	}
}

// dgMoments returns E[X²] and E[X⁴] for X ~ N_Z(0, s²) by direct summation.
func dgMoments(s float64) (m2, m4 float64) {
	z0 := 1.0
	for z := 1.0; z <= math.Ceil(40*s)+12; z++ {
		w := 2 * math.Exp(-z*z/(2*s*s))
		z0 += w
		m2 += z * z * w
		m4 += z * z * z * z * w
	}
	return m2 / z0, m4 / z0
}

func TestDiscreteGaussianVariance(t *testing.T) {
	for _, s := range []float64{0.05, 0.16, 0.3, 0.5, 0.9, 0.999, 1, 1.001, 1.2, 1.45, 2, 5, 30} {
		want, _ := dgMoments(s)
		if got := DiscreteGaussianVariance(s); math.Abs(got-want) > 1e-13*want {
			t.Errorf("DiscreteGaussianVariance(%v) = %.17g, direct sum %.17g", s, got, want)
		}
	}
	for _, s := range []float64{1.5, 2, 100, 1e6, 2.75e12} {
		if got := DiscreteGaussianVariance(s); got != s*s {
			t.Errorf("DiscreteGaussianVariance(%v) = %v, want s² = %v in float64", s, got, s*s)
		}
	}
	if got := DiscreteGaussianVariance(0.5); got > 0.22 {
		t.Errorf("DiscreteGaussianVariance(0.5) = %v, want about 0.215, well below s² = 0.25", got)
	}
	if got := DiscreteGaussianVariance(0); got != 0 {
		t.Errorf("DiscreteGaussianVariance(0) = %v", got)
	}
	for _, s := range []float64{-1, math.NaN(), math.Inf(1)} {
		if got := DiscreteGaussianVariance(s); !math.IsNaN(got) {
			t.Errorf("DiscreteGaussianVariance(%v) = %v, want NaN", s, got)
		}
	}
}

// TestTotalsVariance is the check that published σ of a total is its true
// standard deviation: N totals, each the sum of n = 1000 collectors' draws
// at per-collector s, against V = n·DiscreteGaussianVariance(s). Known mean
// 0, so the estimate is m̂ = Σ T_j²/N. Every bound below holds whatever the
// sampler's law, given only the facts cited, and each fails falsely with
// probability at most 10⁻⁹: seven bounds, below 10⁻⁸ in all.
//
// For s ≥ 0.5, two bounds with x = ln 10⁹:
//
//   - above: N_Z(0, s²) is s²-sub-Gaussian (E e^(λX) ≤ e^(λ²s²/2); Canonne,
//     Kamath and Steinke 2020), so T is n·s²-sub-Gaussian and
//     E e^(uT²/(ns²)) ≤ (1 − 2u)^(−1/2), the χ²₁ bound; Laurent and
//     Massart's Chernoff argument then gives
//     P[m̂ ≥ ns²·(1 + 2√(x/N) + 2x/N)] ≤ e^(−x).
//   - below: T² ≥ 0 with E T⁴ = 3V² + n·κ₄ (κ₄ the fourth cumulant of one
//     draw), and for sums of non-negative variables
//     P[m̂ ≤ V − √(2x·E T⁴/N)] ≤ e^(−x) (Maurer 2003).
//
// For s = 0.16, where V = 6.6·10⁻⁶ and nearly every total is 0: of the
// M = N·n draws, K are non-zero, K ~ Binomial(M, q), and
// P[K ≥ k] ≤ (Mq)^k/k!; no draw reaches ±2 but with probability
// M·P[|X| ≥ 2] ≈ 10⁻²⁸. Otherwise Σ T_j² ≤ (Σ|T_j|)² ≤ K², so
// m̂ ≤ (k−1)²/N for the least k with (Mq)^k/k! + M·P[|X| ≥ 2] ≤ 10⁻⁹.
// The rounded continuous sampler the issue measured (σ of a total 1.18
// where 10.41 was published) fails this bound, which is also checked.
func TestTotalsVariance(t *testing.T) {
	const n = 1000
	totals := 600
	if testing.Short() {
		totals = 100
	}
	x := math.Log(1e9)
	for _, s := range []float64{0.16, 0.5, 1, 5} {
		t.Run(fmt.Sprintf("s=%v", s), func(t *testing.T) {
			t.Parallel()
			smp := newDGSampler(rand.Reader, s)
			got := meanSquareTotal(t, func() (int64, error) { return smp.sample() }, totals, n)
			v := n * DiscreteGaussianVariance(s)
			if s < 0.3 {
				limit := tinyNoiseLimit(t, s, totals, n)
				t.Logf("m̂ = %.4g, V = %.3g, limit %.3g", got, v, limit)
				if got > limit {
					t.Errorf("mean square of %d totals %.4g exceeds %.3g (V = %.3g)", totals, got, limit, v)
				}
				old := meanSquareTotal(t, func() (int64, error) { return Sample(s) }, 20, n)
				if oldLimit := tinyNoiseLimit(t, s, 20, n); old <= oldLimit {
					t.Errorf("rounded N(0, s²) gave mean square %.4g ≤ %.3g; the check cannot tell it from N_Z", old, oldLimit)
				}
				return
			}
			m2, m4 := dgMoments(s)
			fourth := 3*v*v + n*(m4-3*m2*m2)
			nf := float64(totals)
			hi := n * s * s * (1 + 2*math.Sqrt(x/nf) + 2*x/nf)
			lo := v - math.Sqrt(2*x*fourth/nf)
			t.Logf("m̂/V = %.4f, accepted [%.3f, %.3f]", got/v, lo/v, hi/v)
			if got < lo || got > hi {
				t.Errorf("mean square of %d totals %.5g outside [%.5g, %.5g] around V = %.5g", totals, got, lo, hi, v)
			}
		})
	}
}

func meanSquareTotal(t *testing.T, draw func() (int64, error), totals, n int) float64 {
	t.Helper()
	var sum float64
	for range totals {
		var total int64
		for range n {
			x, err := draw()
			if err != nil {
				t.Fatal(err)
			}
			total += x
		}
		sum += float64(total) * float64(total)
	}
	return sum / float64(totals)
}

// tinyNoiseLimit is (k−1)²/N of TestTotalsVariance's bound for small s.
func tinyNoiseLimit(t *testing.T, s float64, totals, n int) float64 {
	t.Helper()
	var z0, far float64 = 1, 0
	for z := 1.0; z <= 12; z++ {
		w := 2 * math.Exp(-z*z/(2*s*s))
		z0 += w
		if z >= 2 {
			far += w
		}
	}
	q, q2 := (z0-1)/z0, far/z0
	m := float64(totals * n)
	for k := 1; k < 100; k++ {
		lgk, _ := math.Lgamma(float64(k + 1))
		if math.Exp(float64(k)*math.Log(m*q)-lgk)+m*q2 <= 1e-9 {
			return float64((k-1)*(k-1)) / float64(totals)
		}
	}
	t.Fatalf("s = %v: no k bounds the non-zero draws", s)
	return 0
}

func BenchmarkSampleDiscreteGaussian(b *testing.B) {
	for _, sigma := range []float64{0.16, 1, 10, 1e6, 8.7e10} {
		b.Run(fmt.Sprintf("sigma=%g", sigma), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SampleDiscreteGaussian(rand.Reader, sigma); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Bernoulli(e^(−num/den)) through each of its paths: uint64, the switch to
// big.Int when den·k overflows, big.Int from the start, and ⌊γ⌋ ≥ 1. Each
// frequency of n = 40000 draws must lie within 6.5 standard deviations of
// e^(−γ); under the normal approximation (n·p ≥ 3000 here) each check fails
// falsely with probability 8·10⁻¹¹, the five together below 10⁻⁹.
func TestBernoulliExp(t *testing.T) {
	const n = 40000
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	for _, c := range []struct {
		name     string
		num, den *big.Int
	}{
		{"uint64", big.NewInt(3), big.NewInt(7)},
		{"overflow to big", new(big.Int).SetUint64(1 << 63), new(big.Int).SetUint64(1<<63 + 1)},
		{"big", new(big.Int).Rsh(huge, 1), huge},
		{"γ > 1", big.NewInt(5), big.NewInt(2)},
		{"big γ > 1", new(big.Int).Lsh(huge, 1), new(big.Int).Sub(huge, big.NewInt(1))},
	} {
		s := newDGSampler(rand.Reader, 1)
		hits := 0
		for range n {
			ok, err := s.bernoulliExp(c.num, c.den)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				hits++
			}
		}
		g, _ := new(big.Rat).SetFrac(c.num, c.den).Float64()
		p := math.Exp(-g)
		if sd := math.Sqrt(p * (1 - p) / n); math.Abs(float64(hits)/n-p) > 6.5*sd {
			t.Errorf("%s: Bernoulli(e^(−%v)) came up %v of the time, want %v ± %v", c.name, g, float64(hits)/n, p, 6.5*sd)
		}
	}
}

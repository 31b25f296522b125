package noise

import (
	"math"
	"strings"
	"testing"

	dpnoise "github.com/google/differential-privacy/go/v3/noise"
)

func TestSampleZeroSigmaAddsNothing(t *testing.T) {
	for _, sigma := range []float64{0, 1e-9, negligibleSigma / 2} {
		for range 100 {
			if x, err := Sample(sigma); x != 0 || err != nil {
				t.Fatalf("Sample(%v) = %v, %v; want 0, nil", sigma, x, err)
			}
		}
	}
}

func TestSampleRejectsInvalidSigma(t *testing.T) {
	for _, sigma := range []float64{-1, -1e-300, math.NaN(), math.Inf(1), math.Inf(-1), 2 * MaxSampleSigma} {
		if _, err := Sample(sigma); err == nil || !strings.Contains(err.Error(), "σ") {
			t.Errorf("Sample(%v) error = %v, want a σ error", sigma, err)
		}
	}
	if _, err := Sample(MaxSampleSigma); err != nil {
		t.Errorf("Sample(MaxSampleSigma): %v", err)
	}
}

// Sample gets σ out of Google's sampler by scaling L∞. That is only right if
// the σ the sampler uses is exactly linear in L∞, across every scale.
func TestSampleScalingIsExact(t *testing.T) {
	for e := math.Log2(negligibleSigma); e <= 53; e += 0.01 {
		sigma := math.Exp2(e)
		used := dpnoise.SigmaForGaussian(1, sigma/refSigma, refEpsilon, refDelta)
		if math.Abs(used-sigma) > 1e-12*sigma {
			t.Fatalf("asking for σ = %v makes google's sampler use %v", sigma, used)
		}
	}
}

// TestSampleMoments draws n samples at several σ and compares their mean and
// second moment with those of round(N(0, σ²)).
//
// The mean is 0 by symmetry, so the second moment m2 = E[x²] is the variance
// and its estimate m̂2 = Σx²/n has standard deviation √((m4 − m2²)/n). For an
// unrounded Gaussian m4 = 3σ⁴, so that is m2·√(2/n): about 0.7% for n =
// 40000. Rounding adds about 1/12 to m2, which matters at σ = 0.5, so the
// test uses the exact moments of the rounded distribution.
//
// Each check allows 6 standard deviations. Under a normal approximation a
// false failure has probability 2·10⁻⁹; with n = 40000 the skewness of m̂2 is
// only 2√2/√n ≈ 0.014, which the Edgeworth correction turns into less than a
// 10% change of that tail. Seven checks (mean and m2 at three σ, and the
// shape check) thus fail falsely with probability well under 10⁻⁷.
func TestSampleMoments(t *testing.T) {
	const n = 40000
	const bound = 6
	for _, sigma := range []float64{0.5, 10, 1e6} {
		m2, m4 := roundedNormalMoments(sigma)
		var sum, sumSq float64
		within := 0
		for range n {
			x, err := Sample(sigma)
			if err != nil {
				t.Fatal(err)
			}
			v := float64(x)
			sum += v
			sumSq += v * v
			if math.Abs(v) <= sigma {
				within++
			}
		}
		mean, gotM2 := sum/n, sumSq/n
		if sd := math.Sqrt(m2 / n); math.Abs(mean) > bound*sd {
			t.Errorf("σ = %v: mean %v, want |mean| ≤ %v", sigma, mean, bound*sd)
		}
		if sd := math.Sqrt((m4 - m2*m2) / n); math.Abs(gotM2-m2) > bound*sd {
			t.Errorf("σ = %v: variance %v, want %v ± %v", sigma, gotM2, m2, bound*sd)
		}
		t.Logf("σ = %v: mean %.4g, variance/expected %.5f", sigma, mean, gotM2/m2)
		if sigma < 1e6 {
			continue
		}
		// Shape: a Gaussian puts 68.27% of its mass within one σ, where a
		// uniform or Laplace law of the same variance puts 57.7% or 75.7%.
		p := math.Erf(1 / math.Sqrt2)
		frac := float64(within) / n
		if sd := math.Sqrt(p * (1 - p) / n); math.Abs(frac-p) > bound*sd {
			t.Errorf("σ = %v: %.4f of samples within ±σ, want %.4f ± %.4f", sigma, frac, p, bound*sd)
		}
	}
}

// roundedNormalMoments returns E[k²] and E[k⁴] for k = round(x), x ~ N(0, σ²).
func roundedNormalMoments(sigma float64) (m2, m4 float64) {
	if sigma > 50 {
		// Sheppard's corrections for a grid of width 1, exact to within
		// e^(−2π²σ²) for a Gaussian.
		s2 := sigma * sigma
		return s2 + 1.0/12, 3*s2*s2 + s2/2 + 7.0/240
	}
	for k := -math.Ceil(20 * sigma); k <= math.Ceil(20*sigma); k++ {
		p := normalCDF((k+0.5)/sigma) - normalCDF((k-0.5)/sigma)
		m2 += k * k * p
		m4 += k * k * k * k * p
	}
	return m2, m4
}

func BenchmarkSample(b *testing.B) {
	for _, bc := range []struct {
		name  string
		sigma float64
	}{{"sigma=1", 1}, {"sigma=1e6", 1e6}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sample(bc.sigma); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkScrub(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Scrub()
	}
}

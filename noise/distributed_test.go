package noise

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// dgPMF returns P[N_Z(0, v) = z] for z = −r..r, index z+r, with r large
// enough that the mass left out is below 10⁻³⁰⁰.
func dgPMF(v float64) (pmf []float64, r int) {
	r = int(math.Ceil(40*math.Sqrt(v))) + 5
	pmf = make([]float64, 2*r+1)
	var sum float64
	for i := range pmf {
		z := float64(i - r)
		pmf[i] = math.Exp(-z * z / (2 * v))
		sum += pmf[i]
	}
	for i := range pmf {
		pmf[i] /= sum
	}
	return pmf, r
}

// convolve returns the law of X+Y for independent X, Y with pmfs centred at
// index r1 and r2; the result is centred at r1+r2.
func convolve(p1 []float64, r1 int, p2 []float64, r2 int) ([]float64, int) {
	out := make([]float64, len(p1)+len(p2)-1)
	for i, a := range p1 {
		for j, b := range p2 {
			out[i+j] += a * b
		}
	}
	return out, r1 + r2
}

// Step 1 of the analysis: N_Z(0, a) + N_Z(0, b) is within e^(±η) of
// N_Z(0, a+b) at every integer, η = ln((1+θ)/(1−θ)), θ = θ(ab/(a+b)). The
// exact convolution must stay inside the bound and, since the bound comes
// from the extreme shifts of a theta function that the sum does reach, come
// within a factor 4 of it. The pairs keep η above 10⁻⁸ so float rounding
// (10⁻¹³ here) cannot decide the outcome.
func TestSumOfTwoDiscreteGaussians(t *testing.T) {
	for _, c := range []struct{ a, b float64 }{{0.25, 0.25}, {0.5, 2}, {0.36, 4}, {1, 1}, {1, 2.25}, {0.64, 0.64}} {
		p1, r1 := dgPMF(c.a)
		p2, r2 := dgPMF(c.b)
		sum, r := convolve(p1, r1, p2, r2)
		want, rw := dgPMF(c.a + c.b)
		bound, err := stepDivergence(c.a * c.b / (c.a + c.b))
		if err != nil {
			t.Fatal(err)
		}
		// Compare where both masses are far above float underflow.
		lim := int(8 * math.Sqrt(c.a+c.b))
		var worst float64
		for z := -lim; z <= lim; z++ {
			worst = max(worst, math.Abs(math.Log(sum[z+r]/want[z+rw])))
		}
		t.Logf("a=%v b=%v: max |log ratio| %.4g, bound %.4g", c.a, c.b, worst, bound)
		if worst > bound {
			t.Errorf("N_Z(0,%v)+N_Z(0,%v): log-ratio to N_Z(0,%v) reaches %.6g, above the bound %.6g", c.a, c.b, c.a+c.b, worst, bound)
		}
		if worst < bound/4 {
			t.Errorf("N_Z(0,%v)+N_Z(0,%v): log-ratio %.3g is far below the bound %.3g; is θ right?", c.a, c.b, worst, bound)
		}
	}
}

// dgDelta against the hockey-stick divergence summed over every output of
// N_Z(0, v) shifted by d against unshifted: never below it, and, where δ is
// above 10⁻²⁰, above it by at most 10⁻⁶ of itself, through the direct sums
// (σ ≤ 2000) and the integral brackets (σ above). (Below that, δ is a
// difference of far larger masses, and the brackets' 10⁻⁸ shows.)
func TestDGDeltaMatchesDirectSum(t *testing.T) {
	for _, c := range []struct{ v, d float64 }{{4, 1}, {25, 1}, {25, 3}, {1e4, 7}, {3e6, 10}, {2001 * 2001, 1}, {2.5e7, 1}, {1e8, 50}} {
		pmf, _ := dgPMF(c.v)
		sigma := math.Sqrt(c.v)
		// ε = k·d/σ puts the threshold a = εv/d − d/2 near kσ.
		for _, k := range []float64{0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8} {
			eps := k * c.d / sigma
			var want float64
			e := math.Exp(eps)
			for i := range pmf {
				if j := i - int(c.d); j >= 0 {
					want += max(0, pmf[j]-e*pmf[i])
				}
			}
			got := dgDelta(eps, c.v, c.d)
			t.Logf("σ=%v d=%v ε=%.4g: dgDelta/direct − 1 = %.2e (δ = %.3g)", sigma, c.d, eps, got/want-1, want)
			if got < want-1e-300 {
				t.Errorf("σ=%v d=%v ε=%v: dgDelta %.12g is below the direct sum %.12g", sigma, c.d, eps, got, want)
			}
			if want > 1e-20 && got > want*(1+1e-6) {
				t.Errorf("σ=%v d=%v ε=%v: dgDelta %.12g, direct sum %.12g", sigma, c.d, eps, got, want)
			}
		}
	}
}

// hockeyStick2 is the δ at ε of two independent counters each carrying
// noise of law pmf (centred at r), shifted by (d1, d2) against unshifted.
func hockeyStick2(pmf []float64, d1, d2 int, eps float64) float64 {
	e := math.Exp(eps)
	var delta float64
	for i := range pmf {
		for j := range pmf {
			var p float64
			if i-d1 >= 0 && i-d1 < len(pmf) && j-d2 >= 0 && j-d2 < len(pmf) {
				p = pmf[i-d1] * pmf[j-d2]
			}
			delta += max(0, p-e*pmf[i]*pmf[j])
		}
	}
	return delta
}

// TestDistributedEpsilonIsSound builds the exact law of a sum over three
// collectors, puts it on two counters (L0 = 2), and sums the hockey-stick
// divergence over every output for every shift a neighbour can make: at the
// ε DistributedEpsilon returns, none may exceed δ. At the worst shift δ is
// nearly reached, and at 0.99·ε exceeded, so the ε is close to the least.
// The second set has s_i = 1, where the sum's departure from a discrete
// Gaussian (2·10⁻⁴ per step) shows in ε.
func TestDistributedEpsilonIsSound(t *testing.T) {
	for _, sigmas := range [][]float64{{2, 2.5, 3}, {1, 1, 1.2}} {
		pmf, r := dgPMF(sigmas[0] * sigmas[0])
		for _, s := range sigmas[1:] {
			p, rs := dgPMF(s * s)
			pmf, r = convolve(pmf, r, p, rs)
		}
		for _, lInf := range []float64{1, 2} {
			for _, delta := range []float64{1e-3, 1e-6} {
				eps, err := DistributedEpsilon(sigmas, delta, 2, lInf)
				if err != nil {
					t.Fatal(err)
				}
				d := int(lInf)
				name := fmt.Sprintf("s=%v L∞=%v δ=%g", sigmas, lInf, delta)
				var shifts [][2]int
				for a := 0; a <= d; a++ {
					for b := -d; b <= d; b++ {
						shifts = append(shifts, [2]int{a, b})
					}
				}
				for _, sh := range shifts {
					if got := hockeyStick2(pmf, sh[0], sh[1], eps); got > delta {
						t.Errorf("%s: ε = %.6g, but shift %v has δ = %.6g", name, eps, sh, got)
					}
				}
				corner := hockeyStick2(pmf, d, d, eps)
				below := hockeyStick2(pmf, d, d, 0.99*eps)
				t.Logf("%s: ε = %.6g, δ at the corner %.4g, at 0.99ε %.4g", name, eps, corner, below)
				if corner < 0.5*delta || below <= delta {
					t.Errorf("%s: ε = %.6g is loose: the worst shift has δ = %.4g there and %.4g at 0.99ε", name, eps, corner, below)
				}
			}
		}
	}
}

// The statistics of testdata/tally.yaml, each with σ from Sigma: however σ
// is spread over equal or unequal collectors, the discrete sum gets the ε
// the round claims, to within the rounding Google's calibration adds (it
// rounds σ up by at most 0.1%) and DistributedSlack.
func TestDistributedEpsilonMeetsCalibration(t *testing.T) {
	stats := []struct {
		name      string
		eps, dlt  float64
		l0        int64
		lInf      float64
		collector int
	}{
		{"relay_bytes_read", 0.00019572417379600383, 2e-7, 1, 2.214592512e+08, 7000},
		{"or_connections", 0.18722817432613179, 2e-7, 3, 1440, 7000},
		{"exit_streams_by_port", 0.0024459288808285603, 2e-7, 4, 4320, 1000},
		{"hsdir_v3_stores", 0.10993444844544764, 2e-7, 2, 800, 3},
		{"or_connection_lifetime", 0.05, 1e-6, 9, 5, 500},
		{"unit", 0.05, 1e-9, 1, 1, 10},
	}
	for _, st := range stats {
		sigma, err := Sigma(st.eps, st.dlt, st.l0, st.lInf)
		if err != nil {
			t.Fatal(err)
		}
		n := st.collector
		equal := make(map[string]float64, n)
		unequal := make(map[string]float64, n)
		var sumW2 float64
		for i := range n {
			fp := fmt.Sprintf("relay%04d", i)
			equal[fp] = sigma / math.Sqrt(float64(n))
			w := 1 + float64(i%7)/3 // weights 1 to 3
			unequal[fp] = w
			sumW2 += w * w
		}
		for fp, w := range unequal {
			unequal[fp] = w * sigma / math.Sqrt(sumW2)
		}
		for kind, set := range map[string]map[string]float64{"equal": equal, "unequal": unequal} {
			if err := CheckDistributed(set, st.eps, st.dlt, st.l0, st.lInf); err != nil {
				t.Errorf("%s, %d %s collectors: %v", st.name, n, kind, err)
			}
			list := make([]float64, 0, n)
			for _, s := range set {
				list = append(list, s)
			}
			got, err := DistributedEpsilon(list, st.dlt, st.l0, st.lInf)
			if err != nil {
				t.Fatal(err)
			}
			if got < st.eps*(1-2e-3) {
				t.Errorf("%s, %s: ε = %.8g, more than 0.2%% below the claimed %v", st.name, kind, got, st.eps)
			}
			t.Logf("%s, %d %s collectors, σ_total %.6g: ε = %.10g for claimed %v (%+.2e)", st.name, n, kind, sigma, got, st.eps, got/st.eps-1)
		}
	}
}

func TestCheckDistributedRefuses(t *testing.T) {
	sigma, err := Sigma(0.5, 1e-6, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]float64{"A": sigma / 2, "B": sigma / 2, "C": sigma / 2, "D": sigma / 2}
	if err := CheckDistributed(set, 0.5, 1e-6, 1, 10); err != nil {
		t.Fatalf("calibrated set refused: %v", err)
	}

	set["E"] = 0 // adds no noise: neither helps nor needs a bound
	if err := CheckDistributed(set, 0.5, 1e-6, 1, 10); err != nil {
		t.Errorf("a collector with weight 0 made the set fail: %v", err)
	}

	set["F"] = 1.9
	err = CheckDistributed(set, 0.5, 1e-6, 1, 10)
	if err == nil || !strings.Contains(err.Error(), "F σ=1.9") || !strings.Contains(err.Error(), "below 2") {
		t.Errorf("collector below the floor: error %v, want it named", err)
	}
	delete(set, "F")

	delete(set, "D") // three quarters of the variance: ε ≈ 0.5·√(4/3)
	err = CheckDistributed(set, 0.5, 1e-6, 1, 10)
	if err == nil || !strings.Contains(err.Error(), "weaker than the claimed ε = 0.5") {
		t.Errorf("set with too little noise: error %v, want the ε it gets", err)
	}

	if err := CheckDistributed(map[string]float64{"A": 100, "B": math.NaN()}, 0.5, 1e-6, 1, 10); err == nil || !strings.Contains(err.Error(), "collector B has σ = NaN") {
		t.Errorf("NaN σ: error %v, want the collector named", err)
	}

	if err := CheckDistributed(map[string]float64{"A": 0}, 0.5, 1e-6, 1, 10); err == nil || !strings.Contains(err.Error(), "no collector adds noise") {
		t.Errorf("set without noise: error %v", err)
	}
}

func TestDistributedEpsilonRejectsInvalid(t *testing.T) {
	for _, c := range []struct {
		sigmas []float64
		delta  float64
		l0     int64
		lInf   float64
		want   string
	}{
		{[]float64{5}, 0, 1, 1, "δ"},
		{[]float64{5}, 1, 1, 1, "δ"},
		{[]float64{5}, 1e-6, 0, 1, "L0"},
		{[]float64{5}, 1e-6, 1, 0, "L∞"},
		{[]float64{5}, 1e-6, 1, math.NaN(), "L∞"},
		{[]float64{5, math.NaN()}, 1e-6, 1, 1, "collector 1"},
		{[]float64{5, -1}, 1e-6, 1, 1, "collector 1"},
		{[]float64{5, math.Inf(1)}, 1e-6, 1, 1, "collector 1"},
		{nil, 1e-6, 1, 1, "no collector"},
		{[]float64{0.2, 0.2}, 1e-6, 1, 1, "too far from a discrete Gaussian"},
	} {
		if _, err := DistributedEpsilon(c.sigmas, c.delta, c.l0, c.lInf); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DistributedEpsilon(%v, %v, %v, %v): error %v, want %q", c.sigmas, c.delta, c.l0, c.lInf, err, c.want)
		}
	}
	// An action smaller than one cannot change an integer counter.
	if eps, err := DistributedEpsilon([]float64{5}, 1e-6, 3, 0.5); eps != 0 || err != nil {
		t.Errorf("L∞ = 0.5: ε = %v, %v; want 0", eps, err)
	}
}

// The claims behind MinCollectorSigma.
func TestMinCollectorSigma(t *testing.T) {
	million := make([]float64, 1_000_000)
	for i := range million {
		million[i] = MinCollectorSigma * MinCollectorSigma
	}
	eta, err := sumDivergence(million)
	if err != nil {
		t.Fatal(err)
	}
	if shift := 2 * 8 * eta; shift >= 1e-9 {
		t.Errorf("a million collectors at s = %v on 8 counters move ε by %.3g, want below 10⁻⁹", float64(MinCollectorSigma), shift)
	}
	if eta, err := sumDivergence([]float64{1, 1}); err != nil || eta < 1e-4 {
		t.Errorf("two collectors at s = 1: η = %.3g, %v; want above 10⁻⁴, the reason the floor is not 1", eta, err)
	}
}

func BenchmarkDistributedEpsilon(b *testing.B) {
	for _, n := range []int{10, 7000} {
		for _, sigma := range []float64{100, 55000, 2.75e12} {
			sigmas := make([]float64, n)
			for i := range sigmas {
				sigmas[i] = sigma / math.Sqrt(float64(n))
			}
			if sigmas[0] < MinCollectorSigma {
				continue
			}
			b.Run(fmt.Sprintf("n=%d/sigma=%g", n, sigma), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := DistributedEpsilon(sigmas, 1e-6, 3, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestIIDDivergence(t *testing.T) {
	for _, v := range []float64{0.5, 1, 4} {
		for _, m := range []int64{1, 2, 9, 1000, 1001, 5000} {
			vars := make([]float64, m)
			for i := range vars {
				vars[i] = v
			}
			want, err := sumDivergence(vars)
			if err != nil {
				t.Fatal(err)
			}
			got, err := iidDivergence(v, m)
			if err != nil {
				t.Fatal(err)
			}
			// Past a thousand steps iidDivergence bounds each by the
			// thousandth, so it may exceed the exact sum, by little.
			slack := 1e-12
			if m > 1001 {
				slack = 1e-2
			}
			if got < want*(1-1e-12) || got > want*(1+slack) {
				t.Errorf("v = %v, m = %d: iidDivergence %.12g, sumDivergence %.12g", v, m, got, want)
			}
		}
	}
	if _, err := iidDivergence(4, 1<<40); err != nil {
		t.Errorf("2^40 counters: %v", err)
	}
}

package noise

import (
	"math"
	"testing"
)

func TestCI95(t *testing.T) {
	got := CI95(1000, 10)
	if want := (Interval{980.40036015459946, 1019.5996398454005}); math.Abs(got.Low-want.Low) > 1e-9 || math.Abs(got.High-want.High) > 1e-9 {
		t.Errorf("CI95(1000, 10) = %v, want %v", got, want)
	}
	if got := CI95(-5, 0); got != (Interval{-5, -5}) {
		t.Errorf("CI95(-5, 0) = %v, want [-5, -5]", got)
	}
	if got := CI95(7, -1); !math.IsNaN(got.Low) || !math.IsNaN(got.High) {
		t.Errorf("CI95(7, -1) = %v, want NaN bounds", got)
	}
}

func TestCIAtOtherLevels(t *testing.T) {
	for _, tt := range []struct{ confidence, z float64 }{
		{0.95, z95},
		{0.99, 2.5758293035489004},
		{0.6826894921370859, 1}, // one σ
	} {
		got, err := CI(0, 2, tt.confidence)
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 * tt.z; math.Abs(got.High-want) > 1e-12 || math.Abs(got.Low+want) > 1e-12 {
			t.Errorf("CI(0, 2, %v) = %v, want ±%v", tt.confidence, got, want)
		}
	}
	for _, c := range []float64{0, 1, -0.5, 95, math.NaN()} {
		if _, err := CI(0, 1, c); err == nil {
			t.Errorf("CI(0, 1, %v) succeeded", c)
		}
	}
	for _, s := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := CI(0, s, 0.95); err == nil {
			t.Errorf("CI(0, %v, 0.95) succeeded", s)
		}
	}
}

// The 95% interval around a noisy total drawn by Sample covers the true total
// 95% of the time. With n = 4000 draws the covered fraction has standard
// deviation √(0.95·0.05/n) ≈ 0.0034; 6 of them make a false failure
// (normal approximation) about 2·10⁻⁹ likely.
func TestCI95CoversTheTruth(t *testing.T) {
	const n, truth, sigma = 4000, 123456, 250.0
	covered := 0
	for range n {
		z, err := Sample(sigma)
		if err != nil {
			t.Fatal(err)
		}
		// Rounding inflates the variance to σ² + 1/12, a 7·10⁻⁷ relative change.
		if iv := CI95(truth+z, sigma); iv.Low <= truth && truth <= iv.High {
			covered++
		}
	}
	frac := float64(covered) / n
	if sd := math.Sqrt(0.95 * 0.05 / n); math.Abs(frac-0.95) > 6*sd {
		t.Errorf("95%% interval covered the truth %.4f of the time", frac)
	}
}

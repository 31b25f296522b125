package noise

import (
	"fmt"
	"math"
)

// z95 is the two-sided 95% quantile of the standard normal distribution,
// √2·erf⁻¹(0.95).
const z95 = 1.959963984540054

// Interval is a confidence interval [Low, High] for a true total.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// CI95 is the two-sided 95% confidence interval for the true value of a noisy
// total whose noise has standard deviation sigma: total ± 1.96·σ. A
// negative or NaN sigma gives NaN bounds rather than an interval that looks
// meaningful.
func CI95(total int64, sigma float64) Interval {
	return interval(total, sigma, z95)
}

// CI is the two-sided confidence interval for the true value of a noisy total
// at the given confidence level in (0, 1), e.g. 0.99.
func CI(total int64, sigma, confidence float64) (Interval, error) {
	if !(confidence > 0 && confidence < 1) {
		return Interval{}, fmt.Errorf("noise: confidence = %g, must be strictly between 0 and 1", confidence)
	}
	if math.IsNaN(sigma) || sigma < 0 || math.IsInf(sigma, 0) {
		return Interval{}, fmt.Errorf("noise: σ = %g, must be non-negative and finite", sigma)
	}
	return interval(total, sigma, math.Sqrt2*math.Erfinv(confidence)), nil
}

func interval(total int64, sigma, z float64) Interval {
	if math.IsNaN(sigma) || sigma < 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	half := z * sigma
	return Interval{Low: float64(total) - half, High: float64(total) + half}
}

package noise

import (
	"fmt"
	"math"
	"sync/atomic"

	dpnoise "github.com/google/differential-privacy/go/v3/noise"
	dprand "github.com/google/differential-privacy/go/v3/rand"
)

// Google's Gaussian sampler takes a privacy budget, not a σ. For a fixed
// reference budget (refEpsilon, refDelta) and L0 = 1 the σ it uses is linear
// in the L∞ sensitivity, to float rounding, so asking for L∞ = σ/refSigma
// yields noise of standard deviation σ. The reference budget is arbitrary; it
// only fixes the scale.
const (
	refEpsilon = 1
	refDelta   = 1e-9
)

var refSigma = dpnoise.SigmaForGaussian(1, 1, refEpsilon, refDelta)

const (
	// MaxSampleSigma is the largest σ Sample accepts: 2^53, beyond which
	// float64 no longer holds every integer. Samples then stay below 2^57
	// in magnitude, far inside int64 and the ±2^62 range of a round's
	// totals, and noise that large would drown any count those can hold.
	MaxSampleSigma = 1 << 53

	// negligibleSigma is the σ below which Sample returns 0 without drawing:
	// rounded noise that small is non-zero with probability
	// erfc(2^19/√2), which underflows float64, while Google's sampler
	// stops terminating for subnormal scales.
	negligibleSigma = 0x1p-20
)

// Sample draws Gaussian noise N(0, σ²) and rounds it to the nearest integer,
// as a collector adds to each counter before blinding it.
//
// The draw is made by Google's binomial-based sampler (dpnoise.Gaussian),
// which reads crypto/rand and is built so that artefacts of floating-point
// arithmetic do not leak the noise; privstats never uses math/rand or a plain
// Box–Muller transform for noise. Rounding costs no privacy: for an integer
// count c, c + round(z) = round(c + z), which is post-processing of the
// Gaussian mechanism. It adds variance of about 1/12.
//
// σ = 0 gives 0. σ must be finite, non-negative and at most MaxSampleSigma.
func Sample(sigma float64) (int64, error) {
	switch {
	case math.IsNaN(sigma) || sigma < 0:
		return 0, fmt.Errorf("noise: cannot sample with σ = %g: σ must be non-negative", sigma)
	case sigma > MaxSampleSigma:
		return 0, fmt.Errorf("noise: cannot sample with σ = %g: σ must be at most 2^53", sigma)
	case sigma < negligibleSigma:
		return 0, nil
	}
	lInf := sigma / refSigma
	if err := checkCalibration(sigma, lInf); err != nil {
		return 0, err
	}
	x, err := dpnoise.Gaussian().AddNoiseFloat64(0, 1, lInf, refEpsilon, refDelta)
	if err != nil {
		return 0, fmt.Errorf("noise: sampling with σ = %g: %w", sigma, err)
	}
	return int64(math.Round(x)), nil
}

// calibrated remembers the σ whose calibration was last checked: a
// collector draws every counter of a statistic with the same σ, and
// SigmaForGaussian costs more than the draw itself.
var calibrated atomic.Uint64

// checkCalibration refuses rather than add noise of the wrong size should
// a library change ever break the linearity of SigmaForGaussian in L∞ that
// the scaling in Sample relies on. The check is made once per σ in a row.
func checkCalibration(sigma, lInf float64) error {
	bits := math.Float64bits(sigma)
	if calibrated.Load() == bits {
		return nil
	}
	if used := dpnoise.SigmaForGaussian(1, lInf, refEpsilon, refDelta); math.Abs(used-sigma) > 1e-9*sigma {
		return fmt.Errorf("noise: sampler calibration drifted: asked for σ = %g, google's sampler would use %g", sigma, used)
	}
	calibrated.Store(bits)
	return nil
}

// Scrub overwrites the random bytes Google's sampler has buffered, so that
// the bytes which produced earlier samples no longer sit in memory. A
// collector calls it after drawing a round's noise, in keeping with forgetting
// the noise itself: the library keeps a 64 KiB buffer of crypto/rand output,
// and reading 64 KiB through it forces a complete refill. This is best
// effort: Go does not promise to wipe other copies, such as freed heap
// memory.
func Scrub() {
	for range scrubBufferSize / 8 {
		dprand.U64()
	}
}

// scrubBufferSize is the size of the crypto/rand buffer in
// github.com/google/differential-privacy/go/v3/rand at v3.0.0.
const scrubBufferSize = 64 << 10

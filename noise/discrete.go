package noise

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
)

// SampleDiscreteGaussian draws one integer from the discrete Gaussian
// N_Z(0, σ²), whose probability mass at each integer z is proportional to
// exp(−z²/(2σ²)), reading every random bit from r.
//
// The sampler is the exact one of Canonne, Kamath and Steinke, "The Discrete
// Gaussian for Differential Privacy" (NeurIPS 2020, arXiv:2004.00010,
// Algorithms 1–3). σ is a float64, so σ² = p/q is an exact rational, and every
// accept/reject decision compares a uniform integer read from r with an
// integer computed exactly from p, q and earlier draws; no floating-point
// number ever decides an outcome, so the output has exactly the law
// N_Z(0, σ²):
//
//   - Bernoulli(num/den) draws u uniform in [0, den) by rejection on the bytes
//     of r and returns u < num.
//   - Bernoulli(exp(−γ)) for rational γ ∈ [0, 1] draws A_k ~ Bernoulli(γ/k)
//     for k = 1, 2, … until one is 0 and returns whether that k is odd: the
//     first zero comes at k with probability γ^(k−1)/(k−1)! − γ^k/k!, and
//     the odd k sum to e^(−γ). For γ > 1 it multiplies ⌊γ⌋ draws of
//     Bernoulli(e^(−1)) and one of Bernoulli(e^(−(γ−⌊γ⌋))).
//   - The discrete Laplace with scale t, P(y) ∝ e^(−|y|/t), is U + t·V with U
//     uniform in [0, t) kept with probability e^(−U/t) and V geometric with
//     P(V = v) ∝ e^(−v), given a random sign (rejecting −0).
//   - The discrete Gaussian keeps a discrete Laplace candidate Y, t = ⌊σ⌋+1,
//     with probability exp(−(|Y| − σ²/t)²/(2σ²)); the ratio of the two laws
//     is exactly that up to a constant, so the kept Y is N_Z(0, σ²).
//
// The one departure from exactness: a Laplace candidate beyond ±2^62, which
// the exact algorithm would accept with probability below e^(−130000) for any
// σ ≤ MaxSampleSigma, is rejected instead of tested, so that every value fits
// in int64.
//
// σ = 0 gives 0. σ must be finite, non-negative and at most MaxSampleSigma.
// The variance of N_Z(0, σ²) is a little below σ² for small σ
// ([DiscreteGaussianVariance]); below σ ≈ 0.3 almost every draw is 0.
func SampleDiscreteGaussian(r io.Reader, sigma float64) (int64, error) {
	switch {
	case math.IsNaN(sigma) || sigma < 0:
		return 0, fmt.Errorf("noise: cannot sample a discrete Gaussian with σ = %g: σ must be non-negative", sigma)
	case sigma > MaxSampleSigma:
		return 0, fmt.Errorf("noise: cannot sample a discrete Gaussian with σ = %g: σ must be at most 2^53", sigma)
	case sigma == 0:
		return 0, nil
	}
	s := newDGSampler(r, sigma)
	x, err := s.sample()
	if err != nil {
		return 0, fmt.Errorf("noise: sampling a discrete Gaussian with σ = %g: %w", sigma, err)
	}
	return x, nil
}

// SampleDiscrete is [SampleDiscreteGaussian] reading crypto/rand, in the
// shape of aggregator.NoiseSampler: a collector adds SampleDiscrete(w_i·σ)
// to each counter. Unlike [Sample] it keeps no buffer of random bytes, so
// there is nothing for [Scrub] to wipe.
func SampleDiscrete(sigma float64) (int64, error) {
	return SampleDiscreteGaussian(rand.Reader, sigma)
}

// candidateLimit bounds the discrete Laplace candidates that are tested; see
// SampleDiscreteGaussian.
const candidateLimit = 1 << 62

// dgSampler holds one draw's constants and scratch space.
type dgSampler struct {
	r   io.Reader
	buf []byte

	t uint64 // ⌊σ⌋ + 1, the discrete Laplace scale

	// σ² = p/q in lowest terms; qt = q·t and den = 2·p·q·t², so that the
	// acceptance exponent (|Y| − σ²/t)²/(2σ²) is (|Y|·qt − p)² / den.
	p, qt, den *big.Int

	// scratch
	a, num, quo, rem, k, lim, u *big.Int
}

func newDGSampler(r io.Reader, sigma float64) *dgSampler {
	s := &dgSampler{
		r: r, buf: make([]byte, 8),
		t:  uint64(math.Floor(sigma)) + 1, // exact: σ ≤ 2^53
		qt: new(big.Int), den: new(big.Int),
		a: new(big.Int), num: new(big.Int), quo: new(big.Int), rem: new(big.Int),
		k: new(big.Int), lim: new(big.Int), u: new(big.Int),
	}
	sig := new(big.Rat).SetFloat64(sigma) // exact: every finite float64 is a dyadic rational
	v := new(big.Rat).Mul(sig, sig)
	s.p = new(big.Int).Set(v.Num())
	q := v.Denom()
	t := new(big.Int).SetUint64(s.t)
	s.qt.Mul(q, t)
	s.den.Mul(s.p, s.qt)
	s.den.Mul(s.den, t)
	s.den.Lsh(s.den, 1)
	return s
}

func (s *dgSampler) sample() (int64, error) {
	for {
		y, ok, err := s.laplace()
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		abs := y
		if abs < 0 {
			abs = -abs
		}
		// γ = (|Y|·q·t − p)² / (2·p·q·t²) = (|Y| − σ²/t)² / (2σ²).
		s.a.SetInt64(abs)
		s.a.Mul(s.a, s.qt)
		s.a.Sub(s.a, s.p)
		s.num.Mul(s.a, s.a)
		keep, err := s.bernoulliExp(s.num, s.den)
		if err != nil {
			return 0, err
		}
		if keep {
			return y, nil
		}
	}
}

// laplace draws from the discrete Laplace law P(y) ∝ e^(−|y|/t) (CKS
// Algorithm 2 with s = 1), or reports !ok for a candidate at or beyond
// candidateLimit.
func (s *dgSampler) laplace() (y int64, ok bool, err error) {
	for {
		u, err := s.uniform64(s.t)
		if err != nil {
			return 0, false, err
		}
		d, err := s.bernoulliExpSmall(u, s.t)
		if err != nil {
			return 0, false, err
		}
		if !d {
			continue
		}
		var v uint64
		for {
			a, err := s.bernoulliExpSmall(1, 1)
			if err != nil {
				return 0, false, err
			}
			if !a {
				break
			}
			v++
		}
		neg, err := s.uniform64(2)
		if err != nil {
			return 0, false, err
		}
		hi, x := bits.Mul64(s.t, v)
		x, carry := bits.Add64(x, u, 0)
		if neg == 1 && x == 0 && hi == 0 && carry == 0 {
			continue // −0: both signs of 0 would double its weight
		}
		if hi != 0 || carry != 0 || x >= candidateLimit {
			return 0, false, nil
		}
		if neg == 1 {
			return -int64(x), true, nil
		}
		return int64(x), true, nil
	}
}

// bernoulliExp returns true with probability exp(−num/den), num ≥ 0, den > 0
// (CKS Algorithm 1). num and den must not be the scratch s.quo, s.rem, s.k,
// s.lim or s.u.
func (s *dgSampler) bernoulliExp(num, den *big.Int) (bool, error) {
	s.quo.QuoRem(num, den, s.rem)
	// e^(−γ) = e^(−1)^⌊γ⌋ · e^(−(γ−⌊γ⌋)); each factor is one Bernoulli draw
	// and the first failure decides, so the loop rarely runs long even when
	// ⌊γ⌋ is huge.
	for s.quo.Sign() > 0 {
		ok, err := s.bernoulliExpSmall(1, 1)
		if err != nil || !ok {
			return false, err
		}
		s.quo.Sub(s.quo, bigOne)
	}
	if s.rem.Sign() == 0 {
		return true, nil
	}
	if den.IsUint64() {
		return s.bernoulliExpSmall(s.rem.Uint64(), den.Uint64())
	}
	return s.bernoulliExpFracBig(s.rem, den)
}

var bigOne = big.NewInt(1)

// bernoulliExpSmall returns true with probability exp(−num/den) for
// 0 ≤ num ≤ den, den > 0, by the alternating series of CKS Algorithm 1:
// draw Bernoulli(γ/k) for k = 1, 2, … and report whether the first failure
// has odd k. It works in uint64 while den·k fits and in big.Int after.
func (s *dgSampler) bernoulliExpSmall(num, den uint64) (bool, error) {
	if num == 0 {
		return true, nil
	}
	for k := uint64(1); ; k++ {
		hi, dk := bits.Mul64(den, k)
		if hi != 0 {
			return s.bernoulliExpFracBigFrom(new(big.Int).SetUint64(num), new(big.Int).SetUint64(den), k)
		}
		u, err := s.uniform64(dk)
		if err != nil {
			return false, err
		}
		if u >= num { // A_k = 0
			return k%2 == 1, nil
		}
	}
}

func (s *dgSampler) bernoulliExpFracBig(num, den *big.Int) (bool, error) {
	return s.bernoulliExpFracBigFrom(num, den, 1)
}

// bernoulliExpFracBigFrom continues the series of bernoulliExpSmall from
// k = k0 with big integers. num and den must not be s.k, s.lim or s.u.
func (s *dgSampler) bernoulliExpFracBigFrom(num, den *big.Int, k0 uint64) (bool, error) {
	for k := k0; ; k++ {
		s.k.SetUint64(k)
		s.lim.Mul(den, s.k)
		if err := s.uniformBig(s.u, s.lim); err != nil {
			return false, err
		}
		if s.u.Cmp(num) >= 0 {
			return k%2 == 1, nil
		}
	}
}

// uniform64 returns an integer uniform in [0, n), n ≥ 1, reading the fewest
// whole bytes that cover n−1 and rejecting values ≥ n.
func (s *dgSampler) uniform64(n uint64) (uint64, error) {
	if n == 1 {
		return 0, nil
	}
	nbits := bits.Len64(n - 1)
	nbytes := (nbits + 7) / 8
	mask := uint64(1)<<nbits - 1
	if nbits == 64 {
		mask = math.MaxUint64
	}
	b := s.buf[:8]
	for {
		clear(b)
		if _, err := io.ReadFull(s.r, b[8-nbytes:]); err != nil {
			return 0, fmt.Errorf("reading randomness: %w", err)
		}
		if v := binary.BigEndian.Uint64(b) & mask; v < n {
			return v, nil
		}
	}
}

// uniformBig sets z to an integer uniform in [0, n), n ≥ 1.
func (s *dgSampler) uniformBig(z, n *big.Int) error {
	if n.IsUint64() {
		v, err := s.uniform64(n.Uint64())
		z.SetUint64(v)
		return err
	}
	nbits := new(big.Int).Sub(n, bigOne).BitLen()
	nbytes := (nbits + 7) / 8
	if cap(s.buf) < nbytes {
		s.buf = make([]byte, nbytes)
	}
	b := s.buf[:nbytes]
	excess := uint(nbytes*8 - nbits)
	for {
		if _, err := io.ReadFull(s.r, b); err != nil {
			return fmt.Errorf("reading randomness: %w", err)
		}
		b[0] &= 0xff >> excess
		z.SetBytes(b)
		if z.Cmp(n) < 0 {
			return nil
		}
	}
}

// DiscreteGaussianVariance returns the variance of N_Z(0, s²),
//
//	Var = Σ_z z²·e^(−z²/(2s²)) / Σ_z e^(−z²/(2s²)),
//
// which is below s²: by about a factor 1 − 4π²s²·e^(−2π²s²) for s ≳ 1 (so
// equal to s² in float64 from s = 1.5 on), and far below for small s
// (about 2e^(−1/(2s²)) for s ≲ 0.3). The sum over a round's collectors of
// these variances is the true variance of the noise in a total.
//
// For s < 1 it sums the series over z directly; for s ≥ 1 it uses the dual
// series that Poisson summation gives,
//
//	Var = s² − 4π²s⁴·Σ_k k²e^(−2π²s²k²) / Σ_k e^(−2π²s²k²),
//
// whose terms fall even faster there. Either way the terms left out are
// below 10^−17 of the result. s = 0 gives 0; negative, NaN or infinite s give
// NaN.
func DiscreteGaussianVariance(s float64) float64 {
	switch {
	case math.IsNaN(s) || s < 0 || math.IsInf(s, 0):
		return math.NaN()
	case s == 0:
		return 0
	case s < 1:
		// Terms e^(−z²/(2s²)) with z ≥ 10 are below e^(−50) of the z = 0
		// term for s < 1.
		var num, den float64 = 0, 1
		for z := 1.0; z <= 12; z++ {
			w := 2 * math.Exp(-z*z/(2*s*s))
			num += z * z * w
			den += w
		}
		return num / den
	}
	v := s * s
	var num, den float64 = 0, 1
	for k := 1.0; k <= 3; k++ { // e^(−2π²·9) < 10^−77
		w := 2 * math.Exp(-2*math.Pi*math.Pi*v*k*k)
		num += k * k * w
		den += w
	}
	return v - 4*math.Pi*math.Pi*v*v*num/den
}

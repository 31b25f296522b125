// Package field implements arithmetic in the Goldilocks prime field
// p = 2^64 − 2^32 + 1, the field every privstats counter, blinding value and
// Shamir share lives in.
//
// Elements are uint64 values in [0, p). Every function here assumes canonical
// inputs and returns canonical outputs; values that come from outside the
// process (wire messages, files) must pass through Canonical or Reduce first.
// Reduction uses only adds and shifts: there is no big.Int in the hot path.
package field

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Element is a canonical field element, 0 ≤ e < P.
type Element = uint64

const (
	// P is the Goldilocks prime 2^64 − 2^32 + 1.
	P uint64 = 0xFFFFFFFF00000001
	// epsilon is 2^64 mod P = 2^32 − 1: a carry out of 64 bits is worth epsilon.
	epsilon uint64 = 0xFFFFFFFF
	// half is (P−1)/2: canonical values at or above it decode as negative.
	half uint64 = (P - 1) / 2
	// MaxMagnitude bounds the totals privstats encodes: |total| < 2^62
	// leaves a wide margin below half, so sums of in-range totals never
	// wrap into the wrong sign.
	MaxMagnitude int64 = 1 << 62
)

// Reduce maps any uint64 to its canonical residue mod P.
func Reduce(x uint64) Element {
	if x >= P {
		return x - P
	}
	return x
}

// Canonical reports an error if x is not a canonical element. Decoders of
// wire messages use it so a peer cannot smuggle in a value ≥ P that would
// make two encodings of one element compare unequal.
func Canonical(x uint64) error {
	if x >= P {
		return fmt.Errorf("field element %d is not below p = %d", x, P)
	}
	return nil
}

// CheckCounters checks a vector a peer sent, one value per counter of a
// round of n counters: that it has n values and every one is canonical.
// what names the vector in the error ("report from collector …").
func CheckCounters(what string, vs []Element, n int) error {
	if len(vs) != n {
		return fmt.Errorf("%s has %d values, the round has %d counters", what, len(vs), n)
	}
	for c, v := range vs {
		if err := Canonical(v); err != nil {
			return fmt.Errorf("%s, counter %d: %w", what, c, err)
		}
	}
	return nil
}

// Add returns a + b mod P.
func Add(a, b Element) Element {
	s, carry := bits.Add64(a, b, 0)
	// a + b < 2P, so after folding the carry the sum fits and needs at most
	// one subtraction of P.
	s += epsilon & -carry
	if s >= P {
		s -= P
	}
	return s
}

// Sub returns a − b mod P.
func Sub(a, b Element) Element {
	d, borrow := bits.Sub64(a, b, 0)
	// On borrow the result is a − b + 2^64; adding P ≡ subtracting 2^64 − P = epsilon.
	d -= epsilon & -borrow
	return d
}

// Neg returns −a mod P.
func Neg(a Element) Element {
	if a == 0 {
		return 0
	}
	return P - a
}

// Mul returns a · b mod P.
func Mul(a, b Element) Element {
	hi, lo := bits.Mul64(a, b)
	return reduce128(hi, lo)
}

// reduce128 reduces hi·2^64 + lo using 2^64 ≡ 2^32 − 1 and 2^96 ≡ −1 (mod P).
func reduce128(hi, lo uint64) Element {
	hiHi := hi >> 32
	hiLo := hi & epsilon
	t0, borrow := bits.Sub64(lo, hiHi, 0)
	t0 -= epsilon & -borrow
	t1 := hiLo * epsilon // < 2^64: both factors < 2^32
	t2, carry := bits.Add64(t0, t1, 0)
	t2 += epsilon & -carry
	if t2 >= P {
		t2 -= P
	}
	return t2
}

// Pow returns a^e mod P.
func Pow(a Element, e uint64) Element {
	r := Element(1)
	for e > 0 {
		if e&1 == 1 {
			r = Mul(r, a)
		}
		a = Mul(a, a)
		e >>= 1
	}
	return r
}

// ErrZeroInverse is returned by Inverse for 0, which has no inverse.
var ErrZeroInverse = errors.New("field: 0 has no multiplicative inverse")

// Inverse returns a^−1 mod P (by Fermat: a^(P−2)).
func Inverse(a Element) (Element, error) {
	if a == 0 {
		return 0, ErrZeroInverse
	}
	return Pow(a, P-2), nil
}

// FromInt64 encodes a signed integer: non-negative n as n, negative n as P + n.
// It is the inverse of Decode for |n| < (P−1)/2.
func FromInt64(n int64) Element {
	if n >= 0 {
		return Reduce(uint64(n))
	}
	m := uint64(-(n + 1)) + 1 // |n| without overflow at math.MinInt64
	return Neg(Reduce(m))
}

// Decode interprets a canonical element as a signed integer: values at or
// above (P−1)/2 stand for v − P.
func Decode(v Element) int64 {
	if v >= half {
		return -int64(P - v)
	}
	return int64(v)
}

// sampleBatch is how many bytes Random pulls from the entropy source at once.
const sampleBatch = 8 * 64

// Random fills dst with independent uniform elements read from r (crypto/rand
// when r is nil). It draws 64-bit words and rejects those ≥ P, so there is no
// modulo bias; a rejection happens with probability 2^−32 per word.
func Random(r io.Reader, dst []Element) error {
	if r == nil {
		r = rand.Reader
	}
	var buf [sampleBatch]byte
	i := 0
	for i < len(dst) {
		want := min((len(dst)-i)*8, len(buf))
		if _, err := io.ReadFull(r, buf[:want]); err != nil {
			return fmt.Errorf("field: reading randomness: %w", err)
		}
		for off := 0; off < want; off += 8 {
			w := binary.LittleEndian.Uint64(buf[off:])
			if w >= P {
				continue
			}
			dst[i] = w
			i++
		}
	}
	return nil
}

package commit

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/privstats/privstats/aggregator/field"
)

// Masks. Unmasked, a report's values V_ik ∈ [0, p) would sum, over S, to
// (ΣV_k mod p) + p·W_k, W_k being the number of reports whose
// V_ik = (r_ik + count_ik) mod p wrapped around p. K colluding keepers
// know every collector's s_i = (z_i − r_i) mod p and the published total,
// so from the exact integer sum they could read W_k, which now and then
// tells them a bit about one relay's count plus noise. Committing to V_ik + p·m_ik
// instead, with m_ik uniform in [0, 2^MaskBits), changes nothing mod p and
// makes the integer sum reveal (wraps + Σ_i m_ik): two wrap counts d apart
// give sums at statistical distance at most d/2^MaskBits
// (docs/threat-model.md, "Residual risks").
const (
	// MaskBits is the width of a mask: m ∈ [0, 2^MaskBits).
	MaskBits = 40
	// MaskBound is 2^MaskBits, the first value a mask may not take.
	MaskBound = 1 << MaskBits
	// MaxSummands is the most masked reports an IntSum holds: each masked
	// value is below p·2^40 < 2^104, so 2^24 of them stay below 2^128.
	// round.MaxCollectors is no larger (a test holds it).
	MaxSummands = 1 << (128 - 64 - MaskBits)
)

// NewMasks draws n masks uniform in [0, MaskBound) from rand: the low
// MaskBits bits of 8 bytes each, which are uniform because 2^40 divides
// 2^64.
func NewMasks(rand io.Reader, n int) ([]uint64, error) {
	buf := make([]byte, 8*n)
	if _, err := io.ReadFull(rand, buf); err != nil {
		return nil, fmt.Errorf("commit: drawing masks: %w", err)
	}
	masks := make([]uint64, n)
	for k := range masks {
		masks[k] = binary.LittleEndian.Uint64(buf[8*k:]) & (MaskBound - 1)
	}
	return masks, nil
}

// CheckMasks checks that masks holds n masks, each below MaskBound. The
// error names the first bad mask by index, never its value.
func CheckMasks(masks []uint64, n int) error {
	if len(masks) != n {
		return fmt.Errorf("%d masks for %d values", len(masks), n)
	}
	for k, m := range masks {
		if m >= MaskBound {
			return fmt.Errorf("mask %d is not below 2^%d", k, MaskBits)
		}
	}
	return nil
}

// Masked returns v + p·m exactly. For v < p and m < MaskBound it is below
// p·2^MaskBits < 2^104; it takes the same time whatever v and m are.
func Masked(v, m uint64) Uint128 {
	hi, lo := bits.Mul64(field.P, m)
	lo, carry := bits.Add64(lo, v, 0)
	return Uint128{Hi: hi + carry, Lo: lo}
}

package commit

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"

	"github.com/privstats/privstats/aggregator/field"
)

// Uint128 is an integer in [0, 2^128): Hi·2^64 + Lo. In JSON it is a
// decimal string without sign or leading zeros, so each value has one
// text form.
type Uint128 struct{ Hi, Lo uint64 }

// IntSum is ΣV as exact integers, one per counter: the sum of the masked
// values V_ik + p·m_ik the collectors committed to, which the agreement
// carries so that anyone can check it against the commitments. Reducing it
// mod p (Field) gives the ΣV the keepers' arithmetic uses: the masks
// vanish mod p.
type IntSum []Uint128

// NewIntSum returns n zero sums.
func NewIntSum(n int) IntSum { return make(IntSum, n) }

// AddMasked adds one report's masked values, values[k] + p·masks[k],
// counter by counter. Every value must be a canonical field element and
// every mask below MaskBound, one mask per value. A refused report leaves
// the sums as they were; so does one that would take a sum past 2^128,
// which takes more than MaxSummands reports.
func (s IntSum) AddMasked(values, masks []uint64) error {
	if len(values) != len(s) {
		return fmt.Errorf("commit: adding %d values to %d sums", len(values), len(s))
	}
	if err := checkValues(values, masks); err != nil {
		return fmt.Errorf("commit: adding: %w", err)
	}
	for k := range values {
		if _, carry := add128(s[k], Masked(values[k], masks[k])); carry != 0 {
			return fmt.Errorf("commit: adding: sum %d would reach 2^128 (more than %d reports)", k, MaxSummands)
		}
	}
	for k := range values {
		s[k], _ = add128(s[k], Masked(values[k], masks[k]))
	}
	return nil
}

// add128 returns a + b mod 2^128 and the carry out.
func add128(a, b Uint128) (Uint128, uint64) {
	lo, c := bits.Add64(a.Lo, b.Lo, 0)
	hi, c := bits.Add64(a.Hi, b.Hi, c)
	return Uint128{Hi: hi, Lo: lo}, c
}

// twoTo64ModP is 2^64 mod p = 2^32 − 1 for the Goldilocks prime.
const twoTo64ModP = 1<<32 - 1

// Field returns each sum mod p.
func (s IntSum) Field() []field.Element {
	out := make([]field.Element, len(s))
	for k, x := range s {
		out[k] = field.Add(field.Mul(field.Reduce(x.Hi), twoTo64ModP), field.Reduce(x.Lo))
	}
	return out
}

func (u Uint128) big() *big.Int {
	b := new(big.Int).SetUint64(u.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(u.Lo))
}

// String is the decimal form.
func (u Uint128) String() string { return u.big().String() }

// MarshalText encodes u in decimal.
func (u Uint128) MarshalText() ([]byte, error) { return u.big().Append(nil, 10), nil }

// UnmarshalText accepts only the form MarshalText writes.
func (u *Uint128) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		return errors.New("integer sum: empty")
	}
	if len(text) > 1 && text[0] == '0' {
		return fmt.Errorf("integer sum %q: leading zero", text)
	}
	for _, ch := range text {
		if ch < '0' || ch > '9' {
			return fmt.Errorf("integer sum %q: not a decimal digit string", text)
		}
	}
	b, ok := new(big.Int).SetString(string(text), 10)
	if !ok || b.BitLen() > 128 {
		return fmt.Errorf("integer sum %q: not below 2^128", text)
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	*u = Uint128{Hi: new(big.Int).Rsh(b, 64).Uint64(), Lo: lo.Uint64()}
	return nil
}

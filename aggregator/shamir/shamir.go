// Package shamir splits vectors of field elements into Shamir shares and
// recombines them, with the checks privstats needs to name a share keeper
// whose share does not lie on the polynomial.
//
// A dealer shares a vector s (one secret per counter) among N holders with
// threshold K: each secret gets its own random polynomial of degree K−1, and
// holder j (x-coordinate j, 1-based) receives the vector of evaluations at j.
// Any K holders' vectors determine s; fewer reveal nothing.
package shamir

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/privstats/privstats/aggregator/field"
)

// MaxHolders is the largest N: x-coordinates are 1..N and fit in a byte.
const MaxHolders = 255

// CheckThreshold enforces N/2 < K ≤ N ≤ 255. K > N/2 is what makes "each keeper
// commits once" imply that no two different collector sets can both be
// released (two K-sized quorums always share a keeper).
func CheckThreshold(k, n int) error {
	switch {
	case n < 1 || n > MaxHolders:
		return fmt.Errorf("shamir: %d holders, want 1 to %d", n, MaxHolders)
	case k > n:
		return fmt.Errorf("shamir: threshold %d exceeds the %d holders", k, n)
	case 2*k <= n:
		return fmt.Errorf("shamir: threshold %d must exceed half of the %d holders (need K > N/2)", k, n)
	}
	return nil
}

// Split shares every element of secrets among n holders with threshold k and
// returns shares[j][c] = f_c(j+1). Coefficients come from rand (crypto/rand
// when nil) and are not retained. Each call allocates the n share vectors
// and one scratch vector of coefficients.
func Split(rand io.Reader, secrets []field.Element, k, n int) ([][]field.Element, error) {
	if err := CheckThreshold(k, n); err != nil {
		return nil, err
	}
	shares := make([][]field.Element, n)
	for j := range shares {
		shares[j] = make([]field.Element, len(secrets))
	}
	coeffs := make([]field.Element, (k-1)*len(secrets))
	if err := field.Random(rand, coeffs); err != nil {
		return nil, err
	}
	for c, s := range secrets {
		a := coeffs[c*(k-1) : (c+1)*(k-1)]
		for j := range n {
			x := field.Element(j + 1)
			// Horner: f(x) = s + x(a1 + x(a2 + …)).
			var y field.Element
			for i := len(a) - 1; i >= 0; i-- {
				y = field.Mul(field.Add(y, a[i]), x)
			}
			shares[j][c] = field.Add(y, s)
		}
	}
	clear(coeffs)
	return shares, nil
}

// Share is one holder's vector: the evaluations of every counter's polynomial
// at X.
type Share struct {
	X      int
	Values []field.Element
}

// LagrangeAtZero returns the coefficients λ_j with f(0) = Σ λ_j f(x_j) for
// any polynomial of degree < len(xs). The x-coordinates must be distinct and
// within 1..MaxHolders.
func LagrangeAtZero(xs []int) ([]field.Element, error) {
	for _, x := range xs {
		if x < 1 || x > MaxHolders {
			return nil, fmt.Errorf("shamir: x-coordinate %d outside 1..%d", x, MaxHolders)
		}
	}
	return lagrangeShifted(xs)
}

// interpolateAt evaluates, counter by counter, the polynomials through the
// given shares at x (x = 0 recovers the secrets).
func interpolateAt(shares []Share, x int) ([]field.Element, error) {
	xs := make([]int, len(shares))
	for i, s := range shares {
		xs[i] = s.X - x // shift so the target sits at 0
	}
	// Shifting x-coordinates keeps differences, so λ for the shifted points
	// evaluates at x; only the product of the shifted xs changes.
	lambda, err := lagrangeShifted(xs)
	if err != nil {
		return nil, err
	}
	n := len(shares[0].Values)
	out := make([]field.Element, n)
	for i, s := range shares {
		if len(s.Values) != n {
			return nil, fmt.Errorf("shamir: share %d has %d values, share %d has %d", s.X, len(s.Values), shares[0].X, n)
		}
		l := lambda[i]
		for c, v := range s.Values {
			out[c] = field.Add(out[c], field.Mul(l, v))
		}
	}
	return out, nil
}

// lagrangeShifted is LagrangeAtZero for coordinates that may be negative
// (after a shift); they must be distinct and nonzero.
func lagrangeShifted(xs []int) ([]field.Element, error) {
	lambda := make([]field.Element, len(xs))
	for j, xj := range xs {
		if xj == 0 {
			return nil, errors.New("shamir: evaluation point coincides with a share")
		}
		num, den := field.Element(1), field.Element(1)
		for m, xm := range xs {
			if m == j {
				continue
			}
			if xm == xj {
				return nil, fmt.Errorf("shamir: x-coordinate given twice")
			}
			num = field.Mul(num, field.FromInt64(int64(xm)))
			den = field.Mul(den, field.FromInt64(int64(xm-xj)))
		}
		inv, err := field.Inverse(den)
		if err != nil {
			return nil, err
		}
		lambda[j] = field.Mul(num, inv)
	}
	return lambda, nil
}

// InconsistentError says that the shares do not all lie on one polynomial of
// degree K−1 per counter. Bad lists the x-coordinates of the shares that are
// off, for at least one counter, the polynomial all but at most ⌊(n−K)/2⌋
// of the n shares lie on; that polynomial is then the only one so many
// shares agree on (Reed–Solomon unique decoding), and Bad has at most
// ⌊(n−K)/2⌋ entries, so the other shares, K or more, determine the secrets.
// When no such set of at most ⌊(n−K)/2⌋ shares exists (for example K+1
// shares with one bad), the culprits cannot be told apart from the honest
// and Suspects lists every share instead.
type InconsistentError struct {
	Bad      []int
	Suspects []int
}

func (e *InconsistentError) Error() string {
	if len(e.Bad) > 0 {
		return fmt.Sprintf("shamir: share(s) from x = %s do not lie on the polynomial the other shares agree on", joinInts(e.Bad))
	}
	return fmt.Sprintf("shamir: shares from x = %s are inconsistent and too few agree to tell which is wrong", joinInts(e.Suspects))
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

// Combine recovers the secrets from k or more shares. With more than k it
// checks that every share lies on the polynomial defined by the others and,
// if not, returns an *InconsistentError naming the shares that do not.
// Consistent shares cost O(n·k·C) field operations for n shares of C
// counters; naming the bad ones costs about as much again in the usual case
// and O(n²·C) at worst (see isolate).
func Combine(shares []Share, k int) ([]field.Element, error) {
	if k < 1 {
		return nil, fmt.Errorf("shamir: threshold %d", k)
	}
	if len(shares) < k {
		return nil, fmt.Errorf("shamir: %d shares, need at least %d", len(shares), k)
	}
	shares = slices.Clone(shares)
	slices.SortFunc(shares, func(a, b Share) int { return a.X - b.X })
	for i := 1; i < len(shares); i++ {
		if shares[i].X == shares[i-1].X {
			return nil, fmt.Errorf("shamir: two shares with x = %d", shares[i].X)
		}
	}
	for _, s := range shares {
		if s.X < 1 || s.X > MaxHolders {
			return nil, fmt.Errorf("shamir: x-coordinate %d outside 1..%d", s.X, MaxHolders)
		}
		if len(s.Values) != len(shares[0].Values) {
			return nil, fmt.Errorf("shamir: share %d has %d values, share %d has %d", s.X, len(s.Values), shares[0].X, len(shares[0].Values))
		}
	}
	agree, err := agreeing(shares[:k], shares[k:])
	if err != nil {
		return nil, err
	}
	if len(agree) == len(shares)-k {
		return interpolateAt(shares[:k], 0)
	}
	return nil, isolate(nil, shares, k)
}

// agreeing returns the shares among rest that lie on the polynomial through base.
func agreeing(base, rest []Share) ([]Share, error) {
	var out []Share
	for _, s := range rest {
		y, err := interpolateAt(base, s.X)
		if err != nil {
			return nil, err
		}
		if slices.Equal(y, s.Values) {
			out = append(out, s)
		}
	}
	return out, nil
}

// isolate names the bad shares after Combine found the shares inconsistent.
// Shares are Reed–Solomon codewords, one per counter, so it decodes with
// Gao's algorithm, but not counter by counter: it first decodes one random
// linear combination of the counters, z_j = Σ_c r_c·v_j[c] with r drawn
// uniformly from the field (from rand; crypto/rand when nil). A share whose
// values are off on any counter has a nonzero error vector e, and Σ r_c·e_c
// is then 0 with probability exactly 1/p, so with probability at least
// 1 − b/p ≥ 1 − 2^−56 for b ≤ 255 bad shares the combination is off at
// exactly the bad shares. The candidate set is then checked on every
// counter, so the randomness only affects the work, never the verdict: if
// the check finds a counter the rest still disagree on (an unlucky r, or
// more bad shares than decoding allows), that counter is decoded on its
// own.
//
// Work for n shares, C counters and t = ⌊(n−K)/2⌋: O(n·C) field operations
// for the combination, O(n²) to decode it, O(n·K·C) to check the
// candidates, and O(n²) per counter decoded on its own (at most C of them;
// none unless r was unlucky or more than t shares are bad). For 16 shares,
// K = 9 and 100,000 counters that is a few tens of milliseconds.
func isolate(rand io.Reader, shares []Share, k int) error {
	n := len(shares)
	all := make([]int, n)
	for i, s := range shares {
		all[i] = s.X
	}
	suspects := &InconsistentError{Suspects: all}
	dec, err := newDecoder(all, k)
	if err != nil {
		return err
	}
	t := dec.maxErrors()
	if t == 0 {
		return suspects
	}
	counters := len(shares[0].Values)
	r := make([]field.Element, counters)
	if err := field.Random(rand, r); err != nil {
		return err
	}
	z := make([]field.Element, n)
	for j, s := range shares {
		var acc field.Element
		for c, v := range s.Values {
			acc = field.Add(acc, field.Mul(r[c], v))
		}
		z[j] = acc
	}
	cand, ok := dec.decode(z)
	if !ok {
		// The combination is off only where some share is, so more than
		// t shares are bad.
		return suspects
	}
	isCand := make([]bool, n)
	for _, j := range cand {
		isCand[j] = true
	}
	var rest []Share
	for j, s := range shares {
		if !isCand[j] {
			rest = append(rest, s)
		}
	}
	// rest has at least n − t ≥ K + t shares. Where they lie on one
	// polynomial, it is the unique decoding of that counter, and the bad
	// shares there are the candidates off it.
	base := rest[:k]
	unsettled := make([]bool, counters)
	for _, s := range rest[k:] {
		y, err := interpolateAt(base, s.X)
		if err != nil {
			return err
		}
		for c, v := range s.Values {
			if y[c] != v {
				unsettled[c] = true
			}
		}
	}
	bad := make([]bool, n)
	for _, j := range cand {
		y, err := interpolateAt(base, shares[j].X)
		if err != nil {
			return err
		}
		for c, v := range shares[j].Values {
			if !unsettled[c] && y[c] != v {
				bad[j] = true
				break
			}
		}
	}
	nbad := 0
	for _, b := range bad {
		if b {
			nbad++
		}
	}
	column := make([]field.Element, n)
	for c, u := range unsettled {
		if !u {
			continue
		}
		for j, s := range shares {
			column[j] = s.Values[c]
		}
		off, ok := dec.decode(column)
		if !ok {
			return suspects
		}
		for _, j := range off {
			if !bad[j] {
				bad[j] = true
				nbad++
			}
		}
		if nbad > t {
			// Each counter decodes, but not all with the same t shares
			// excluded: no t-set of shares explains the inconsistency.
			return suspects
		}
	}
	var names []int
	for j, b := range bad {
		if b {
			names = append(names, shares[j].X)
		}
	}
	if len(names) == 0 {
		return suspects // unreachable: Combine saw an inconsistency
	}
	return &InconsistentError{Bad: names}
}

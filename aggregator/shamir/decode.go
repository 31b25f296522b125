package shamir

import (
	"slices"

	"github.com/privstats/privstats/aggregator/field"
)

// A poly is a polynomial over the field, lowest coefficient first, with no
// trailing zero coefficients (the zero polynomial is empty), so its degree
// is len − 1.
type poly []field.Element

func trimPoly(p poly) poly {
	for len(p) > 0 && p[len(p)-1] == 0 {
		p = p[:len(p)-1]
	}
	return p
}

func (p poly) eval(x field.Element) field.Element {
	var y field.Element
	for i := len(p) - 1; i >= 0; i-- {
		y = field.Add(field.Mul(y, x), p[i])
	}
	return y
}

// divMod returns a = q·b + r with deg r < deg b; b must be nonzero.
func divMod(a, b poly) (q, r poly) {
	r = slices.Clone(a)
	if len(a) < len(b) {
		return nil, r
	}
	inv, _ := field.Inverse(b[len(b)-1]) // b is trimmed, so its lead is nonzero
	q = make(poly, len(a)-len(b)+1)
	for i := len(q) - 1; i >= 0; i-- {
		c := field.Mul(r[i+len(b)-1], inv)
		q[i] = c
		if c == 0 {
			continue
		}
		for j, bj := range b {
			r[i+j] = field.Sub(r[i+j], field.Mul(c, bj))
		}
	}
	return trimPoly(q), trimPoly(r[:len(b)-1])
}

// subMul returns a − q·b.
func subMul(a, q, b poly) poly {
	out := make(poly, max(len(a), len(q)+len(b)-1))
	copy(out, a)
	for i, qi := range q {
		for j, bj := range b {
			out[i+j] = field.Sub(out[i+j], field.Mul(qi, bj))
		}
	}
	return trimPoly(out)
}

// decoder decodes the Reed–Solomon code {(f(x_1), …, f(x_n)) : deg f < k}
// for fixed x-coordinates with Gao's algorithm (S. Gao, "A New Algorithm for
// Decoding Reed-Solomon Codes", 2003): it finds f and the positions where a
// received word differs from it whenever at most t = ⌊(n−k)/2⌋ positions
// do. Setting up costs O(n²) field operations and n inversions; each decode
// costs O(n²) operations and O(n) inversions (one per Euclidean step).
type decoder struct {
	xs []field.Element
	k  int
	g0 poly // Π (x − x_i): vanishes on every x-coordinate
	// basis[i] is the Lagrange polynomial that is 1 at x_i and 0 at the
	// other x-coordinates, so Σ y_i·basis[i] interpolates a received word.
	basis []poly
}

// newDecoder prepares decoding at the given distinct x-coordinates.
func newDecoder(xs []int, k int) (*decoder, error) {
	d := &decoder{xs: make([]field.Element, len(xs)), k: k, basis: make([]poly, len(xs))}
	d.g0 = poly{1}
	for i, x := range xs {
		xi := field.Element(x)
		d.xs[i] = xi
		// Multiply by (x − x_i).
		next := make(poly, len(d.g0)+1)
		for j, c := range d.g0 {
			next[j+1] = field.Add(next[j+1], c)
			next[j] = field.Sub(next[j], field.Mul(xi, c))
		}
		d.g0 = next
	}
	for i, xi := range d.xs {
		// g0 / (x − x_i) by synthetic division (the remainder is 0), and
		// its value at x_i, Π_{m≠i} (x_i − x_m), to normalise it.
		q := make(poly, len(d.g0)-1)
		var carry field.Element
		for j := len(d.g0) - 1; j >= 1; j-- {
			carry = field.Add(d.g0[j], field.Mul(carry, xi))
			q[j-1] = carry
		}
		w, err := field.Inverse(q.eval(xi))
		if err != nil {
			return nil, err // only when two x-coordinates coincide
		}
		for j := range q {
			q[j] = field.Mul(q[j], w)
		}
		d.basis[i] = q
	}
	return d, nil
}

// maxErrors is t = ⌊(n−k)/2⌋, the most wrong positions decoding corrects.
func (d *decoder) maxErrors() int { return (len(d.xs) - d.k) / 2 }

// decode returns the indices i where ys[i] ≠ f(x_i) for the unique f of
// degree < k that agrees with all but at most maxErrors of ys, or ok = false
// when there is no such f.
func (d *decoder) decode(ys []field.Element) (bad []int, ok bool) {
	n := len(d.xs)
	g1 := make(poly, n)
	for i, y := range ys {
		if y == 0 {
			continue
		}
		for j, c := range d.basis[i] {
			g1[j] = field.Add(g1[j], field.Mul(y, c))
		}
	}
	// Partial extended Euclid on (g0, g1), tracking only the cofactor v of
	// g1, until the remainder g = u·g0 + v·g1 has degree < (n+k)/2. With at
	// most t errors, v is the error locator times a constant and g = f·v.
	r0, r1 := d.g0, trimPoly(g1)
	v0, v1 := poly(nil), poly{1}
	for 2*(len(r1)-1) >= n+d.k {
		q, r := divMod(r0, r1)
		r0, r1 = r1, r
		v0, v1 = v1, subMul(v0, q, v1)
	}
	f, rem := divMod(r1, v1)
	if len(rem) != 0 || len(f) > d.k {
		return nil, false
	}
	for i, x := range d.xs {
		if f.eval(x) != ys[i] {
			bad = append(bad, i)
		}
	}
	if len(bad) > d.maxErrors() {
		return nil, false
	}
	return bad, true
}

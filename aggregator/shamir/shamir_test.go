package shamir

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/privstats/privstats/aggregator/field"
)

func randomSecrets(t testing.TB, n int) []field.Element {
	t.Helper()
	s := make([]field.Element, n)
	if err := field.Random(nil, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func sharesOf(vectors [][]field.Element, xs ...int) []Share {
	out := make([]Share, len(xs))
	for i, x := range xs {
		out[i] = Share{X: x, Values: vectors[x-1]}
	}
	return out
}

// subsets calls f with every k-subset of 1..n (as x-coordinates).
func subsets(n, k int, f func(xs []int)) {
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	for {
		xs := make([]int, k)
		for i, j := range idx {
			xs[i] = j + 1
		}
		f(xs)
		if !nextCombination(idx, n) {
			return
		}
	}
}

func TestAnyKSharesRecoverTheSecrets(t *testing.T) {
	for _, tc := range []struct{ k, n int }{{1, 1}, {2, 2}, {2, 3}, {3, 4}, {3, 5}, {4, 7}} {
		secrets := randomSecrets(t, 17)
		vectors, err := Split(nil, secrets, tc.k, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		for size := tc.k; size <= tc.n; size++ {
			subsets(tc.n, size, func(xs []int) {
				got, err := Combine(sharesOf(vectors, xs...), tc.k)
				if err != nil {
					t.Fatalf("K=%d N=%d shares %v: %v", tc.k, tc.n, xs, err)
				}
				if !slices.Equal(got, secrets) {
					t.Fatalf("K=%d N=%d shares %v recovered wrong secrets", tc.k, tc.n, xs)
				}
			})
		}
	}
}

func TestFewerThanKSharesAreRefused(t *testing.T) {
	vectors, err := Split(nil, randomSecrets(t, 3), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Combine(sharesOf(vectors, 1, 4), 3); err == nil {
		t.Fatal("Combine accepted 2 shares with K = 3")
	}
}

func TestKMinusOneSharesAreUniform(t *testing.T) {
	// With K = 2 a single share of secret s is s + a·x for uniform a: the
	// share of 0 and of 1 must be indistinguishable. Check that the share is
	// not the secret itself, which a degree-0 polynomial would leak.
	secrets := make([]field.Element, 64)
	vectors, err := Split(nil, secrets, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	zeros := 0
	for _, v := range vectors[0] {
		if v == 0 {
			zeros++
		}
	}
	if zeros > 1 {
		t.Fatalf("%d of 64 shares of 0 are 0: coefficients are not random", zeros)
	}
}

func TestThresholdRules(t *testing.T) {
	for _, tc := range []struct {
		k, n int
		ok   bool
	}{
		{2, 3, true}, {3, 5, true}, {5, 5, true}, {1, 1, true}, {128, 255, true},
		{1, 2, false}, {2, 4, false}, {6, 5, false}, {0, 3, false}, {200, 256, false}, {1, 0, false},
	} {
		err := CheckThreshold(tc.k, tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("CheckThreshold(K=%d, N=%d) = %v, want ok=%v", tc.k, tc.n, err, tc.ok)
		}
	}
}

func TestInconsistentShareIsNamed(t *testing.T) {
	secrets := randomSecrets(t, 50)
	vectors, err := Split(nil, secrets, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	for bad := 1; bad <= 5; bad++ {
		tampered := slices.Clone(vectors)
		tampered[bad-1] = slices.Clone(vectors[bad-1])
		tampered[bad-1][rand.IntN(50)] ^= 1
		_, err := Combine(sharesOf(tampered, 1, 2, 3, 4, 5), 3)
		var ie *InconsistentError
		if !errors.As(err, &ie) {
			t.Fatalf("tampered share %d: err = %v, want *InconsistentError", bad, err)
		}
		if !slices.Equal(ie.Bad, []int{bad}) {
			t.Fatalf("tampered share %d: named %v (suspects %v)", bad, ie.Bad, ie.Suspects)
		}
	}
}

func TestInconsistencyWithOneSpareShareIsDetected(t *testing.T) {
	// K+1 shares with one bad: every K-subset fits K shares, so the bad one
	// cannot be told apart, but the inconsistency must still be reported.
	vectors, err := Split(nil, randomSecrets(t, 5), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	vectors[2] = slices.Clone(vectors[2])
	vectors[2][0] = field.Add(vectors[2][0], 1)
	_, err = Combine(sharesOf(vectors, 1, 2, 3), 2)
	var ie *InconsistentError
	if !errors.As(err, &ie) || !slices.Equal(ie.Suspects, []int{1, 2, 3}) {
		t.Fatalf("err = %v, want all three shares suspected", err)
	}
}

// tamper returns a copy of vectors in which each keeper in bad (x-coordinates)
// has a random nonzero offset added to a random nonempty set of counters, at
// most spread of them.
func tamper(t testing.TB, rng *rand.Rand, vectors [][]field.Element, bad []int, spread int) [][]field.Element {
	t.Helper()
	out := slices.Clone(vectors)
	counters := len(vectors[0])
	for _, x := range bad {
		v := slices.Clone(vectors[x-1])
		for range 1 + rng.IntN(spread) {
			c := rng.IntN(counters)
			v[c] = field.Add(v[c], 1+rng.Uint64N(field.P-1))
		}
		out[x-1] = v
	}
	return out
}

// pick returns m distinct x-coordinates from 1..n, sorted.
func pick(rng *rand.Rand, n, m int) []int {
	xs := rng.Perm(n)[:m]
	for i := range xs {
		xs[i]++
	}
	slices.Sort(xs)
	return xs
}

func combineErr(t *testing.T, shares []Share, k int) *InconsistentError {
	t.Helper()
	_, err := Combine(shares, k)
	var ie *InconsistentError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want *InconsistentError", err)
	}
	return ie
}

func TestUpToHalfTheSpareSharesBadAreNamedExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const counters = 40
	for holders := 3; holders <= 16; holders++ {
		for k := holders/2 + 1; k <= holders-2; k++ {
			for trial := range 20 {
				vectors, err := Split(nil, randomSecrets(t, counters), k, holders)
				if err != nil {
					t.Fatal(err)
				}
				// Any n ≥ K+2 of the holders' shares, so at least one can be bad.
				n := k + 2 + rng.IntN(holders-k-1)
				maxBad := (n - k) / 2
				given := pick(rng, holders, n)
				bad := slices.Clone(given)
				rng.Shuffle(len(bad), func(i, j int) { bad[i], bad[j] = bad[j], bad[i] })
				bad = bad[:1+rng.IntN(maxBad)]
				slices.Sort(bad)
				// Alternate between errors on one or two counters and
				// errors spread over many, where each counter sees few.
				spread := []int{2, counters}[trial%2]
				ie := combineErr(t, sharesOf(tamper(t, rng, vectors, bad, spread), given...), k)
				if !slices.Equal(ie.Bad, bad) {
					t.Fatalf("n=%d K=%d shares %v, bad %v: named %v (suspects %v)", n, k, given, bad, ie.Bad, ie.Suspects)
				}
			}
		}
	}
}

func TestMoreBadSharesThanDecodingAllowsAreOnlySuspected(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const counters = 30
	for n := 3; n <= 16; n++ {
		for k := n/2 + 1; k <= n-1; k++ {
			tooMany := (n-k)/2 + 1
			for trial := range 10 {
				vectors, err := Split(nil, randomSecrets(t, counters), k, n)
				if err != nil {
					t.Fatal(err)
				}
				all := pick(rng, n, n)
				bad := pick(rng, n, tooMany)
				// Half the trials put every bad share's error on counter 0;
				// the others put each on its own counter, so every counter
				// alone has a single error and decodes, but no ⌊(n−K)/2⌋
				// shares explain all of them.
				tampered := slices.Clone(vectors)
				for i, x := range bad {
					c := 0
					if trial%2 == 1 {
						c = i
					}
					tampered[x-1] = slices.Clone(vectors[x-1])
					tampered[x-1][c] = field.Add(tampered[x-1][c], 1+rng.Uint64N(field.P-1))
				}
				ie := combineErr(t, sharesOf(tampered, all...), k)
				if len(ie.Bad) != 0 || !slices.Equal(ie.Suspects, all) {
					t.Fatalf("n=%d K=%d bad %v: named %v, suspects %v; want all suspected", n, k, bad, ie.Bad, ie.Suspects)
				}
			}
		}
	}
}

// fixedReader yields b and then zeros forever.
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	clear(p[n:])
	return len(p), nil
}

func TestUnluckyCombinationStillNamesTheBadShares(t *testing.T) {
	// isolate's random combination only speeds things up: with
	// coefficients that miss some or all errors (all zero, or nonzero on
	// counter 0 only) the check on every counter must still find them.
	rng := rand.New(rand.NewPCG(5, 6))
	vectors, err := Split(nil, randomSecrets(t, 50), 7, 13)
	if err != nil {
		t.Fatal(err)
	}
	tampered := tamper(t, rng, vectors, []int{2, 7, 11}, 50)
	tampered[6][0] = field.Add(tampered[6][0], 1) // keeper 7 is off on counter 0 too
	shares := sharesOf(tampered, pick(rng, 13, 13)...)
	for name, coeffs := range map[string][]byte{"zero": nil, "counter 0 only": {1}} {
		err := isolate(&fixedReader{b: coeffs}, shares, 7)
		var ie *InconsistentError
		if !errors.As(err, &ie) || !slices.Equal(ie.Bad, []int{2, 7, 11}) {
			t.Errorf("%s coefficients: err = %v, want shares 2, 7, 11 named", name, err)
		}
	}
}

func TestDecoderCorrectsUpToItsBound(t *testing.T) {
	// Gao's decoder on its own: a random codeword at scattered
	// x-coordinates with e errors decodes to exactly those positions for
	// e ≤ ⌊(n−k)/2⌋.
	rng := rand.New(rand.NewPCG(7, 8))
	for n := 1; n <= 16; n++ {
		for k := 1; k <= n; k++ {
			xs := pick(rng, MaxHolders, n)
			d, err := newDecoder(xs, k)
			if err != nil {
				t.Fatal(err)
			}
			f := make(poly, k)
			if err := field.Random(nil, f); err != nil {
				t.Fatal(err)
			}
			for e := 0; e <= d.maxErrors(); e++ {
				ys := make([]field.Element, n)
				for i, x := range xs {
					ys[i] = f.eval(field.Element(x))
				}
				want := rng.Perm(n)[:e]
				slices.Sort(want)
				for _, i := range want {
					ys[i] = field.Add(ys[i], 1+rng.Uint64N(field.P-1))
				}
				got, ok := d.decode(ys)
				if !ok || !slices.Equal(got, want) {
					t.Fatalf("n=%d k=%d e=%d at %v: decode = %v, %v", n, k, e, xs, got, ok)
				}
			}
		}
	}
}

func TestCombineRejectsMalformedShares(t *testing.T) {
	vectors, err := Split(nil, randomSecrets(t, 4), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for name, shares := range map[string][]Share{
		"duplicate x":    {{X: 1, Values: vectors[0]}, {X: 1, Values: vectors[0]}},
		"x zero":         {{X: 0, Values: vectors[0]}, {X: 1, Values: vectors[0]}},
		"x too large":    {{X: 256, Values: vectors[0]}, {X: 1, Values: vectors[0]}},
		"length differs": {{X: 1, Values: vectors[0]}, {X: 2, Values: vectors[1][:3]}},
	} {
		if _, err := Combine(shares, 2); err == nil {
			t.Errorf("%s: Combine accepted it", name)
		}
	}
}

func BenchmarkSplit1000x5(b *testing.B) {
	b.ReportAllocs()
	secrets := randomSecrets(b, 1000)
	for b.Loop() {
		if _, err := Split(nil, secrets, 3, 5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine1000(b *testing.B) {
	b.ReportAllocs()
	vectors, err := Split(nil, randomSecrets(b, 1000), 3, 5)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		xs   []int
	}{{"K=3of5", []int{1, 3, 5}}, {"all5checked", []int{1, 2, 3, 4, 5}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			shares := sharesOf(vectors, tc.xs...)
			for b.Loop() {
				if _, err := Combine(shares, 3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nextCombination advances idx to the next k-subset of 0..n−1 in
// lexicographic order, reporting false after the last.
func nextCombination(idx []int, n int) bool {
	k := len(idx)
	i := k - 1
	for i >= 0 && idx[i] == n-k+i {
		i--
	}
	if i < 0 {
		return false
	}
	idx[i]++
	for j := i + 1; j < k; j++ {
		idx[j] = idx[j-1] + 1
	}
	return true
}

// BenchmarkIsolate16Keepers100kCounters is the worst case the issue named: 16
// keepers, K = 9, the largest round (100,000 counters) and 3 bad keepers,
// each off on a few random counters. The subset search this replaced took
// about 18 minutes here.
func BenchmarkIsolate16Keepers100kCounters(b *testing.B) {
	b.ReportAllocs()
	rng := rand.New(rand.NewPCG(9, 10))
	vectors, err := Split(nil, randomSecrets(b, 100_000), 9, 16)
	if err != nil {
		b.Fatal(err)
	}
	bad := []int{3, 8, 14}
	shares := sharesOf(tamper(b, rng, vectors, bad, 5), pick(rng, 16, 16)...)
	for b.Loop() {
		_, err := Combine(shares, 9)
		var ie *InconsistentError
		if !errors.As(err, &ie) || !slices.Equal(ie.Bad, bad) {
			b.Fatalf("err = %v, want keepers %v named", err, bad)
		}
	}
}

// BenchmarkIsolateEveryCounterDecoded bounds isolate's worst case: with zero
// combination coefficients nothing is caught by the combination, and each of
// the 100,000 counters, all with errors, is decoded on its own.
func BenchmarkIsolateEveryCounterDecoded(b *testing.B) {
	b.ReportAllocs()
	vectors, err := Split(nil, randomSecrets(b, 100_000), 9, 16)
	if err != nil {
		b.Fatal(err)
	}
	bad := []int{3, 8, 14}
	for _, x := range bad {
		v := slices.Clone(vectors[x-1])
		for c := range v {
			v[c] = field.Add(v[c], field.Element(c+1))
		}
		vectors[x-1] = v
	}
	shares := sharesOf(vectors, pick(rand.New(rand.NewPCG(11, 12)), 16, 16)...)
	for b.Loop() {
		err := isolate(&fixedReader{}, shares, 9)
		var ie *InconsistentError
		if !errors.As(err, &ie) || !slices.Equal(ie.Bad, bad) {
			b.Fatalf("err = %v, want keepers %v named", err, bad)
		}
	}
}

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

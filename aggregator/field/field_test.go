package field

import (
	"bytes"
	"crypto/rand"
	"math"
	"math/big"
	"strings"
	"testing"
)

var bigP = new(big.Int).SetUint64(P)

// edgeValues are canonical elements where carries, borrows and the decode
// boundary live.
var edgeValues = []uint64{0, 1, 2, epsilon - 1, epsilon, epsilon + 1, 1 << 32, 1 << 63, half - 1, half, half + 1, P - 2, P - 1}

func randomCanonical(t testing.TB, n int) []uint64 {
	t.Helper()
	out := make([]uint64, n)
	if err := Random(nil, out); err != nil {
		t.Fatal(err)
	}
	return append(out, edgeValues...)
}

func bigOf(x uint64) *big.Int { return new(big.Int).SetUint64(x) }

func modBig(x *big.Int) uint64 { return new(big.Int).Mod(x, bigP).Uint64() }

func TestArithmeticMatchesBigInt(t *testing.T) {
	vals := randomCanonical(t, 300)
	for _, a := range vals {
		for _, b := range vals[len(vals)-40:] {
			if got, want := Add(a, b), modBig(new(big.Int).Add(bigOf(a), bigOf(b))); got != want {
				t.Fatalf("Add(%d, %d) = %d, want %d", a, b, got, want)
			}
			if got, want := Sub(a, b), modBig(new(big.Int).Sub(bigOf(a), bigOf(b))); got != want {
				t.Fatalf("Sub(%d, %d) = %d, want %d", a, b, got, want)
			}
			if got, want := Mul(a, b), modBig(new(big.Int).Mul(bigOf(a), bigOf(b))); got != want {
				t.Fatalf("Mul(%d, %d) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestReduceAcceptsAnyUint64(t *testing.T) {
	for _, x := range []uint64{0, 1, P - 1, P, P + 1, math.MaxUint64 - 1, math.MaxUint64} {
		if got, want := Reduce(x), modBig(bigOf(x)); got != want {
			t.Errorf("Reduce(%d) = %d, want %d", x, got, want)
		}
	}
}

func TestCanonicalRejectsValuesAtOrAboveP(t *testing.T) {
	for _, x := range []uint64{P, P + 1, 1<<64 - 1} {
		if Canonical(x) == nil {
			t.Errorf("Canonical(%d) accepted a non-canonical value", x)
		}
	}
	for _, x := range []uint64{0, 1 << 63, P - 1} {
		if err := Canonical(x); err != nil {
			t.Errorf("Canonical(%d): %v", x, err)
		}
	}
}

// A peer's vector must have one value per counter, each canonical; the
// error names the vector and, for a bad value, its counter.
func TestCheckCounters(t *testing.T) {
	if err := CheckCounters("report", []Element{0, 1, P - 1}, 3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vs   []Element
		want string
	}{
		{[]Element{0, 1}, "report has 2 values, the round has 3 counters"},
		{[]Element{0, 1, 2, 3}, "report has 4 values, the round has 3 counters"},
		{[]Element{0, P, 2}, "report, counter 1: field element"},
	} {
		if err := CheckCounters("report", tc.vs, 3); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("CheckCounters(%v) = %v, want %q…", tc.vs, err, tc.want)
		}
	}
}

func TestInverse(t *testing.T) {
	for _, a := range randomCanonical(t, 200) {
		inv, err := Inverse(a)
		if a == 0 {
			if err == nil {
				t.Fatal("Inverse(0) did not fail")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if Mul(a, inv) != 1 {
			t.Fatalf("%d · Inverse(%d) = %d, want 1", a, a, Mul(a, inv))
		}
		if want := new(big.Int).ModInverse(bigOf(a), bigP).Uint64(); inv != want {
			t.Fatalf("Inverse(%d) = %d, want %d", a, inv, want)
		}
	}
}

func TestNegAndSubAgree(t *testing.T) {
	for _, a := range randomCanonical(t, 100) {
		if Neg(a) != Sub(0, a) {
			t.Fatalf("Neg(%d) = %d, Sub(0, a) = %d", a, Neg(a), Sub(0, a))
		}
		if Add(a, Neg(a)) != 0 {
			t.Fatalf("a + (−a) ≠ 0 for %d", a)
		}
	}
}

func TestSignedRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, -1, 42, -42, MaxMagnitude, -MaxMagnitude, int64(half) - 1, -int64(half)} {
		if got := Decode(FromInt64(n)); got != n {
			t.Errorf("Decode(FromInt64(%d)) = %d", n, got)
		}
	}
	if Decode(P-1) != -1 {
		t.Errorf("Decode(P−1) = %d, want −1", Decode(P-1))
	}
	if Decode(half) != -int64(P-half) {
		t.Errorf("(P−1)/2 must decode as negative, got %d", Decode(half))
	}
}

func TestSumOfSignedValuesDecodes(t *testing.T) {
	// Counters wrap modulo P; what matters is that a sum of signed values
	// decodes to the signed sum while it stays inside ±2^62.
	vals := []int64{-5, 1 << 61, -(1 << 60), 17, -(1 << 61)}
	var acc Element
	var want int64
	for _, v := range vals {
		acc = Add(acc, FromInt64(v))
		want += v
	}
	if got := Decode(acc); got != want {
		t.Fatalf("decoded sum %d, want %d", got, want)
	}
}

func TestRandomRejectsOutOfRangeWords(t *testing.T) {
	// Words ≥ P must be skipped, not reduced: a reduction would bias small values.
	var src bytes.Buffer
	for _, w := range []uint64{math.MaxUint64, P, 7, P - 1} {
		var b [8]byte
		for i := range b {
			b[i] = byte(w >> (8 * i))
		}
		src.Write(b[:])
	}
	got := make([]Element, 2)
	if err := Random(&src, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != 7 || got[1] != P-1 {
		t.Fatalf("Random kept %v, want [7 %d]", got, P-1)
	}
}

func TestRandomReportsShortSource(t *testing.T) {
	if err := Random(bytes.NewReader(make([]byte, 5)), make([]Element, 1)); err == nil {
		t.Fatal("Random accepted a short entropy source")
	}
}

func TestRandomLooksUniform(t *testing.T) {
	// Top-bit frequency over 20,000 draws: mean 0.5, sd 0.0035; 0.03 is 8.5 sd,
	// a false failure has probability far below 1e-9.
	xs := make([]Element, 20000)
	if err := Random(rand.Reader, xs); err != nil {
		t.Fatal(err)
	}
	ones := 0
	for _, x := range xs {
		if x >= 1<<63 {
			ones++
		}
	}
	frac := float64(ones) / float64(len(xs))
	// P(x ≥ 2^63) = (P − 2^63)/P ≈ 0.5 − 2^−33.
	if math.Abs(frac-0.5) > 0.03 {
		t.Fatalf("top-bit frequency %.4f, want ≈ 0.5", frac)
	}
}

var sink Element

func BenchmarkMul(b *testing.B) {
	b.ReportAllocs()
	x, y := Element(0x1234567890abcdef), Element(P-12345)
	for b.Loop() {
		x = Mul(x, y)
	}
	sink = x
}

func BenchmarkAdd(b *testing.B) {
	b.ReportAllocs()
	x, y := Element(0x1234567890abcdef), Element(P-12345)
	for b.Loop() {
		x = Add(x, y)
	}
	sink = x
}

func BenchmarkInverse(b *testing.B) {
	b.ReportAllocs()
	x := Element(0x1234567890abcdef)
	for b.Loop() {
		x, _ = Inverse(x)
	}
	sink = x
}

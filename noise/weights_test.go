package noise

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestWeightsFor(t *testing.T) {
	explicit := map[string]float64{"AA": 0.5, "BB": 0}
	tests := []struct {
		name string
		w    Weights
		fp   string
		n    int
		want float64
	}{
		{"zero value means every collector adds σ", Weights{}, "CC", 100, 1},
		{"default", Weights{Default: 0.25}, "CC", 100, 0.25},
		{"explicit wins over default", Weights{Explicit: explicit, Default: 0.25}, "AA", 100, 0.5},
		{"explicit zero is kept", Weights{Explicit: explicit, Default: 0.25}, "BB", 100, 0},
		{"unlisted falls back to default", Weights{Explicit: explicit, Default: 0.25}, "CC", 100, 0.25},
		{"honest fraction", Weights{HonestFraction: 0.5}, "CC", 8, 0.5},           // w² = 1/(0.5·8)
		{"honest fraction, n = 1", Weights{HonestFraction: 0.25}, "CC", 1, 2},     // w² = 1/(0.25·1)
		{"honest fraction, n below 1", Weights{HonestFraction: 0.25}, "CC", 0, 2}, // as n = 1
		{"explicit wins over honest fraction", Weights{Explicit: explicit, HonestFraction: 0.5}, "AA", 8, 0.5},
	}
	for _, tt := range tests {
		if got := tt.w.For(tt.fp, tt.n); got != tt.want {
			t.Errorf("%s: For(%q, %d) = %v, want %v", tt.name, tt.fp, tt.n, got, tt.want)
		}
	}
}

func TestWeightsValidate(t *testing.T) {
	nan := math.NaN()
	good := []Weights{
		{},
		{Default: 0.3},
		{HonestFraction: 1},
		{HonestFraction: 0.01, Explicit: map[string]float64{"AA": 0, "BB": 2}},
	}
	for _, w := range good {
		if err := w.Validate(); err != nil {
			t.Errorf("%+v: %v", w, err)
		}
	}
	bad := []struct {
		w    Weights
		want string
	}{
		{Weights{Default: -1}, "default: weight = -1"},
		{Weights{Default: nan}, "default: weight = NaN"},
		{Weights{Default: math.Inf(1)}, "default: weight = +Inf"},
		{Weights{Explicit: map[string]float64{"AA": -0.5}}, "explicit weight of AA: weight = -0.5"},
		{Weights{Explicit: map[string]float64{"AA": nan}}, "explicit weight of AA: weight = NaN"},
		{Weights{Explicit: map[string]float64{"": 1}}, "empty fingerprint"},
		{Weights{HonestFraction: -0.1}, "honest_fraction = -0.1"},
		{Weights{HonestFraction: 1.5}, "honest_fraction = 1.5"},
		{Weights{HonestFraction: nan}, "honest_fraction = NaN"},
		{Weights{HonestFraction: 0.5, Default: 2}, "not both"},
	}
	for _, tt := range bad {
		err := tt.w.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error = %v, want one mentioning %q", tt.w, err, tt.want)
		}
	}
	// Every problem is reported at once, so an operator fixes them in one go.
	err := Weights{Default: -1, Explicit: map[string]float64{"AA": -2, "BB": -3}}.Validate()
	for _, want := range []string{"default", "AA", "BB"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestResolveCountsEachCollectorOnce(t *testing.T) {
	w := Weights{HonestFraction: 0.5, Explicit: map[string]float64{"AA": 3, "ZZ": 7}}
	got := w.Resolve([]string{"AA", "BB", "CC", "DD", "BB"})
	want := map[string]float64{"AA": 3, "BB": math.Sqrt(0.5), "CC": math.Sqrt(0.5), "DD": math.Sqrt(0.5)} // n = 4
	if len(got) != len(want) {
		t.Fatalf("Resolve = %v, want %v", got, want)
	}
	for fp, w := range want {
		if got[fp] != w {
			t.Errorf("Resolve[%s] = %v, want %v", fp, got[fp], w)
		}
	}
}

func TestTotalSigma(t *testing.T) {
	tests := []struct {
		sigma   float64
		weights []float64
		want    float64
	}{
		{10, nil, 0},
		{10, []float64{1}, 10},
		{10, []float64{0.6, 0.8}, 10},
		{10, []float64{1, 1, 1, 1}, 20},
		{3, []float64{0, 0, 2}, 6},
	}
	for _, tt := range tests {
		if got := TotalSigma(tt.sigma, tt.weights); math.Abs(got-tt.want) > 1e-12*tt.want {
			t.Errorf("TotalSigma(%v, %v) = %v, want %v", tt.sigma, tt.weights, got, tt.want)
		}
	}
	// With β weights, any β·n collectors together add exactly σ.
	w := Weights{HonestFraction: 0.3}
	ws := make([]float64, 30) // β·n for n = 100
	for i := range ws {
		ws[i] = w.For("", 100)
	}
	if got := TotalSigma(7, ws); math.Abs(got-7) > 1e-12 {
		t.Errorf("30 of 100 collectors at β = 0.3 give total σ %v, want 7", got)
	}
}

func fingerprints(n int) []string {
	fps := make([]string, n)
	for i := range fps {
		fps[i] = fmt.Sprintf("%064X", i+1)
	}
	return fps
}

func TestCheckCoverageHonestFraction(t *testing.T) {
	// β = 0.5 over 10 collectors: each adds σ²/5, so any 5 cover σ².
	weights := Weights{HonestFraction: 0.5}.Resolve(fingerprints(10))
	for m := 5; m <= 10; m++ {
		if err := CheckCoverage(weights, m); err != nil {
			t.Errorf("min_collectors = %d: %v", m, err)
		}
	}
	err := CheckCoverage(weights, 4)
	if err == nil {
		t.Fatal("min_collectors = 4 passed, but 4 collectors add only 0.8·σ²")
	}
	for _, want := range []string{"only 0.8·σ²", "0.2·σ² short", "at least 5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if m, err := MinCollectors(weights); m != 5 || err != nil {
		t.Errorf("MinCollectors = %d, %v; want 5", m, err)
	}
}

func TestCheckCoverageNamesTheWeakestCollectors(t *testing.T) {
	weights := map[string]float64{"AA": 1, "BB": 0.1, "CC": 0.2, "DD": 0.9, "EE": 1}
	// The two weakest, BB and CC, add 0.05·σ²; three of them 0.86·σ².
	err := CheckCoverage(weights, 3)
	if err == nil {
		t.Fatal("min_collectors = 3 passed, but BB, CC and DD add 0.86·σ²")
	}
	for _, want := range []string{"BB w=0.1", "CC w=0.2", "DD w=0.9", "0.86·σ²", "at least 4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "AA") || strings.Contains(err.Error(), "EE") {
		t.Errorf("error %q names a collector outside the weakest three", err)
	}
	if err := CheckCoverage(weights, 4); err != nil {
		t.Errorf("min_collectors = 4: %v", err)
	}
}

func TestCheckCoverageRejects(t *testing.T) {
	ok := map[string]float64{"AA": 1, "BB": 1}
	tests := []struct {
		weights map[string]float64
		m       int
		want    string
	}{
		{nil, 1, "no permitted collectors"},
		{ok, 0, "min_collectors = 0"},
		{ok, 3, "exceeds the 2 permitted"},
		{map[string]float64{"AA": 1, "BB": -1}, 1, "collector BB: weight = -1"},
		{map[string]float64{"AA": 1, "BB": math.NaN()}, 1, "collector BB: weight = NaN"},
		{map[string]float64{"AA": 0.5, "BB": 0.5}, 2, "raise their weights"}, // even all of them fall short
	}
	for _, tt := range tests {
		err := CheckCoverage(tt.weights, tt.m)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckCoverage(%v, %d) error = %v, want one mentioning %q", tt.weights, tt.m, err, tt.want)
		}
	}
	if _, err := MinCollectors(map[string]float64{"AA": 0.5, "BB": 0.5}); err == nil || !strings.Contains(err.Error(), "only 0.5·σ²") {
		t.Errorf("MinCollectors with too little noise: error = %v", err)
	}
}

func TestMinCollectorsHonestFraction(t *testing.T) {
	for _, tt := range []struct {
		beta float64
		n    int
		want int
	}{
		{1, 7, 7},
		{0.3, 10, 3},
		{0.25, 10, 3}, // ⌈2.5⌉
		{0.5, 7000, 3500},
		{0.1, 6999, 700}, // ⌈699.9⌉
	} {
		weights := Weights{HonestFraction: tt.beta}.Resolve(fingerprints(tt.n))
		if got, err := MinCollectors(weights); got != tt.want || err != nil {
			t.Errorf("β = %v, n = %d: MinCollectors = %d, %v; want %d", tt.beta, tt.n, got, err, tt.want)
		}
	}
}

// Checking only the m smallest weights must agree with checking every set of
// at least m collectors, which this test does by brute force.
func TestCheckCoverageMatchesEverySubset(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + rng.IntN(8)
		weights := make(map[string]float64, n)
		fps := fingerprints(n)
		for _, fp := range fps {
			weights[fp] = rng.Float64() * 0.8
		}
		m := 1 + rng.IntN(n)
		allCovered := true
		for set := 1; set < 1<<n; set++ {
			size, sum := 0, 0.0
			for i, fp := range fps {
				if set&(1<<i) != 0 {
					size++
					sum += weights[fp] * weights[fp]
				}
			}
			if size >= m && sum < 1 {
				allCovered = false
			}
		}
		if err := CheckCoverage(weights, m); (err == nil) != allCovered {
			t.Fatalf("trial %d: weights %v, m = %d: every set covered = %v, but CheckCoverage = %v", trial, weights, m, allCovered, err)
		}
	}
}

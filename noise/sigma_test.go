package noise

import (
	"math"
	"strings"
	"testing"

	dpnoise "github.com/google/differential-privacy/go/v3/noise"
)

// budgets spans the parameters privstats rounds use: PrivCount ran with
// ε = 0.3, δ = 1e-11; histograms have L0 > 1; byte counts have large L∞.
var budgets = []struct {
	epsilon, delta float64
	l0             int64
	lInf           float64
}{
	{0.3, 1e-11, 1, 1},
	{0.3, 1e-11, 1, 1e8},
	{1, 1e-6, 1, 1},
	{0.1, 1e-3, 10, 3},
	{0.05, 1e-9, 100, 0.5},
	{2, 1e-5, 4, 20},
}

func TestSigmaIsGooglesAnalyticGaussian(t *testing.T) {
	for _, b := range budgets {
		got, err := Sigma(b.epsilon, b.delta, b.l0, b.lInf)
		if err != nil {
			t.Fatalf("Sigma(%v): %v", b, err)
		}
		if want := dpnoise.SigmaForGaussian(b.l0, b.lInf, b.epsilon, b.delta); got != want {
			t.Errorf("Sigma(%v) = %v, want SigmaForGaussian's %v exactly", b, got, want)
		}
		// It meets (ε, δ) by Balle and Wang's Theorem 8, and is at most
		// 0.1% above the smallest σ that does.
		s := l2Sensitivity(b.l0, b.lInf)
		if d := deltaFor(got, s, b.epsilon); d > b.delta {
			t.Errorf("Sigma(%v) = %v only gives δ = %v", b, got, d)
		}
		if tight := tightSigma(b.epsilon, b.delta, s); got < tight || got > tight*(1+1e-3) {
			t.Errorf("Sigma(%v) = %v, want within 0.1%% above the tight σ %v", b, got, tight)
		}
	}
}

func TestSigmaDependsOnSensitivityOnlyThroughL2(t *testing.T) {
	// One action touching 4 bins by 1 each is as revealing as one touching a
	// single bin by 2: both have L2 sensitivity 2.
	a, _ := Sigma(0.3, 1e-11, 4, 1)
	b, _ := Sigma(0.3, 1e-11, 1, 2)
	if a != b {
		t.Errorf("σ(L0=4, L∞=1) = %v but σ(L0=1, L∞=2) = %v", a, b)
	}
	c, _ := Sigma(0.3, 1e-11, 1, 1)
	if math.Abs(b-2*c) > 1e-12*b {
		t.Errorf("σ(L∞=2) = %v, want twice σ(L∞=1) = %v", b, 2*c)
	}
}

func TestSigmaShrinksAsBudgetGrows(t *testing.T) {
	prev := math.Inf(1)
	for _, eps := range []float64{0.01, 0.1, 0.3, 1, 3} {
		s, err := Sigma(eps, 1e-9, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if s >= prev {
			t.Errorf("σ(ε=%v) = %v, not below σ at the smaller ε (%v)", eps, s, prev)
		}
		prev = s
	}
	loose, _ := Sigma(0.3, 1e-3, 1, 1)
	strict, _ := Sigma(0.3, 1e-12, 1, 1)
	if loose >= strict {
		t.Errorf("σ(δ=1e-3) = %v, want below σ(δ=1e-12) = %v", loose, strict)
	}
}

func TestSigmaRejectsInvalidArguments(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		epsilon, delta float64
		l0             int64
		lInf           float64
		want           string
	}{
		{0, 1e-9, 1, 1, "ε = 0"},
		{-1, 1e-9, 1, 1, "ε = -1"},
		{nan, 1e-9, 1, 1, "ε = NaN"},
		{inf, 1e-9, 1, 1, "ε = +Inf"},
		{1, 0, 1, 1, "δ = 0"},
		{1, 1, 1, 1, "δ = 1"},
		{1, nan, 1, 1, "δ = NaN"},
		{1, 1e-9, 0, 1, "sensitivity L0 = 0"},
		{1, 1e-9, -3, 1, "sensitivity L0 = -3"},
		{1, 1e-9, 1, 0, "sensitivity L∞ = 0"},
		{1, 1e-9, 1, -2, "sensitivity L∞ = -2"},
		{1, 1e-9, 1, inf, "sensitivity L∞ = +Inf"},
		{1, 1e-9, 1, nan, "sensitivity L∞ = NaN"},
	}
	for _, tt := range tests {
		_, err := Sigma(tt.epsilon, tt.delta, tt.l0, tt.lInf)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Sigma(%v, %v, %v, %v) error = %v, want one mentioning %q", tt.epsilon, tt.delta, tt.l0, tt.lInf, err, tt.want)
		}
		if c := ClassicSigma(tt.epsilon, tt.delta, tt.l0, tt.lInf); !math.IsNaN(c) {
			t.Errorf("ClassicSigma(%v, %v, %v, %v) = %v, want NaN", tt.epsilon, tt.delta, tt.l0, tt.lInf, c)
		}
	}
}

func TestClassicSigma(t *testing.T) {
	// (s/ε)·√(2 ln(1.25/δ)) with s = 0.5·√4 = 1, ε = 1, δ = 1e-6:
	// √(2 ln 1.25e6) = 5.2988025...
	if got, want := ClassicSigma(1, 1e-6, 4, 0.5), 5.298802526850474; math.Abs(got-want) > 1e-12 {
		t.Errorf("ClassicSigma(1, 1e-6, 4, 0.5) = %v, want %v", got, want)
	}
	if got, want := ClassicSigma(0.3, 1e-6, 1, 1), ClassicSigma(1, 1e-6, 1, 1)/0.3; math.Abs(got-want) > 1e-12*want {
		t.Errorf("ClassicSigma is not ∝ 1/ε: %v, want %v", got, want)
	}
}

func TestClassicBoundIsLooserForSmallEpsilon(t *testing.T) {
	// Where the classic theorem applies (ε ≤ 1) the analytic mechanism needs
	// less noise for the same guarantee: that is why privstats uses it.
	for _, b := range budgets {
		if b.epsilon > 1 {
			continue
		}
		analytic, _ := Sigma(b.epsilon, b.delta, b.l0, b.lInf)
		if classic := ClassicSigma(b.epsilon, b.delta, b.l0, b.lInf); classic < analytic {
			t.Errorf("%v: classic σ %v below analytic σ %v", b, classic, analytic)
		}
	}
	// Beyond ε = 1 the classic formula is not a valid bound: at ε = 10 it asks
	// for less noise than (ε, δ) requires.
	analytic, _ := Sigma(10, 1e-3, 1, 1)
	if classic := ClassicSigma(10, 1e-3, 1, 1); classic >= analytic {
		t.Errorf("ε = 10: classic σ %v, expected it below the analytic %v", classic, analytic)
	}
}

func TestTightEpsilonInvertsTightSigma(t *testing.T) {
	for _, b := range budgets {
		s := l2Sensitivity(b.l0, b.lInf)
		sigma := tightSigma(b.epsilon, b.delta, s)
		got, err := tightEpsilon(sigma, b.delta, s, 10)
		if err != nil {
			t.Fatalf("%v: %v", b, err)
		}
		if math.Abs(got-b.epsilon) > 1e-9*b.epsilon {
			t.Errorf("%v: ε for σ = %v is %v, want %v", b, sigma, got, b.epsilon)
		}
		if _, err := tightEpsilon(sigma/100, b.delta, s, b.epsilon); err != errEpsilonTooLarge {
			t.Errorf("%v: σ/100 within budget ε: err = %v", b, err)
		}
	}
}

package demo

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/outcome"
)

// TestRoundSurvivesFailedKeeperAndSilentCollectors runs the real roles over
// loopback TLS with σ = 0, one keeper dying before release (N−K = 1) and two
// collectors never reporting: the published totals must equal what the
// reporting collectors counted, exactly.
func TestRoundSurvivesFailedKeeperAndSilentCollectors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round of several seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Collectors: 6, Keepers: 3, Threshold: 2, Duration: 4 * time.Second,
		FailKeepers: 1, FailCollectors: 2, NoNoise: true, Rate: 300, Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collectors != 4 {
		t.Fatalf("%d collectors in S, want the 4 that reported", rep.Collectors)
	}
	if rep.Keepers != 2 {
		t.Fatalf("%d keeper shares, want 2 (one keeper died)", rep.Keepers)
	}
	nonzero := 0
	for _, r := range rep.Results {
		if r.NoisyTotal != r.TrueTotal {
			t.Errorf("%s/%s: published %d, true %d", r.Statistic, r.Bin, r.NoisyTotal, r.TrueTotal)
		}
		if r.TrueTotal != 0 {
			nonzero++
		}
	}
	if nonzero < len(rep.Results)/2 {
		t.Fatalf("only %d of %d counters counted anything; the workload did not reach the collectors", nonzero, len(rep.Results))
	}
	checkVerify(t, rep.OutcomePath)
}

// checkVerify checks that the outcome verifies and that changing any single
// published number makes verification fail.
func checkVerify(t *testing.T, path string) {
	t.Helper()
	o, err := outcome.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := outcome.Verify(o); err != nil {
		t.Fatalf("the published outcome does not verify: %v", err)
	}
	raw, _ := os.ReadFile(path)
	for i, st := range o.Statistics {
		for j := range st.Bins {
			for _, field := range []string{"total", "low", "high", "sigma"} {
				var m outcome.Outcome
				json.Unmarshal(raw, &m)
				b := &m.Statistics[i].Bins[j]
				switch field {
				case "total":
					b.NoisyTotal++
				case "low":
					b.CI95Low -= 1
				case "high":
					b.CI95High += 1
				case "sigma":
					m.Statistics[i].TotalSigma += 1
				}
				if err := outcome.Verify(&m); err == nil {
					t.Fatalf("changing %s of %s/%s went unnoticed", field, st.Name, b.Label)
				}
			}
		}
	}
	var m outcome.Outcome
	json.Unmarshal(raw, &m)
	m.Collectors.Count--
	if err := outcome.Verify(&m); err == nil || !strings.Contains(err.Error(), "collector") {
		t.Fatalf("changing the collector count: %v", err)
	}
}

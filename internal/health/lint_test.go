package health

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/privstats/privstats/aggregator/round"
)

// TestMetricsPassLint: a keeper's and a collector's health families pass
// Prometheus's own lint (base units, _total on counters and only on them,
// help text).
func TestMetricsPassLint(t *testing.T) {
	for _, role := range []string{"keeper", "collector"} {
		s := New(role)
		s.Set(true, round.PhaseCollecting)
		families, err := s.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		// Both gauges are linted, the phase vector included.
		if len(families) != 2 {
			t.Fatalf("%s: gathered %d families, want 2", role, len(families))
		}
		problems, err := testutil.GatherAndLint(s.reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", role, p.Metric, p.Text)
		}
	}
}

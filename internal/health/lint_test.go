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
		want := 3 // connected, phase, build info
		if role == "collector" {
			s.WatchSource(func() Source { return Source{Connected: true} })
			want += 3
		}
		families, err := s.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		// Every family is linted, the phase vector included.
		if len(families) != want {
			t.Fatalf("%s: gathered %d families, want %d", role, len(families), want)
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

package tally

import (
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/outcome/export"
)

// TestMetricsPassLint: every family the tally server exports passes
// Prometheus's own lint (base units, _total on counters and only on them,
// help text, no reserved suffixes).
func TestMetricsPassLint(t *testing.T) {
	m := newMetrics()
	m.progress(&state{})
	// The latest outcome's families appear once one is published.
	o := &outcome.Outcome{Series: "s", Round: 3, PublishedAt: time.Unix(1700000000, 0), Statistics: []outcome.Statistic{{
		Name: "relay_bytes_read", TotalSigma: 3, Bins: []outcome.Bin{{Label: "total", NoisyTotal: 5, CI95Low: -1, CI95High: 11}}}, {
		Name: "or_connection_lifetime", TotalSigma: 3, Bins: []outcome.Bin{{Label: "[0,10)", NoisyTotal: 5}, {Label: "[10,inf)", NoisyTotal: 5}}}}}
	m.publish(o)
	published := map[string]bool{}
	for _, s := range export.Samples(o) {
		published[s.Family] = true
	}

	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Nothing escapes the lint by having no series yet: every gauge and
	// counter field, the build info and each family of the outcome.
	if want := countCollectors(m) - 1 + 1 + len(published); len(families) != want {
		t.Fatalf("gathered %d families, want %d", len(families), want)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// countCollectors counts the fields of m that are Prometheus collectors
// (the registry, itself a collector, aside).
func countCollectors(m *metrics) int {
	collector := reflect.TypeFor[prometheus.Collector]()
	n := 0
	for f := range reflect.TypeOf(*m).Fields() {
		if f.Type.Implements(collector) && f.Type != reflect.TypeFor[*prometheus.Registry]() {
			n++
		}
	}
	return n
}

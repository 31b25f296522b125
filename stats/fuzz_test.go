package stats_test

import (
	"testing"
	"time"

	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// FuzzCount checks that no line, however broken, makes Program.Count panic
// or add to a counter that does not exist. Seeds: testdata/fuzz/FuzzCount,
// the sample trace and some synthetic events.
//
//	go test ./stats -run '^$' -fuzz FuzzCount -fuzztime 60s
func FuzzCount(f *testing.F) {
	for _, l := range sampleLines(f) {
		f.Add(l)
	}
	for _, l := range source.SyntheticTrace(200, 5) {
		f.Add(l)
	}
	p, err := stats.Compile(allSpecs(f))
	if err != nil {
		f.Fatal(err)
	}
	c := make(counts, p.NumCounters())
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line []byte) {
		p.CountAt(at, line, c)
		p.Count(line, c)
		var m stats.Metric
		if stats.ParseMetricLine(line, &m) == nil {
			again := stats.MetricLine(nil, string(m.Name), string(m.Labels), m.Increase)
			var m2 stats.Metric
			if err := stats.ParseMetricLine(again, &m2); err != nil || string(m2.Name) != string(m.Name) ||
				string(m2.Labels) != string(m.Labels) || m2.Increase != m.Increase {
				t.Errorf("%q re-encoded as %q parses as %+v, %v", line, again, m2, err)
			}
		}
	})
}

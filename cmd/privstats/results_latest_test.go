package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/outcome/export"
)

// TestResultsLatestIsTheNewestWindow: --round latest is the round whose
// window ended last, not the last in series order, so a data directory
// that still holds a renamed series' rounds shows the current series'.
func TestResultsLatestIsTheNewestWindow(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, series := range []string{"test", "prod"} {
		s := start.Add(time.Duration(i) * 24 * time.Hour)
		o := &outcome.Outcome{Version: outcome.FormatVersion, Series: series, Round: 1,
			Config: &round.Config{Series: series, Round: 1, Epsilon: 1, Delta: 1e-6},
			Window: outcome.Window{Start: s, End: s.Add(time.Hour)}, PublishedAt: s.Add(time.Hour + time.Minute),
			Statistics: []outcome.Statistic{{Name: "relay_bytes_read", Bins: []outcome.Bin{{Label: "total", NoisyTotal: int64(i)}}}}}
		if err := outcome.Write(filepath.Join(dir, fmt.Sprintf("%s-000001.json", series)), o); err != nil {
			t.Fatal(err)
		}
	}
	var got export.RoundJSON
	if err := json.Unmarshal([]byte(runOK(t, "results", "--round", "latest", "--json", dir)), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "prod-000001" {
		t.Errorf("--round latest is %s, want prod-000001, whose window ended last", got.Name)
	}
}

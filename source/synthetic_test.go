package source_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
)

func TestSyntheticTraceIsRepeatable(t *testing.T) {
	a, b := source.SyntheticTrace(15000, 42), source.SyntheticTrace(15000, 42)
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Error("the same seed gave different traces")
	}
	if c := source.SyntheticTrace(15000, 43); slices.EqualFunc(a, c, bytes.Equal) {
		t.Error("different seeds gave the same trace")
	}
	kinds := map[string]int{}
	for _, l := range a {
		f := bytes.Fields(l)
		if len(f) < 2 || string(f[0]) != "650" {
			t.Fatalf("not an event line: %q", l)
		}
		kinds[string(f[1])]++
	}
	for _, k := range []string{"BW", "ORCONN", "CONN_BW", "CIRC", "PRIVCOUNT_STREAM_ENDED", "PRIVCOUNT_CIRCUIT_CLOSE",
		"PRIVCOUNT_CONNECTION_CLOSE", "PRIVCOUNT_HSDIR_CACHE_STORE", "PRIVCOUNT_HSDIR_CACHE_FETCH", "PRIVSTATS_METRIC"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event in 15 simulated seconds: %v", k, kinds)
		}
	}
}

func TestSyntheticStopsAtDurationOrLimit(t *testing.T) {
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	evs, _, err := collect(t, context.Background(), source.Synthetic(source.SyntheticOptions{
		Seed: 1, Rate: 1000, Start: start, Duration: 30 * time.Second, Fast: true}))
	if err != nil {
		t.Fatal(err)
	}
	// About 1000 events a simulated second, BW once a second.
	if len(evs) < 25000 || len(evs) > 35000 {
		t.Errorf("%d events in 30 simulated seconds at 1000/s", len(evs))
	}
	bw := 0
	for i, e := range evs {
		if e.at.Before(start) || e.at.Sub(start) >= 30*time.Second || i > 0 && e.at.Before(evs[i-1].at) {
			t.Fatalf("event %d at %v is out of order or outside the run", i, e.at)
		}
		if bytes.HasPrefix([]byte(e.line), []byte("650 BW ")) {
			bw++
		}
	}
	if bw != 29 {
		t.Errorf("%d BW events in 30 s, want one a second", bw)
	}
	evs, _, _ = collect(t, context.Background(), source.Synthetic(source.SyntheticOptions{Seed: 1, Limit: 10, Fast: true}))
	if len(evs) != 10 {
		t.Errorf("Limit 10 gave %d events", len(evs))
	}
}

func TestSyntheticPacesInRealTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	evs, _, err := collect(t, ctx, source.Synthetic(source.SyntheticOptions{Rate: 500}))
	if err != nil {
		t.Fatal(err)
	}
	// 0.3 s at 500 events a second; generous bounds for a busy machine.
	if len(evs) < 50 || len(evs) > 400 {
		t.Errorf("%d events in 0.3 s at 500/s", len(evs))
	}
	for _, e := range evs {
		if e.at.Before(start.Add(-time.Millisecond)) || e.at.After(time.Now().Add(2*time.Millisecond)) {
			t.Fatalf("paced event stamped %v, outside the run", e.at)
		}
	}
}

package stats_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

const sampleTrace = "../testdata/sample.trace"

// counts are plain counters, as a local preview keeps them.
type counts []uint64

func (c counts) Add(i int, n uint64) { c[i] += n }

// allSpecs resolves every catalogue statistic with its own bins.
func allSpecs(t testing.TB) []round.StatisticSpec {
	t.Helper()
	var specs []round.StatisticSpec
	for _, s := range stats.Catalogue() {
		spec, err := stats.Resolve(s.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	return specs
}

// countTrace runs a program for specs over a trace and returns each
// statistic's counters by name.
func countTrace(t *testing.T, path string, specs []round.StatisticSpec) (map[string][]uint64, *stats.Program) {
	t.Helper()
	p, err := stats.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	c := make(counts, p.NumCounters())
	err = source.Trace(path, source.Fast).Run(context.Background(), nil,
		func(at time.Time, line []byte) { p.CountAt(at, line, c) },
		func(start, end time.Time) {})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint64{}
	i := 0
	for _, s := range specs {
		out[s.Name] = c[i : i+s.Counters()]
		i += s.Counters()
	}
	return out, p
}

// TestSampleTrace is the specification of every statistic: what each counts
// in testdata/sample.trace, worked out by hand from its lines.
func TestSampleTrace(t *testing.T) {
	got, p := countTrace(t, sampleTrace, allSpecs(t))
	want := map[string][]uint64{
		// BW: 155+20480+40960+8192+120000+4096+0 read, 593+18944+39936+7168+118000+4096+0 written.
		"relay_bytes_read":    {193883},
		"relay_bytes_written": {188737},
		// 101 NEW→CONNECTED from an address: a client. 103 NEW→CONNECTED as
		// $FP=relayB: a relay. 102 LAUNCHED→CONNECTED: outbound. 106 failed and
		// 107 closed without connecting.
		"or_connections": {1, 1, 1},
		// 101 (12.888 s), 102 (12.588 s), 103 (12.096 s), 107 (0.1 s); 99 was
		// never seen opening; 106 FAILED.
		"or_connection_lifetime": {1, 0, 3, 0, 0, 0, 0, 0, 0},
		// NCIRCS of CLOSED: 3, 17, 0 (ID 99), 1, 0 (ID 107).
		"or_connection_circuits": {2, 1, 1, 0, 0, 1, 0, 0, 0},
		"exit_bytes":             {1500 + 320 + 70000 + 900},
		"or_bytes":               {2056 + 1028},
		"dir_bytes":              {700 + 52000},
		// 1820 bytes in [1024,4096), 70900 in [65536,262144).
		"exit_connection_bytes": {0, 1, 0, 0, 1, 0, 0, 0},
		"exit_streams_by_type":  {120, 35, 4},
		"onion_intro1_cells":    {12, 0, 0, 0, 2, 0, 0, 1},
		"onion_rend1_cells":     {9, 0, 0, 1, 0, 0},
		"onion_est_intro_cells": {3, 0, 0, 0, 0},
		"onion_est_rend_cells":  {10, 0, 0, 0, 0, 0, 0},
		"relay_traffic_bytes":   {243712, 190000},
		// type="Exit" connections are not OR connections.
		"or_connections_created": {3, 1, 2},
		// Streams on ports 443, 22, 6881 and 80; the one that carried nothing is left out.
		"exit_streams":                  {4},
		"exit_streams_by_port":          {2, 1, 1, 0},
		"exit_stream_bytes_by_port":     {48213 + 1312 + 300 + 200, 5120 + 2048, 3145728 + 65536, 0},
		"exit_stream_bytes_web":         {1, 0, 0, 0, 1, 0, 0, 0, 0, 0},
		"exit_stream_bytes_interactive": {0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		"exit_stream_bytes_p2p":         {0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
		"exit_stream_bytes_other":       {0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		// The relay's own circuit (IsOriginFlag) is neither; the middle one is not counted.
		"exit_circuits":  {1},
		"entry_circuits": {1},
		// Two client connections (1 and 4 connections on their address,
		// 45.2 s and 3600.21 s old); the relay peer is left out.
		"entry_connections":           {2},
		"entry_client_ip_connections": {1, 0, 0, 1, 0, 0, 0, 0},
		"entry_connection_lifetime":   {0, 0, 1, 0, 0, 0, 1, 0, 0},
		// v3 only: one added, one obsolete; the v2 store is left out.
		"hsdir_v3_stores":  {1, 1},
		"hsdir_v3_fetches": {2, 1},
	}
	for _, s := range stats.Catalogue() {
		if _, ok := want[s.Name]; !ok {
			t.Errorf("statistic %s has no expectation in this test", s.Name)
		}
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
	if p.Malformed() != 1 {
		t.Errorf("Malformed() = %d, want 1 (the cut-short BW line)", p.Malformed())
	}
	if p.Evictions() != 0 {
		t.Errorf("Evictions() = %d", p.Evictions())
	}
}

func TestCompileCountsInRoundOrder(t *testing.T) {
	specs := []round.StatisticSpec{
		mustResolve(t, "exit_streams_by_port", nil),
		mustResolve(t, "relay_bytes_written", nil),
		mustResolve(t, "exit_stream_bytes_web", []string{"0", "1000"}),
		mustResolve(t, "onion_rend1_cells", nil),
	}
	p, err := stats.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	if p.NumCounters() != 4+1+2+6 {
		t.Fatalf("NumCounters() = %d", p.NumCounters())
	}
	if got := p.Events(); !slices.Equal(got, []string{"BW", "PRIVCOUNT_STREAM_ENDED"}) {
		t.Errorf("Events() = %v", got)
	}
	if got := p.Metrics(); !slices.Equal(got, []string{"tor_relay_rend1_total"}) {
		t.Errorf("Metrics() = %v", got)
	}
	c := make(counts, p.NumCounters())
	for _, l := range []string{
		"650 PRIVCOUNT_STREAM_ENDED 7 3 12 443 480 20 1795315990.1 1795316003.4 www.example.com 203.0.113.80",
		"650 PRIVCOUNT_STREAM_ENDED 7 3 13 6881 5000 0 1795315990.1 1795316003.4 203.0.113.9 203.0.113.9",
		"BW 10 20", // as torctl's Event.Line gives it, without "650 "
		"650 PRIVCOUNT_STREAM_ENDED 7 3 14 80 1500 0 1795315990.1 1795316003.4 example.com 203.0.113.80",
		stats.MetricEvent + ` tor_relay_rend1_total{action="success"} 7`,
		"650 " + stats.MetricEvent + ` tor_relay_rend1_total{action="circuit_dead"} 2`,
	} {
		p.Count([]byte(l), c)
	}
	want := counts{
		2, 0, 1, 0, // exit_streams_by_port: web, interactive, p2p, other
		20,   // relay_bytes_written
		1, 1, // exit_stream_bytes_web [0,1000), [1000,inf)
		7, 0, 0, 0, 2, 0, // onion_rend1_cells
	}
	if !slices.Equal(c, want) {
		t.Errorf("counters = %v, want %v", c, want)
	}
}

func mustResolve(t *testing.T, name string, bins []string) round.StatisticSpec {
	t.Helper()
	s, err := stats.Resolve(name, bins)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCompileRejects(t *testing.T) {
	for _, tc := range []struct {
		specs   []round.StatisticSpec
		wantErr string
	}{
		{[]round.StatisticSpec{{Name: "exit_stream"}}, `unknown statistic "exit_stream"; closest: exit_streams`},
		{[]round.StatisticSpec{{Name: "relay_bytes_read"}, {Name: "relay_bytes_read"}}, "listed twice"},
		{[]round.StatisticSpec{{Name: "relay_bytes_read", Bins: []string{"a", "b"}}}, "single counter"},
		{[]round.StatisticSpec{{Name: "exit_streams_by_port", Bins: []string{"web", "other"}}}, "not its categories"},
		{[]round.StatisticSpec{{Name: "exit_streams_by_port"}}, "not its categories"},
		{[]round.StatisticSpec{{Name: "or_connection_lifetime"}}, "no bins"},
		{[]round.StatisticSpec{{Name: "or_connection_lifetime", Bins: []string{"0", "10"}}}, "not a range"},
		{[]round.StatisticSpec{{Name: "or_connection_lifetime", Bins: []string{"[0,10)", "[11,inf)"}}}, "contiguous"},
	} {
		_, err := stats.Compile(tc.specs)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Compile(%+v) error = %v, want one mentioning %q", tc.specs, err, tc.wantErr)
		}
	}
}

// Lifetimes are measured on the times the source gives.
func TestConnectionLifetimeUsesEventTimes(t *testing.T) {
	p, err := stats.Compile([]round.StatisticSpec{mustResolve(t, "or_connection_lifetime", []string{"0", "60", "3600"})})
	if err != nil {
		t.Fatal(err)
	}
	c := make(counts, p.NumCounters())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, d := range []time.Duration{30 * time.Second, 2 * time.Hour, 59 * time.Minute} {
		id := fmt.Sprint(1000 + i)
		p.CountAt(t0, []byte("650 ORCONN 192.0.2.1:443 NEW ID="+id), c)
		p.CountAt(t0.Add(d), []byte("650 ORCONN 192.0.2.1:443 CLOSED REASON=DONE NCIRCS=1 ID="+id), c)
	}
	// A clock that steps back gives a lifetime of zero, not a huge one.
	p.CountAt(t0, []byte("650 ORCONN 192.0.2.1:443 NEW ID=2000"), c)
	p.CountAt(t0.Add(-time.Hour), []byte("650 ORCONN 192.0.2.1:443 CLOSED NCIRCS=1 ID=2000"), c)
	if want := (counts{2, 1, 1}); !slices.Equal(c, want) {
		t.Errorf("lifetimes = %v, want %v", c, want)
	}
}

func TestMalformedLinesAreCountedNotCounted(t *testing.T) {
	p, err := stats.Compile(allSpecs(t))
	if err != nil {
		t.Fatal(err)
	}
	c := make(counts, p.NumCounters())
	for _, l := range []string{
		"650 BW 12",
		"650 BW x 12",
		"650 ORCONN",
		"650 ORCONN $XYZ~bad CONNECTED ID=3",
		"650 CONN_BW ID=1 TYPE=EXIT READ=-5 WRITTEN=1",
		"650 PRIVCOUNT_STREAM_ENDED 1 2 3 99999 1 1 1.0 2.0 h 192.0.2.1",
		"650 PRIVCOUNT_HSDIR_CACHE_STORE HiddenServiceVersionNumber=3",
		"650 " + stats.MetricEvent + " tor_relay_rend1_total{action=\"success\"} -1",
		"650 " + stats.MetricEvent + " tor_relay_rend1_total{action=\"success} 1",
	} {
		p.Count([]byte(l), c)
	}
	// Unknown and unneeded events are not malformed.
	for _, l := range []string{"", "650", "garbage", "650 NEWCONSENSUS", "650 SOME_FUTURE_EVENT a b c", "650 CIRC 1 BUILT"} {
		p.Count([]byte(l), c)
	}
	if p.Malformed() != 9 {
		t.Errorf("Malformed() = %d, want 9", p.Malformed())
	}
	for i, v := range c {
		if v != 0 {
			t.Errorf("counter %d = %d after only malformed lines", i, v)
		}
	}
}

// The synthetic workload is made of well-formed events that reach every
// statistic it simulates.
func TestSyntheticTraceIsWellFormed(t *testing.T) {
	specs := allSpecs(t)
	p, err := stats.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	c := make(counts, p.NumCounters())
	for _, l := range source.SyntheticTrace(50000, 1) {
		p.Count(l, c)
	}
	if p.Malformed() != 0 {
		t.Errorf("Malformed() = %d on a synthetic trace", p.Malformed())
	}
	i := 0
	for _, s := range specs {
		var sum uint64
		for _, v := range c[i : i+s.Counters()] {
			sum += v
		}
		i += s.Counters()
		if sum == 0 {
			t.Errorf("%s counted nothing in 50,000 synthetic events", s.Name)
		}
	}
}

package stats_test

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/privstats/privstats/stats"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

func TestCatalogueDeclaresEveryStatisticCompletely(t *testing.T) {
	cat := stats.Catalogue()
	if len(cat) < 20 {
		t.Fatalf("catalogue has %d statistics", len(cat))
	}
	if !slices.IsSortedFunc(cat, func(a, b stats.Statistic) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("catalogue is not sorted by name")
	}
	// 7,000 collectors, about one per Tor relay and the largest deployment
	// privstats plans for, must not overflow ±2^62 even before noise
	// (docs/arithmetic.md, "Overflow bound").
	const collectors = 7000
	for _, s := range cat {
		t.Run(s.Name, func(t *testing.T) {
			if !snakeCase.MatchString(s.Name) {
				t.Errorf("name is not snake_case")
			}
			if len(s.Description) < 30 || s.Unit == "" {
				t.Errorf("description %q or unit %q missing", s.Description, s.Unit)
			}
			// Plots label a histogram's bin axis with BinUnit, so every
			// numeric histogram needs one and nothing else may have one.
			if s.Bins.IsNumeric() != (s.BinUnit != "") {
				t.Errorf("bins %v with bin unit %q", s.Bins, s.BinUnit)
			}
			if stats.Unit(s.Name) != s.Unit || stats.BinUnit(s.Name) != s.BinUnit {
				t.Errorf("Unit/BinUnit(%q) = %q/%q, catalogue says %q/%q", s.Name, stats.Unit(s.Name), stats.BinUnit(s.Name), s.Unit, s.BinUnit)
			}
			switch s.Source {
			case stats.SourceMetricsPort:
				if !s.IsMetric() || len(s.Events) != 0 {
					t.Errorf("MetricsPort statistic with metric %q, events %v", s.Metric, s.Events)
				}
			case stats.SourceControl, stats.SourceTestNetwork, stats.SourcePrivCount:
				if s.IsMetric() || len(s.Events) != 1 {
					t.Errorf("control-port statistic with metric %q, events %v", s.Metric, s.Events)
				}
			default:
				t.Errorf("unknown source %q", s.Source)
			}
			if s.Sensitivity <= 0 || s.Estimate <= 0 || s.MaxPerCollector == 0 {
				t.Errorf("sensitivity %v, estimate %v, max per collector %d must be positive", s.Sensitivity, s.Estimate, s.MaxPerCollector)
			}
			if s.BinsTouched < 1 || s.BinsTouched > int64(s.Bins.Len()) {
				t.Errorf("bins touched %d, but it has %d bins", s.BinsTouched, s.Bins.Len())
			}
			if float64(s.MaxPerCollector)*collectors >= math.Ldexp(1, 62) {
				t.Errorf("max per collector %d × %d collectors overflows 2^62", s.MaxPerCollector, collectors)
			}
			got, ok := stats.Lookup(s.Name)
			if !ok || got.Name != s.Name {
				t.Errorf("Lookup(%q) = %q, %v", s.Name, got.Name, ok)
			}
		})
	}
	if _, ok := stats.Lookup("no_such_statistic"); ok {
		t.Error("Lookup found a statistic that does not exist")
	}
}

func TestControlEventsAreWhatTheCatalogueNeeds(t *testing.T) {
	got := stats.ControlEvents()
	want := []string{"BW", "CONN_BW", "ORCONN", "PRIVCOUNT_CONNECTION_CLOSE", "PRIVCOUNT_HSDIR_CACHE_FETCH",
		"PRIVCOUNT_HSDIR_CACHE_STORE", "PRIVCOUNT_STREAM_ENDED", "PRIVCOUNT_CIRCUIT_CLOSE"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ControlEvents() = %v, want %v", got, want)
	}
}

func TestResolveGivesCatalogueBins(t *testing.T) {
	for _, tc := range []struct {
		name string
		bins []string
	}{
		{"relay_bytes_read", nil},
		{"exit_streams_by_port", []string{"web", "interactive", "p2p", "other"}},
		{"or_connection_lifetime", []string{"[0,1)", "[1,10)", "[10,60)", "[60,300)", "[300,1800)",
			"[1800,3600)", "[3600,21600)", "[21600,86400)", "[86400,inf)"}},
	} {
		spec, err := stats.Resolve(tc.name, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := stats.Lookup(tc.name)
		if spec.Name != tc.name || !slices.Equal(spec.Bins, tc.bins) || spec.MaxPerCollector != st.MaxPerCollector {
			t.Errorf("Resolve(%s) = %+v, want bins %q and max %d", tc.name, spec, tc.bins, st.MaxPerCollector)
		}
		if spec.Sigma != 0 || spec.Epsilon != 0 || spec.Delta != 0 {
			t.Errorf("Resolve(%s) filled the privacy budget: %+v", tc.name, spec)
		}
	}
}

func TestResolveOverridesNumericBins(t *testing.T) {
	for _, tc := range []struct {
		override []string
		want     []string
	}{
		{[]string{"0", "1024", "65536"}, []string{"[0,1024)", "[1024,65536)", "[65536,inf)"}},
		{[]string{" 512 "}, []string{"[512,inf)"}},
		{[]string{"[0,1024)", "[1024, 65536)", "[65536,+Inf)"}, []string{"[0,1024)", "[1024,65536)", "[65536,inf)"}},
		// Range labels may close the last bin: larger values are not counted.
		{[]string{"[100,200)", "[200,300)"}, []string{"[100,200)", "[200,300)"}},
	} {
		spec, err := stats.Resolve("exit_stream_bytes_web", tc.override)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.override, err)
			continue
		}
		if !slices.Equal(spec.Bins, tc.want) {
			t.Errorf("Resolve(%q) bins = %q, want %q", tc.override, spec.Bins, tc.want)
		}
		// Labels round-trip: resolving a spec's own labels changes nothing.
		again, err := stats.Resolve("exit_stream_bytes_web", spec.Bins)
		if err != nil || !slices.Equal(again.Bins, spec.Bins) {
			t.Errorf("Resolve(its own labels %q) = %q, %v", spec.Bins, again.Bins, err)
		}
	}
}

func TestResolveRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		override []string
		wantErr  string
	}{
		{"exit_streams_by_port", []string{"web", "other"}, "cannot be overridden"},
		{"relay_bytes_read", []string{"0", "10"}, "single counter"},
		{"exit_stream_bytes_web", []string{"0", "[10,20)"}, "mix edges"},
		{"exit_stream_bytes_web", []string{"0", "10", "10"}, "must increase"},
		{"exit_stream_bytes_web", []string{"10", "5"}, "must increase"},
		{"exit_stream_bytes_web", []string{"-1"}, "not a range"},
		{"exit_stream_bytes_web", []string{"[0,10)", "[20,30)"}, "contiguous"},
		{"exit_stream_bytes_web", []string{"[0,inf)", "[10,20)"}, "open-ended"},
		{"exit_stream_bytes_web", []string{"[10,10)"}, "empty"},
		{"exit_stream_bytes_web", []string{"(0,10]"}, "not a range"},
		{"exit_stream_bytes_web", []string{"[a,10)"}, "not a whole number"},
		// Found by FuzzResolveBins: inf stands for an open end, so a bin
		// starting there was labelled "[…,inf)", which does not read back.
		{"exit_stream_bytes_web", []string{"0", "18446744073709551615"}, "below 18446744073709551615"},
		{"exit_stream", nil, "exit_streams"},
		{"relay_bytes", nil, "relay_bytes_read"},
		{"or_conections", nil, "or_connections"},
	} {
		_, err := stats.Resolve(tc.name, tc.override)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Resolve(%s, %q) error = %v, want one mentioning %q", tc.name, tc.override, err, tc.wantErr)
		}
	}
	// Repeating a categorical statistic's own categories is harmless.
	if _, err := stats.Resolve("exit_streams_by_port", []string{"web", "interactive", "p2p", "other"}); err != nil {
		t.Errorf("Resolve with the statistic's own categories: %v", err)
	}
}

func TestPortClasses(t *testing.T) {
	for port, want := range map[uint16]int{
		80: stats.PortWeb, 443: stats.PortWeb, 22: stats.PortInteractive, 23: stats.PortInteractive,
		6667: stats.PortInteractive, 6697: stats.PortInteractive, 6881: stats.PortP2P, 6999: stats.PortP2P,
		51413: stats.PortP2P, 8080: stats.PortOther, 0: stats.PortOther, 65535: stats.PortOther,
	} {
		if got := stats.PortClass(port); got != want {
			t.Errorf("PortClass(%d) = %s, want %s", port, stats.PortClassName(got), stats.PortClassName(want))
		}
	}
}

func TestWriteCatalogue(t *testing.T) {
	var table, js strings.Builder
	if err := stats.WriteCatalogue(&table, false); err != nil {
		t.Fatal(err)
	}
	if err := stats.WriteCatalogue(&js, true); err != nil {
		t.Fatal(err)
	}
	for _, s := range stats.Catalogue() {
		if !strings.Contains(table.String(), s.Name+" ") || !strings.Contains(js.String(), `"name": "`+s.Name+`"`) {
			t.Errorf("%s missing from the catalogue output", s.Name)
		}
	}
	for _, want := range []string{"NAME", "SOURCE", "BINS", "SENSITIVITY", "web|interactive|p2p|other", "edges 0,1,10,60"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if !strings.Contains(js.String(), `"bins": [`) || !strings.Contains(js.String(), `"[86400,inf)"`) {
		t.Error("JSON lacks bin labels")
	}
}

func TestUnitOfUnknownStatistic(t *testing.T) {
	if u := stats.Unit("no_such_statistic"); u != "" {
		t.Errorf("Unit of an unknown statistic = %q, want \"\"", u)
	}
}

package stats_test

import (
	"strings"
	"testing"

	"github.com/privstats/privstats/stats"
)

func TestMetricLineRoundTrip(t *testing.T) {
	var labels []byte
	labels = stats.AppendMetricLabel(labels, "action", "success")
	labels = stats.AppendMetricLabel(labels, "odd", "a \"b\"\\c\nd, e}")
	line := stats.MetricLine(nil, "tor_relay_intro1_total", string(labels), 42)
	want := `650 PRIVSTATS_METRIC tor_relay_intro1_total{action="success",odd="a \"b\"\\c\nd, e}"} 42`
	if string(line) != want {
		t.Fatalf("MetricLine = %s\nwant         %s", line, want)
	}
	var m stats.Metric
	if err := stats.ParseMetricLine(line, &m); err != nil {
		t.Fatal(err)
	}
	if string(m.Name) != "tor_relay_intro1_total" || m.Increase != 42 || string(m.Labels) != string(labels) {
		t.Errorf("parsed %q %q %d", m.Name, m.Labels, m.Increase)
	}
	if v, ok := m.Label("action"); !ok || string(v) != "success" {
		t.Errorf("Label(action) = %q, %v", v, ok)
	}
	if v, ok := m.Label("odd"); !ok || string(v) != `a \"b\"\\c\nd, e}` {
		t.Errorf("Label(odd) = %q, %v", v, ok)
	}
	if _, ok := m.Label("missing"); ok {
		t.Error("Label(missing) found something")
	}

	plain := stats.MetricLine(nil, "tor_relay_load_tcp_exhaustion_total", "", 3)
	if string(plain) != "650 PRIVSTATS_METRIC tor_relay_load_tcp_exhaustion_total 3" {
		t.Errorf("MetricLine without labels = %s", plain)
	}
	if err := stats.ParseMetricLine(append(plain, '\r', '\n'), &m); err != nil || m.Labels != nil || m.Increase != 3 {
		t.Errorf("ParseMetricLine(%s) = %v, %+v", plain, err, m)
	}
}

func TestParseMetricLineRejects(t *testing.T) {
	for _, l := range []string{
		"650 BW 1 2",
		"650 PRIVSTATS_METRIC",
		"650 PRIVSTATS_METRIC 9name 1",
		"650 PRIVSTATS_METRIC name",
		"650 PRIVSTATS_METRIC name 1.5",
		"650 PRIVSTATS_METRIC name -1",
		"650 PRIVSTATS_METRIC name 18446744073709551616",
		"650 PRIVSTATS_METRIC name{a=\"b\" 1",
		"650 PRIVSTATS_METRIC name{a=b} 1",
		"650 PRIVSTATS_METRIC name{=\"b\"} 1",
		"650 PRIVSTATS_METRIC name{a=\"b\"}1",
		"650 PRIVSTATS_METRIC name{a=\"b\\\"} 1",
	} {
		var m stats.Metric
		if err := stats.ParseMetricLine([]byte(l), &m); err == nil {
			t.Errorf("ParseMetricLine(%q) accepted %+v", l, m)
		} else if !strings.HasPrefix(err.Error(), "stats: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

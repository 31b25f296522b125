package source

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/stats"
)

// FuzzParseTraceLine parses arbitrary trace lines. A timed event or a gap
// that parses must read back the same, to the microsecond, once written
// the way Record writes it; an untimed event is the line itself.
//
//	go test ./source -run '^$' -fuzz '^FuzzParseTraceLine$'
func FuzzParseTraceLine(f *testing.F) {
	for _, name := range []string{"sample.trace", "tornet-exit.trace"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		for i, l := range bytes.Split(b, []byte("\n")) {
			if i < 40 {
				f.Add(l)
			}
		}
	}
	for _, l := range []string{"# gap 1795316008.5 1795316010", "# gap 2 1", "1795316008.199 650 BW 1 2",
		"650 BW 1 2\r", "1.0000000001 650-X", "99999999999999 650 BW 1 2", "1. 650 BW", "\t# comment"} {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var tl traceLine
		skip, err := parseTraceLine(line, &tl)
		if skip || err != nil {
			return
		}
		var again traceLine
		switch {
		case tl.isGap:
			if tl.end.Before(tl.at) {
				t.Fatalf("gap %q ends before it starts", line)
			}
			enc := appendUnixTime(append(appendUnixTime([]byte("# gap "), tl.at), ' '), tl.end)
			if _, err := parseTraceLine(enc, &again); err != nil || !again.isGap ||
				!again.at.Equal(tl.at.Truncate(time.Microsecond)) || !again.end.Equal(tl.end.Truncate(time.Microsecond)) {
				t.Fatalf("gap %q written as %q reads back as %+v, %v", line, enc, again, err)
			}
		case tl.timed:
			enc := append(append(appendUnixTime(nil, tl.at), ' '), tl.event...)
			if _, err := parseTraceLine(enc, &again); err != nil || !again.timed ||
				!again.at.Equal(tl.at.Truncate(time.Microsecond)) || !bytes.Equal(again.event, tl.event) {
				t.Fatalf("event %q written as %q reads back as %+v, %v", line, enc, again, err)
			}
		default:
			if !isEventLine(tl.event) || !bytes.Contains(line, tl.event) {
				t.Fatalf("untimed line %q gave event %q", line, tl.event)
			}
		}
	})
}

type bodyTransport []byte

func (b bodyTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{"Content-Type": {"text/plain; version=0.0.4"}},
		Body: io.NopCloser(bytes.NewReader(b))}, nil
}

// FuzzMetricsPort scrapes arbitrary MetricsPort expositions. Every counter
// it extracts must make a metric line that the counting side parses back
// to the same series and value; and an exposition that does not parse is
// reported by line number only, never with the parser's message, which
// may quote one of the relay's counts.
func FuzzMetricsPort(f *testing.F) {
	f.Add([]byte(`# HELP tor_relay_connections_total Total number of connections
# TYPE tor_relay_connections_total gauge
tor_relay_connections_total{type="OR",direction="initiated",state="created",family="ipv4"} 12
tor_relay_connections_total{type="OR",direction="initiated",state="opened",family="ipv4"} 3
# TYPE tor_relay_load_tcp_exhaustion_total counter
tor_relay_load_tcp_exhaustion_total 0
# TYPE tor_relay_traffic_bytes counter
tor_relay_traffic_bytes{direction="read"} 1.5e+09
tor_relay_traffic_bytes{direction="written"} 1234.75
tor_relay_flag{type="Exit"} 1
untyped_total{a="x\"y\\z\n"} 7
`))
	f.Add([]byte("x_total NaN\ny_total -1\nz_total +Inf\nw_total 1.8446744073709552e+19\n"))
	f.Add([]byte("# TYPE a counter\na{b=\"c\"} 12345 1700000000000\na{b=\"c\"} 2\n"))
	f.Add([]byte("bad line 4242\n"))
	const url = "http://metrics.invalid/metrics"
	bad := regexp.MustCompile(`^` + regexp.QuoteMeta(url) + `: (the exposition does not parse at line \d+|exposition larger than \d+ bytes)$`)
	f.Fuzz(func(t *testing.T, body []byte) {
		m := &metricsPortSampler{url: url, client: &http.Client{Transport: bodyTransport(body)}}
		vals, err := m.Sample(context.Background())
		if err != nil {
			if !bad.MatchString(err.Error()) {
				t.Fatalf("scrape error %q says more than where the exposition is bad", err)
			}
			return
		}
		for s, v := range vals {
			line := stats.MetricLine(nil, s.Name, s.Labels, v)
			var got stats.Metric
			if err := stats.ParseMetricLine(line, &got); err != nil || string(got.Name) != s.Name ||
				string(got.Labels) != s.Labels || got.Increase != v {
				t.Fatalf("series %+v = %d makes the line %q, which parses as %+v, %v", s, v, line, got, err)
			}
			if strings.ContainsAny(s.Name, " \n{") {
				t.Fatalf("series name %q", s.Name)
			}
		}
	})
}

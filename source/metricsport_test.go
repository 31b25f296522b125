package source_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
)

// Expositions as tor's MetricsPort writes them, one per scrape.
var scrapes = []string{
	// 0: the baseline.
	`# HELP tor_relay_streams_total Total number of streams
# TYPE tor_relay_streams_total counter
tor_relay_streams_total{type="BEGIN"} 100
tor_relay_streams_total{type="RESOLVE"} 5
# HELP tor_relay_connections Total number of opened connections
# TYPE tor_relay_connections gauge
tor_relay_connections{type="OR",direction="received",state="opened",family="ipv4"} 40
# HELP tor_relay_traffic_bytes Traffic related counters
# TYPE tor_relay_traffic_bytes counter
tor_relay_traffic_bytes{direction="read"} 1000000
`,
	// 1: counters grow, a gauge falls, a new series appears.
	`# TYPE tor_relay_streams_total counter
tor_relay_streams_total{type="BEGIN"} 130
tor_relay_streams_total{type="RESOLVE"} 5
# TYPE tor_relay_connections gauge
tor_relay_connections{type="OR",direction="received",state="opened",family="ipv4"} 35
# TYPE tor_relay_traffic_bytes counter
tor_relay_traffic_bytes{direction="read"} 1500000
# TYPE tor_relay_intro1_total counter
tor_relay_intro1_total{action="success"} 2
`,
	// 2: tor does not answer.
	"",
	// 3: the first scrape after the failure is a new baseline.
	`# TYPE tor_relay_streams_total counter
tor_relay_streams_total{type="BEGIN"} 200
tor_relay_streams_total{type="RESOLVE"} 5
# TYPE tor_relay_traffic_bytes counter
tor_relay_traffic_bytes{direction="read"} 2000000
# TYPE tor_relay_intro1_total counter
tor_relay_intro1_total{action="success"} 2
`,
	// 4: tor restarted: counters start again from zero. An old tor's
	// connection counters, typed gauge, count where they only grow.
	`# TYPE tor_relay_streams_total counter
tor_relay_streams_total{type="BEGIN"} 7
tor_relay_streams_total{type="RESOLVE"} 5
# TYPE tor_relay_traffic_bytes counter
tor_relay_traffic_bytes{direction="read"} 4000
# TYPE tor_relay_intro1_total counter
tor_relay_intro1_total{action="success"} 2
# TYPE tor_relay_connections_total gauge
tor_relay_connections_total{type="OR",direction="received",state="created",family="ipv4"} 10
tor_relay_connections_total{type="OR",direction="received",state="opened",family="ipv4"} 9
`,
}

func TestMetricsPortEmitsIncreases(t *testing.T) {
	var (
		mu       sync.Mutex
		requests int
		done     = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := requests
		requests++
		mu.Unlock()
		if i == len(scrapes) {
			close(done) // every scripted scrape has been processed
		}
		body := scrapes[min(i, len(scrapes)-1)]
		if body == "" {
			http.Error(w, "tor is busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(body))
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, not on loopback", srv.URL)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var evs []event
	var gaps []gap
	errc := make(chan error, 1)
	go func() {
		errc <- source.MetricsPort(srv.URL+"/metrics", 20*time.Millisecond, nil).Run(ctx, nil,
			func(at time.Time, line []byte) {
				mu.Lock()
				evs = append(evs, event{at, string(line)})
				mu.Unlock()
			},
			func(s, e time.Time) {
				mu.Lock()
				gaps = append(gaps, gap{s, e})
				mu.Unlock()
			})
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the source did not scrape every exposition in time")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var lines []string
	for _, e := range evs {
		lines = append(lines, e.line)
	}
	want := []string{
		// scrape 1
		`650 PRIVSTATS_METRIC tor_relay_intro1_total{action="success"} 2`,
		`650 PRIVSTATS_METRIC tor_relay_streams_total{type="BEGIN"} 30`,
		`650 PRIVSTATS_METRIC tor_relay_traffic_bytes{direction="read"} 500000`,
		// scrape 4: labels sorted by name
		`650 PRIVSTATS_METRIC tor_relay_connections_total{direction="received",family="ipv4",state="created",type="OR"} 10`,
		`650 PRIVSTATS_METRIC tor_relay_streams_total{type="BEGIN"} 7`,
		`650 PRIVSTATS_METRIC tor_relay_traffic_bytes{direction="read"} 4000`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("emitted\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// The failed scrape is a gap from the last good scrape (1) to the
	// next (3); the restart is a gap from scrape 3 to scrape 4, since what
	// tor counted before it restarted is lost. Increases are stamped just
	// before the scrape that saw them.
	if len(gaps) != 2 || len(evs) != len(want) {
		t.Fatalf("gaps = %v", gaps)
	}
	scrape1, scrape4 := evs[0].at.Add(time.Nanosecond), evs[3].at.Add(time.Nanosecond)
	if !gaps[0].start.Equal(scrape1) || !gaps[0].end.After(gaps[0].start) || !gaps[1].start.Equal(gaps[0].end) || !gaps[1].end.Equal(scrape4) {
		t.Errorf("gaps %v–%v and %v–%v; scrape 1 at %v, scrape 4 at %v", gaps[0].start, gaps[0].end, gaps[1].start, gaps[1].end, scrape1, scrape4)
	}
}

func TestMetricsPortReportsAnUnreachablePortAsAGap(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/metrics"
	srv.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	evs, gaps, err := collect(t, ctx, source.MetricsPort(url, 20*time.Millisecond, nil))
	if err != nil || len(evs) != 0 {
		t.Fatalf("Run = %v, events %v", err, evs)
	}
	if len(gaps) != 1 || gaps[0].start.Before(start) || gaps[0].end.Sub(gaps[0].start) < 150*time.Millisecond {
		t.Errorf("gaps = %v, want one covering the whole run", gaps)
	}

	_, _, err = collect(t, context.Background(), source.MetricsPort("127.0.0.1:9035/metrics", time.Second, nil))
	if err == nil || !strings.Contains(err.Error(), "not an http:// URL") {
		t.Errorf("Run with a bad URL = %v", err)
	}
}

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

	"fmt"
	"io"
	"testing/synctest"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/stats"
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

// fakeMetricsPort is tor's MetricsPort inside a synctest bubble: counters
// that step at known times, a restart that sets them back to zero, reads
// that fail or answer late. It answers through an in-memory transport, so
// the real MetricsPort client and parser read it and the bubble's clock
// decides every time exactly.
type fakeMetricsPort struct {
	steps []counterStep
	// restarts are when tor restarted: its counters start again from zero.
	restarts []time.Time
	// failAt are read times that fail; delay is how long tor takes to
	// answer a read that arrives at t.
	failAt []time.Time
	delay  func(t time.Time) time.Duration
}

// counterStep is traffic and streams that tor counts at one instant.
type counterStep struct {
	at           time.Time
	bytes, begin uint64
}

// value is what tor's counters say at t: every step since its last restart.
func (f *fakeMetricsPort) value(t time.Time) (bytes, begin uint64) {
	var since time.Time
	for _, r := range f.restarts {
		if !r.After(t) {
			since = r
		}
	}
	for _, s := range f.steps {
		if !s.at.After(t) && !s.at.Before(since) {
			bytes, begin = bytes+s.bytes, begin+s.begin
		}
	}
	return bytes, begin
}

func (f *fakeMetricsPort) RoundTrip(req *http.Request) (*http.Response, error) {
	arrived := time.Now()
	if f.delay != nil {
		select {
		case <-time.After(f.delay(arrived)):
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	resp := &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{}, Request: req}
	if slices.ContainsFunc(f.failAt, arrived.Equal) {
		resp.StatusCode, resp.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
		resp.Body = io.NopCloser(strings.NewReader("tor is busy"))
		return resp, nil
	}
	// Tor writes its counters as it answers.
	bytes, begin := f.value(time.Now())
	resp.Body = io.NopCloser(strings.NewReader(fmt.Sprintf(`# TYPE tor_relay_traffic_bytes counter
tor_relay_traffic_bytes{direction="read"} %d
# TYPE tor_relay_streams_total counter
tor_relay_streams_total{type="BEGIN"} %d
`, bytes, begin)))
	return resp, nil
}

// windowCount counts what a collector would: from the moment it adds the
// window, the events inside [start, end) and the gaps clipped to it.
type windowCount struct {
	mu      sync.Mutex
	win     *source.Window
	program *stats.Program
	counts  plain
	gaps    []source.Window
}

type plain []uint64

func (p plain) Add(i int, n uint64) { p[i] += n }

func newWindowCount(t *testing.T) *windowCount {
	var specs []round.StatisticSpec
	for _, name := range []string{"relay_traffic_bytes", "exit_streams_by_type"} {
		spec, err := stats.Resolve(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	p, err := stats.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	return &windowCount{program: p, counts: make(plain, p.NumCounters())}
}

func (c *windowCount) add(w *source.Windows, win source.Window) {
	c.mu.Lock()
	c.win = &win
	c.mu.Unlock()
	w.Add(win)
}

func (c *windowCount) event(at time.Time, line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.win != nil && !at.Before(c.win.Start) && at.Before(c.win.End) {
		c.program.CountAt(at, line, c.counts)
	}
}

func (c *windowCount) gap(start, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.win == nil || !end.After(c.win.Start) || !start.Before(c.win.End) {
		return
	}
	g := source.Window{Start: start, End: end}
	if g.Start.Before(c.win.Start) {
		g.Start = c.win.Start
	}
	if g.End.After(c.win.End) {
		g.End = c.win.End
	}
	c.gaps = append(c.gaps, g)
}

// The MetricsPort source reads at the window's edges, so what a collector
// counts is exactly the counters' increase over the window, whatever the
// scrape interval: traffic in the first and last second of the window is
// in, traffic just outside it is out. A restart mid-window counts what tor
// counted after it and reports the span it could not see as a gap; a read
// at an edge that fails or comes too late is a gap up to or from that edge,
// never a shifted window; a late read is reported with its lateness.
func TestMetricsPortCountsExactlyTheWindow(t *testing.T) {
	const interval = 10 * time.Second
	for _, tc := range []struct {
		name string
		// adjust changes the fake tor for window [s, e).
		adjust func(f *fakeMetricsPort, s, e time.Time)
		// addAt is when the collector adds the window, after s−30 s.
		addAt time.Duration
		// bytes and begin are the counts inside the window; gaps are
		// the gaps inside it, as offsets from s.
		bytes, begin     uint64
		gaps             [][2]time.Duration
		startLate        time.Duration
		startOK, startKO int
		endLate          time.Duration
		endOK, endKO     int
	}{{
		name:  "reads at both edges",
		bytes: 10 + 100 + 1000 + 10000, begin: 1,
		startOK: 1, endOK: 1,
	}, {
		name: "tor answers 40 ms late",
		adjust: func(f *fakeMetricsPort, s, e time.Time) {
			f.delay = func(time.Time) time.Duration { return 40 * time.Millisecond }
			f.steps = append(f.steps, counterStep{at: e.Add(20 * time.Millisecond), bytes: 1_000_000})
		},
		// The edges counted are 40 ms late, as reported: the traffic
		// 20 ms after the end is in.
		bytes: 10 + 100 + 1000 + 10000 + 1_000_000, begin: 1,
		startOK: 1, startLate: 40 * time.Millisecond, endOK: 1, endLate: 40 * time.Millisecond,
	}, {
		name: "tor restarts mid-window",
		adjust: func(f *fakeMetricsPort, s, e time.Time) {
			// Counted after the read at s+30 s, lost in the restart.
			f.steps = append(f.steps, counterStep{at: s.Add(32 * time.Second), bytes: 50_000})
			f.restarts = []time.Time{s.Add(33 * time.Second)}
			f.steps = append(f.steps, counterStep{at: s.Add(35 * time.Second), bytes: 7})
		},
		bytes: 10 + 100 + 7 + 1000 + 10000, begin: 1,
		gaps:    [][2]time.Duration{{30 * time.Second, 40 * time.Second}},
		startOK: 1, endOK: 1,
	}, {
		name: "the read at the end fails",
		adjust: func(f *fakeMetricsPort, s, e time.Time) {
			f.failAt = []time.Time{e}
		},
		// The last good read was at s+50 s: what came after cannot be
		// placed before or after the end.
		bytes:   10 + 100,
		gaps:    [][2]time.Duration{{50 * time.Second, 60 * time.Second}},
		startOK: 1, endKO: 1,
	}, {
		name: "the read at the start fails",
		adjust: func(f *fakeMetricsPort, s, e time.Time) {
			f.failAt = []time.Time{s}
		},
		bytes: 100 + 1000 + 10000, begin: 1,
		gaps:    [][2]time.Duration{{0, 10 * time.Second}},
		startKO: 1, endOK: 1,
	}, {
		name: "tor is too slow at the start",
		adjust: func(f *fakeMetricsPort, s, e time.Time) {
			f.delay = func(t time.Time) time.Duration {
				if t.Equal(s) {
					return source.MaxEdgeLateness + 500*time.Millisecond
				}
				return 0
			}
		},
		// The read gives up at s+1 s; the next is an interval later.
		bytes: 100 + 1000 + 10000, begin: 1,
		gaps:    [][2]time.Duration{{0, source.MaxEdgeLateness + interval}},
		startKO: 1, endOK: 1,
	}, {
		name:  "the window is added after it started",
		addAt: 45 * time.Second,
		// Reads every interval from s−30 s: the one at s+10 s is the
		// last before the window was added; the traffic since s in it
		// cannot be told from that before s.
		bytes: 100 + 1000 + 10000, begin: 1,
		gaps:    [][2]time.Duration{{0, 10 * time.Second}},
		startKO: 1, endOK: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				s := t0.Add(30 * time.Second)
				e := s.Add(60 * time.Second)
				f := &fakeMetricsPort{steps: []counterStep{
					{at: s.Add(-2 * time.Second), bytes: 1},
					{at: s.Add(-time.Second), begin: 1},
					{at: s.Add(500 * time.Millisecond), bytes: 10}, // the first second
					{at: s.Add(25 * time.Second), bytes: 100},
					{at: e.Add(-3 * time.Second), bytes: 1000, begin: 1}, // a fetch 3 s before the end
					{at: e.Add(-200 * time.Millisecond), bytes: 10000},   // the last second
					{at: e.Add(2 * time.Second), bytes: 100000},
				}}
				if tc.adjust != nil {
					tc.adjust(f, s, e)
				}
				slices.SortFunc(f.steps, func(a, b counterStep) int { return a.at.Compare(b.at) })

				ctx, cancel := context.WithCancel(t.Context())
				w := source.NewWindows()
				c := newWindowCount(t)
				src := source.MetricsPort("http://tor.test/metrics", interval, &http.Client{Transport: f})
				done := make(chan error)
				go func() { done <- src.Run(ctx, w, c.event, c.gap) }()

				addAt := tc.addAt
				if addAt == 0 {
					addAt = time.Second
				}
				time.Sleep(addAt)
				win := source.Window{Start: s, End: e}
				c.add(w, win)
				start, end, err := w.Wait(ctx, win)
				if err != nil {
					t.Fatal(err)
				}
				if now := time.Now(); now.Before(e) {
					t.Errorf("Wait returned at end−%s, before the window ended", e.Sub(now))
				}
				// What is counted when Wait returns is the report.
				c.mu.Lock()
				bytes, begin, gaps := c.counts[0], c.counts[2], slices.Clone(c.gaps)
				c.mu.Unlock()
				if bytes != tc.bytes || begin != tc.begin {
					t.Errorf("counted %d bytes and %d BEGIN streams, want %d and %d", bytes, begin, tc.bytes, tc.begin)
				}
				var want []source.Window
				for _, g := range tc.gaps {
					want = append(want, source.Window{Start: s.Add(g[0]), End: s.Add(g[1])})
				}
				if !slices.Equal(gaps, want) {
					t.Errorf("gaps %v, want %v", offsets(gaps, s), offsets(want, s))
				}
				wantStart := source.EdgeRead{Read: tc.startOK, Late: tc.startLate, Failed: tc.startKO}
				wantEnd := source.EdgeRead{Read: tc.endOK, Late: tc.endLate, Failed: tc.endKO}
				if start != wantStart || end != wantEnd {
					t.Errorf("edge reads: start %+v, end %+v; want %+v, %+v", start, end, wantStart, wantEnd)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func offsets(ws []source.Window, s time.Time) []string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("[s%+v, s%+v)", w.Start.Sub(s), w.End.Sub(s)))
	}
	return out
}

// A source that wraps sampling sources passes the windows on: each of
// them reads at the edges.
func TestWrappedSamplersReadAtTheEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := time.Now().Add(30 * time.Second)
		win := source.Window{Start: s, End: s.Add(time.Minute)}
		f := &fakeMetricsPort{}
		port := func() source.Source {
			return source.MetricsPort("http://tor.test/metrics", 10*time.Second, &http.Client{Transport: f})
		}
		ctx, cancel := context.WithCancel(t.Context())
		w := source.NewWindows()
		done := make(chan error)
		go func() {
			done <- source.Record(io.Discard, source.Merge(port(), port())).Run(ctx, w, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
		}()
		time.Sleep(time.Second)
		w.Add(win)
		start, end, err := w.Wait(ctx, win)
		if err != nil {
			t.Fatal(err)
		}
		if start.Read != 2 || end.Read != 2 {
			t.Errorf("edge reads: start %+v, end %+v; want both sources to read at both", start, end)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Without a sampling source, a collector does not wait for one.
func TestWindowsWithoutSamplersDoNotWait(t *testing.T) {
	w := source.NewWindows()
	win := source.Window{Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}
	w.Add(win)
	start, end, err := w.Wait(t.Context(), win)
	if err != nil || start != (source.EdgeRead{}) || end != (source.EdgeRead{}) {
		t.Errorf("Wait = %+v, %+v, %v; want no reads and no wait", start, end, err)
	}
	w.Remove(win)
}

// BenchmarkEdgeLateness measures how late a MetricsPort read at a window
// edge completes on this machine: the timer's wake-up, an HTTP request on
// loopback and parsing a relay's exposition (about 120 series). Each
// iteration is one window; the figures are over both edges of all of
// them.
//
//	go test -run '^$' -bench EdgeLateness -benchtime 200x ./source
func BenchmarkEdgeLateness(b *testing.B) {
	var body strings.Builder
	for _, fam := range []string{"tor_relay_traffic_bytes", "tor_relay_streams_total", "tor_relay_connections_total", "tor_relay_circuits_total"} {
		fmt.Fprintf(&body, "# TYPE %s counter\n", fam)
		for i := range 30 {
			fmt.Fprintf(&body, "%s{type=\"t%d\",direction=\"read\"} %d\n", fam, i, 1000000+i)
		}
	}
	first := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body.String())
		once.Do(func() { close(first) })
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	w := source.NewWindows()
	done := make(chan error)
	go func() {
		done <- source.MetricsPort(srv.URL+"/metrics", time.Hour, nil).Run(ctx, w, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	}()
	<-first // the source is reading
	var late []time.Duration
	for b.Loop() {
		s := time.Now().Add(20 * time.Millisecond)
		win := source.Window{Start: s, End: s.Add(20 * time.Millisecond)}
		w.Add(win)
		start, end, err := w.Wait(ctx, win)
		if err != nil {
			b.Fatal(err)
		}
		if start.Read != 1 || end.Read != 1 {
			b.Fatalf("edge reads failed: start %+v, end %+v", start, end)
		}
		w.Remove(win)
		late = append(late, start.Late, end.Late)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	slices.Sort(late)
	at := func(q float64) float64 { return float64(late[int(q*float64(len(late)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.5), "p50-late-ms")
	b.ReportMetric(at(0.99), "p99-late-ms")
	b.ReportMetric(at(1), "max-late-ms")
}

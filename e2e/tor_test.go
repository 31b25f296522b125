package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/tally"
	"github.com/privstats/privstats/torctl"
	"github.com/privstats/privstats/tornet"
)

const (
	bodySize  = 1 << 20 // each download through the exit
	downloads = 4
)

// logBuffer keeps one component's log for the failure report.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(l.buf.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestPrivateTorNetwork measures a private Tor network for real: every
// relay gets a collector attached to its control port with SAFECOOKIE and
// to its MetricsPort; a tally server and three keepers (K = 2) run a round
// while the test downloads a known amount through the exit and fetches
// from an onion service. The published totals, with small noise, must cover
// what was driven.
//
// Run it with tor installed (apt-get install -y tor): go test ./e2e
// Set PRIVSTATS_RECORD_TRACE=FILE to keep the exit relay's events as a trace.
func TestPrivateTorNetwork(t *testing.T) {
	if err := tornet.Available(); err != nil {
		t.Skipf("%v — the end-to-end test needs Debian's tor: apt-get install -y tor, then go test ./e2e", err)
	}
	if testing.Short() {
		t.Skip("starts a private Tor network and runs a round: a few minutes")
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()

	body := bytes.Repeat([]byte("privstats"), bodySize/9+1)[:bodySize]
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer web.Close()

	net, err := tornet.Start(ctx, tornet.Options{Dir: t.TempDir(), ServicePort: web.Listener.Addr().(*net.TCPAddr).Port, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Stop()
	t.Logf("tor network ready after %s", time.Since(began).Round(time.Second))

	logs := map[string]*logBuffer{}
	logger := func(name string) *slog.Logger {
		lb := &logBuffer{}
		logs[name] = lb
		return slog.New(slog.NewTextHandler(lb, nil)).With("role", name)
	}
	defer func() {
		if t.Failed() {
			t.Logf("tor logs:\n%s", net.Tail(25))
			for name, lb := range logs {
				t.Logf("--- %s log:\n%s", name, lb.tail(25))
			}
		}
	}()

	relays := net.Relays()

	// Small noise: the test checks ground truth, but the noise is real.
	statistics := []round.StatisticSpec{
		{Name: "exit_bytes", Sigma: 1000},
		{Name: "exit_streams_by_type", Sigma: 1},
		{Name: "relay_bytes_read", Sigma: 1000},
		{Name: "or_connections", Sigma: 1},
		{Name: "onion_rend1_cells", Sigma: 1},
	}
	// Every node enforces a test network's policy: a budget large enough
	// for that small σ, short rounds, and action bounds far below the
	// catalogue's (a day of one user's traffic), set in min_sensitivity.
	// Each statistic declares the largest sensitivity its σ covers at ε = 1,
	// δ = 10⁻⁶, so the round claims no more privacy than it gives.
	pol := policy.Defaults()
	pol.MaxEpsilon, pol.MaxDelta = float64(len(statistics)), 1e-6*float64(len(statistics))
	pol.MinCollectors, pol.MinRoundLength = 1, 0
	pol.MinSensitivity = map[string]float64{}
	for i, s := range statistics {
		spec, err := stats.Resolve(s.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		unit, err := noise.Sigma(1, 1e-6, spec.BinsTouched, 1)
		if err != nil {
			t.Fatal(err)
		}
		spec.Sigma, spec.Epsilon, spec.Delta = s.Sigma, 1, 1e-6
		spec.Sensitivity = 0.99 * s.Sigma / unit // σ grows in proportion to L∞
		pol.MinSensitivity[s.Name] = spec.Sensitivity
		statistics[i] = spec
	}
	check := func(cfg *round.Config, now time.Time) error { return pol.Check(cfg, nil, now) }
	// One collector per relay: collector i watches relays[i].
	d, err := deploytest.Start(ctx, deploytest.Options{
		Dir: t.TempDir(), Keepers: 3, Collectors: len(relays),
		Tally: tally.Options{
			HTTPListen: "127.0.0.1:0", Series: "tornet", Rounds: 1, RoundLength: 60 * time.Second, SetupTime: 5 * time.Second,
			Threshold: 2, Weights: noise.Weights{Default: 1}, MinCollectors: len(relays),
			Epsilon: float64(len(statistics)), Delta: 1e-6 * float64(len(statistics)), Statistics: statistics, Policy: check,
		},
		Keeper: func(_ int, o *keeper.Options) { o.Policy = check },
		Collector: func(i int, o *collector.Options) {
			r := relays[i]
			o.Policy = check
			o.Source = source.Merge(
				source.Control(source.ControlOptions{Address: r.ControlAddr, CookieFile: r.CookieFile,
					AllowedAuth: []torctl.AuthMethod{torctl.AuthSafeCookie}, Logger: logger("control-" + r.Name)}),
				source.MetricsPort("http://"+r.MetricsAddr+"/metrics", time.Second, nil),
			)
			if path := os.Getenv("PRIVSTATS_RECORD_TRACE"); path != "" && r.Role == tornet.Exit {
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				o.Source = source.Record(f, o.Source)
			}
		},
		Logger: func(role string, i int) *slog.Logger {
			switch role {
			case "keeper":
				return logger(fmt.Sprintf("keeper%d", i+1))
			case "collector":
				return logger("collector-" + relays[i].Name)
			}
			return logger(role)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	server := d.Tally
	collectorFP := map[*tornet.Node]string{}
	for i, r := range relays {
		collectorFP[r] = d.CollectorIDs[i].Fingerprint
	}

	// Wait for the window, then drive known traffic inside it.
	if _, err := d.WaitStatus(ctx, "the round's window to open", func(st tally.Status) bool { return st.Phase == round.PhaseCollecting }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	for i := range downloads {
		got, err := net.HTTPGet(ctx, web.URL+"/")
		if err != nil || got != bodySize {
			t.Fatalf("download %d through the exit: %d bytes, %v", i, got, err)
		}
	}
	if onion := net.OnionService(); onion != nil {
		if _, err := net.HTTPGet(ctx, fmt.Sprintf("http://%s:%d/", onion.OnionAddress, tornet.OnionPort)); err != nil {
			t.Errorf("onion fetch: %v", err)
		}
	}
	t.Logf("drove %d × %d bytes through the exit and one onion fetch", downloads, bodySize)
	// A relay restarted mid-round: its collector loses the control port
	// for a while, reports that as a gap, and its MetricsPort counters
	// start again from zero.
	restarted := net.Node("middle0")
	restartBegan := time.Now()
	if err := net.Restart(ctx, restarted); err != nil {
		t.Fatal(err)
	}
	restartDone := time.Now()
	if _, phase, _ := server.Snapshot(); phase != round.PhaseCollecting {
		t.Fatalf("the window closed (phase %s) before %s was back; lengthen RoundLength", phase, restarted.Name)
	}

	published, err := d.WaitOutcomes(ctx, 1)
	if err != nil {
		t.Fatalf("no outcome: %v", err)
	}
	path := published[0].Path
	o, err := outcome.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := outcome.Verify(o); err != nil {
		t.Fatalf("outcome does not verify: %v", err)
	}
	if len(o.Refusals) != 0 {
		t.Errorf("nodes refused the round under the test policy: %v", o.Refusals)
	}
	if o.Collectors.Count != len(relays) {
		t.Errorf("%d collectors reported, want all %d relays", o.Collectors.Count, len(relays))
	}
	// Other collectors may report gaps too (a MetricsPort scrape that
	// times out on a busy machine is one), so only the restarted relay's
	// are checked.
	covered := false
	for _, r := range relays {
		for _, g := range o.Collectors.Gaps[collectorFP[r]] {
			t.Logf("%s: gap %s – %s", r.Name, g.Start.Format(time.TimeOnly), g.End.Format(time.TimeOnly))
			if r == restarted && !g.Start.After(restartDone) && !g.End.Before(restartBegan) {
				covered = true
			}
		}
	}
	if !covered {
		t.Errorf("the collector of %s reported no gap overlapping its restart (%s – %s)",
			restarted.Name, restartBegan.Format(time.TimeOnly), restartDone.Format(time.TimeOnly))
	}
	bin := func(stat, label string) outcome.Bin {
		for _, s := range o.Statistics {
			for _, b := range s.Bins {
				if s.Name == stat && b.Label == label {
					t.Logf("%s/%s = %d, 95%% interval [%.0f, %.0f]", stat, label, b.NoisyTotal, b.CI95Low, b.CI95High)
					return b
				}
			}
		}
		t.Fatalf("outcome has no %s/%s", stat, label)
		return outcome.Bin{}
	}
	driven := float64(downloads * bodySize)
	// plausible checks that a published total is consistent with a true
	// value in [lo, hi]. It allows 4σ of noise rather than the 95% interval,
	// which misses its true value one time in twenty by design: a test must
	// not fail that often.
	plausible := func(stat, label string, lo, hi float64) {
		t.Helper()
		b := bin(stat, label)
		var sigma float64
		for _, s := range o.Statistics {
			if s.Name == stat {
				sigma = s.TotalSigma
			}
		}
		if v := float64(b.NoisyTotal); v+4*sigma < lo || v-4*sigma > hi {
			t.Errorf("%s/%s = %d (σ %.3g), want a true value in [%.0f, %.0f]", stat, label, b.NoisyTotal, sigma, lo, hi)
		}
	}
	// The exit read each body from the web server and wrote the requests:
	// its exit bytes are the driven amount plus HTTP overhead.
	plausible("exit_bytes", "total", driven, 1.1*driven+64<<10)
	// One BEGIN per download, and a few of tor's own at most.
	plausible("exit_streams_by_type", "begin", downloads, downloads+10)
	// Every body crossed three relays (exit, middle, guard), each reading it.
	plausible("relay_bytes_read", "total", 3*driven, 100*driven)
	for _, label := range []string{"inbound_client", "inbound_relay", "outbound"} {
		plausible("or_connections", label, 0, 1000)
	}
	bin("onion_rend1_cells", "success")
	t.Logf("end to end in %s", time.Since(began).Round(time.Second))
}

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
	"strconv"
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
	bodySize  = 1 << 20 // each download through the exit, unless ?n= says otherwise
	downloads = 4
)

// TestPrivateTorNetwork measures a private Tor network for real: every
// relay gets a collector attached to its control port with SAFECOOKIE and
// to its MetricsPort (read every 10 s, the default); a tally server and
// three keepers (K = 2) run a round while the test downloads a known
// amount through the exit, fetches from an onion service and restarts a
// relay. The published totals, with small noise, must cover what was
// driven. Traffic also runs just before the window, in its first second
// and in its last seconds: each relay's MetricsPort bytes for the round
// must equal its BW events' within the bytes of one BW second at each
// edge, and the exit's BEGIN streams must include the one opened 3 s
// before the end. Last, the exit's MetricsPort is read at the edges of
// short windows to measure how late edge reads complete on real tor.
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

	body := bytes.Repeat([]byte("privstats"), 4*bodySize/9+1)[:4*bodySize]
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n <= 0 || n > len(body) {
			n = bodySize
		}
		w.Write(body[:n])
	}))
	defer web.Close()

	net, err := tornet.Start(ctx, tornet.Options{Dir: t.TempDir(), ServicePort: web.Listener.Addr().(*net.TCPAddr).Port, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Stop()
	t.Logf("tor network ready after %s", time.Since(began).Round(time.Second))

	logs := map[string]*deploytest.Log{}
	logger := func(name string) *slog.Logger {
		lb := &deploytest.Log{}
		logs[name] = lb
		return slog.New(slog.NewTextHandler(lb, nil)).With("role", name)
	}
	defer func() {
		if t.Failed() {
			t.Logf("tor logs:\n%s", net.Tail(25))
			for name, lb := range logs {
				t.Logf("--- %s log:\n%s", name, lb.Tail(25))
			}
		}
	}()

	relays := net.Relays()

	// Small noise: the test checks ground truth, but the noise is real,
	// and no smaller than every node accepts (noise.MinCollectorSigma).
	statistics := []round.StatisticSpec{
		{Name: "exit_bytes", Sigma: 1000},
		{Name: "exit_streams_by_type", Sigma: noise.MinCollectorSigma},
		{Name: "relay_bytes_read", Sigma: 1000},
		{Name: "relay_bytes_written", Sigma: 1000},
		{Name: "relay_traffic_bytes", Sigma: 1000},
		{Name: "or_connections", Sigma: noise.MinCollectorSigma},
		{Name: "onion_rend1_cells", Sigma: noise.MinCollectorSigma},
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
	announced := make(chan *round.Config, len(relays))
	truth := make([]*relayTruth, len(relays))
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
			o.Record = func(cfg *round.Config) error { announced <- cfg; return nil }
			// Kept reading after the round, for the BW seconds that
			// straddle its end.
			o.ExitWhenFinished = false
			truth[i] = &relayTruth{src: source.Merge(
				source.Control(source.ControlOptions{Address: r.ControlAddr, CookieFile: r.CookieFile,
					AllowedAuth: []torctl.AuthMethod{torctl.AuthSafeCookie}, Logger: logger("control-" + r.Name)}),
				source.MetricsPort("http://"+r.MetricsAddr+"/metrics", 0, nil),
			)}
			o.Source = truth[i]
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

	// Drive known traffic before, inside and at the edges of the window.
	var cfg *round.Config
	select {
	case cfg = <-announced:
	case <-time.After(time.Minute):
		t.Fatalf("no round announced after a minute: %s", server.Status().NotAnnounced)
	}
	exitNode := net.Node("exit0")
	if exitNode == nil {
		t.Fatal("the network has no exit0")
	}
	var (
		mu       sync.Mutex
		fetched  int64 // through the exit, all told
		inside   int64 // in fetches that began after the window's first second and ended before its last
		inWindow int   // streams through the exit opened inside the window
	)
	fetch := func(what string, n int) {
		began := time.Now()
		got, err := net.HTTPGet(ctx, fmt.Sprintf("%s/?n=%d", web.URL, n))
		ended := time.Now()
		if err != nil || got != int64(n) {
			t.Errorf("%s through the exit: %d bytes, %v", what, got, err)
			return
		}
		t.Logf("%s: %d bytes through the exit from start%+.1fs to start%+.1fs (end is start+%s)", what, n,
			began.Sub(cfg.Start).Seconds(), ended.Sub(cfg.Start).Seconds(), cfg.End.Sub(cfg.Start))
		mu.Lock()
		defer mu.Unlock()
		fetched += got
		if !began.Before(cfg.Start) && began.Before(cfg.End) {
			inWindow++
		}
		if began.After(cfg.Start.Add(time.Second)) && ended.Before(cfg.End.Add(-time.Second)) {
			inside += got
		}
	}
	sleepUntil := func(at time.Time) {
		if d := time.Until(at); d < 0 {
			t.Logf("running %s late", -d)
		} else {
			time.Sleep(d)
		}
	}
	sleepUntil(cfg.Start.Add(-3 * time.Second))
	fetch("before the window", bodySize)
	sleepUntil(cfg.Start.Add(300 * time.Millisecond))
	fetch("in the window's first second", bodySize)
	for i := range downloads {
		fetch(fmt.Sprintf("download %d", i), bodySize)
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
	// A working circuit for the last seconds, then a 4 MiB fetch that
	// begins 3 s before the end and a 1 MiB one in the last second.
	sleepUntil(cfg.End.Add(-10 * time.Second))
	fetch("a small fetch to ready a circuit", 1000)
	sleepUntil(cfg.End.Add(-3 * time.Second))
	var last sync.WaitGroup
	last.Go(func() { fetch("3 s before the end", 4*bodySize) })
	sleepUntil(cfg.End.Add(-800 * time.Millisecond))
	last.Go(func() { fetch("in the window's last second", bodySize) })
	last.Wait()

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
	driven := float64(inside)
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
	plausible("exit_bytes", "total", driven, 1.1*float64(fetched)+64<<10)
	// One BEGIN per fetch in the window, and a few of tor's own at most.
	plausible("exit_streams_by_type", "begin", float64(inWindow), float64(inWindow+10))
	// Every body crossed three relays (exit, middle, guard), each reading it.
	plausible("relay_bytes_read", "total", 3*driven, 100*driven)
	for _, label := range []string{"inbound_client", "inbound_relay", "outbound"} {
		plausible("or_connections", label, 0, 1000)
	}
	bin("onion_rend1_cells", "success")

	// Each relay's MetricsPort bytes against its BW events for the
	// round, and the exit's BEGIN streams against the fetches: what the
	// collectors counted, un-noised. A relay whose collector reported a
	// gap (the restarted one) lost some of each, differently.
	// The BW seconds that straddle the end are needed too.
	sleepUntil(cfg.End.Add(2 * time.Second))
	var traffic [2]uint64 // relay_traffic_bytes read, written, over all relays
	for i, r := range relays {
		w, err := truth[i].window(cfg.Start, cfg.End)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		traffic[0] += w.metricRead
		traffic[1] += w.metricWritten
		gaps := len(o.Collectors.Gaps[collectorFP[r]])
		t.Logf("%s: read MetricsPort %d, BW %d (edges %d); written MetricsPort %d, BW %d (edges %d); BEGIN %d; %d gaps",
			r.Name, w.metricRead, w.bwRead, w.edgeRead, w.metricWritten, w.bwWritten, w.edgeWritten, w.begin, gaps)
		if gaps > 0 {
			if r == exitNode {
				t.Errorf("the exit's collector reported a gap: its window cannot be checked")
			}
			continue
		}
		if !withinEdges(w.metricRead, w.bwRead, w.edgeRead) || !withinEdges(w.metricWritten, w.bwWritten, w.edgeWritten) {
			t.Errorf("%s: MetricsPort bytes (read %d, written %d) differ from BW's (read %d, written %d) by more than the BW seconds at the edges (%d, %d)",
				r.Name, w.metricRead, w.metricWritten, w.bwRead, w.bwWritten, w.edgeRead, w.edgeWritten)
		}
		if r == exitNode && w.begin != uint64(inWindow) {
			t.Errorf("the exit counted %d BEGIN streams in the window, want the %d fetches begun in it (one 3 s before the end)", w.begin, inWindow)
		}
	}
	plausible("relay_traffic_bytes", "read", float64(traffic[0]), float64(traffic[0]))
	plausible("relay_traffic_bytes", "written", float64(traffic[1]), float64(traffic[1]))
	for _, lb := range logs {
		for _, line := range strings.Split(lb.String(), "\n") {
			if strings.Contains(line, "sampling sources read at the window's edges") {
				t.Log(line)
			}
		}
	}

	// How late reads at window edges complete on real tor.
	late := measureEdgeReads(ctx, t, exitNode.MetricsAddr, 100)
	q := func(f float64) time.Duration { return late[int(f*float64(len(late)-1))] }
	t.Logf("edge reads of the exit's MetricsPort over %d edges: median %s, p99 %s, max %s late", len(late), q(0.5), q(0.99), q(1))
	t.Logf("end to end in %s", time.Since(began).Round(time.Second))
}

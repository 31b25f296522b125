// Package loadtest measures a privstats deployment at scale. It starts a
// tally server and share keepers as separate processes of the privstats
// binary, with real YAML configs and identity keys in a directory of their
// own, and simulates many collectors in its own process: each is a real
// collector (package collector) with its own identity and TLS client
// certificate, drawing real discrete Gaussian noise, sealing real HPKE
// bundles and signing its messages, fed by an event source whose counts
// the load test chose, so it can check the published totals against the
// truth. It times each phase of the round, reads what every process cost
// (CPU, peak RSS, disk writes), counts the bytes through the tally server
// and what it left on disk.
//
// It is a measuring tool, not a test of privacy: its rounds measure one
// synthetic histogram with a sensitivity of one stream, and with Exact no
// noise at all. Timings depend on the machine and on what else runs on it.
package loadtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

// Options shape a load test.
type Options struct {
	// Binary is the privstats executable the tally server and keepers run.
	Binary string
	// Collectors, Counters, Keepers (N), Threshold (K; default N/2+1) and
	// Rounds size the deployment.
	Collectors, Counters, Keepers, Threshold, Rounds int
	// Exact makes every σ zero (a test policy: allow_zero_noise), so each
	// published total must equal the truth exactly; otherwise each must be
	// within 5σ of it.
	Exact bool
	// Window is each round's counting window, SetupTime the time from
	// announcement to the window's start and ReportGrace how long after
	// the window collectors may report; zero scales them with
	// Collectors × Counters (DefaultWindow, DefaultSetupTime,
	// DefaultReportGrace).
	Window, SetupTime, ReportGrace time.Duration
	// MinCollectors is the round's min_collectors; zero means 90% of the
	// collectors (all of them below 10).
	MinCollectors int
	// Dir keeps the keys, configs, data and logs; empty means a temporary
	// directory, removed afterwards.
	Dir string
	// Progress, when set, is told what the load test is doing.
	Progress func(format string, args ...any)
}

// rampConcurrency is how many collectors may be waiting for their first
// answer from the tally server at once while the load generator starts
// them.
const rampConcurrency = 32

// DefaultWindow is the window the load test gives a round of c collectors
// × k counters: long enough for the load generator to send every stream.
func DefaultWindow(c, k int) time.Duration {
	return 10*time.Second + time.Duration(float64(c)*float64(k)*2*float64(time.Microsecond)).Round(time.Second)
}

// DefaultSetupTime is the setup time the load test gives a round of c
// collectors × k counters: every collector must draw its noise, seal a
// bundle per keeper and have it acknowledged before the window opens.
func DefaultSetupTime(c, k int) time.Duration {
	return 10*time.Second + time.Duration(float64(c)*float64(k)*40*float64(time.Microsecond)).Round(time.Second)
}

// DefaultReportGrace is the report grace the load test gives c collectors
// whose reports' commitments each take commit to compute. A report carries
// a Pedersen commitment costing a scalar multiplication per counter (about
// 60 ms at 1,000 counters): spread over the relays' own machines in a
// deployment, here it is all the load generator's to do before the grace
// runs out, on a machine it may share, so the grace allows three times the
// CPU time of all of them.
func DefaultReportGrace(c int, commit time.Duration) time.Duration {
	return 15*time.Second + (3 * time.Duration(c) * commit).Round(time.Second)
}

// commitCost measures what one report's commitment over k counters costs
// this machine, with the collector's own code (the fastest of three).
func commitCost(k int) (time.Duration, error) {
	values := make([]uint64, k)
	best := time.Duration(math.MaxInt64)
	for range 3 {
		masks, err := commit.NewMasks(rand.Reader, k)
		if err != nil {
			return 0, err
		}
		rho, err := commit.NewBlinding(rand.Reader)
		if err != nil {
			return 0, err
		}
		t := time.Now()
		if _, err := commit.Commit(values, masks, rho); err != nil {
			return 0, err
		}
		best = min(best, time.Since(t))
	}
	return best, nil
}

// Round is one round's result.
type Round struct {
	Round     uint64 `json:"round"`
	Completed bool   `json:"completed"`
	// CollectorsInS is |S|; Uncounted are members of S the load
	// generator never sent their streams to (none, unless a collector's
	// poll loop stalled from its setup to its report).
	CollectorsInS int  `json:"collectors_in_s"`
	Uncounted     int  `json:"uncounted_collectors"`
	TotalsOK      bool `json:"totals_ok"`
	// MaxErrorSigmas is the largest |published − true| over the counters,
	// in units of the published total's σ (0 for an exact round).
	MaxErrorSigmas float64 `json:"max_error_sigmas"`
	// WrongTotals is how many counters failed the check.
	WrongTotals               int                `json:"wrong_totals"`
	WindowEndToOutcomeSeconds float64            `json:"window_end_to_outcome_seconds"`
	Phases                    map[string]float64 `json:"phases"`
	// CollectorSetupMS is the load generator's CPU time from the setup
	// phase's start (the /metrics reading before it was seen) until every
	// collector had joined, per collector.
	CollectorSetupMS float64 `json:"collector_setup_ms"`
	Outcome          string  `json:"outcome,omitempty"`
}

// Result is what a load test measured. Its top-level round figures are
// the first round's (all rounds are in Rounds).
type Result struct {
	Completed     bool `json:"completed"`
	Collectors    int  `json:"collectors"`
	Counters      int  `json:"counters"`
	Keepers       int  `json:"keepers"`
	Threshold     int  `json:"threshold"`
	Exact         bool `json:"exact"`
	CollectorsInS int  `json:"collectors_in_s"`
	TotalsOK      bool `json:"totals_ok"`

	WindowSeconds             float64            `json:"window_seconds"`
	SetupSeconds              float64            `json:"setup_seconds"`
	ReportGraceSeconds        float64            `json:"report_grace_seconds"`
	WallSeconds               float64            `json:"wall_seconds"`
	WindowEndToOutcomeSeconds float64            `json:"window_end_to_outcome_seconds"`
	Phases                    map[string]float64 `json:"phases"`
	Rounds                    []Round            `json:"rounds"`
	Processes                 []Process          `json:"processes"`

	// JournalBytes is the size of the tally server's round journals (its
	// rounds/ directory);
	// StateBytes of every file the tally server and keepers left in
	// their data directories (journals, state, outcomes, ledgers).
	JournalBytes int64 `json:"journal_bytes"`
	StateBytes   int64 `json:"state_bytes"`
	// CiphertextBytes is the payload the protocol must carry for the
	// rounds: for each member of S, its sealed bundle to each keeper (HPKE
	// ciphertext, wire.SealedLen) and its report's blinded values (8 bytes
	// a counter).
	CiphertextBytes int64 `json:"ciphertext_bytes"`
	// Bytes through the tally server's HTTPS listener, on the wire (TLS
	// included), counted by a forwarder in front of it: from collectors
	// to it and back, from keepers to it and back. Plain-HTTP /metrics
	// reads by the load test itself are not counted.
	CollectorBytesIn  int64 `json:"collector_bytes_to_tally"`
	CollectorBytesOut int64 `json:"tally_bytes_to_collectors"`
	KeeperBytesIn     int64 `json:"keeper_bytes_to_tally"`
	KeeperBytesOut    int64 `json:"tally_bytes_to_keepers"`

	CollectorSetupMS float64 `json:"collector_setup_ms"`
	Failure          string  `json:"failure,omitempty"`
	Dir              string  `json:"dir,omitempty"`
}

func (o *Options) defaults() error {
	if o.Keepers == 0 {
		o.Keepers = 3
	}
	if o.Threshold == 0 {
		o.Threshold = o.Keepers/2 + 1
	}
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	if o.Counters == 0 {
		o.Counters = 1000
	}
	if o.Window == 0 {
		o.Window = DefaultWindow(o.Collectors, o.Counters)
	}
	if o.SetupTime == 0 {
		o.SetupTime = DefaultSetupTime(o.Collectors, o.Counters)
	}
	if o.MinCollectors == 0 {
		o.MinCollectors = o.Collectors
		if o.Collectors >= 10 {
			o.MinCollectors = o.Collectors * 9 / 10
		}
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	switch {
	case o.Binary == "":
		return errors.New("loadtest: no privstats binary to run the tally server and keepers")
	case o.Collectors < 1:
		return fmt.Errorf("--collectors %d: need at least 1", o.Collectors)
	case o.Counters < 1 || o.Counters > round.MaxCounters:
		return fmt.Errorf("--counters %d: must be from 1 to %d", o.Counters, round.MaxCounters)
	case o.Keepers < 1:
		return fmt.Errorf("--keepers %d: need at least 1", o.Keepers)
	case o.Threshold <= o.Keepers/2 || o.Threshold > o.Keepers:
		return fmt.Errorf("--threshold %d: with %d keepers it must be from %d to %d", o.Threshold, o.Keepers, o.Keepers/2+1, o.Keepers)
	case o.Rounds < 1:
		return fmt.Errorf("--rounds %d: need at least 1", o.Rounds)
	case o.Window < 2*time.Second:
		return fmt.Errorf("--window %s: must be at least 2s", o.Window)
	case o.SetupTime < time.Second:
		return fmt.Errorf("--setup %s: must be at least 1s", o.SetupTime)
	case o.ReportGrace != 0 && o.ReportGrace < time.Second:
		return fmt.Errorf("--report-grace %s: must be at least 1s", o.ReportGrace)
	case o.MinCollectors < 1 || o.MinCollectors > o.Collectors:
		return fmt.Errorf("--min-collectors %d: must be from 1 to the %d collectors", o.MinCollectors, o.Collectors)
	}
	return nil
}

// deployment is a running load test.
type deployment struct {
	opts      Options
	dir       string
	tallyID   *identity.Identity
	keeperIDs []*identity.Identity
	collIDs   []*identity.Identity
	spec      round.StatisticSpec
	weights   noise.Weights

	tallyListen, httpListen string
	keeperProxy             *proxy
	collWire                wireCounter
	tally                   *child
	keepers                 []*child
	relays                  []*relay
}

// Run runs a load test: Options.Rounds rounds, then the figures.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := raiseFileLimit(opts.Collectors); err != nil {
		return nil, err
	}
	if opts.ReportGrace == 0 {
		cost, err := commitCost(opts.Counters)
		if err != nil {
			return nil, err
		}
		opts.ReportGrace = DefaultReportGrace(opts.Collectors, cost)
	}
	began := time.Now()
	d := &deployment{opts: opts, dir: opts.Dir}
	if d.dir == "" {
		tmp, err := os.MkdirTemp("", "privstats-loadtest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		d.dir = tmp
	} else if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, err
	}
	if err := d.prepare(); err != nil {
		return nil, err
	}
	res, err := d.run(ctx)
	if err != nil {
		return nil, err
	}
	res.WallSeconds = time.Since(began).Seconds()
	if opts.Dir != "" {
		res.Dir = opts.Dir
	}
	return res, nil
}

// prepare makes every identity, picks the ports and writes the configs.
func (d *deployment) prepare() error {
	o := d.opts
	o.Progress("making identities for 1 tally server, %d keepers and %d collectors", o.Keepers, o.Collectors)
	var err error
	if d.tallyID, err = identity.New(); err != nil {
		return err
	}
	if err := d.tallyID.Save(filepath.Join(d.dir, "tally.key")); err != nil {
		return err
	}
	for i := range o.Keepers {
		id, err := identity.New()
		if err != nil {
			return err
		}
		if err := id.Save(filepath.Join(d.dir, fmt.Sprintf("keeper%d.key", i+1))); err != nil {
			return err
		}
		d.keeperIDs = append(d.keeperIDs, id)
	}
	for range o.Collectors {
		id, err := identity.New()
		if err != nil {
			return err
		}
		d.collIDs = append(d.collIDs, id)
	}
	if d.spec, err = d.statistic(); err != nil {
		return err
	}
	if d.tallyListen, err = freePort(); err != nil {
		return err
	}
	if d.httpListen, err = freePort(); err != nil {
		return err
	}
	return d.writeConfigs()
}

// statistic is the round's one statistic, with the noise it needs. A
// user's action is one stream in each bin (sensitivity 1; every node's
// policy holds the histogram to touching all its bins): noise small enough
// that the 5σ check of the totals means something.
func (d *deployment) statistic() (round.StatisticSpec, error) {
	o := d.opts
	spec, err := stats.Resolve(Statistic, Bins(o.Counters))
	if err != nil {
		return spec, err
	}
	spec.Sensitivity = 1
	spec.Epsilon, spec.Delta = 1, 1e-6
	// Any MinCollectors collectors carry the full noise.
	d.weights = noise.Weights{HonestFraction: float64(o.MinCollectors) / float64(o.Collectors)}
	if o.Exact {
		return spec, nil
	}
	need, err := noise.Needed(spec)
	if err != nil {
		return spec, err
	}
	spec.Sigma = max(need, noise.MinCollectorSigma*math.Sqrt(float64(o.MinCollectors))*(1+1e-9))
	return spec, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// policy is every node's policy for the load test's rounds: short rounds,
// the load test's sensitivity of one stream, and zero noise only when
// Exact asks for it.
func (d *deployment) policy() string {
	return fmt.Sprintf(`policy:
  max_epsilon: 1
  max_delta: 0.0001
  min_collectors: 1
  min_round_length: 0s
  delay_period: 1m
  min_sensitivity: {%s: 1}
  allow_zero_noise: %t
`, Statistic, d.opts.Exact)
}

func (d *deployment) write(name, content string) error {
	return os.WriteFile(filepath.Join(d.dir, name), []byte(content), 0o600)
}

// writeConfigs writes tally.yaml, roster.yaml and keeperN.yaml. Keepers
// and collectors reach the tally server through the counting forwarders,
// which must be listening first.
func (d *deployment) writeConfigs() error {
	o := d.opts
	var err error
	if d.keeperProxy, err = newProxy(d.tallyListen); err != nil {
		return err
	}
	var keepers strings.Builder
	keepers.WriteString("keepers:\n")
	for _, id := range d.keeperIDs {
		fmt.Fprintf(&keepers, "  - %s\n", id.Fingerprint)
	}
	var collectors, roster strings.Builder
	collectors.WriteString("collectors:\n")
	roster.WriteString("collectors:\n")
	for i, id := range d.collIDs {
		fmt.Fprintf(&collectors, "  - fingerprint: %s\n", id.Fingerprint)
		fmt.Fprintf(&roster, "  - {fingerprint: %s, name: dc%d}\n", id.Fingerprint, i+1)
	}
	s := d.spec
	tally := fmt.Sprintf(`identity_key: tally.key
listen: %s
http_listen: %s
data_dir: tally-data
series: loadtest
rounds: %d
round_length: %s
setup_time: %s
report_grace: %s
%sthreshold: %d
%smin_collectors: %d
noise_weights:
  honest_fraction: %s
epsilon: %s
delta: %s
statistics:
  - name: %s
    sigma: %s
    epsilon: %s
    delta: %s
    sensitivity: 1
    bins_touched: %d
    bins: [%s]
%s`, d.tallyListen, d.httpListen, o.Rounds, o.Window, o.SetupTime, o.ReportGrace, keepers.String(), o.Threshold, collectors.String(), o.MinCollectors,
		num(d.weights.HonestFraction), num(s.Epsilon), num(s.Delta), s.Name, num(s.Sigma), num(s.Epsilon), num(s.Delta),
		s.BinsTouched, strings.Join(Bins(o.Counters), ", "), d.policy())
	if err := d.write("tally.yaml", tally); err != nil {
		return err
	}
	if err := d.write("roster.yaml", roster.String()); err != nil {
		return err
	}
	for i := range d.keeperIDs {
		k := fmt.Sprintf("identity_key: keeper%d.key\ntally:\n  address: %s\n  fingerprint: %s\n%sdata_dir: keeper%d-data\ncollectors_file: roster.yaml\n%s",
			i+1, d.keeperProxy.Addr(), d.tallyID.Fingerprint, keepers.String(), i+1, d.policy())
		if err := d.write(fmt.Sprintf("keeper%d.yaml", i+1), k); err != nil {
			return err
		}
	}
	return nil
}

// num writes a float so that it reads back exactly.
func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// run starts everything, waits for the rounds and measures.
func (d *deployment) run(ctx context.Context) (*Result, error) {
	o := d.opts
	defer d.keeperProxy.Close()
	// The collectors' clients are made (keys, certificates) before the
	// tally server starts, so making them takes nothing from setup time.
	logFile, err := os.Create(filepath.Join(d.dir, "loadgen.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	keeperFPs := make([]string, len(d.keeperIDs))
	for i, id := range d.keeperIDs {
		keeperFPs[i] = id.Fingerprint
	}
	// Collectors start a few at a time, each letting the next start once
	// it has polled the tally server once: real collectors are up long
	// before a round, and a thousand simultaneous TLS handshakes on a
	// small machine time out and back off for tens of seconds.
	ramp := make(chan struct{}, rampConcurrency)
	var colls []*collector.Collector
	for i, id := range d.collIDs {
		r := newRelay(i, o.Counters)
		polled := sync.OnceFunc(func() { <-ramp })
		c, err := collector.New(collector.Options{Source: r, Options: node.Options{
			Identity: id, Tally: d.tallyListen, Dial: d.collWire.Dial, TallyFingerprint: d.tallyID.Fingerprint, Keepers: keeperFPs,
			Record: r.record, ExitWhenFinished: true, Logger: log.With("n", i+1),
			Health: func(bool, string) { polled(); r.polled() }}})
		if err != nil {
			return nil, err
		}
		d.relays = append(d.relays, r)
		colls = append(colls, c)
	}

	o.Progress("starting the tally server and %d keepers (processes of %s)", o.Keepers, o.Binary)
	if d.tally, err = startChild(o.Binary, d.dir, "tally", "tally", "tally", "-c", "tally.yaml", "-exit-when-done"); err != nil {
		return nil, err
	}
	defer d.tally.waitOrKill(0)
	metricsURL := "http://" + d.httpListen + "/metrics"
	if err := waitUp(ctx, metricsURL, d.tally); err != nil {
		return nil, fmt.Errorf("the tally server did not start: %w (its log: %s)", err, d.tally.log)
	}
	for i := range d.keeperIDs {
		name := fmt.Sprintf("keeper%d", i+1)
		k, err := startChild(o.Binary, d.dir, "keeper", name, "keeper", "-c", name+".yaml", "-exit-when-done")
		if err != nil {
			return nil, err
		}
		d.keepers = append(d.keepers, k)
		defer k.waitOrKill(0)
	}

	w := &watcher{url: metricsURL, interval: 50 * time.Millisecond, threshold: o.Threshold, collectors: o.Collectors, rounds: map[uint64]*roundTrace{}, prevCPU: selfUsage().CPUSeconds}
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		w.run(wctx)
	}()

	o.Progress("starting %d collectors; %d round(s): setup %s, window %s, report grace %s", o.Collectors, o.Rounds, o.SetupTime, o.Window, o.ReportGrace)
	cctx, stopCollectors := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, c := range colls {
			select {
			case ramp <- struct{}{}:
			case <-cctx.Done():
				return
			}
			wg.Go(func() { c.Run(cctx) })
		}
	})
	go func() {
		last := ""
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-watchDone:
				return
			case <-t.C:
			}
			if st := w.snapshot(); st != last {
				o.Progress("%s", st)
				last = st
			}
		}
	}()

	// Each round takes at most its setup, window, report grace and the
	// agreement and release timeouts; past that something is stuck.
	limit := time.Duration(o.Rounds)*(o.SetupTime+o.Window+o.ReportGrace+5*time.Minute) + time.Minute
	select {
	case <-d.tally.done:
	case <-ctx.Done():
	case <-time.After(limit):
		o.Progress("the rounds did not finish within %s; stopping", limit)
	}
	stopWatch()
	<-watchDone
	d.tally.waitOrKill(0)
	for _, k := range d.keepers {
		k.waitOrKill(30 * time.Second)
	}
	// Collectors exit when the tally server says it is finished; give
	// them a moment, then stop the rest.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	stopCollectors()
	<-done
	d.keeperProxy.Close()
	return d.measure(w)
}

// waitUp waits until the tally server answers on /metrics.
func waitUp(ctx context.Context, url string, tally *child) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if tally.exited() {
			return fmt.Errorf("it exited: %v", tally.err)
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("no answer on /metrics within a minute")
}

// measure reads the outcomes and every process's cost.
func (d *deployment) measure(w *watcher) (*Result, error) {
	o := d.opts
	res := &Result{Collectors: o.Collectors, Counters: o.Counters, Keepers: o.Keepers, Threshold: o.Threshold, Exact: o.Exact,
		WindowSeconds: o.Window.Seconds(), SetupSeconds: o.SetupTime.Seconds(), ReportGraceSeconds: o.ReportGrace.Seconds(), Completed: true, TotalsOK: true}
	res.Processes = append(res.Processes, d.tally.usage())
	for _, k := range d.keepers {
		res.Processes = append(res.Processes, k.usage())
	}
	res.Processes = append(res.Processes, selfUsage())

	tallyData := filepath.Join(d.dir, "tally-data")
	// The tally server keeps each round's journal in rounds/.
	res.JournalBytes, res.StateBytes = dirBytes(filepath.Join(tallyData, "rounds")), dirBytes(tallyData)
	for i := range d.keepers {
		res.StateBytes += dirBytes(filepath.Join(d.dir, fmt.Sprintf("keeper%d-data", i+1)))
	}
	res.CollectorBytesIn, res.CollectorBytesOut = d.collWire.in.Load(), d.collWire.out.Load()
	res.KeeperBytesIn, res.KeeperBytesOut = d.keeperProxy.in.Load(), d.keeperProxy.out.Load()

	paths, _ := filepath.Glob(filepath.Join(tallyData, "outcomes", "*.json"))
	outcomes := map[uint64]*outcome.Outcome{}
	outPath := map[uint64]string{}
	for _, p := range paths {
		oc, err := outcome.Read(p)
		if err != nil {
			return nil, fmt.Errorf("reading outcome %s: %w", p, err)
		}
		outcomes[oc.Round], outPath[oc.Round] = oc, p
	}
	var failures []string
	if len(w.rounds) == 0 && w.lastErr != nil {
		failures = append(failures, fmt.Sprintf("could not read the tally server's /metrics: %v", w.lastErr))
	}
	for r := uint64(1); r <= uint64(o.Rounds); r++ {
		rr := Round{Round: r, Phases: map[string]float64{}}
		if rt := w.rounds[r]; rt != nil {
			rr.Phases = rt.phases()
			if _, ok := rt.entered[round.PhaseSetup]; ok && !rt.allJoined.IsZero() {
				rr.CollectorSetupMS = (rt.allJoinedCPU - rt.cpu[round.PhaseSetup]) * 1000 / float64(o.Collectors)
			}
		}
		oc := outcomes[r]
		if rt := w.rounds[r]; rt != nil && oc != nil {
			// The window's edges are when the tally server entered
			// collecting and reporting; a load generator busy with 2,000
			// reports' commitments reads /metrics seconds late. A tally
			// server that exits once done may not be seen done: the
			// outcome's publication time is when it was.
			rt.entered[round.PhaseCollecting], rt.entered[round.PhaseReporting] = oc.Window.Start, oc.Window.End
			if _, seen := rt.entered[round.PhaseDone]; !seen {
				rt.entered[round.PhaseDone] = oc.PublishedAt
			}
			rr.Phases = rt.phases()
		}
		if oc == nil {
			failures = append(failures, fmt.Sprintf("round %d published no outcome (see %s)", r, d.tally.log))
		} else {
			rr.Completed, rr.Outcome = true, outPath[r]
			d.check(oc, &rr)
			// What S's members carried: a sealed bundle per keeper and a
			// report each.
			res.CiphertextBytes += int64(rr.CollectorsInS) * (int64(o.Keepers)*int64(wire.SealedLen(o.Counters)) + 8*int64(o.Counters))
			if rr.CollectorsInS != o.Collectors {
				failures = append(failures, fmt.Sprintf("round %d: %d of %d collectors in S", r, rr.CollectorsInS, o.Collectors))
			}
			if !rr.TotalsOK {
				failures = append(failures, fmt.Sprintf("round %d: %d of %d totals off the truth", r, rr.WrongTotals, o.Counters))
			}
		}
		res.Completed = res.Completed && rr.Completed
		res.TotalsOK = res.TotalsOK && rr.TotalsOK
		res.Rounds = append(res.Rounds, rr)
	}
	first := res.Rounds[0]
	res.CollectorsInS, res.Phases, res.WindowEndToOutcomeSeconds, res.CollectorSetupMS =
		first.CollectorsInS, first.Phases, first.WindowEndToOutcomeSeconds, first.CollectorSetupMS
	for _, p := range res.Processes {
		if p.ExitError != "" {
			failures = append(failures, fmt.Sprintf("%s exited: %s", p.Name, p.ExitError))
		}
	}
	res.Failure = strings.Join(failures, "; ")
	return res, nil
}

// check compares a round's published totals with the counts the relays
// sent to the members of S.
func (d *deployment) check(oc *outcome.Outcome, rr *Round) {
	o := d.opts
	rr.CollectorsInS = oc.Collectors.Count
	rr.WindowEndToOutcomeSeconds = oc.PublishedAt.Sub(oc.Window.End).Seconds()
	index := map[string]int{}
	for i, id := range d.collIDs {
		index[id.Fingerprint] = i
	}
	truth := make([]uint64, o.Counters)
	for _, fp := range oc.Collectors.Fingerprints {
		sent := d.relays[index[fp]].sentIn(oc.Round)
		if sent == nil {
			rr.Uncounted++
			continue
		}
		for k, v := range sent {
			truth[k] += v
		}
	}
	rr.TotalsOK = len(oc.Statistics) == 1 && len(oc.Statistics[0].Bins) == o.Counters
	if !rr.TotalsOK {
		rr.WrongTotals = o.Counters
		return
	}
	st := oc.Statistics[0]
	for k, b := range st.Bins {
		diff := math.Abs(float64(b.NoisyTotal) - float64(truth[k]))
		ok := diff == 0
		if !o.Exact && st.TotalSigma > 0 {
			rr.MaxErrorSigmas = max(rr.MaxErrorSigmas, diff/st.TotalSigma)
			ok = diff <= 5*st.TotalSigma
		}
		if !ok {
			rr.WrongTotals++
		}
	}
	rr.TotalsOK = rr.WrongTotals == 0
}

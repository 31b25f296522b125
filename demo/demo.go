// Package demo runs a whole privstats deployment inside one process: a tally
// server, share keepers and collectors, each a separate component talking
// real TLS 1.3 over loopback with fresh identity keys, HPKE-sealed bundles
// and signed messages, fed by a synthetic Tor-like workload. Because it
// also counts the workload in the clear (which a real deployment never
// can), it shows the true totals beside the published noisy ones.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/tally"
)

// Options shape the demo deployment.
type Options struct {
	Collectors int
	Keepers    int
	Threshold  int
	Duration   time.Duration
	// FailKeepers keepers die after committing to nothing: they stop once
	// the agreement is proposed, before release.
	FailKeepers int
	// FailCollectors collectors set up and count but never report.
	FailCollectors int
	// Epsilon and Delta are the round's privacy budget.
	Epsilon, Delta float64
	// NoNoise sets every σ to 0, so published totals equal the true ones
	// exactly (for tests of the protocol; a real round never does this).
	NoNoise bool
	// Statistics to measure; empty means DefaultStatistics.
	Statistics []string
	// Rate is each collector's synthetic events per second.
	Rate float64
	// Dir holds the data directory; empty means a fresh temporary one.
	Dir string
	// Serve keeps the tally server up after the round (until ctx ends), so
	// a person can open /metrics: Served is told its address, and OnReport
	// gets the report as soon as the round is published.
	Serve    bool
	Served   func(httpAddr string)
	OnReport func(*Report)
	// Progress, when set, is told what the demo is doing.
	Progress func(format string, args ...any)
	Log      io.Writer
}

// DefaultStatistics are measured when Options.Statistics is empty.
var DefaultStatistics = []string{
	"relay_bytes_read", "relay_bytes_written", "or_connections", "exit_streams_by_port", "hsdir_v3_stores",
}

// Result is one counter's true and published totals.
type Result struct {
	Statistic  string  `json:"statistic"`
	Bin        string  `json:"bin"`
	TrueTotal  int64   `json:"true_total"`
	NoisyTotal int64   `json:"noisy_total"`
	Sigma      float64 `json:"sigma"`
	CI95Low    float64 `json:"ci95_low"`
	CI95High   float64 `json:"ci95_high"`
}

// Report is what the demo shows.
type Report struct {
	OutcomePath string    `json:"outcome_path"`
	DataDir     string    `json:"data_dir"`
	Collectors  int       `json:"collectors_reported"`
	Keepers     int       `json:"keeper_shares"`
	Epsilon     float64   `json:"epsilon"`
	Delta       float64   `json:"delta"`
	Results     []Result  `json:"results"`
	Elapsed     string    `json:"elapsed"`
	Started     time.Time `json:"started"`
}

func (o *Options) defaults() error {
	if o.Collectors == 0 {
		o.Collectors = 10
	}
	if o.Keepers == 0 {
		o.Keepers = 3
	}
	if o.Threshold == 0 {
		o.Threshold = o.Keepers/2 + 1
	}
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	if o.Epsilon == 0 {
		o.Epsilon = 1
	}
	if o.Delta == 0 {
		o.Delta = 1e-6
	}
	if len(o.Statistics) == 0 {
		o.Statistics = DefaultStatistics
	}
	if o.Rate == 0 {
		o.Rate = 200
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	switch {
	case o.Collectors < 1:
		return errors.New("need at least one collector")
	case o.FailKeepers < 0 || o.FailKeepers > o.Keepers-o.Threshold:
		return fmt.Errorf("--fail-keepers %d: at most N−K = %d keepers may fail", o.FailKeepers, o.Keepers-o.Threshold)
	case o.FailCollectors < 0 || o.FailCollectors >= o.Collectors:
		return fmt.Errorf("--fail-collectors %d: at least one of the %d collectors must report", o.FailCollectors, o.Collectors)
	case o.Duration < 2*time.Second:
		return errors.New("--duration must be at least 2s")
	}
	return nil
}

// plain counts in the clear: the demo's ground truth, never a real collector's.
type plain struct {
	mu sync.Mutex
	v  []uint64
}

func (p *plain) Add(c int, n uint64) { p.v[c] += n }

// Run runs one demo round and reports it.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	began := time.Now()
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "privstats-demo-")
		if err != nil {
			return nil, err
		}
		dir = tmp
	}
	logger := slog.New(slog.NewTextHandler(opts.Log, &slog.HandlerOptions{Level: slog.LevelInfo}))

	specs, err := plan(opts)
	if err != nil {
		return nil, err
	}
	ts, err := identity.New()
	if err != nil {
		return nil, err
	}
	keepers := make([]*identity.Identity, opts.Keepers)
	keeperFPs := make([]string, opts.Keepers)
	for i := range keepers {
		if keepers[i], err = identity.New(); err != nil {
			return nil, err
		}
		keeperFPs[i] = keepers[i].Fingerprint
	}
	dcs := make([]*identity.Identity, opts.Collectors)
	dcFPs := make([]string, opts.Collectors)
	for i := range dcs {
		if dcs[i], err = identity.New(); err != nil {
			return nil, err
		}
		dcFPs[i] = dcs[i].Fingerprint
	}

	var published *outcome.Outcome
	var publishedPath string
	publishedCh := make(chan struct{})
	httpListen := ""
	if opts.Serve {
		httpListen = "127.0.0.1:0"
	}
	server, err := tally.New(tally.Options{
		Identity: ts, Listen: "127.0.0.1:0", HTTPListen: httpListen, DataDir: filepath.Join(dir, "data"),
		Series: "demo", Rounds: 1, RoundLength: opts.Duration, SetupTime: 3 * time.Second,
		ReportGrace: 5 * time.Second, PhaseTimeout: 30 * time.Second,
		Keepers: keeperFPs, Threshold: opts.Threshold, Collectors: dcFPs,
		// Any n − FailCollectors collectors must carry the full noise.
		Weights:       noise.Weights{HonestFraction: float64(opts.Collectors-opts.FailCollectors) / float64(opts.Collectors)},
		MinCollectors: opts.Collectors - opts.FailCollectors,
		Epsilon:       opts.Epsilon, Delta: opts.Delta, Statistics: specs,
		Published: func(o *outcome.Outcome, path string) {
			published, publishedPath = o, path
			close(publishedCh)
		},
		Logger: logger.With("role", "tally"),
	})
	if err != nil {
		return nil, err
	}
	if opts.Serve {
		opts.Served(server.HTTPAddr())
	}
	opts.Progress("tally server on https://%s; %d keepers (K=%d), %d collectors; round of %s", server.Addr(), opts.Keepers, opts.Threshold, opts.Collectors, opts.Duration)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, opts.Keepers+opts.Collectors+1)
	serverDone := make(chan struct{})
	wg.Go(func() {
		defer close(serverDone)
		errs <- server.Run(ctx, !opts.Serve)
	})

	// Keepers; the first FailKeepers die once the agreement is proposed.
	keeperCtx := make([]context.CancelFunc, opts.Keepers)
	for i, id := range keepers {
		kctx, kcancel := context.WithCancel(ctx)
		keeperCtx[i] = kcancel
		k, err := keeper.New(keeper.Options{Identity: id, Tally: server.Addr(), TallyFingerprint: ts.Fingerprint,
			Keepers: keeperFPs, Roster: keeper.FixedRoster(dcFPs), ExitWhenFinished: true, Logger: logger.With("role", "keeper", "x", i+1)})
		if err != nil {
			return nil, err
		}
		wg.Go(func() { errs <- k.Run(kctx) })
	}

	// Collectors, each with its own synthetic relay; the first
	// FailCollectors stop before they can report.
	truth := map[string]*plain{}
	var truthMu sync.Mutex
	collectorCtx := make([]context.CancelFunc, opts.Collectors)
	for i, id := range dcs {
		cctx, ccancel := context.WithCancel(ctx)
		collectorCtx[i] = ccancel
		fp := id.Fingerprint
		c, err := collector.New(collector.Options{
			Identity: id, Tally: server.Addr(), TallyFingerprint: ts.Fingerprint, Keepers: keeperFPs,
			Source:           source.Synthetic(source.SyntheticOptions{Rate: opts.Rate, Seed: uint64(i + 1)}),
			ExitWhenFinished: true,
			GroundTruth: func(cfg *round.Config) stats.Counters {
				p := &plain{v: make([]uint64, cfg.NumCounters())}
				truthMu.Lock()
				truth[fp] = p
				truthMu.Unlock()
				return p
			},
			Logger: logger.With("role", "collector", "n", i+1),
		})
		if err != nil {
			return nil, err
		}
		wg.Go(func() { errs <- c.Run(cctx) })
	}

	// Drive the failures by the round's phase, and show progress.
	wg.Go(func() {
		last := ""
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-serverDone:
				return
			case <-t.C:
			}
			_, phase, _ := server.Snapshot()
			if phase == last {
				continue
			}
			last = phase
			opts.Progress("round phase: %s", phase)
			switch phase {
			case round.PhaseCollecting:
				for i := range opts.FailCollectors {
					// Stop just before the window ends: they counted but never report.
					go func() {
						time.Sleep(max(opts.Duration-time.Second, 0))
						collectorCtx[i]()
					}()
				}
			case round.PhaseAgreeing:
				for i := range opts.FailKeepers {
					keeperCtx[opts.Keepers-1-i]()
				}
			}
		}
	})

	if opts.Serve {
		select {
		case <-publishedCh:
			// Let the keepers and collectors see the end, then show the
			// report while the server keeps serving.
			time.Sleep(time.Second)
			if opts.OnReport != nil {
				opts.OnReport(report(published, publishedPath, dir, truth, began))
			}
			<-ctx.Done()
		case <-serverDone:
		}
	}
	<-serverDone
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if published == nil {
		_, phase, _ := server.Snapshot()
		return nil, fmt.Errorf("the round ended in phase %s without an outcome (run with --verbose for the logs)", phase)
	}
	return report(published, publishedPath, dir, truth, began), nil
}

// plan gives each statistic its share of ε and δ with PrivCount's rule
// (equal expected relative error). The catalogue's action bounds protect a
// Tor user's day; the demo's round lasts seconds, so it scales them to the
// round's length (at least 1), and it estimates each statistic's total from
// a pilot run of the same synthetic workload, so the noise is sized to what
// the demo will actually count.
func plan(opts Options) ([]round.StatisticSpec, error) {
	var budgets []noise.StatisticBudget
	var specs []round.StatisticSpec
	scale := opts.Duration.Seconds() / (24 * time.Hour).Seconds()
	for _, name := range opts.Statistics {
		st, ok := stats.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("unknown statistic %q (see privstats stats)", name)
		}
		spec, err := stats.Resolve(name, nil)
		if err != nil {
			return nil, err
		}
		// The round config declares the scaled bound its σ is calibrated
		// for, as every round must (see policy: nodes check it).
		spec.Sensitivity, spec.BinsTouched = max(1, math.Round(st.Sensitivity*scale)), max(st.BinsTouched, 1)
		specs = append(specs, spec)
		budgets = append(budgets, noise.StatisticBudget{Name: name, L0: spec.BinsTouched, LInf: spec.Sensitivity})
	}
	estimates, err := pilot(specs, opts)
	if err != nil {
		return nil, err
	}
	for i := range budgets {
		budgets[i].Estimate = estimates[i]
	}
	alloc, err := noise.Allocate(opts.Epsilon, opts.Delta, budgets)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		if opts.NoNoise {
			continue
		}
		specs[i].Sigma = alloc[i].Sigma
		specs[i].Epsilon = alloc[i].Epsilon
		specs[i].Delta = alloc[i].Delta
	}
	return specs, nil
}

// pilotEvents is the length of the pilot run that sizes the estimates.
const pilotEvents = 20000

// pilot estimates each statistic's total over the demo round by counting a
// synthetic trace and scaling by rate × collectors × duration.
func pilot(specs []round.StatisticSpec, opts Options) ([]float64, error) {
	prog, err := stats.Compile(specs)
	if err != nil {
		return nil, err
	}
	p := &plain{v: make([]uint64, prog.NumCounters())}
	for _, line := range source.SyntheticTrace(pilotEvents, 1) {
		prog.Count(line, p)
	}
	perEvent := opts.Rate * float64(opts.Collectors) * opts.Duration.Seconds() / pilotEvents
	out := make([]float64, len(specs))
	c := 0
	for i, s := range specs {
		var sum float64
		for range s.Counters() {
			sum += float64(p.v[c])
			c++
		}
		out[i] = max(sum*perEvent, 1)
	}
	return out, nil
}

func report(o *outcome.Outcome, path, dir string, truth map[string]*plain, began time.Time) *Report {
	sum := make([]int64, o.Config.NumCounters())
	for _, fp := range o.Collectors.Fingerprints {
		if p, ok := truth[fp]; ok {
			p.mu.Lock()
			for c, v := range p.v {
				sum[c] += int64(v)
			}
			p.mu.Unlock()
		}
	}
	r := &Report{OutcomePath: path, DataDir: dir, Collectors: o.Collectors.Count, Keepers: len(o.Shares),
		Epsilon: o.Config.Epsilon, Delta: o.Config.Delta, Elapsed: time.Since(began).Round(100 * time.Millisecond).String(), Started: began.UTC()}
	c := 0
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			r.Results = append(r.Results, Result{Statistic: s.Name, Bin: b.Label, TrueTotal: sum[c], NoisyTotal: b.NoisyTotal,
				Sigma: s.TotalSigma, CI95Low: b.CI95Low, CI95High: b.CI95High})
			c++
		}
	}
	return r
}

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
	"github.com/privstats/privstats/internal/deploytest"
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
	// Rounds is how many rounds run back to back (0 means 1), so that the
	// results page and the exports have a history to show.
	Rounds int
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
	// Serve keeps the tally server up after the rounds (until ctx ends),
	// so a person can open the results page and /metrics: Served is told
	// its address, and OnReport gets the report as soon as every round
	// has ended.
	Serve    bool
	Served   func(httpAddr string)
	OnReport func(*Report)
	// Attack, when set, names one of Attacks: the tally server misbehaves
	// and the report says who refused and why (Report.Attack).
	Attack string
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

// Report is what the demo shows: the results of the last round published,
// and with more than one round a line per round.
type Report struct {
	Round       uint64    `json:"round"`
	OutcomePath string    `json:"outcome_path"`
	DataDir     string    `json:"data_dir"`
	Collectors  int       `json:"collectors_reported"`
	Keepers     int       `json:"keeper_shares"`
	Epsilon     float64   `json:"epsilon"`
	Delta       float64   `json:"delta"`
	Results     []Result  `json:"results"`
	Elapsed     string    `json:"elapsed"`
	Started     time.Time `json:"started"`
	// Attack is set when the demo ran an attack (Options.Attack).
	Attack *AttackReport `json:"attack,omitempty"`
	// History has every published round, oldest first, and Failed counts
	// the rounds that ended without an outcome.
	History []RoundLine `json:"history"`
	Failed  int         `json:"rounds_failed"`
}

// RoundLine is one published round of the demo: how many of its intervals
// covered the true totals.
type RoundLine struct {
	Round       uint64 `json:"round"`
	OutcomePath string `json:"outcome_path"`
	Collectors  int    `json:"collectors_reported"`
	Bins        int    `json:"bins"`
	Covered     int    `json:"covered"`
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
	if o.Rounds == 0 {
		o.Rounds = 1
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
	case o.Rounds < 0:
		return fmt.Errorf("--rounds %d: need at least one round", o.Rounds)
	case o.Attack != "" && o.Rounds > 1:
		return errors.New("--attack runs the rounds its attack needs; leave out --rounds")
	case o.Duration < 2*time.Second:
		return errors.New("--duration must be at least 2s")
	case o.Attack == "two-sets" && o.Collectors < 3:
		return errors.New("--attack two-sets needs at least 3 collectors")
	}
	return nil
}

// plain counts in the clear: the demo's ground truth, never a real collector's.
type plain struct{ v []uint64 }

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

	rounds, honest := opts.Rounds, opts.Collectors-opts.FailCollectors
	var attack Attack
	var adversary *tally.Adversary
	var err error
	if opts.Attack != "" {
		if attack, err = LookupAttack(opts.Attack); err != nil {
			return nil, err
		}
		if adversary, err = attack.adversary(); err != nil {
			return nil, err
		}
		rounds = attack.Rounds
		if attack.Name == "two-sets" {
			// Let a set one smaller still carry the full noise, so that
			// only commit-once stands in the second set's way.
			honest = min(honest, opts.Collectors-1)
		}
	}
	specs, err := plan(opts, honest)
	if err != nil {
		return nil, err
	}
	httpListen := ""
	if opts.Serve || opts.Attack != "" {
		httpListen = "127.0.0.1:0"
	}
	// Each collector's synthetic relay is wrapped in a tee that also
	// counts it in the clear. The tally server tells every tee of the
	// round as it announces it, before any collector can join.
	tees := make([]*tee, opts.Collectors)
	for i := range tees {
		tees[i] = &tee{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := deploytest.Start(ctx, deploytest.Options{
		Dir: filepath.Join(dir, "data"), Keepers: opts.Keepers, Collectors: opts.Collectors, Rate: opts.Rate,
		// An attack's report is read from the tally server's public API,
		// so it keeps serving until the demo has read it.
		KeepServing: opts.Serve || opts.Attack != "",
		Tally: tally.Options{
			HTTPListen: httpListen, Series: "demo", Rounds: rounds, RoundLength: opts.Duration, SetupTime: 3 * time.Second, Adversary: adversary,
			ReportGrace: 5 * time.Second, PhaseTimeout: 30 * time.Second, Threshold: opts.Threshold,
			// Any n − FailCollectors collectors must carry the full noise.
			Weights:       noise.Weights{HonestFraction: float64(honest) / float64(opts.Collectors)},
			MinCollectors: honest,
			Epsilon:       opts.Epsilon, Delta: opts.Delta, Accounting: round.AccountingComposed, Statistics: specs,
			Record: func(cfg *round.Config) error {
				for _, t := range tees {
					if err := t.round(cfg); err != nil {
						return err
					}
				}
				return nil
			},
		},
		Collector: func(i int, o *collector.Options) {
			tees[i].src = o.Source
			o.Source = tees[i]
		},
		Logger: func(role string, i int) *slog.Logger {
			switch role {
			case "keeper":
				return logger.With("role", role, "x", i+1)
			case "collector":
				return logger.With("role", role, "n", i+1)
			}
			return logger.With("role", role)
		},
	})
	if err != nil {
		return nil, err
	}
	truth := map[string]*tee{}
	for i, id := range d.CollectorIDs {
		truth[id.Fingerprint] = tees[i]
	}
	if opts.Serve {
		opts.Served(d.Tally.HTTPAddr())
	}
	opts.Progress("tally server on https://%s; %d keepers (K=%d), %d collectors; %d round(s) of %s", d.Addr(), opts.Keepers, opts.Threshold, opts.Collectors, rounds, opts.Duration)

	// Drive the failures by the round's phase, and show progress: the
	// first FailCollectors collectors stop before they can report, the
	// last FailKeepers keepers die once the agreement is proposed.
	var wg sync.WaitGroup
	wg.Go(func() {
		last := ""
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-d.ServerDone():
				return
			case <-t.C:
			}
			_, phase, number := d.Tally.Snapshot()
			now := fmt.Sprint(number, phase)
			if now == last {
				continue
			}
			last = now
			opts.Progress("round %d phase: %s", number, phase)
			switch phase {
			case round.PhaseCollecting:
				for i := range opts.FailCollectors {
					// Stop just before the window ends: they counted but never report.
					wg.Go(func() {
						select {
						case <-time.After(max(opts.Duration-time.Second, 0)):
							d.Collector(i).Stop()
						case <-ctx.Done():
						}
					})
				}
			case round.PhaseAgreeing:
				for i := range opts.FailKeepers {
					d.Keeper(opts.Keepers - 1 - i).Stop()
				}
			}
		}
	})

	if opts.Attack != "" {
		rep, err := observeAttack(ctx, d, attack, rounds)
		cancel()
		wg.Wait()
		if err != nil {
			return nil, err
		}
		return &Report{DataDir: dir, Epsilon: opts.Epsilon, Delta: opts.Delta, Started: began,
			Elapsed: time.Since(began).Round(100 * time.Millisecond).String(), Attack: rep}, nil
	}
	if opts.Serve {
		ended := func(st tally.Status) bool { return st.Completed+st.Failed >= rounds }
		if st, err := d.WaitStatus(ctx, "every round's end", ended); err == nil {
			// Let the keepers and collectors see the end, then show the
			// report while the server keeps serving.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			if out := d.Outcomes(); opts.OnReport != nil && len(out) > 0 {
				opts.OnReport(report(out, st.Failed, dir, truth, began))
			}
			<-ctx.Done()
		}
	}
	err = d.Wait()
	cancel()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	out := d.Outcomes()
	if len(out) == 0 {
		_, phase, _ := d.Tally.Snapshot()
		return nil, fmt.Errorf("the round ended in phase %s without an outcome (run with --verbose for the logs)", phase)
	}
	return report(out, d.Tally.Status().Failed, dir, truth, began), nil
}

// plan calibrates the round as one composed mechanism, as privstats plan
// does (noise.AllocateComposed): the round's (ε, δ) covers every
// statistic's noise together, and each statistic's σ gives the same
// expected relative error. The catalogue's action bounds protect a
// Tor user's day; the demo's round lasts seconds, so it scales them to the
// round's length (at least 1), and it estimates each statistic's total from
// a pilot run of the same synthetic workload, so the noise is sized to what
// the demo will actually count.
//
// Each of the honest collectors then adds N_Z(0, (σ/√honest)²); σ is raised
// where needed so that this is at least noise.MinCollectorSigma, below
// which no node accepts the round (more noise than the budget needs, never
// less).
func plan(opts Options, honest int) ([]round.StatisticSpec, error) {
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
	// Any honest collectors, each of weight w = 1/√honest, carry σ between
	// them; each must add at least the floor.
	set := noise.HonestSet{N: honest, Weight: 1 / math.Sqrt(float64(honest))}
	floor := noise.MinCollectorSigma * math.Sqrt(float64(honest)) * (1 + 1e-9)
	composed, err := noise.AllocateComposed(opts.Epsilon, opts.Delta, budgets, set, floor)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		if opts.NoNoise {
			continue
		}
		specs[i].Sigma = composed.Statistics[i].Sigma
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

// report shows the last of the published rounds beside its true totals,
// and a line per round.
func report(published []deploytest.Published, failed int, dir string, truth map[string]*tee, began time.Time) *Report {
	r := &Report{DataDir: dir, Failed: failed, Elapsed: time.Since(began).Round(100 * time.Millisecond).String(), Started: began.UTC()}
	for _, p := range published {
		results := compare(p.Outcome, truth)
		line := RoundLine{Round: p.Outcome.Round, OutcomePath: p.Path, Collectors: p.Outcome.Collectors.Count, Bins: len(results)}
		for _, x := range results {
			if x.Covered() {
				line.Covered++
			}
		}
		r.History = append(r.History, line)
		o := p.Outcome
		r.Round, r.OutcomePath, r.Collectors, r.Keepers = o.Round, p.Path, o.Collectors.Count, len(o.Shares)
		r.Epsilon, r.Delta, r.Results = o.Config.Epsilon, o.Config.Delta, results
	}
	return r
}

// compare lines up a round's published totals with what S's collectors
// counted in the clear.
func compare(o *outcome.Outcome, truth map[string]*tee) []Result {
	sum := make([]int64, o.Config.NumCounters())
	for _, fp := range o.Collectors.Fingerprints {
		if t, ok := truth[fp]; ok {
			for c, v := range t.totals(o.Round) {
				sum[c] += int64(v)
			}
		}
	}
	var out []Result
	c := 0
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			out = append(out, Result{Statistic: s.Name, Bin: b.Label, TrueTotal: sum[c], NoisyTotal: b.NoisyTotal,
				Sigma: s.TotalSigma, CI95Low: b.CI95Low, CI95High: b.CI95High})
			c++
		}
	}
	return out
}

// Covered reports whether the 95% interval holds the true total.
func (r Result) Covered() bool {
	return float64(r.TrueTotal) >= r.CI95Low && float64(r.TrueTotal) <= r.CI95High
}

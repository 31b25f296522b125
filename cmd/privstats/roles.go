package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/health"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/tally"
	"github.com/privstats/privstats/torctl"
)

// roleFlags are the flags every long-running role shares.
type roleFlags struct {
	config  string
	once    bool
	verbose bool
}

// nodeExitHelp is what -exit-when-done does for a keeper or collector.
const nodeExitHelp = "exit when the tally server says no more rounds will run"

// loadRole registers the flags every long-running role shares on fs
// (exitHelp says when -exit-when-done exits), parses args (-c is required)
// and loads the file -c names with load.
func loadRole[C any](fs *flag.FlagSet, args []string, exitHelp string, load func(path string) (*C, error)) (*C, roleFlags, error) {
	var rf roleFlags
	fs.StringVar(&rf.config, "c", "", "the role's YAML config `FILE` (required)")
	fs.BoolVar(&rf.once, "exit-when-done", false, exitHelp)
	fs.BoolVar(&rf.verbose, "v", false, "log debug detail")
	if err := parse(fs, args, 0, 0); err != nil {
		return nil, rf, err
	}
	if rf.config == "" {
		fs.Usage()
		return nil, rf, errUsage
	}
	cfg, err := load(rf.config)
	return cfg, rf, err
}

func newLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Parts without a logger of their own (the MetricsPort source) use the
	// default; give it the same handler and level.
	slog.SetDefault(log)
	return log
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// roleSetup is what every long-running role has before it starts: its
// identity, its policy ledger's check and record hooks, and its logger.
type roleSetup struct {
	id     *identity.Identity
	check  func(*round.Config, time.Time) error
	record func(*round.Config) error
	log    *slog.Logger
}

// setUp loads a role's identity key and opens its policy ledger in dataDir.
func setUp(role, identityKey, dataDir string, pol policy.Policy, verbose bool, stderr io.Writer) (*roleSetup, error) {
	id, err := identity.Load(identityKey)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	led, err := policy.OpenLedger(filepath.Join(dataDir, policy.LedgerFile))
	if err != nil {
		return nil, err
	}
	return &roleSetup{
		id:     id,
		check:  func(cfg *round.Config, now time.Time) error { return pol.Check(cfg, led, now) },
		record: func(cfg *round.Config) error { return led.Record(cfg, pol) },
		log:    newLogger(stderr, verbose).With("role", role),
	}, nil
}

// nodeOptions are what a keeper or collector runs with: this setup's key,
// ledger and logger, the tally server and keepers its config pins, and its
// health hook.
func (s *roleSetup) nodeOptions(tally config.Peer, keepers []string, exitWhenFinished bool, health func(connected bool, phase string)) node.Options {
	return node.Options{Identity: s.id, Tally: tally.Address, TallyFingerprint: tally.Fingerprint, Keepers: keepers,
		Policy: s.check, Record: s.record, ExitWhenFinished: exitWhenFinished, Health: health, Logger: s.log}
}

// serveHealth serves a node's health /metrics on listen ("" serves none)
// until ctx ends.
func serveHealth(ctx context.Context, role, listen string) *health.Status {
	status := health.New(role)
	if listen != "" {
		go status.Serve(ctx, listen)
	}
	return status
}

func runTally(args []string, stdout, stderr io.Writer) error {
	fs := flags("tally", "-c tally.yaml", stderr)
	cfg, rf, err := loadRole(fs, args, "exit once every configured round has ended", config.LoadTally)
	if err != nil {
		return err
	}
	specs, err := cfg.StatisticSpecs()
	if err != nil {
		return err
	}
	s, err := setUp("tally", cfg.IdentityKey, cfg.DataDir, cfg.Policy, rf.verbose, stderr)
	if err != nil {
		return err
	}
	srv, err := tally.New(tally.Options{
		Identity: s.id, Listen: cfg.Listen, HTTPListen: cfg.HTTPListen, DataDir: cfg.DataDir,
		Series: cfg.Series, Rounds: cfg.Rounds, RoundLength: time.Duration(cfg.RoundLength),
		SetupTime: time.Duration(cfg.SetupTime), Period: time.Duration(cfg.Period),
		Keepers: cfg.Keepers, Threshold: cfg.Threshold, Collectors: cfg.CollectorFingerprints(),
		Weights: cfg.NoiseWeights, MinCollectors: cfg.MinCollectors, Epsilon: cfg.Epsilon, Delta: cfg.Delta,
		Statistics: specs, Policy: s.check, Record: s.record, MaxBodyBytes: cfg.MaxBodyBytes, Allow: cfg.Allow,
		Published: func(o *outcome.Outcome, path string) {
			fmt.Fprintf(stdout, "round %s/%d published: %s\n", o.Series, o.Round, path)
		},
		Logger: s.log,
	})
	if err != nil {
		return err
	}
	s.log.Info("tally server up", "fingerprint", s.id.Fingerprint, "listen", srv.Addr(), "http", srv.HTTPAddr(), "data_dir", cfg.DataDir)
	ctx, stop := signalContext()
	defer stop()
	return srv.Run(ctx, rf.once)
}

func runKeeper(args []string, stdout, stderr io.Writer) error {
	fs := flags("keeper", "-c keeper.yaml", stderr)
	cfg, rf, err := loadRole(fs, args, nodeExitHelp, config.LoadKeeper)
	if err != nil {
		return err
	}
	s, err := setUp("keeper", cfg.IdentityKey, cfg.DataDir, cfg.Policy, rf.verbose, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	status := serveHealth(ctx, "keeper", cfg.HealthListen)
	k, err := keeper.New(keeper.Options{Options: s.nodeOptions(cfg.Tally, cfg.Keepers, rf.once, status.Set), Roster: cfg.RosterFunc(), DishonestKeepers: cfg.Policy.DishonestKeepers})
	if err != nil {
		return err
	}
	s.log.Info("keeper up", "fingerprint", s.id.Fingerprint, "tally", cfg.Tally.Address)
	return k.Run(ctx)
}

func runCollect(args []string, stdout, stderr io.Writer) error {
	fs := flags("collect", "-c collector.yaml [--record FILE]", stderr)
	recordTo := fs.String("record", "", "also write every event received to trace `FILE` (your relay's raw events; keep it private)")
	cfg, rf, err := loadRole(fs, args, nodeExitHelp, config.LoadCollector)
	if err != nil {
		return err
	}
	s, err := setUp("collector", cfg.IdentityKey, cfg.DataDir, cfg.Policy, rf.verbose, stderr)
	if err != nil {
		return err
	}
	src, err := eventSource(cfg, s.log)
	if err != nil {
		return err
	}
	if *recordTo == "" {
		*recordTo = cfg.Record
	}
	if *recordTo != "" {
		f, err := os.OpenFile(*recordTo, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		src = source.Record(f, src)
		s.log.Warn("recording every tor event this collector sees: the file holds your relay's raw traffic metadata, unblinded; keep it as private as the relay and delete it when done", "file", *recordTo)
	}
	ctx, stop := signalContext()
	defer stop()
	status := serveHealth(ctx, "collector", cfg.HealthListen)
	c, err := collector.New(collector.Options{Options: s.nodeOptions(cfg.Tally, cfg.Keepers, rf.once, status.Set), Source: src})
	if err != nil {
		return err
	}
	if read, ok := c.SourceHealth(); ok {
		status.WatchSource(func() health.Source {
			st, gaps := read()
			return health.Source{Connected: st.Connected, LastHeard: st.LastHeard, Gaps: gaps}
		})
	}
	s.log.Info("collector up", "fingerprint", s.id.Fingerprint, "tally", cfg.Tally.Address, "source", sourceName(cfg))
	return c.Run(ctx)
}

func sourceName(cfg *config.Collector) string {
	switch s := cfg.Source; {
	case s.Control != nil && s.MetricsPort != nil:
		return "control " + s.Control.Address + " + metrics_port " + s.MetricsPort.URL
	case s.Control != nil:
		return "control " + s.Control.Address
	case s.MetricsPort != nil:
		return "metrics_port " + s.MetricsPort.URL
	case s.Trace != nil:
		return "trace " + s.Trace.Path
	default:
		return "synthetic"
	}
}

// eventSource builds the collector's configured source.
func eventSource(cfg *config.Collector, log *slog.Logger) (source.Source, error) {
	s := cfg.Source
	var parts []source.Source
	if s.Control != nil {
		var allowed []torctl.AuthMethod
		for _, m := range s.Control.AllowedAuth {
			allowed = append(allowed, torctl.AuthMethod(m))
		}
		parts = append(parts, source.Control(source.ControlOptions{Address: s.Control.Address, Password: s.Control.Password,
			CookieFile: s.Control.CookieFile, AllowedAuth: allowed, Logger: log}))
	}
	if s.MetricsPort != nil {
		parts = append(parts, source.MetricsPort(s.MetricsPort.URL, time.Duration(s.MetricsPort.Interval), nil))
	}
	switch {
	case s.Trace != nil:
		speed := source.Fast
		if strings.EqualFold(s.Trace.Speed, config.SpeedRecorded) {
			speed = source.Recorded
		}
		parts = append(parts, source.Trace(s.Trace.Path, speed))
	case s.Synthetic != nil:
		opts := source.SyntheticOptions{Rate: s.Synthetic.Rate}
		if s.Synthetic.Seed != nil {
			opts.Seed = *s.Synthetic.Seed
		}
		parts = append(parts, source.Synthetic(opts))
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%s: no event source configured", cfg.IdentityKey)
	}
	return source.Merge(parts...), nil
}

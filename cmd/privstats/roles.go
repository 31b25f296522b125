package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
)

func init() {
	addCommand(newTallyCmd)
	addCommand(newKeeperCmd)
	addCommand(newCollectCmd)
}

// roleOptions are the flags every long-running role shares.
type roleOptions struct {
	config       string
	exitWhenDone bool
	verbose      bool
}

// nodeExitHelp is what --exit-when-done does for a keeper or collector.
const nodeExitHelp = "exit when the tally server says no more rounds will run"

// roleCommand is the command of a long-running role: -c FILE (required),
// --exit-when-done (exitHelp says when it exits) and -v, bound to o.
func roleCommand(use, short, long, exitHelp string, o *roleOptions) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, GroupID: groupRun, Args: noArgs}
	fs := cmd.Flags()
	fs.StringVarP(&o.config, "config", "c", "", "the role's YAML config `FILE` (required)")
	fs.BoolVar(&o.exitWhenDone, "exit-when-done", false, exitHelp)
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log debug detail")
	cmd.MarkFlagRequired("config")
	cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

// newLogger logs to stderr in format (config.LogText or config.LogJSON).
func newLogger(stderr io.Writer, verbose bool, format string) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if format == config.LogJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	// Parts without a logger of their own (the MetricsPort source) use the
	// default; give it the same handler and level.
	slog.SetDefault(log)
	return log
}

// signalContext ends when ctx does or on SIGINT or SIGTERM: the roles stop
// cleanly, saving their state.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
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
func setUp(role, identityKey, dataDir string, pol policy.Policy, verbose bool, logFormat string, stderr io.Writer) (*roleSetup, error) {
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
		log:    newLogger(stderr, verbose, logFormat).With("role", role),
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

func newTallyCmd() *cobra.Command {
	var o roleOptions
	cmd := roleCommand("tally -c tally.yaml", "run the tally server",
		`Tally runs the tally server: it announces rounds, gathers the collectors' blinded
reports and the keepers' aggregate shares, and publishes each round's noisy totals
as a signed outcome file (see privstats results and privstats verify).`,
		"exit once every configured round has ended", &o)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runTally(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd
}

func runTally(ctx context.Context, rf roleOptions, stdout, stderr io.Writer) error {
	cfg, err := config.LoadTally(rf.config)
	if err != nil {
		return err
	}
	specs, err := cfg.StatisticSpecs()
	if err != nil {
		return err
	}
	s, err := setUp("tally", cfg.IdentityKey, cfg.DataDir, cfg.Policy, rf.verbose, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	srv, err := tally.New(tally.Options{
		Identity: s.id, Listen: cfg.Listen, HTTPListen: cfg.HTTPListen, DataDir: cfg.DataDir,
		Series: cfg.Series, Rounds: cfg.Rounds, RoundLength: time.Duration(cfg.RoundLength),
		SetupTime: time.Duration(cfg.SetupTime), Period: time.Duration(cfg.Period),
		Keepers: cfg.Keepers, Threshold: cfg.Threshold, Collectors: cfg.CollectorFingerprints(),
		Weights: cfg.NoiseWeights, MinCollectors: cfg.MinCollectors, Epsilon: cfg.Epsilon, Delta: cfg.Delta,
		Accounting: cfg.Accounting, Statistics: specs, Policy: s.check, Record: s.record, MaxBodyBytes: cfg.MaxBodyBytes, Allow: cfg.Allow,
		Published: func(o *outcome.Outcome, path string) {
			fmt.Fprintf(stdout, "round %s/%d published: %s\n", o.Series, o.Round, path)
		},
		Logger: s.log,
	})
	if err != nil {
		return err
	}
	s.log.Info("tally server up", "fingerprint", s.id.Fingerprint, "listen", srv.Addr(), "http", srv.HTTPAddr(), "data_dir", cfg.DataDir)
	ctx, stop := signalContext(ctx)
	defer stop()
	return srv.Run(ctx, rf.exitWhenDone)
}

func newKeeperCmd() *cobra.Command {
	var o roleOptions
	cmd := roleCommand("keeper -c keeper.yaml", "run a share keeper",
		`Keeper runs a share keeper: it holds Shamir shares of the collectors' blinding, checks
each round against its policy and roster, and releases only the sum of its shares
for the collectors that reported. It connects out to the tally server and needs no
open port.`,
		nodeExitHelp, &o)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runKeeper(cmd.Context(), o, cmd.ErrOrStderr())
	}
	return cmd
}

func runKeeper(ctx context.Context, rf roleOptions, stderr io.Writer) error {
	cfg, err := config.LoadKeeper(rf.config)
	if err != nil {
		return err
	}
	s, err := setUp("keeper", cfg.IdentityKey, cfg.DataDir, cfg.Policy, rf.verbose, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	status := serveHealth(ctx, "keeper", cfg.HealthListen)
	k, err := keeper.New(keeper.Options{Options: s.nodeOptions(cfg.Tally, cfg.Keepers, rf.exitWhenDone, status.Set), Roster: cfg.RosterFunc(), DishonestKeepers: cfg.Policy.DishonestKeepers})
	if err != nil {
		return err
	}
	s.log.Info("keeper up", "fingerprint", s.id.Fingerprint, "tally", cfg.Tally.Address)
	return k.Run(ctx)
}

// collectOptions are privstats collect's flags.
type collectOptions struct {
	roleOptions
	record string
	check  bool
}

func newCollectCmd() *cobra.Command {
	var o collectOptions
	cmd := roleCommand("collect -c collector.yaml", "run a collector beside a tor relay",
		`Collect runs a collector beside a tor relay: it reads the relay's events from tor's
control port (and MetricsPort), counts them into blinded, noised counters and reports
only those to the tally server. No per-relay count leaves it unblinded.

With --check it only connects to tor as the collector would (and to the MetricsPort if
configured), authenticates, prints tor's version and which statistics of the catalogue
this tor can feed and why not the others, and exits: 0 if the collector can read tor, 1
naming the fix (tor's group, CookieAuthFileGroupReadable 1, ControlSocketsGroupWritable
1, MetricsPortPolicy, …) if not. It reads only the config's source, so a file fresh from
privstats init collector, tally server and keepers not yet filled in, can be checked.`,
		nodeExitHelp, &o.roleOptions)
	cmd.Example = `  privstats collect --check -c /etc/privstats/collector.yaml   # can it read tor?
  privstats collect -c /etc/privstats/collector.yaml`
	cmd.Flags().StringVar(&o.record, "record", "", "also write every event received to trace `FILE` (your relay's raw events; keep it private)")
	cmd.MarkFlagFilename("record")
	cmd.Flags().BoolVar(&o.check, "check", false, "connect to tor as the collector would, say which statistics it can feed, and exit (reads only source: of the config)")
	cmd.MarkFlagsMutuallyExclusive("check", "record")
	cmd.MarkFlagsMutuallyExclusive("check", "exit-when-done")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if o.check {
			return runCollectCheck(cmd.Context(), checkOptions{Config: o.config}, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}
		return runCollect(cmd.Context(), o, cmd.ErrOrStderr())
	}
	return cmd
}

func runCollect(ctx context.Context, o collectOptions, stderr io.Writer) error {
	rf := o.roleOptions
	cfg, err := config.LoadCollector(rf.config)
	if err != nil {
		return err
	}
	s, err := setUp("collector", cfg.IdentityKey, cfg.DataDir, cfg.Policy, rf.verbose, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	src, err := eventSource(cfg, s.log)
	if err != nil {
		return err
	}
	recordTo := o.record
	if recordTo == "" {
		recordTo = cfg.Record
	}
	if recordTo != "" {
		f, err := os.OpenFile(recordTo, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		src = source.Record(f, src)
		s.log.Warn("recording every tor event this collector sees: the file holds your relay's raw traffic metadata, unblinded; keep it as private as the relay and delete it when done", "file", recordTo)
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	status := serveHealth(ctx, "collector", cfg.HealthListen)
	c, err := collector.New(collector.Options{Options: s.nodeOptions(cfg.Tally, cfg.Keepers, rf.exitWhenDone, status.Set), Source: src})
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
		parts = append(parts, source.Control(source.ControlOptions{Address: s.Control.Address, Password: s.Control.Password,
			CookieFile: s.Control.CookieFile, AllowedAuth: authMethods(s.Control.AllowedAuth), Logger: log}))
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

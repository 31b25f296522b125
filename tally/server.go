// Package tally is the tally server: the one listener of a privstats
// deployment. It announces rounds, relays sealed share bundles from
// collectors to keepers, collects blinded reports, proposes the agreement
// (S, ΣV), gathers commits and aggregate shares, and publishes the outcome.
// It never sees an unblinded count, and everything it publishes is signed
// and checkable (package outcome).
package tally

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/atomicfile"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/outcome/export"
	"github.com/privstats/privstats/site"
	"github.com/privstats/privstats/transport"
)

// Options configure a tally server.
type Options struct {
	Identity *identity.Identity
	// Listen is the HTTPS address keepers and collectors connect to.
	Listen string
	// HTTPListen is the plain-HTTP address of /metrics and the results API
	// ("" disables it). It serves only published data.
	HTTPListen string
	DataDir    string

	Series string
	// Rounds is how many rounds to run; 0 means forever.
	Rounds      int
	RoundLength time.Duration
	// SetupTime is how long before a window starts its round is announced;
	// DefaultSetupTime if zero.
	SetupTime time.Duration
	// Period is the least time between the starts of consecutive rounds.
	// One round runs at a time: the next is announced once the previous
	// has ended, so it starts a period after the previous start or
	// SetupTime after the previous round finished, whichever is later.
	Period time.Duration
	// ReportGrace is how long after the window's end collectors may report.
	ReportGrace time.Duration
	// PhaseTimeout bounds the agreement and release phases;
	// DefaultPhaseTimeout if zero.
	PhaseTimeout time.Duration

	Keepers       []string
	Threshold     int
	Collectors    []string
	Weights       noise.Weights
	MinCollectors int
	Epsilon       float64
	Delta         float64
	// Accounting is the round config's (round.AccountingComposed, or
	// empty for each statistic's own budget).
	Accounting string
	Statistics []round.StatisticSpec

	// Policy is the tally server's own local policy check; nil accepts.
	Policy func(cfg *round.Config, now time.Time) error
	// Record is told of every round as it is announced (the policy
	// ledger); nil ignores.
	Record func(cfg *round.Config) error
	// Published is told of every outcome and where it was written.
	Published func(o *outcome.Outcome, path string)

	// Allow admits further fingerprints (e.g. a coordinator's admin key)
	// to the HTTPS API; they may read the round but take no part in it.
	Allow []string

	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes if zero.
	MaxBodyBytes int64
	// MaxInFlightPerPeer bounds the posts one node may have in flight, and
	// MaxInFlight those of all nodes together; further posts are refused
	// (too_many_requests, server_busy) before their bodies are read. Defaults
	// DefaultMaxInFlightPerPeer and DefaultMaxInFlight.
	MaxInFlightPerPeer, MaxInFlight int
	// MaxBodyMemory bounds the memory that the bodies of posts being
	// served may cost at once, estimated from their declared sizes
	// (bodyBudget); DefaultMaxBodyMemory if zero, and never less than one
	// largest JSON body costs.
	MaxBodyMemory int64
	// HandshakeTimeout bounds a TLS handshake; DefaultHandshakeTimeout if
	// zero.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger

	// Adversary makes this tally server misbehave as an attacker would,
	// for privstats demo --attack and the tests that show the other nodes
	// refusing. A deployed tally server has none.
	Adversary *Adversary
}

// Adversary turns a tally server into an attacker: each hook changes what
// the server is about to sign. It exists so that the trust model can be
// shown working (docs/threat-model.md); nothing in a deployment sets it.
type Adversary struct {
	// Announce changes a round config before it is checked and signed.
	Announce func(cfg *round.Config)
	// Agreement changes the agreement (S, ΣV) before it is signed.
	Agreement func(ag *wire.AgreementMsg)
	// SecondAgreement, once K keepers committed to the first agreement,
	// returns a second one to post in its place (an attempt to release
	// two collector sets and difference their totals); nil posts none.
	// build makes an honest agreement over another S.
	SecondAgreement func(first wire.AgreementMsg, build func(S []string) (wire.AgreementMsg, error)) *wire.AgreementMsg
}

// Defaults for Options, and through package config for tally.yaml: they
// live here only, so the file and the server cannot disagree.
const (
	DefaultSetupTime    = 30 * time.Second
	DefaultPhaseTimeout = 2 * time.Minute
	DefaultMaxBodyBytes = 8 << 20
	// DefaultHandshakeTimeout is what http.Server would allow a handshake
	// with this server's header timeout.
	DefaultHandshakeTimeout = 10 * time.Second
)

func (o *Options) defaults() {
	if o.SetupTime == 0 {
		o.SetupTime = DefaultSetupTime
	}
	if o.Period == 0 {
		o.Period = o.RoundLength
	}
	if o.ReportGrace == 0 {
		o.ReportGrace = min(max(o.RoundLength/10, 5*time.Second), 2*time.Minute)
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = DefaultPhaseTimeout
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxInFlightPerPeer == 0 {
		o.MaxInFlightPerPeer = DefaultMaxInFlightPerPeer
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxBodyMemory == 0 {
		o.MaxBodyMemory = DefaultMaxBodyMemory
	}
	o.MaxBodyMemory = max(o.MaxBodyMemory, o.MaxBodyBytes*jsonExpansion)
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Server is a running tally server.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	allowed map[string]string // fingerprint → role
	// posts, keeperPosts and polls cap the requests in flight (see limit).
	posts, keeperPosts, polls *inFlight
	bodies                    *bodyBudget
	refusalLog, internalLog   *rateLog
	// published is the data directory's outcomes as the public page and
	// results API read them: each file parsed once (package site).
	published *site.Archive

	mu sync.Mutex
	st *state
	// changed is closed (and replaced) on every change keepers care
	// about; phaseChanged on every change collectors care about.
	changed, phaseChanged chan struct{}
	// unsaved is set while the small state holds a change that saving to
	// state.json failed to make durable (see held).
	unsaved bool
	// staleJournals are the journals of rounds the saved state may still
	// name, removed once it no longer does (save).
	staleJournals []string

	httpsLn, httpLn net.Listener
}

// New loads (or starts) the server's state from its data directory and
// opens its listeners; Run serves.
func New(opts Options) (*Server, error) {
	opts.defaults()
	if opts.Identity == nil {
		return nil, errors.New("tally: no identity key")
	}
	if opts.RoundLength <= 0 {
		return nil, errors.New("tally: round_length must be positive")
	}
	if err := opts.Weights.Validate(); err != nil {
		return nil, fmt.Errorf("tally: noise weights: %w", err)
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: newMetrics(), allowed: map[string]string{},
		posts:       newInFlight(opts.MaxInFlightPerPeer, opts.MaxInFlight),
		bodies:      &bodyBudget{max: opts.MaxBodyMemory},
		polls:       newInFlight(opts.MaxInFlightPerPeer, math.MaxInt),
		keeperPosts: newInFlight(opts.MaxInFlightPerPeer, math.MaxInt),
		refusalLog:  newRefusalLog(opts.Logger),
		internalLog: newInternalLog(opts.Logger),
		changed:     make(chan struct{}), phaseChanged: make(chan struct{})}
	for _, fp := range opts.Keepers {
		s.allowed[fp] = "keeper"
	}
	for _, fp := range opts.Collectors {
		if s.allowed[fp] == "keeper" {
			return nil, fmt.Errorf("tally: %s is listed both as a keeper and as a collector", fp)
		}
		s.allowed[fp] = "collector"
	}
	for _, fp := range opts.Allow {
		if s.allowed[fp] == "" {
			s.allowed[fp] = "observer"
		}
	}
	if err := atomicfile.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("tally: data directory: %w", err)
	}
	st, err := loadState(opts.DataDir, s.log)
	if err != nil {
		return nil, fmt.Errorf("tally: %w", err)
	}
	switch {
	case st == nil:
		st = &state{Series: opts.Series, NextRound: 1}
	case st.Series != opts.Series:
		return nil, fmt.Errorf("tally: data directory %s belongs to series %q, the config says %q; use another data_dir", opts.DataDir, st.Series, opts.Series)
	default:
		if st.Current != nil {
			s.log.Info("resuming round from saved state", "round", st.Current.cfg.Round, "phase", st.Current.Phase, "config_hash", st.Current.Hash)
		}
	}
	s.st = st
	s.metrics.configure(opts)
	s.metrics.progress(st)
	s.showLatest()

	tlsConf, err := transport.ServerConfig(opts.Identity, func(fp string) bool { return s.allowed[fp] != "" }, nil)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("tally: listen: %w", err)
	}
	s.httpsLn = transport.Listen(ln, tlsConf, opts.HandshakeTimeout, s.refusedHandshake)
	if opts.HTTPListen != "" {
		if s.httpLn, err = net.Listen("tcp", opts.HTTPListen); err != nil {
			ln.Close()
			return nil, fmt.Errorf("tally: http_listen: %w", err)
		}
	}
	return s, nil
}

// refusedHandshake counts and logs a TLS handshake the listener refused.
// The log is rate-limited by the client's address: there is no key to
// name it by.
func (s *Server) refusedHandshake(remote net.Addr, err error) {
	why := handshakeReason(err)
	s.metrics.rejected.WithLabelValues(string(why)).Inc()
	host, _, splitErr := net.SplitHostPort(remote.String())
	if splitErr != nil {
		host = remote.String()
	}
	s.refusalLog.warn(host, string(why), "refused TLS handshake", "remote", remote.String(), "reason", why, "err", err)
}

// Addr is the HTTPS address nodes connect to.
func (s *Server) Addr() string { return s.httpsLn.Addr().String() }

// HTTPAddr is the address of /metrics and the results API ("" if disabled).
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Run serves until ctx ends, or, when exitWhenDone is set, until every
// round has ended (then it lingers briefly so nodes see the final phase).
func (s *Server) Run(ctx context.Context, exitWhenDone bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	api := &http.Server{
		Handler:           s.apiHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      (wire.MaxLongPollS + 30) * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// Long polls end with the server.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go func() { errs <- api.Serve(s.httpsLn) }()
	var pub *http.Server
	if s.httpLn != nil {
		pub = &http.Server{Handler: s.publicHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { errs <- pub.Serve(s.httpLn) }()
	}
	machineDone := make(chan struct{})
	go func() {
		defer close(machineDone)
		errs <- s.machine(ctx, exitWhenDone)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	cancel()
	shut, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	api.Shutdown(shut)
	if pub != nil {
		pub.Shutdown(shut)
	}
	// No state is written after Run returns.
	<-machineDone
	s.mu.Lock()
	if r := s.st.Current; r != nil {
		r.closeJournal()
	}
	s.mu.Unlock()
	return err
}

// machine advances the round by the clock.
func (s *Server) machine(ctx context.Context, exitWhenDone bool) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var doneAt time.Time
	toldFinished := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.refusalLog.flush()
			s.internalLog.flush()
			s.mu.Lock()
			// The time now, not the tick's: under load a tick can be read
			// seconds late, and a round announced from a stale time
			// starts in the past.
			now := time.Now()
			err := s.step(now)
			finished := s.finished()
			completed, failed := s.st.Completed, s.st.Failed
			s.mu.Unlock()
			if err != nil {
				s.internalFailure(err)
			}
			// Said once, so that a supervisor (or an operator reading the
			// journal) knows the server is done rather than stuck.
			if finished && !toldFinished {
				toldFinished = true
				s.log.Info("series finished: no more rounds will run", "series", s.opts.Series,
					"rounds", s.opts.Rounds, "completed", completed, "failed", failed, "exit", exitWhenDone)
			}
			if finished && exitWhenDone {
				if doneAt.IsZero() {
					doneAt = now
				}
				// Let polling nodes see the end before the listener goes.
				if now.Sub(doneAt) > 3*time.Second {
					return http.ErrServerClosed
				}
			}
		}
	}
}

// finished reports whether no round is running and none will start.
func (s *Server) finished() bool {
	r := s.st.Current
	ended := r == nil || r.Phase == round.PhaseDone || r.Phase == round.PhaseFailed
	return ended && s.opts.Rounds > 0 && s.st.Completed+s.st.Failed >= s.opts.Rounds
}

// bump records a change: it persists the state and wakes long polls.
func (s *Server) bump() error {
	s.st.PhaseVersion++
	close(s.phaseChanged)
	s.phaseChanged = make(chan struct{})
	return s.touch()
}

// touch records a change only keepers need to see (a round key, a bundle,
// a commit): it persists the small state and wakes the keepers' polls.
func (s *Server) touch() error {
	s.wake()
	return s.save()
}

// save writes state.json. A failure leaves the change in memory only until
// the next save: the round's next change, or the sender's retry (held).
func (s *Server) save() error {
	if err := saveState(s.opts.DataDir, s.st); err != nil {
		s.unsaved = true
		return failed(opStateWrite, err)
	}
	s.unsaved = false
	for _, p := range s.staleJournals {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cannot remove a finished round's journal", "path", p, "err", err)
		}
	}
	s.staleJournals = nil
	return nil
}

// wake tells keepers' long polls that something changed.
func (s *Server) wake() {
	s.st.Version++
	s.metrics.progress(s.st)
	close(s.changed)
	s.changed = make(chan struct{})
}

// step moves the current round along; it runs with s.mu held.
func (s *Server) step(now time.Time) error {
	r := s.st.Current
	if r == nil || r.Phase == round.PhaseDone || r.Phase == round.PhaseFailed {
		if s.opts.Rounds > 0 && s.st.Completed+s.st.Failed >= s.opts.Rounds {
			return nil
		}
		return s.announce(now)
	}
	cfg := r.cfg
	switch r.Phase {
	case round.PhaseAnnounced:
		live := len(cfg.Keepers) - s.refusedKeepers(r)
		if live < cfg.Threshold {
			return s.fail(r, fmt.Sprintf("only %d of %d keepers can take part (threshold %d); their reasons are in the refusals", live, len(cfg.Keepers), cfg.Threshold))
		}
		halfway := cfg.Start.Add(-s.opts.SetupTime / 2)
		if len(r.RoundKeys) == live || (now.After(halfway) && len(r.RoundKeys) >= cfg.Threshold) {
			r.Phase = round.PhaseSetup
			s.log.Info("round keys in; collectors may set up", "round", cfg.Round, "keepers", len(r.RoundKeys))
			return s.bump()
		}
		if !now.Before(cfg.Start) {
			return s.fail(r, fmt.Sprintf("only %d keepers published round keys before the window opened, threshold %d", len(r.RoundKeys), cfg.Threshold))
		}
	case round.PhaseSetup:
		if !now.Before(cfg.Start) {
			r.Phase = round.PhaseCollecting
			s.log.Info("window open", "round", cfg.Round, "collectors_joined", len(r.Joined), "end", cfg.End)
			return s.bump()
		}
	case round.PhaseCollecting:
		if !now.Before(cfg.End) {
			r.Phase = round.PhaseReporting
			r.Deadline = cfg.End.Add(s.opts.ReportGrace)
			s.log.Info("window closed; waiting for reports", "round", cfg.Round, "until", r.Deadline)
			return s.bump()
		}
	case round.PhaseReporting:
		if s.allReported(r) || now.After(r.Deadline) {
			return s.propose(r, now)
		}
	case round.PhaseAgreeing:
		if adv := s.opts.Adversary; adv != nil && adv.SecondAgreement != nil && !r.secondPosted && len(r.Commits) >= cfg.Threshold {
			return s.postSecondAgreement(r, adv, now)
		}
		if len(r.Commits) >= cfg.Threshold {
			r.Phase = round.PhaseReleasing
			r.Deadline = now.Add(s.opts.PhaseTimeout)
			s.log.Info("agreement committed; keepers may release", "round", cfg.Round, "commits", len(r.Commits))
			return s.bump()
		}
		if live := len(cfg.Keepers) - s.refusedKeepers(r); live < cfg.Threshold {
			return s.fail(r, fmt.Sprintf("keepers refused the agreement: only %d of %d can still commit (threshold %d); their reasons are in the refusals", live, len(cfg.Keepers), cfg.Threshold))
		}
		if now.After(r.Deadline) {
			return s.fail(r, fmt.Sprintf("only %d keepers committed within %s, threshold %d", len(r.Commits), s.opts.PhaseTimeout, cfg.Threshold))
		}
	case round.PhaseReleasing:
		// Wait for every committed keeper so the shares can be checked
		// against each other, but not past a short grace once K are in.
		all := len(r.Shares) == len(r.Commits)
		graceOver := len(r.Shares) >= cfg.Threshold && now.After(r.Deadline.Add(-s.opts.PhaseTimeout+10*time.Second))
		if all || graceOver {
			return s.publish(r, now)
		}
		if now.After(r.Deadline) {
			return s.fail(r, fmt.Sprintf("only %d keepers released shares within %s, threshold %d", len(r.Shares), s.opts.PhaseTimeout, cfg.Threshold))
		}
	}
	return nil
}

func (s *Server) refusedKeepers(r *roundState) int {
	n := 0
	for _, k := range r.cfg.Keepers {
		if _, ok := r.Refusals[k.Fingerprint]; ok {
			n++
		}
	}
	return n
}

// allReported is true when every collector that joined has reported and
// every keeper with a round key has acknowledged all of them: nothing more
// can arrive that would grow S.
func (s *Server) allReported(r *roundState) bool {
	for fp := range r.Joined {
		if _, ok := r.Reports[fp]; !ok {
			return false
		}
	}
	for k := range r.RoundKeys {
		if _, refused := r.Refusals[k]; refused {
			continue
		}
		if len(r.Acks[k]) < len(r.Joined) {
			return false
		}
	}
	return len(r.Joined) > 0
}

// announce builds, checks and publishes the next round's config.
func (s *Server) announce(now time.Time) error {
	o := s.opts
	start := now.Add(o.SetupTime).Truncate(time.Second).Add(time.Second)
	if next := s.st.LastStart.Add(o.Period); !s.st.LastStart.IsZero() && next.After(start) {
		if next.Sub(now) > o.SetupTime {
			return nil // not yet time to announce
		}
		start = next
	}
	keepers := make([]round.KeeperSpec, len(o.Keepers))
	for i, fp := range o.Keepers {
		keepers[i] = round.KeeperSpec{Fingerprint: fp, X: i + 1}
	}
	weights := o.Weights.Resolve(o.Collectors)
	collectors := make([]round.CollectorSpec, len(o.Collectors))
	for i, fp := range o.Collectors {
		collectors[i] = round.CollectorSpec{Fingerprint: fp, NoiseWeight: weights[fp]}
	}
	cfg := &round.Config{
		Version: round.ConfigVersion, Series: o.Series, Round: s.st.NextRound,
		Start: start.UTC(), End: start.Add(o.RoundLength).UTC(), Epsilon: o.Epsilon, Delta: o.Delta,
		Accounting: o.Accounting, Statistics: o.Statistics, Keepers: keepers, Threshold: o.Threshold,
		Collectors: collectors, MinCollectors: o.MinCollectors,
	}
	refuse := func(reason string) error {
		if s.st.LastRefuse != reason {
			s.log.Error("not announcing round", "round", cfg.Round, "reason", reason)
			s.metrics.refusals.WithLabelValues("tally").Inc()
			s.st.LastRefuse = reason
			return s.bump()
		}
		return nil
	}
	if o.Adversary != nil && o.Adversary.Announce != nil {
		// An attacking tally server skips its own checks below: what is
		// shown is that the keepers and collectors refuse.
		o.Adversary.Announce(cfg)
		o.Policy = nil
	}
	if err := cfg.Validate(); err != nil {
		return refuse(err.Error())
	}
	honest := o.Adversary == nil || o.Adversary.Announce == nil
	if err := noise.CheckClaim(cfg); err != nil && honest {
		return refuse(err.Error())
	}
	if hasNoise(cfg) && honest {
		if err := noise.CheckCoverage(weights, cfg.MinCollectors); err != nil {
			return refuse(err.Error())
		}
	}
	if o.Policy != nil {
		if err := o.Policy(cfg, now); err != nil {
			return refuse(err.Error())
		}
	}
	body, err := cfg.Canonical()
	if err != nil {
		return err
	}
	hash, _ := cfg.HashHex()
	if o.Record != nil {
		// Recorded on announcement, not on completion: the next round's
		// delay rule must compare against this one even while it runs.
		if err := o.Record(cfg); err != nil {
			return failed(opLedgerWrite, fmt.Errorf("policy ledger: %w", err))
		}
	}
	if prev := s.st.Current; prev != nil {
		// Its outcome is published (or it failed); its bundles and
		// reports are of no further use once the state no longer names
		// it: removed by save, after the new state is durable. Removed
		// now, a crash before the save would leave a state whose round
		// has lost its journal.
		prev.closeJournal()
		s.staleJournals = append(s.staleJournals, journalPath(s.opts.DataDir, prev.Hash))
	}
	s.st.Current = newRound(o.Identity.Sign(wire.KindAnnounce, body), cfg, hash)
	s.st.NextRound++
	s.st.LastStart = cfg.Start
	s.st.LastRefuse = ""
	s.log.Info("round announced", "series", cfg.Series, "round", cfg.Round, "config_hash", hash, "start", cfg.Start, "end", cfg.End)
	return s.bump()
}

func hasNoise(cfg *round.Config) bool {
	for _, st := range cfg.Statistics {
		if st.Sigma > 0 {
			return true
		}
	}
	return false
}

func (s *Server) fail(r *roundState, reason string) error {
	r.Phase = round.PhaseFailed
	r.Failure = reason
	s.st.Failed++
	s.metrics.failed.Inc()
	s.log.Error("round failed", "round", r.cfg.Round, "reason", reason)
	return s.bump()
}

// propose picks S and posts the agreement (S, ΣV).
func (s *Server) propose(r *roundState, now time.Time) error {
	cfg := r.cfg
	var ackers []string
	for _, k := range cfg.Keepers {
		if _, refused := r.Refusals[k.Fingerprint]; refused {
			continue
		}
		if _, acked := r.Acks[k.Fingerprint]; acked {
			ackers = append(ackers, k.Fingerprint)
		}
	}
	if len(ackers) < cfg.Threshold {
		return s.fail(r, fmt.Sprintf("only %d keepers acknowledged share bundles, threshold %d", len(ackers), cfg.Threshold))
	}
	S := chooseS(r, ackers, cfg.Threshold)
	if len(S) < cfg.MinCollectors {
		return s.fail(r, fmt.Sprintf("%d collectors reported with bundles acknowledged by every keeper, the round requires %d", len(S), cfg.MinCollectors))
	}
	reports := make(map[string]wire.Report, len(S))
	for _, fp := range S {
		var rep wire.Report
		if _, err := wire.OpenBody(r.Reports[fp], wire.KindReport, fp, &rep); err != nil {
			return fmt.Errorf("stored report from %s: %w", fp, err)
		}
		reports[fp] = rep
	}
	permitted := cfg.CollectorFingerprints()
	msg, err := agreementOver(cfg.NumCounters(), r.Hash, permitted, S, reports)
	if err != nil {
		// Some collector's commitment does not open to its report: find
		// it (one opening per report, paid only when the batch fails) and
		// leave it out of S, so that it cannot fail the round.
		var bad []string
		S, bad = openEach(cfg.NumCounters(), S, reports)
		s.log.Error("reports whose commitments do not open are left out of S", "round", cfg.Round, "collectors", bad)
		if len(S) < cfg.MinCollectors {
			return s.fail(r, fmt.Sprintf("%d collectors reported with valid commitments, the round requires %d", len(S), cfg.MinCollectors))
		}
		if msg, err = agreementOver(cfg.NumCounters(), r.Hash, permitted, S, reports); err != nil {
			return s.fail(r, "agreement: "+err.Error())
		}
	}
	msg.Refusals = maps.Clone(r.Refusals)
	if s.opts.Adversary != nil && s.opts.Adversary.Agreement != nil {
		s.opts.Adversary.Agreement(&msg)
	}
	signed, err := wire.SignBody(s.opts.Identity, wire.KindAgreement, msg)
	if err != nil {
		return err
	}
	r.Agreement, r.agreementJSON = &signed, nil
	r.Digest = wire.AgreementDigest(signed.Body)
	r.Phase = round.PhaseAgreeing
	r.Deadline = now.Add(s.opts.PhaseTimeout)
	s.log.Info("agreement proposed", "round", cfg.Round, "collectors", len(S), "reported", len(r.Reports), "joined", len(r.Joined))
	return s.bump()
}

// postSecondAgreement is the two-sets attack: with K commits on the first
// agreement, post another in its place. Keepers commit once per round, so
// those that committed refuse it and no second set can reach K.
func (s *Server) postSecondAgreement(r *roundState, adv *Adversary, now time.Time) error {
	r.secondPosted = true
	var first wire.AgreementMsg
	if _, err := wire.OpenBody(*r.Agreement, wire.KindAgreement, "", &first); err != nil {
		return err
	}
	if err := first.Resolve(r.cfg.CollectorFingerprints()); err != nil {
		return err
	}
	build := func(S []string) (wire.AgreementMsg, error) {
		reports := make(map[string]wire.Report, len(S))
		for _, fp := range S {
			var rep wire.Report
			if _, err := wire.OpenBody(r.Reports[fp], wire.KindReport, fp, &rep); err != nil {
				return wire.AgreementMsg{}, err
			}
			reports[fp] = rep
		}
		return agreementOver(r.cfg.NumCounters(), r.Hash, r.cfg.CollectorFingerprints(), S, reports)
	}
	second := adv.SecondAgreement(first, build)
	if second == nil {
		return nil
	}
	signed, err := wire.SignBody(s.opts.Identity, wire.KindAgreement, *second)
	if err != nil {
		return err
	}
	r.Agreement, r.Digest, r.agreementJSON = &signed, wire.AgreementDigest(signed.Body), nil
	r.Commits = map[string]identity.Signed{}
	r.Deadline = now.Add(s.opts.PhaseTimeout)
	s.log.Warn("adversary: second agreement posted after K commits on the first", "round", r.cfg.Round, "collectors", len(second.Collectors))
	return s.bump()
}

// agreementOver builds the agreement over S: ΣV as the exact integer sum
// of the masked reports, the sum of the blindings, S's signed commitments in S's order, and the digest of
// their gaps. It checks, as every keeper will, that ΣV opens the
// commitments.
func agreementOver(n int, hash string, permitted, S []string, reports map[string]wire.Report) (wire.AgreementMsg, error) {
	msg := wire.AgreementMsg{ConfigHash: hash}
	// S as a bitmap over the config's collectors; from here on in the
	// config's order, which the commitments follow.
	if err := msg.SetCollectors(permitted, S); err != nil {
		return msg, err
	}
	S = msg.Collectors
	values := make(map[string][]uint64, len(S))
	masks := make(map[string][]uint64, len(S))
	gaps := map[string][]wire.Gap{}
	blindings := make([]commit.Scalar, 0, len(S))
	for _, fp := range S {
		rep := reports[fp]
		values[fp], masks[fp] = rep.Values, rep.Masks
		if len(rep.Gaps) > 0 {
			gaps[fp] = rep.Gaps
		}
		blindings = append(blindings, rep.Blinding)
		msg.Commitments = append(msg.Commitments, rep.Commitment)
	}
	var err error
	if msg.SumV, err = aggregator.SumReports(n, values, masks); err != nil {
		return msg, err
	}
	if msg.SumBlinding, err = commit.SumScalars(blindings); err != nil {
		return msg, err
	}
	if msg.GapsDigest, err = wire.GapsDigest(gaps); err != nil {
		return msg, err
	}
	cs, err := wire.OpenCommitments(&msg)
	if err != nil {
		return msg, err
	}
	err = aggregator.CheckSum(aggregator.Agreement{Collectors: S, SumV: msg.SumV, SumBlinding: msg.SumBlinding, Commitments: cs}, n)
	return msg, err
}

// openEach splits S into the collectors whose commitment opens to their
// report and those whose does not, by bisection: a part whose summed
// commitments open to its summed reports is set aside whole, so b bad
// reports among |S| cost O(b·log|S|) batch checks (each one multi-scalar
// product over the counters) rather than one opening per report, which a
// single bad collector could otherwise make the server pay every round.
func openEach(n int, S []string, reports map[string]wire.Report) (good, bad []string) {
	opens := func(part []string) bool {
		a := aggregator.Agreement{Collectors: part, SumV: commit.NewIntSum(n)}
		blindings := make([]commit.Scalar, 0, len(part))
		for _, fp := range part {
			rep := reports[fp]
			var rc wire.ReportCommitment
			if _, err := wire.OpenBody(rep.Commitment, wire.KindCommitment, fp, &rc); err != nil {
				return false
			}
			if err := a.SumV.AddMasked(rep.Values, rep.Masks); err != nil {
				return false
			}
			a.Commitments = append(a.Commitments, rc.Commitment)
			blindings = append(blindings, rep.Blinding)
		}
		var err error
		if a.SumBlinding, err = commit.SumScalars(blindings); err != nil {
			return false
		}
		return aggregator.CheckSum(a, n) == nil
	}
	var walk func(part []string)
	walk = func(part []string) {
		switch {
		case len(part) == 0:
		case opens(part):
			good = append(good, part...)
		case len(part) == 1:
			bad = append(bad, part[0])
		default:
			walk(part[:len(part)/2])
			walk(part[len(part)/2:])
		}
	}
	walk(S)
	slices.Sort(good)
	return good, bad
}

// chooseS returns the collectors that reported and whose bundles every
// keeper of a set L acknowledged, for the L (at least k keepers) that
// admits the most collectors. It starts from every keeper that sent
// acknowledgements and drops, one at a time, the keeper whose absence
// admits the most more collectors: a keeper that died mid-setup, having
// acknowledged only early bundles, would otherwise shrink S to those.
func chooseS(r *roundState, keepers []string, k int) []string {
	acked := r.Acks
	members := func(L []string) []string {
		var S []string
		for fp := range r.Reports {
			ok := true
			for _, kf := range L {
				if !acked[kf][fp] {
					ok = false
					break
				}
			}
			if ok {
				S = append(S, fp)
			}
		}
		slices.Sort(S)
		return S
	}
	L := slices.Clone(keepers)
	best := members(L)
	for len(L) > k {
		drop, bigger := -1, best
		for i := range L {
			if S := members(slices.Delete(slices.Clone(L), i, i+1)); len(S) > len(bigger) {
				drop, bigger = i, S
			}
		}
		if drop < 0 {
			break
		}
		L, best = slices.Delete(L, drop, drop+1), bigger
	}
	return best
}

// publish interpolates, writes the outcome and closes the round.
func (s *Server) publish(r *roundState, now time.Time) error {
	in := outcome.Inputs{Announce: r.Announce, Agreement: *r.Agreement, Now: now, Gaps: map[string][]wire.Gap{}, Tally: s.opts.Identity}
	for _, k := range r.cfg.Keepers {
		if c, ok := r.Commits[k.Fingerprint]; ok {
			in.Commits = append(in.Commits, c)
		}
		if sh, ok := r.Shares[k.Fingerprint]; ok {
			in.Shares = append(in.Shares, sh)
		}
	}
	var ag wire.AgreementMsg
	if _, err := wire.OpenBody(*r.Agreement, wire.KindAgreement, "", &ag); err != nil {
		return err
	}
	if err := ag.Resolve(r.cfg.CollectorFingerprints()); err != nil {
		return err
	}
	for _, fp := range ag.Collectors {
		var rep wire.Report
		if _, err := wire.OpenBody(r.Reports[fp], wire.KindReport, fp, &rep); err == nil && len(rep.Gaps) > 0 {
			in.Gaps[fp] = rep.Gaps
		}
	}
	o, err := outcome.Build(in)
	if err != nil {
		return s.fail(r, "interpolation: "+err.Error())
	}
	for _, rej := range o.RejectedShares {
		s.log.Error("keeper share rejected", "keeper", rej.Keeper, "reason", rej.Reason)
	}
	path := OutcomePath(s.opts.DataDir, r.cfg.Series, r.cfg.Round)
	if err := outcome.Write(path, o); err != nil {
		return failed(opOutcomeWrite, err)
	}
	r.Outcome = path
	r.Phase = round.PhaseDone
	s.st.Completed++
	s.metrics.completed.Inc()
	s.metrics.publish(o)
	s.log.Info("outcome published", "round", r.cfg.Round, "path", path, "collectors", o.Collectors.Count)
	if s.opts.Published != nil {
		s.opts.Published(o, path)
	}
	return s.bump()
}

// OutcomePath is where the outcome of a round is written.
func OutcomePath(dataDir, series string, round uint64) string {
	return filepath.Join(dataDir, "outcomes", export.Name(series, round)+".json")
}

// Snapshot returns the current round's config hash and phase (for tests and
// the demo's progress line).
func (s *Server) Snapshot() (hash, phase string, number uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.st.Current; r != nil {
		return r.Hash, r.Phase, r.cfg.Round
	}
	return "", "", 0
}

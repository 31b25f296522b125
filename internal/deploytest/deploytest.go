// Package deploytest runs a whole privstats deployment inside one process:
// a tally server listening on loopback, and share keepers and collectors
// as goroutines, each with its own fresh identity key, speaking real
// TLS 1.3 with pinned keys and sealing real HPKE bundles. It is support
// for the tests of the roles and for the demo; it is not a way to deploy
// privstats: one process holding every node's key undoes the split of
// trust between keepers that the protocol rests on.
package deploytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/tally"
)

// Options shape a deployment.
type Options struct {
	// Dir is the tally server's data directory; Start needs one, New
	// makes a temporary one when it is empty.
	Dir string
	// Keepers and Collectors are how many of each get an identity.
	Keepers, Collectors int
	// Tally configures the tally server. Start fills in Identity, Listen
	// (loopback), DataDir, Keepers, Collectors and Logger; Threshold
	// defaults to N/2+1, MinCollectors to every collector, Series to
	// "test". Published, if set, is still called.
	Tally tally.Options
	// Keeper and Collector, when set, adjust node i's options before it
	// starts (a policy, a source, a health hook). Every node pins the
	// tally server and the keepers and exits when the server is finished;
	// every collector counts a synthetic relay (seed i+1, Rate events a
	// second) unless Collector replaces its Source.
	Keeper    func(i int, o *keeper.Options)
	Collector func(i int, o *collector.Options)
	// Rate is each synthetic relay's events per second; 0 means 100.
	Rate float64
	// Idle starts only the tally server: the test starts nodes itself
	// (StartKeeper, StartCollector) or speaks for them with their
	// identities.
	Idle bool
	// KeepServing keeps the tally server up after its last round, until
	// Stop; otherwise it exits once every round has ended.
	KeepServing bool
	// Logger gives each component its logger (role "tally", "keeper" or
	// "collector"; i counts from 0); nil discards every log.
	Logger func(role string, i int) *slog.Logger
}

// Deployment is a running in-process deployment.
type Deployment struct {
	// Tally is the running tally server (Status, Snapshot, HTTPAddr).
	Tally *tally.Server
	// TallyID, KeeperIDs and CollectorIDs are every node's identity, so a
	// test can speak for a node it did not start.
	TallyID      *identity.Identity
	KeeperIDs    []*identity.Identity
	CollectorIDs []*identity.Identity
	// Dir is the tally server's data directory.
	Dir string

	opts       Options
	ctx        context.Context
	cancel     context.CancelFunc
	serverDone chan struct{}
	serverErr  error

	mu         sync.Mutex
	nodes      []*Node // every node ever started, to stop them all
	keepers    []*Node // the latest keeper i started
	collectors []*Node
	published  []Published
	changed    chan struct{} // closed and replaced on every outcome
}

// Published is one outcome the tally server wrote, and where.
type Published struct {
	Outcome *outcome.Outcome
	Path    string
}

// Node is one running keeper or collector.
type Node struct {
	ID      *identity.Identity
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	restart func() (*Node, error)

	polled  chan struct{} // closed by the first health report
	once    sync.Once
	reached bool
}

// Done is closed when the node's Run has returned.
func (n *Node) Done() <-chan struct{} { return n.done }

// Stop stops the node, as a crash or a kill would (it keeps nothing), and
// returns what its Run returned.
func (n *Node) Stop() error {
	n.cancel()
	<-n.done
	return n.err
}

// Restart stops the node as a crash would and starts it again with the
// same key and options: the new node has none of the old one's memory.
func (n *Node) Restart() (*Node, error) {
	if err := n.Stop(); err != nil {
		return nil, err
	}
	return n.restart()
}

// FirstPoll waits for the node's first poll of the tally server and says
// whether it got through.
func (n *Node) FirstPoll(ctx context.Context) (reached bool, err error) {
	select {
	case <-n.polled:
		return n.reached, nil
	case <-ctx.Done():
		return false, fmt.Errorf("the node never polled the tally server: %w", ctx.Err())
	}
}

// health wraps a node's health hook to catch its first report.
func (n *Node) health(next func(connected bool, phase string)) func(bool, string) {
	return func(connected bool, phase string) {
		n.once.Do(func() {
			n.reached = connected
			close(n.polled)
		})
		if next != nil {
			next(connected, phase)
		}
	}
}

// Start creates every identity, starts the tally server and, unless Idle,
// every keeper and collector. Everything stops when ctx ends or on Stop.
func Start(ctx context.Context, opts Options) (*Deployment, error) {
	if opts.Dir == "" {
		return nil, errors.New("deploytest: no data directory")
	}
	if opts.Keepers < 1 {
		return nil, errors.New("deploytest: need at least one keeper")
	}
	if opts.Rate == 0 {
		opts.Rate = 100
	}
	if opts.Logger == nil {
		discard := slog.New(slog.NewTextHandler(io.Discard, nil))
		opts.Logger = func(string, int) *slog.Logger { return discard }
	}
	d := &Deployment{Dir: opts.Dir, opts: opts, serverDone: make(chan struct{}), changed: make(chan struct{}),
		keepers: make([]*Node, opts.Keepers), collectors: make([]*Node, opts.Collectors)}
	var err error
	if d.TallyID, err = identity.New(); err != nil {
		return nil, err
	}
	if d.KeeperIDs, err = newIDs(opts.Keepers); err != nil {
		return nil, err
	}
	if d.CollectorIDs, err = newIDs(opts.Collectors); err != nil {
		return nil, err
	}

	to := opts.Tally
	to.Identity, to.Listen, to.DataDir = d.TallyID, "127.0.0.1:0", opts.Dir
	to.Keepers, to.Collectors = fingerprints(d.KeeperIDs), fingerprints(d.CollectorIDs)
	to.Logger = opts.Logger("tally", 0)
	if to.Threshold == 0 {
		to.Threshold = opts.Keepers/2 + 1
	}
	if to.MinCollectors == 0 {
		to.MinCollectors = opts.Collectors
	}
	if to.Series == "" {
		to.Series = "test"
	}
	published := to.Published
	to.Published = func(o *outcome.Outcome, path string) {
		d.mu.Lock()
		d.published = append(d.published, Published{o, path})
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
		if published != nil {
			published(o, path)
		}
	}
	if d.Tally, err = tally.New(to); err != nil {
		return nil, err
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	go func() {
		defer close(d.serverDone)
		d.serverErr = d.Tally.Run(d.ctx, !opts.KeepServing)
	}()
	if opts.Idle {
		return d, nil
	}
	for i := range d.KeeperIDs {
		if _, err := d.StartKeeper(i, nil); err != nil {
			d.Stop()
			return nil, err
		}
	}
	for i := range d.CollectorIDs {
		if _, err := d.StartCollector(i, nil); err != nil {
			d.Stop()
			return nil, err
		}
	}
	return d, nil
}

func newIDs(n int) ([]*identity.Identity, error) {
	ids := make([]*identity.Identity, n)
	for i := range ids {
		id, err := identity.New()
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

func fingerprints(ids []*identity.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Fingerprint
	}
	return out
}

// Addr is the tally server's HTTPS address.
func (d *Deployment) Addr() string { return d.Tally.Addr() }

// KeeperFingerprints are the keepers' fingerprints in round order.
func (d *Deployment) KeeperFingerprints() []string { return fingerprints(d.KeeperIDs) }

// CollectorFingerprints are the collectors' fingerprints.
func (d *Deployment) CollectorFingerprints() []string { return fingerprints(d.CollectorIDs) }

// StartKeeper starts keeper i with Options.Keeper's adjustments, then
// adjust's.
func (d *Deployment) StartKeeper(i int, adjust func(*keeper.Options)) (*Node, error) {
	n := d.node(d.KeeperIDs[i], func() (*Node, error) { return d.StartKeeper(i, adjust) })
	o := keeper.Options{Options: d.nodeOptions(n, "keeper", i), Roster: keeper.FixedRoster(d.CollectorFingerprints())}
	adjustOptions(&o, i, d.opts.Keeper, adjust)
	o.Health = n.health(o.Health)
	return d.run(n, &d.keepers[i], "keeper", i, func() (runner, error) { return keeper.New(o) })
}

// StartCollector starts collector i with Options.Collector's adjustments,
// then adjust's.
func (d *Deployment) StartCollector(i int, adjust func(*collector.Options)) (*Node, error) {
	n := d.node(d.CollectorIDs[i], func() (*Node, error) { return d.StartCollector(i, adjust) })
	o := collector.Options{Options: d.nodeOptions(n, "collector", i),
		Source: source.Synthetic(source.SyntheticOptions{Rate: d.opts.Rate, Seed: uint64(i + 1)})}
	adjustOptions(&o, i, d.opts.Collector, adjust)
	o.Health = n.health(o.Health)
	return d.run(n, &d.collectors[i], "collector", i, func() (runner, error) { return collector.New(o) })
}

// nodeOptions are what node n, number i of its role, starts with: its key,
// the tally server and keepers pinned, exit when the server is finished,
// and its logger.
func (d *Deployment) nodeOptions(n *Node, role string, i int) node.Options {
	return node.Options{Identity: n.ID, Tally: d.Addr(), TallyFingerprint: d.TallyID.Fingerprint,
		Keepers: d.KeeperFingerprints(), ExitWhenFinished: true, Logger: d.opts.Logger(role, i)}
}

// adjustOptions applies the deployment's adjustments for node i (each),
// then the test's (adjust), to a node's options.
func adjustOptions[O any](o *O, i int, each func(int, *O), adjust func(*O)) {
	if each != nil {
		each(i, o)
	}
	if adjust != nil {
		adjust(o)
	}
}

// Keeper returns the keeper i started last, or nil.
func (d *Deployment) Keeper(i int) *Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.keepers[i]
}

// Collector returns the collector i started last, or nil.
func (d *Deployment) Collector(i int) *Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.collectors[i]
}

func (d *Deployment) node(id *identity.Identity, restart func() (*Node, error)) *Node {
	return &Node{ID: id, done: make(chan struct{}), restart: restart, polled: make(chan struct{})}
}

// runner is a keeper or a collector.
type runner interface{ Run(context.Context) error }

// run makes node i of role with build and runs it until it or the
// deployment stops, as the latest node in slot.
func (d *Deployment) run(n *Node, slot **Node, role string, i int, build func() (runner, error)) (*Node, error) {
	r, err := build()
	if err != nil {
		return nil, fmt.Errorf("deploytest: %s %d: %w", role, i, err)
	}
	var ctx context.Context
	ctx, n.cancel = context.WithCancel(d.ctx)
	d.mu.Lock()
	d.nodes = append(d.nodes, n)
	*slot = n
	d.mu.Unlock()
	go func() {
		defer close(n.done)
		n.err = r.Run(ctx)
	}()
	return n, nil
}

// Outcomes returns what the tally server has published so far.
func (d *Deployment) Outcomes() []Published {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.published)
}

// WaitOutcomes waits until n outcomes are published and returns them. It
// fails when ctx ends or the tally server stops first, saying where the
// round stood.
func (d *Deployment) WaitOutcomes(ctx context.Context, n int) ([]Published, error) {
	for {
		d.mu.Lock()
		got, changed := slices.Clone(d.published), d.changed
		d.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d outcomes published before %v; %s", len(got), n, ctx.Err(), d.where())
		case <-d.serverDone:
			if len(d.Outcomes()) < n {
				return d.Outcomes(), fmt.Errorf("the tally server stopped after %d of %d outcomes; %s", len(got), n, d.where())
			}
		}
	}
}

// WaitStatus waits until cond holds for the tally server's status and
// returns that status. It fails when ctx ends first, naming what it waited
// for and where the round stood.
func (d *Deployment) WaitStatus(ctx context.Context, what string, cond func(tally.Status) bool) (tally.Status, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if st := d.Tally.Status(); cond(st) {
			return st, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return d.Tally.Status(), fmt.Errorf("waiting for %s: %v; %s", what, ctx.Err(), d.where())
		}
	}
}

// WaitRefusal waits until the tally server has recorded the refusal of the
// node with fingerprint fp and returns the status that holds it.
func (d *Deployment) WaitRefusal(ctx context.Context, fp string) (tally.Status, error) {
	return d.WaitStatus(ctx, "the refusal of node "+fp[:12], func(st tally.Status) bool { return st.Refusals[fp] != "" })
}

// where says where the current round stands, for failure messages.
func (d *Deployment) where() string {
	st := d.Tally.Status()
	s := fmt.Sprintf("round %d in phase %q: %d keys, %d collectors joined, %d reported, %d commits, %d shares",
		st.Round, st.Phase, st.KeepersKeyed, st.CollectorsJoined, st.Reported, st.Committed, st.Released)
	if st.Failure != "" {
		s += "; failed: " + st.Failure
	}
	if st.NotAnnounced != "" {
		s += "; not announced: " + st.NotAnnounced
	}
	if len(st.Refusals) > 0 {
		s += fmt.Sprintf("; refusals: %v", st.Refusals)
	}
	return s
}

// ServerDone is closed when the tally server has stopped.
func (d *Deployment) ServerDone() <-chan struct{} { return d.serverDone }

// Wait waits for the tally server to stop (once every round has ended,
// unless KeepServing, or when ctx ends), then stops every node. It returns
// every error a component's Run returned.
func (d *Deployment) Wait() error {
	<-d.serverDone
	return d.Stop()
}

// Stop stops the tally server and every node and waits for them. It
// returns every error a component's Run returned; calling it again
// returns the same.
func (d *Deployment) Stop() error {
	d.cancel()
	<-d.serverDone
	d.mu.Lock()
	nodes := slices.Clone(d.nodes)
	d.mu.Unlock()
	errs := []error{d.serverErr}
	for _, n := range nodes {
		<-n.done
		errs = append(errs, n.err)
	}
	return errors.Join(errs...)
}

// TB is the part of testing.TB that New needs (the package stays free of
// package testing, since the demo uses it too).
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatal(args ...any)
	Errorf(format string, args ...any)
}

// New starts a deployment for a test: in a fresh temporary directory
// unless opts.Dir is set, stopped when the test ends, where any error a
// component returned fails the test. A deployment that cannot start fails
// it at once.
func New(ctx context.Context, t TB, opts Options) *Deployment {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	d, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("deployment: %v", err)
		}
	})
	return d
}

// VerifiedOutcome waits for the first outcome and checks that it verifies.
func (d *Deployment) VerifiedOutcome(ctx context.Context) (*outcome.Outcome, error) {
	published, err := d.WaitOutcomes(ctx, 1)
	if err != nil {
		return nil, err
	}
	o := published[0].Outcome
	if err := outcome.Verify(o); err != nil {
		return nil, fmt.Errorf("the outcome does not verify: %w", err)
	}
	return o, nil
}

// ShortRound is one round of two seconds, announced two seconds ahead,
// measuring relay_bytes_read with σ = 0: its published total is exactly
// what the collectors in S counted.
func ShortRound() tally.Options {
	spec, err := stats.Resolve("relay_bytes_read", nil)
	if err != nil {
		panic("deploytest: " + err.Error())
	}
	return tally.Options{Rounds: 1, RoundLength: 2 * time.Second, SetupTime: 2 * time.Second, ReportGrace: 3 * time.Second,
		MinCollectors: 1, Epsilon: 1, Delta: 1e-6, Statistics: []round.StatisticSpec{spec}}
}

// UndernoisedComposedRound is PendingRound accounted as one composed
// mechanism (round.AccountingComposed) whose σ falls short, by the
// fraction short, of the least that reaches the round's (ε, δ), announced
// by a tally server that skips its own checks: every keeper and collector
// must refuse it (roundtest.Composed).
func UndernoisedComposedRound(short float64) tally.Options {
	o := PendingRound()
	o.Adversary = &tally.Adversary{Announce: func(cfg *round.Config) {
		cfg.Statistics[0].Sigma = 1 // scaled to the claim below
		roundtest.Composed(cfg, short)
	}}
	return o
}

// PendingRound is one round whose window opens an hour after it is
// announced: for the length of a test it stays announced, or in setup once
// every keeper's round key is in.
func PendingRound() tally.Options {
	o := ShortRound()
	o.RoundLength, o.SetupTime, o.ReportGrace = time.Hour, time.Hour, 0
	return o
}

// Package collector is the data collector that runs beside a tor relay. It
// counts the relay's events into blinded counters: at the start of each
// round it draws its share of the noise and a uniform blinding per counter,
// hands Shamir shares of (noise − blinding) to the keepers sealed with HPKE,
// and keeps only the blinded counters. From then on nothing in its memory
// reveals the relay's counts. At the end of the window it reports the
// blinded counters, signed. It never writes counters, noise or shares to
// disk, and a collector that restarts mid-round drops out of that round.
package collector

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/transport"
)

// Options configure a collector.
type Options struct {
	node.Options
	// Source is where events come from.
	Source source.Source
}

// Collector is a running data collector.
type Collector struct {
	opts   Options
	log    *slog.Logger
	client *wire.Client
	// windows tells the source of the rounds' windows, so that a
	// sampling source reads at their edges (docs/sources.md).
	windows *source.Windows

	// gaps counts the gaps the source has reported, for health: how
	// often the collector was blind, never what it counted.
	gaps atomic.Uint64

	mu      sync.Mutex // guards the counting state below
	active  *activeRound
	refused string
	done    string // config hash of the last round this collector finished
}

// activeRound is the collector's whole memory of a round after setup.
type activeRound struct {
	hash     string
	cfg      *round.Config
	counters *aggregator.BlindedCounters
	program  *stats.Program
	gaps     []wire.Gap
	// sealed are the bundles, kept until the tally server has confirmed
	// them (joined), so a lost answer is retried with the same bundles
	// rather than new noise.
	sealed []identity.Signed
	joined bool
	// reportMsg is the signed report, made once after the window so that a
	// lost answer is retried with the same values and commitment.
	reportMsg *identity.Signed
}

// New prepares a collector.
func New(opts Options) (*Collector, error) {
	c, log, err := opts.Prepare("collector")
	if err != nil {
		return nil, err
	}
	if opts.Source == nil {
		return nil, errors.New("collector: no event source")
	}
	if len(opts.Keepers) == 0 {
		return nil, errors.New("collector: no keepers pinned")
	}
	return &Collector{opts: opts, log: log, client: c, windows: source.NewWindows()}, nil
}

// Run feeds events to the counters and plays the collector's part in every
// round until ctx ends (or the server is finished, with ExitWhenFinished).
func (c *Collector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer c.client.CloseIdle()
	srcErr := make(chan error, 1)
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		srcErr <- c.opts.Source.Run(ctx, c.windows, c.event, c.gap)
	}()
	// Stop the source and wait for it before returning, so that a source
	// with something to finish (a recorder flushing its trace) finishes
	// before the process may exit.
	defer func() {
		cancel()
		<-srcDone
	}()

	return node.Poller{
		Client: c.client, Log: c.log, Health: c.opts.Health, ExitWhenFinished: c.opts.ExitWhenFinished,
		Check: func() error {
			select {
			case err := <-srcErr:
				if err != nil {
					return fmt.Errorf("collector: event source: %w", err)
				}
				// A finite source (a trace) ended; keep playing the round.
				srcErr = nil
			default:
			}
			return nil
		},
	}.Run(ctx, c.handle)
}

// SourceHealth returns how to read the event source's link to tor and
// the number of gaps it has reported, for the collector's /metrics; ok is
// false when the source does not talk to tor (a trace, the synthetic
// workload).
func (c *Collector) SourceHealth() (read func() (source.Status, uint64), ok bool) {
	status, ok := source.Watch(c.opts.Source)
	if !ok {
		return nil, false
	}
	return func() (source.Status, uint64) { return status(), c.gaps.Load() }, true
}

// event counts one event if it falls inside the active round's window.
func (c *Collector) event(at time.Time, line []byte) {
	c.mu.Lock()
	if a := c.active; a != nil && !at.Before(a.cfg.Start) && at.Before(a.cfg.End) {
		a.program.CountAt(at, line, a.counters)
	}
	c.mu.Unlock()
}

// gap records a stretch without events; it is reported about the collector
// itself, never about its counts.
func (c *Collector) gap(start, end time.Time) {
	c.gaps.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.active; a != nil && end.After(a.cfg.Start) && start.Before(a.cfg.End) {
		a.gaps = append(a.gaps, wire.Gap{Start: maxTime(start, a.cfg.Start).UTC(), End: minTime(end, a.cfg.End).UTC()})
	}
	c.log.Warn("event source gap", "start", start, "end", end)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// handle acts on one view of the round.
func (c *Collector) handle(ctx context.Context, v *wire.RoundView) error {
	if v.Announce == nil || v.ConfigHash == c.refused || v.ConfigHash == c.done {
		return nil
	}
	c.mu.Lock()
	a := c.active
	c.mu.Unlock()
	if a != nil && a.hash != v.ConfigHash {
		c.log.Warn("round replaced before it finished; dropping it", "round", a.cfg.Round)
		c.drop()
		a = nil
	}
	switch v.Phase {
	case round.PhaseAnnounced:
		return nil
	case round.PhaseSetup, round.PhaseCollecting:
		if a == nil {
			return c.join(ctx, v)
		}
		if !a.joined {
			if v.Joined {
				a.joined, a.sealed = true, nil
				return nil
			}
			return c.sendBundles(ctx, a)
		}
	case round.PhaseReporting:
		if a != nil && !a.joined && !v.Joined {
			c.log.Warn("the tally server never confirmed this collector's bundles; sitting the round out", "round", a.cfg.Round)
			c.drop()
			return nil
		}
		if a != nil && !v.Reported {
			return c.report(ctx, a)
		}
	case round.PhaseDone, round.PhaseFailed:
		if v.Phase == round.PhaseFailed && a != nil {
			c.log.Warn("round failed", "round", a.cfg.Round, "reason", v.Failure)
		}
		c.drop()
		c.done = v.ConfigHash
	default:
		// Agreement and release are between the tally server and keepers.
		if a != nil && v.Reported {
			c.drop()
		}
	}
	return nil
}

// drop forgets the active round.
func (c *Collector) drop() {
	c.mu.Lock()
	a := c.active
	c.active = nil
	c.mu.Unlock()
	if a != nil {
		c.windows.Remove(window(a.cfg))
	}
}

func window(cfg *round.Config) source.Window { return source.Window{Start: cfg.Start, End: cfg.End} }

// refuse tells the tally server why this collector sits the round out.
func (c *Collector) refuse(ctx context.Context, hash, reason string) {
	c.refused = hash
	node.Refuse(ctx, c.client, c.opts.Identity, c.log, hash, reason)
}

// join checks the round, sets up blinded counters and sends the sealed
// share bundles.
func (c *Collector) join(ctx context.Context, v *wire.RoundView) error {
	hash := v.ConfigHash
	if err := v.Announce.Verify(wire.KindAnnounce, c.opts.TallyFingerprint); err != nil {
		c.refuse(ctx, hash, "announcement: "+err.Error())
		return nil
	}
	cfg, err := round.Decode(v.Announce.Body)
	if err != nil {
		c.refuse(ctx, hash, err.Error())
		return nil
	}
	// The hash goes into every AAD and signature of this round, so it
	// must be the hash of the config this collector checked and counts by.
	if h, _ := cfg.HashHex(); h != hash {
		c.refuse(ctx, hash, "announcement does not match the round's config hash")
		return nil
	}
	me, permitted := cfg.Collector(c.opts.Identity.Fingerprint)
	if !permitted {
		c.refused = hash // not ours: nothing to say
		c.log.Info("not permitted in round; waiting for the next", "round", cfg.Round)
		return nil
	}
	if err := noise.CheckClaim(cfg); err != nil {
		c.refuse(ctx, hash, err.Error())
		return nil
	}
	if v.Joined {
		c.refuse(ctx, hash, "collector restarted during the round and no longer holds its blinding")
		return nil
	}
	keys, err := c.roundKeys(cfg, hash, v)
	if err != nil {
		c.refuse(ctx, hash, err.Error())
		return nil
	}
	if c.opts.Policy != nil {
		if err := c.opts.Policy(cfg, time.Now()); err != nil {
			c.refuse(ctx, hash, err.Error())
			return nil
		}
	}
	program, err := stats.Compile(cfg.Statistics)
	if err != nil {
		c.refuse(ctx, hash, "cannot count this round's statistics: "+err.Error())
		return nil
	}
	if c.opts.Record != nil {
		// Recorded when the collector takes part, so the delay rule of
		// the next round sees this one even while it runs.
		if err := c.opts.Record(cfg); err != nil {
			return fmt.Errorf("policy ledger: %w", err)
		}
	}
	// Exact discrete Gaussian noise from crypto/rand: integers whose sum
	// over S has proven privacy (docs/noise-discrete.md), unlike a rounded
	// continuous draw, which small per-collector σ would round to 0.
	counters, bundles, err := aggregator.SetupCollector(cfg, me.NoiseWeight, noise.SampleDiscrete, nil)
	if err != nil {
		return err
	}
	var sealed []identity.Signed
	for j, b := range bundles {
		kfp := cfg.Keepers[j].Fingerprint
		if pub, ok := keys[kfp]; ok {
			ct, err := wire.SealShares(pub, hash, me.Fingerprint, kfp, b.Shares)
			if err != nil {
				return err
			}
			msg, err := wire.SignBody(c.opts.Identity, wire.KindShareBundle, wire.SealedBundle{ConfigHash: hash, Collector: me.Fingerprint, Keeper: kfp, Ciphertext: ct})
			if err != nil {
				return err
			}
			sealed = append(sealed, msg)
		}
		// Shares for a keeper without a key are dropped unsent; the
		// others' K-of-N threshold still covers them.
		clear(b.Shares)
	}
	a := &activeRound{hash: hash, cfg: cfg, counters: counters, program: program, sealed: sealed}
	// Count from now on; if the bundles are refused the round is dropped.
	c.mu.Lock()
	c.active = a
	c.mu.Unlock()
	c.windows.Add(window(cfg))
	c.log.Info("set up for round", "round", cfg.Round, "counters", cfg.NumCounters(), "keepers", len(keys), "start", cfg.Start, "end", cfg.End)
	return c.sendBundles(ctx, a)
}

// sendBundles posts the round's sealed bundles. A refusal by the tally
// server drops the round; any other failure is retried with the same
// bundles on the next view.
func (c *Collector) sendBundles(ctx context.Context, a *activeRound) error {
	if err := c.client.PostBundles(ctx, a.sealed); err != nil {
		var se *transport.StatusError
		// A conflict (already joined, or the phase moved on) is settled by
		// the next view; other 4xx answers are final.
		if errors.As(err, &se) && se.Code/100 == 4 && se.Code != http.StatusConflict {
			c.drop()
			c.refused = a.hash
			return fmt.Errorf("tally server refused bundles for round %d: %w", a.cfg.Round, err)
		}
		return fmt.Errorf("sending share bundles (will retry): %w", err)
	}
	a.joined, a.sealed = true, nil
	c.log.Info("joined round", "round", a.cfg.Round)
	return nil
}

// roundKeys verifies the keepers' round keys against the pinned keepers.
func (c *Collector) roundKeys(cfg *round.Config, hash string, v *wire.RoundView) (map[string][]byte, error) {
	fps := make([]string, len(cfg.Keepers))
	for i, k := range cfg.Keepers {
		fps[i] = k.Fingerprint
	}
	if !slices.Equal(fps, c.opts.Keepers) {
		return nil, fmt.Errorf("round names keepers that are not this collector's pinned keepers")
	}
	keys := map[string][]byte{}
	for _, m := range v.RoundKeys {
		var k wire.RoundKey
		fp, err := wire.OpenBody(m, wire.KindRoundKey, "", &k)
		if err != nil || !slices.Contains(c.opts.Keepers, fp) || k.Keeper != fp || k.ConfigHash != hash {
			return nil, fmt.Errorf("a round key is not signed by a pinned keeper for this round")
		}
		keys[fp] = k.PublicKey
	}
	if len(keys) < cfg.Threshold {
		return nil, fmt.Errorf("only %d keepers published round keys, threshold %d", len(keys), cfg.Threshold)
	}
	return keys, nil
}

// signReport makes the signed report: the blinded counters V, a Pedersen
// commitment to the masked values V_k + p·m_k signed on its own (which the
// keepers check ΣV against and the outcome publishes), and the masks and
// blinding that open it, which only the tally server sees, as it sees V.
// The masks, fresh from crypto/rand each report, keep the integer ΣV from
// telling keepers how many reports wrapped around p (package commit).
func (c *Collector) signReport(a *activeRound) (identity.Signed, error) {
	c.mu.Lock()
	rep := wire.Report{ConfigHash: a.hash, Collector: c.opts.Identity.Fingerprint, Values: a.counters.Report(), Gaps: slices.Clone(a.gaps)}
	c.mu.Unlock()
	masks, err := commit.NewMasks(rand.Reader, len(rep.Values))
	if err != nil {
		return identity.Signed{}, err
	}
	rho, err := commit.NewBlinding(rand.Reader)
	if err != nil {
		return identity.Signed{}, err
	}
	cm, err := commit.Commit(rep.Values, masks, rho)
	if err != nil {
		return identity.Signed{}, err
	}
	rep.Masks, rep.Blinding = masks, rho
	if rep.Commitment, err = wire.SignBody(c.opts.Identity, wire.KindCommitment, wire.ReportCommitment{ConfigHash: a.hash, Collector: rep.Collector, Commitment: cm}); err != nil {
		return identity.Signed{}, err
	}
	return wire.SignBody(c.opts.Identity, wire.KindReport, rep)
}

// report sends the blinded counters and forgets them.
func (c *Collector) report(ctx context.Context, a *activeRound) error {
	if time.Now().Before(a.cfg.End) {
		return nil
	}
	if a.reportMsg == nil {
		if err := c.awaitEdges(ctx, a); err != nil {
			return err
		}
		msg, err := c.signReport(a)
		if err != nil {
			return err
		}
		a.reportMsg = &msg
	}
	if err := c.client.PostReport(ctx, *a.reportMsg); err != nil {
		var se *transport.StatusError
		if errors.As(err, &se) && se.Code == http.StatusConflict {
			c.drop()
			return fmt.Errorf("tally server refused report for round %d: %w", a.cfg.Round, err)
		}
		return fmt.Errorf("sending report: %w", err)
	}
	c.log.Info("reported", "round", a.cfg.Round, "gaps", len(a.gaps))
	c.drop()
	return nil
}

// awaitEdges waits until every sampling source has read at the window's
// end (or reported a gap where it could not), so that the report holds the
// whole window, and says how late the reads at the edges were: the window
// each sampling source counted is the round's, each edge at most that
// late. Only times are logged, never a value read.
func (c *Collector) awaitEdges(ctx context.Context, a *activeRound) error {
	start, end, err := c.windows.Wait(ctx, window(a.cfg))
	if err != nil {
		return err
	}
	if start.Read+start.Failed+end.Read+end.Failed == 0 {
		return nil // no sampling source
	}
	level := slog.LevelInfo
	if start.Failed+end.Failed > 0 || max(start.Late, end.Late) > source.EdgeTolerance {
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "sampling sources read at the window's edges", "round", a.cfg.Round,
		"start_late_ms", float64(start.Late.Microseconds())/1000, "start_failed", start.Failed,
		"end_late_ms", float64(end.Late.Microseconds())/1000, "end_failed", end.Failed)
	return nil
}

// Package outcome is what a privstats round publishes: the noisy totals
// with their σ, privacy budget and 95% intervals, together with everything
// anyone needs to re-check them: the signed round config, the tally
// server's signed agreement (S, ΣV), the keepers' commits and their signed
// aggregate shares. Verify re-runs every signature check and the
// interpolation. See docs/protocol.md ("Outcome" and "privstats verify").
package outcome

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/atomicfile"
	"github.com/privstats/privstats/internal/strictjson"
	"github.com/privstats/privstats/noise"
)

// FormatVersion is the version of the outcome file format.
const FormatVersion = 1

// Outcome is one round's published result.
type Outcome struct {
	Version    int           `json:"version"`
	Series     string        `json:"series"`
	Round      uint64        `json:"round"`
	ConfigHash string        `json:"config_hash"`
	Config     *round.Config `json:"config"`
	// Tally is the fingerprint of the tally server that signed the
	// announcement and the agreement.
	Tally      string          `json:"tally"`
	Window     Window          `json:"window"`
	Collectors Collectors      `json:"collectors"`
	Statistics []Statistic     `json:"statistics"`
	Announce   identity.Signed `json:"announce"`
	Agreement  identity.Signed `json:"agreement"`
	// Commits are the keepers' commits on the agreement (at least K).
	Commits []identity.Signed `json:"commits"`
	// Shares are the aggregate shares the totals were interpolated from.
	Shares []identity.Signed `json:"shares"`
	// RejectedShares are shares that did not lie on the polynomial the
	// others agree on, kept so the misbehaviour is on record.
	RejectedShares []RejectedShare `json:"rejected_shares,omitempty"`
	// Refusals are the nodes that sat the round out under their local
	// policy, with their reasons.
	Refusals    map[string]string `json:"refusals,omitempty"`
	PublishedAt time.Time         `json:"published_at"`
	// Publication is the tally server's signature on PublishedAt.
	Publication identity.Signed `json:"publication"`
}

// Window is the round's counting window [start, end).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Collectors says who is in S.
type Collectors struct {
	Count        int                   `json:"count"`
	Fingerprints []string              `json:"fingerprints"`
	Gaps         map[string][]wire.Gap `json:"gaps,omitempty"`
}

// Statistic is one statistic's published totals.
type Statistic struct {
	Name string `json:"name"`
	// Epsilon and Delta are the statistic's own budget in a split round,
	// absent in a composed one (the round config's accounting).
	Epsilon float64 `json:"epsilon,omitempty"`
	Delta   float64 `json:"delta,omitempty"`
	// Sigma is the σ the round config asked for; TotalSigma is the true
	// standard deviation of the published totals' noise: that of the sum of
	// S's discrete Gaussian draws, given S's noise weights.
	Sigma      float64 `json:"sigma"`
	TotalSigma float64 `json:"total_sigma"`
	Bins       []Bin   `json:"bins"`
}

// Bin is one counter's published total.
type Bin struct {
	Label      string  `json:"label"`
	NoisyTotal int64   `json:"noisy_total"`
	CI95Low    float64 `json:"ci95_low"`
	CI95High   float64 `json:"ci95_high"`
}

// RejectedShare is a keeper share left out of the interpolation.
type RejectedShare struct {
	Keeper string          `json:"keeper"`
	Share  identity.Signed `json:"share"`
	Reason string          `json:"reason"`
}

// Inputs are the signed artefacts of a finished round.
type Inputs struct {
	Announce  identity.Signed
	Agreement identity.Signed
	Commits   []identity.Signed
	Shares    []identity.Signed
	// Gaps are the gaps S's collectors reported, which the agreement signs
	// by digest; refusals come from the agreement itself.
	Gaps map[string][]wire.Gap
	Now  time.Time
	// Tally signs the publication time; it must be the identity that
	// signed the announcement.
	Tally *identity.Identity
}

// Build checks the artefacts exactly as Verify will, interpolates the
// totals and returns the outcome. Shares that disagree with the others are
// moved to RejectedShares when enough consistent ones remain.
func Build(in Inputs) (*Outcome, error) {
	cfg, tally, err := openAnnounce(in.Announce)
	if err != nil {
		return nil, err
	}
	hash, _ := cfg.HashHex()
	ag, digest, err := openAgreement(cfg, hash, tally, in.Agreement)
	if err != nil {
		return nil, err
	}
	if err := checkNotes(ag, in.Gaps, ag.Refusals); err != nil {
		return nil, err
	}
	o := &Outcome{
		Version: FormatVersion, Series: cfg.Series, Round: cfg.Round, ConfigHash: hash, Config: cfg,
		Tally: tally, Window: Window{cfg.Start.UTC(), cfg.End.UTC()},
		Collectors: Collectors{Count: len(ag.Collectors), Fingerprints: ag.Collectors, Gaps: cloneGaps(in.Gaps)},
		Announce:   in.Announce, Agreement: in.Agreement, Commits: slices.Clone(in.Commits), PublishedAt: in.Now.UTC(),
		Refusals: ag.Refusals,
	}
	if _, err := checkCommits(cfg, hash, digest, in.Commits); err != nil {
		return nil, err
	}
	if in.Tally == nil || in.Tally.Fingerprint != tally {
		return nil, errors.New("outcome: the publication must be signed by the tally server that announced the round")
	}
	if o.Publication, err = wire.SignBody(in.Tally, wire.KindPublication, wire.Publication{ConfigHash: hash, Agreement: digest, PublishedAt: o.PublishedAt}); err != nil {
		return nil, err
	}
	shares := slices.Clone(in.Shares)
	for {
		totals, err := combine(cfg, hash, digest, in.Commits, shares)
		var ie *shamirInconsistent
		if errors.As(err, &ie) && len(ie.bad) > 0 {
			kept := shares[:0:0]
			for _, s := range shares {
				if fp := signerOf(s); slices.Contains(ie.bad, fp) {
					o.RejectedShares = append(o.RejectedShares, RejectedShare{Keeper: fp, Share: s, Reason: offPolynomial})
					continue
				}
				kept = append(kept, s)
			}
			shares = kept
			continue
		}
		if err != nil {
			return nil, err
		}
		o.Shares = shares
		o.Statistics = statistics(cfg, ag.Collectors, totals)
		return o, nil
	}
}

// offPolynomial is the one reason a share is rejected for; Verify re-derives
// it rather than trusting the text.
const offPolynomial = "does not lie on the polynomial the other keepers' shares agree on (the keeper's share is wrong, or a collector sealed it a wrong share)"

// Verify re-checks a published outcome from its signed artefacts alone and
// names the first problem it finds.
func Verify(o *Outcome) error {
	if o.Version != FormatVersion {
		return fmt.Errorf("outcome format version %d, want %d", o.Version, FormatVersion)
	}
	cfg, tally, err := openAnnounce(o.Announce)
	if err != nil {
		return err
	}
	if tally != o.Tally {
		return fmt.Errorf("announcement signed by %s, outcome names tally server %s", tally, o.Tally)
	}
	hash, _ := cfg.HashHex()
	if hash != o.ConfigHash {
		return fmt.Errorf("config hash %s does not match the signed config (%s)", o.ConfigHash, hash)
	}
	if o.Config == nil {
		return errors.New("outcome has no config")
	}
	if h, err := o.Config.HashHex(); err != nil || h != hash {
		return errors.New("the config shown differs from the signed config")
	}
	if o.Series != cfg.Series || o.Round != cfg.Round {
		return fmt.Errorf("series/round %s/%d differ from the signed config's %s/%d", o.Series, o.Round, cfg.Series, cfg.Round)
	}
	if !o.Window.Start.Equal(cfg.Start) || !o.Window.End.Equal(cfg.End) {
		return errors.New("window differs from the signed config's")
	}
	ag, digest, err := openAgreement(cfg, hash, tally, o.Agreement)
	if err != nil {
		return err
	}
	if o.Collectors.Count != len(ag.Collectors) || !slices.Equal(o.Collectors.Fingerprints, ag.Collectors) {
		return errors.New("collector list differs from the signed agreement's S")
	}
	if err := checkNotes(ag, o.Collectors.Gaps, o.Refusals); err != nil {
		return err
	}
	if _, err := checkCommits(cfg, hash, digest, o.Commits); err != nil {
		return err
	}
	totals, err := combine(cfg, hash, digest, o.Commits, o.Shares)
	if err != nil {
		return err
	}
	if err := checkPublication(o, hash, digest); err != nil {
		return err
	}
	if err := checkRejected(o, cfg, hash, digest); err != nil {
		return err
	}
	want := statistics(cfg, ag.Collectors, totals)
	if len(want) != len(o.Statistics) {
		return fmt.Errorf("outcome lists %d statistics, the config has %d", len(o.Statistics), len(want))
	}
	for i, w := range want {
		g := o.Statistics[i]
		if g.Name != w.Name {
			return fmt.Errorf("statistic %d is %q, the config says %q", i, g.Name, w.Name)
		}
		if g.Epsilon != w.Epsilon || g.Delta != w.Delta || g.Sigma != w.Sigma || !close(g.TotalSigma, w.TotalSigma) {
			return fmt.Errorf("statistic %s: ε, δ or σ differ from the config and noise weights (σ_total %v, want %v)", w.Name, g.TotalSigma, w.TotalSigma)
		}
		if len(g.Bins) != len(w.Bins) {
			return fmt.Errorf("statistic %s has %d bins, want %d", w.Name, len(g.Bins), len(w.Bins))
		}
		for j, wb := range w.Bins {
			gb := g.Bins[j]
			if gb.Label != wb.Label {
				return fmt.Errorf("statistic %s bin %d is %q, want %q", w.Name, j, gb.Label, wb.Label)
			}
			if gb.NoisyTotal != wb.NoisyTotal {
				return fmt.Errorf("statistic %s bin %s: published total %d, the shares interpolate to %d", w.Name, wb.Label, gb.NoisyTotal, wb.NoisyTotal)
			}
			if !close(gb.CI95Low, wb.CI95Low) || !close(gb.CI95High, wb.CI95High) {
				return fmt.Errorf("statistic %s bin %s: interval [%v, %v], want [%v, %v]", w.Name, wb.Label, gb.CI95Low, gb.CI95High, wb.CI95Low, wb.CI95High)
			}
		}
	}
	return nil
}

// checkPublication checks the tally server's signature on the publication time.
func checkPublication(o *Outcome, hash, digest string) error {
	var p wire.Publication
	if _, err := wire.OpenBody(o.Publication, wire.KindPublication, o.Tally, &p); err != nil {
		return fmt.Errorf("publication: %w", err)
	}
	if p.ConfigHash != hash || p.Agreement != digest {
		return errors.New("publication belongs to another round or agreement")
	}
	if !p.PublishedAt.Equal(o.PublishedAt) {
		return fmt.Errorf("published_at %s differs from the signed %s", o.PublishedAt.UTC().Format(time.RFC3339Nano), p.PublishedAt.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// checkRejected re-derives every rejected share: a share signed by the
// keeper it names, for this round and agreement, that the accepted shares
// show to be off their polynomial. Otherwise an outcome could accuse an
// honest keeper.
func checkRejected(o *Outcome, cfg *round.Config, hash, digest string) error {
	seen := map[string]bool{}
	for _, rej := range o.RejectedShares {
		if rej.Reason != offPolynomial {
			return fmt.Errorf("rejected share of keeper %s: reason %q is not one this privstats gives", rej.Keeper, rej.Reason)
		}
		if seen[rej.Keeper] {
			return fmt.Errorf("keeper %s's share is rejected twice", rej.Keeper)
		}
		seen[rej.Keeper] = true
		for _, s := range o.Shares {
			if signerOf(s) == rej.Keeper {
				return fmt.Errorf("keeper %s's share is both used and rejected", rej.Keeper)
			}
		}
		_, err := combine(cfg, hash, digest, o.Commits, append(slices.Clone(o.Shares), rej.Share))
		var ie *shamirInconsistent
		if !errors.As(err, &ie) || !slices.Equal(ie.bad, []string{rej.Keeper}) {
			return fmt.Errorf("rejected share of keeper %s: not shown to be off the polynomial (%v)", rej.Keeper, err)
		}
	}
	return nil
}

func close(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func openAnnounce(s identity.Signed) (*round.Config, string, error) {
	tally, err := s.VerifyAny(wire.KindAnnounce)
	if err != nil {
		return nil, "", fmt.Errorf("announcement: %w", err)
	}
	cfg, err := round.Decode(s.Body)
	if err != nil {
		return nil, "", fmt.Errorf("announcement: %w", err)
	}
	return cfg, tally, nil
}

func openAgreement(cfg *round.Config, hash, tally string, s identity.Signed) (*wire.AgreementMsg, string, error) {
	var ag wire.AgreementMsg
	if _, err := wire.OpenBody(s, wire.KindAgreement, tally, &ag); err != nil {
		return nil, "", fmt.Errorf("agreement: %w", err)
	}
	if ag.ConfigHash != hash {
		return nil, "", errors.New("agreement belongs to another round")
	}
	if len(ag.Collectors) < cfg.MinCollectors {
		return nil, "", fmt.Errorf("agreement has %d collectors, the round requires %d", len(ag.Collectors), cfg.MinCollectors)
	}
	for i, fp := range ag.Collectors {
		if _, ok := cfg.Collector(fp); !ok {
			return nil, "", fmt.Errorf("agreement names collector %s, not permitted in the round", fp)
		}
		if i > 0 && ag.Collectors[i-1] >= fp {
			return nil, "", errors.New("agreement collectors are not sorted and distinct")
		}
	}
	// ΣV must be the sum of what S's collectors committed to: without this
	// check the tally server could have published any total.
	cs, err := wire.OpenCommitments(&ag)
	if err != nil {
		return nil, "", fmt.Errorf("agreement: %w", err)
	}
	if err := aggregator.CheckSum(aggregator.Agreement{Collectors: ag.Collectors, SumV: ag.SumV, SumBlinding: ag.SumBlinding, Commitments: cs}, cfg.NumCounters()); err != nil {
		return nil, "", fmt.Errorf("agreement: %w", err)
	}
	return &ag, wire.AgreementDigest(s.Body), nil
}

func cloneGaps(gaps map[string][]wire.Gap) map[string][]wire.Gap {
	if len(gaps) == 0 {
		return nil
	}
	out := make(map[string][]wire.Gap, len(gaps))
	for fp, g := range gaps {
		out[fp] = slices.Clone(g)
	}
	return out
}

// checkNotes checks gaps and refusals against those the agreement signs.
func checkNotes(ag *wire.AgreementMsg, gaps map[string][]wire.Gap, refusals map[string]string) error {
	for fp := range gaps {
		if !slices.Contains(ag.Collectors, fp) {
			return fmt.Errorf("gaps listed for %s, which is not in the agreement's S", fp)
		}
	}
	d, err := wire.GapsDigest(gaps)
	if err != nil {
		return err
	}
	if d != ag.GapsDigest {
		return errors.New("the collectors' gaps differ from those the agreement signs")
	}
	if !maps.Equal(refusals, ag.Refusals) {
		return errors.New("the refusals differ from those the agreement signs")
	}
	return nil
}

// checkCommits checks that at least K distinct keepers of the round
// committed to the agreement, and returns who did.
func checkCommits(cfg *round.Config, hash, digest string, commits []identity.Signed) (map[string]bool, error) {
	who := map[string]bool{}
	for _, s := range commits {
		var c wire.Commit
		fp, err := wire.OpenBody(s, wire.KindCommit, "", &c)
		if err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		if _, ok := cfg.Keeper(fp); !ok || c.Keeper != fp {
			return nil, fmt.Errorf("commit signed by %s, not a keeper of the round", fp)
		}
		if c.ConfigHash != hash || c.Agreement != digest {
			return nil, fmt.Errorf("commit from keeper %s is for another round or agreement", fp)
		}
		if who[fp] {
			return nil, fmt.Errorf("two commits from keeper %s", fp)
		}
		who[fp] = true
	}
	if len(who) < cfg.Threshold {
		return nil, fmt.Errorf("%d keepers committed, the round needs %d", len(who), cfg.Threshold)
	}
	return who, nil
}

type shamirInconsistent struct {
	bad []string
	err error
}

func (e *shamirInconsistent) Error() string { return e.err.Error() }

func signerOf(s identity.Signed) string {
	fp, _ := s.VerifyAny(s.Kind)
	return fp
}

// combine checks each share and interpolates them. Inconsistent shares come
// back as *shamirInconsistent naming the keepers.
func combine(cfg *round.Config, hash, digest string, commits, shares []identity.Signed) ([]int64, error) {
	committed, err := checkCommits(cfg, hash, digest, commits)
	if err != nil {
		return nil, err
	}
	byX := map[int][]field.Element{}
	xToFP := map[int]string{}
	for _, s := range shares {
		var m wire.AggregateShareMsg
		fp, err := wire.OpenBody(s, wire.KindAggregateShare, "", &m)
		if err != nil {
			return nil, fmt.Errorf("aggregate share: %w", err)
		}
		k, ok := cfg.Keeper(fp)
		switch {
		case !ok || m.Keeper != fp:
			return nil, fmt.Errorf("aggregate share signed by %s, not a keeper of the round", fp)
		case m.X != k.X:
			return nil, fmt.Errorf("aggregate share from keeper %s claims x = %d, the round gives it %d", fp, m.X, k.X)
		case m.ConfigHash != hash || m.Agreement != digest:
			return nil, fmt.Errorf("aggregate share from keeper %s is for another round or agreement", fp)
		case !committed[fp]:
			return nil, fmt.Errorf("aggregate share from keeper %s, which did not commit", fp)
		case byX[m.X] != nil:
			return nil, fmt.Errorf("two aggregate shares from keeper %s", fp)
		}
		if err := field.CheckCounters("aggregate share from keeper "+fp, m.Values, cfg.NumCounters()); err != nil {
			return nil, err
		}
		byX[m.X] = m.Values
		xToFP[m.X] = fp
	}
	if len(byX) < cfg.Threshold {
		return nil, fmt.Errorf("%d aggregate shares, the round needs %d", len(byX), cfg.Threshold)
	}
	totals, err := aggregator.Combine(cfg, byX)
	var ie *aggregator.InconsistentError
	if errors.As(err, &ie) {
		out := &shamirInconsistent{err: fmt.Errorf("aggregate shares are inconsistent: %w", err)}
		for _, x := range ie.Bad {
			out.bad = append(out.bad, xToFP[x])
		}
		return nil, out
	}
	return totals, err
}

// statistics turns totals into published statistics with the σ that S's
// noise weights actually give and 95% intervals.
func statistics(cfg *round.Config, S []string, totals []int64) []Statistic {
	weights := weightsOf(cfg, S)
	out := make([]Statistic, len(cfg.Statistics))
	c := 0
	for i, s := range cfg.Statistics {
		// The true standard deviation of S's summed discrete Gaussian noise.
		total := noise.DiscreteTotalSigma(s.Sigma, weights)
		st := Statistic{Name: s.Name, Epsilon: s.Epsilon, Delta: s.Delta, Sigma: s.Sigma, TotalSigma: total}
		for b := range s.Counters() {
			iv := noise.CI95(totals[c], total)
			st.Bins = append(st.Bins, Bin{Label: s.BinLabel(b), NoisyTotal: totals[c], CI95Low: iv.Low, CI95High: iv.High})
			c++
		}
		out[i] = st
	}
	return out
}

// Write stores the outcome at path atomically.
func Write(path string, o *Outcome) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// Read loads an outcome file.
func Read(path string) (*Outcome, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	o, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

// Parse decodes an outcome strictly (package strictjson): unknown fields,
// duplicate or case-variant keys and trailing data are refused, so that
// verify and every other reader of the file see the same values.
func Parse(b []byte) (*Outcome, error) {
	var o Outcome
	if err := strictjson.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("not an outcome file: %w", err)
	}
	return &o, nil
}

// Package keeper is the share keeper: an independent node that holds one
// Shamir share of every collector's blinding. It publishes a fresh signed
// round key, opens the sealed bundles the tally server relays, commits once
// per round to one collector set, and releases its aggregate share only after
// K keepers committed to that same set. Its shares live only in memory: a
// keeper that restarts mid-round drops out of that round.
package keeper

import (
	"bytes"
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/policy"
)

// Options configure a keeper.
type Options struct {
	node.Options
	// Roster returns the collectors this keeper admits (fingerprint →
	// name); it is called at every round, so a roster file can change
	// between rounds. A round listing any other collector is refused:
	// keepers, not the tally server, decide who is a collector.
	Roster func() (map[string]string, error)
	// DishonestKeepers is how many keepers this one assumes may collude
	// with the tally server (policy dishonest_keepers): it releases only on
	// seeing policy.ReleaseQuorum commits on its agreement.
	DishonestKeepers int
}

// Keeper is a running share keeper.
type Keeper struct {
	opts   Options
	log    *slog.Logger
	client *wire.Client

	// The round in progress, all in memory.
	hash     string
	cfg      *round.Config
	roundKey hpke.PrivateKey
	state    *aggregator.KeeperRound
	fetched  int
	// held lists the collectors whose bundles this keeper holds, in the
	// order it opened them; the first acked of them are acknowledged.
	held  []string
	acked int
	// agreement is the signed agreement last fetched, by its digest.
	agreement       identity.Signed
	agreementDigest string
	refused         string // config hash of a round refused or lost
	commit          string // agreement digest committed to
	// commitMsg is the signed commit on it, kept for retries.
	commitMsg identity.Signed
	released  bool
	// keyMsg is the signed round key, kept until the tally server shows it
	// (keyed), so a lost answer is retried with the same key.
	keyMsg identity.Signed
	keyed  bool
}

// New prepares a keeper.
func New(opts Options) (*Keeper, error) {
	c, log, err := opts.Prepare("keeper")
	if err != nil {
		return nil, err
	}
	if !slices.Contains(opts.Keepers, opts.Identity.Fingerprint) {
		return nil, fmt.Errorf("keeper: own fingerprint %s is not in the configured keeper list", opts.Identity.Fingerprint)
	}
	if opts.Roster == nil {
		return nil, errors.New("keeper: no collector roster (keepers decide which collectors a round may list)")
	}
	return &Keeper{opts: opts, log: log, client: c}, nil
}

// Run polls the tally server and plays the keeper's part in every round
// until ctx ends (or the server is finished, with ExitWhenFinished).
func (k *Keeper) Run(ctx context.Context) error {
	defer k.client.CloseIdle()
	return node.Poller{Client: k.client, Log: k.log, Health: k.opts.Health, ExitWhenFinished: k.opts.ExitWhenFinished}.Run(ctx, k.handle)
}

// handle acts on one view of the round.
func (k *Keeper) handle(ctx context.Context, v *wire.RoundView) error {
	if v.ConfigHash == "" || v.ConfigHash == k.refused {
		return nil
	}
	if v.ConfigHash != k.hash {
		k.forget()
		announce, err := k.client.GetConfig(ctx, v.ConfigHash)
		if err != nil {
			return fmt.Errorf("fetching the round config: %w", err)
		}
		if err := k.join(ctx, v, announce); err != nil {
			return err
		}
		if k.cfg == nil {
			return nil
		}
	}
	if !k.keyed {
		switch {
		case k.keyShown(v):
			k.keyed = true
		case v.Phase == round.PhaseAnnounced:
			return k.publishKey(ctx)
		default:
			k.log.Warn("the tally server never showed this keeper's round key; sitting the round out", "round", k.cfg.Round)
			k.forget()
			k.refused = v.ConfigHash
			return nil
		}
	}
	switch v.Phase {
	case round.PhaseSetup, round.PhaseCollecting, round.PhaseReporting:
		return k.fetchBundles(ctx, v, true)
	case round.PhaseAgreeing:
		// Bundles that arrive now can still be opened, but acknowledgements
		// are over: S is chosen. Commit whatever happens.
		if err := k.fetchBundles(ctx, v, false); err != nil {
			k.log.Warn("fetching late bundles", "err", err)
		}
		return k.commitTo(ctx, v)
	case round.PhaseReleasing:
		// commitTo also refuses an agreement other than the one committed
		// to, and re-sends a commit the view does not show.
		if err := k.commitTo(ctx, v); err != nil {
			return err
		}
		return k.release(ctx, v)
	case round.PhaseDone, round.PhaseFailed:
		if v.Phase == round.PhaseFailed {
			k.log.Warn("round failed", "round", k.cfg.Round, "reason", v.Failure)
		}
		k.forget()
		k.refused = v.ConfigHash
	}
	return nil
}

// forget drops everything about the current round.
func (k *Keeper) forget() {
	k.hash, k.cfg, k.roundKey, k.state = "", nil, nil, nil
	k.fetched, k.held, k.acked, k.commit, k.released, k.commitMsg = 0, nil, 0, "", false, identity.Signed{}
	k.agreement, k.agreementDigest = identity.Signed{}, ""
	k.keyMsg, k.keyed = identity.Signed{}, false
}

// join checks a newly seen round and, if acceptable, publishes a round key.
func (k *Keeper) join(ctx context.Context, v *wire.RoundView, announce identity.Signed) error {
	cfg, err := k.checkAnnounce(v, announce)
	if err != nil {
		k.refuse(ctx, v.ConfigHash, err.Error())
		return nil
	}
	me, _ := cfg.Keeper(k.opts.Identity.Fingerprint)
	hash := v.ConfigHash
	for _, m := range v.RoundKeys {
		if fp, _ := m.VerifyAny(wire.KindRoundKey); fp == me.Fingerprint {
			// We published a key for this round before a restart; the
			// private half, and any shares, are gone.
			k.refuse(ctx, hash, "keeper restarted during the round and no longer holds its round key")
			return nil
		}
	}
	if v.Phase != round.PhaseAnnounced {
		k.refuse(ctx, hash, "keeper joined after the round's key phase ended")
		return nil
	}
	if k.opts.Policy != nil {
		if err := k.opts.Policy(cfg, time.Now()); err != nil {
			k.refuse(ctx, hash, err.Error())
			return nil
		}
	}
	if k.opts.Record != nil {
		// Recorded when the keeper takes part, so the delay rule of the
		// next round sees this one even while it runs.
		if err := k.opts.Record(cfg); err != nil {
			return fmt.Errorf("policy ledger: %w", err)
		}
	}
	priv, pub, err := wire.NewRoundKey()
	if err != nil {
		return err
	}
	msg, err := wire.SignBody(k.opts.Identity, wire.KindRoundKey, wire.RoundKey{ConfigHash: hash, Keeper: me.Fingerprint, PublicKey: pub})
	if err != nil {
		return err
	}
	st, err := aggregator.NewKeeperRound(cfg, me.X)
	if err != nil {
		return err
	}
	k.hash, k.cfg, k.roundKey, k.state, k.keyMsg = hash, cfg, priv, st, msg
	k.log.Info("joined round", "round", cfg.Round, "x", me.X, "config_hash", hash)
	return k.publishKey(ctx)
}

// publishKey posts the round key; a failure is retried with the same key.
func (k *Keeper) publishKey(ctx context.Context) error {
	if err := k.client.PostRoundKey(ctx, k.keyMsg); err != nil {
		return fmt.Errorf("publishing round key (will retry): %w", err)
	}
	k.keyed = true
	return nil
}

// keyShown reports whether the view holds exactly our signed round key.
func (k *Keeper) keyShown(v *wire.RoundView) bool {
	for _, m := range v.RoundKeys {
		if m.Signer == k.keyMsg.Signer && bytes.Equal(m.Body, k.keyMsg.Body) {
			return true
		}
	}
	return false
}

// checkAnnounce verifies the tally server's announcement against this
// keeper's own configuration.
func (k *Keeper) checkAnnounce(v *wire.RoundView, announce identity.Signed) (*round.Config, error) {
	if err := announce.Verify(wire.KindAnnounce, k.opts.TallyFingerprint); err != nil {
		return nil, fmt.Errorf("announcement: %w", err)
	}
	cfg, err := round.Decode(announce.Body)
	if err != nil {
		return nil, err
	}
	if h, _ := cfg.HashHex(); h != v.ConfigHash {
		return nil, errors.New("announcement does not match its config hash")
	}
	fps := make([]string, len(cfg.Keepers))
	for i, ks := range cfg.Keepers {
		fps[i] = ks.Fingerprint
	}
	if !slices.Equal(fps, k.opts.Keepers) {
		return nil, fmt.Errorf("round %d names keepers %v, this keeper is configured for %v", cfg.Round, short(fps), short(k.opts.Keepers))
	}
	if err := k.checkRoster(cfg); err != nil {
		return nil, err
	}
	if err := noise.CheckClaim(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkRoster refuses a round that lists a collector this keeper's operator
// did not admit. Every check that counts collectors (min_collectors, the
// noise coverage of S) then counts only admitted ones.
func (k *Keeper) checkRoster(cfg *round.Config) error {
	roster, err := k.opts.Roster()
	if err != nil {
		return fmt.Errorf("reading the collector roster: %w", err)
	}
	var outside []string
	for _, c := range cfg.Collectors {
		if _, ok := roster[c.Fingerprint]; !ok {
			outside = append(outside, c.Fingerprint)
		}
	}
	if len(outside) > 0 {
		return fmt.Errorf("round %d lists %d collector(s) not on this keeper's roster: %v", cfg.Round, len(outside), short(outside[:min(len(outside), 5)]))
	}
	return nil
}

// FixedRoster is a Roster that admits exactly the given collectors.
func FixedRoster(fingerprints []string) func() (map[string]string, error) {
	m := make(map[string]string, len(fingerprints))
	for _, fp := range fingerprints {
		m[fp] = ""
	}
	return func() (map[string]string, error) { return m, nil }
}

func short(fps []string) []string {
	out := make([]string, len(fps))
	for i, fp := range fps {
		out[i] = fp[:min(12, len(fp))]
	}
	return out
}

// refuse tells the tally server (and the log) why this keeper sits a round out.
func (k *Keeper) refuse(ctx context.Context, hash, reason string) {
	k.refused = hash
	node.Refuse(ctx, k.client, k.opts.Identity, k.log, hash, reason)
}

// fetchBundles opens new bundles and acknowledges those it holds and has
// not acknowledged yet: the tally server keeps what each keeper
// acknowledged, so an ack is only what is new.
func (k *Keeper) fetchBundles(ctx context.Context, v *wire.RoundView, ack bool) error {
	for k.fetched < v.Bundles {
		list, err := k.client.GetBundles(ctx, k.fetched)
		if err != nil {
			return fmt.Errorf("fetching bundles: %w", err)
		}
		if len(list) == 0 {
			break
		}
		for _, m := range list {
			k.fetched++
			fp, err := k.openBundle(m)
			if err != nil {
				// One bad bundle costs that collector its place in S, not the round.
				k.log.Warn("bundle refused", "err", err)
				continue
			}
			k.held = append(k.held, fp)
		}
	}
	if len(k.held) == k.acked || !ack {
		return nil
	}
	fresh := k.held[k.acked:]
	msg, err := wire.SignBody(k.opts.Identity, wire.KindAck, wire.Ack{ConfigHash: k.hash, Keeper: k.opts.Identity.Fingerprint, Collectors: fresh})
	if err != nil {
		return err
	}
	if err := k.client.PostAck(ctx, msg); err != nil {
		return fmt.Errorf("acknowledging bundles: %w", err)
	}
	k.acked += len(fresh)
	return nil
}

// openBundle opens one sealed bundle and stores its shares; it returns the
// collector's fingerprint.
func (k *Keeper) openBundle(m identity.Signed) (string, error) {
	var b wire.SealedBundle
	fp, err := wire.OpenBody(m, wire.KindShareBundle, "", &b)
	if err != nil {
		return "", err
	}
	if b.ConfigHash != k.hash || b.Keeper != k.opts.Identity.Fingerprint || b.Collector != fp {
		return "", fmt.Errorf("bundle from %s is not for this keeper in this round", fp)
	}
	shares, err := wire.OpenShares(k.roundKey, b.Ciphertext, k.hash, fp, b.Keeper, k.cfg.NumCounters())
	if err != nil {
		return "", err
	}
	return fp, k.state.Accept(fp, shares)
}

// fetchAgreement returns the signed agreement the view names, fetching it
// only when its digest is new. The digest is checked against the bytes.
func (k *Keeper) fetchAgreement(ctx context.Context, digest string) (identity.Signed, error) {
	if digest == k.agreementDigest {
		return k.agreement, nil
	}
	m, err := k.client.GetAgreement(ctx, digest)
	if err != nil {
		return identity.Signed{}, fmt.Errorf("fetching the agreement: %w", err)
	}
	if got := wire.AgreementDigest(m.Body); got != digest {
		return identity.Signed{}, fmt.Errorf("the tally server answered agreement %.12s… with one of digest %.12s…", digest, got)
	}
	k.agreement, k.agreementDigest = m, digest
	return m, nil
}

// commitTo checks the tally server's agreement and commits to it, once.
// Asked for a second, different agreement in the same round, the keeper
// refuses and leaves the round: a tally server releasing two collector sets
// could difference their totals.
func (k *Keeper) commitTo(ctx context.Context, v *wire.RoundView) error {
	if v.Agreement == "" {
		return nil
	}
	if k.commit != "" {
		if d := v.Agreement; d != k.commit {
			k.refuse(ctx, k.hash, fmt.Sprintf("the tally server asked for a second agreement (%s) after this keeper committed to %s; a keeper commits once per round, so it leaves the round", d[:12], k.commit[:12]))
			k.forget()
			return nil
		}
		return k.postCommit(ctx, v)
	}
	signed, err := k.fetchAgreement(ctx, v.Agreement)
	if err != nil {
		return err
	}
	var ag wire.AgreementMsg
	if _, err := wire.OpenBody(signed, wire.KindAgreement, k.opts.TallyFingerprint, &ag); err != nil {
		return fmt.Errorf("agreement: %w", err)
	}
	if ag.ConfigHash != k.hash {
		return errors.New("agreement is for another round")
	}
	if err := ag.Resolve(k.cfg.CollectorFingerprints()); err != nil {
		k.refuse(ctx, k.hash, "cannot commit: "+err.Error())
		k.forget()
		return nil
	}
	commitments, err := wire.OpenCommitments(&ag)
	if err != nil {
		k.refuse(ctx, k.hash, "cannot commit: "+err.Error())
		k.forget()
		return nil
	}
	if err := k.state.Commit(aggregator.Agreement{Collectors: ag.Collectors, SumV: ag.SumV, SumBlinding: ag.SumBlinding, Commitments: commitments}); err != nil {
		k.refuse(ctx, k.hash, "cannot commit: "+err.Error())
		k.forget()
		return nil
	}
	digest := v.Agreement
	msg, err := wire.SignBody(k.opts.Identity, wire.KindCommit, wire.Commit{ConfigHash: k.hash, Keeper: k.opts.Identity.Fingerprint, Agreement: digest})
	if err != nil {
		return err
	}
	// The promise is made once it is signed: a lost answer is retried with
	// this commit, and any other agreement is refused, so no dropped
	// response can draw a second commit out of this keeper.
	k.commit, k.commitMsg = digest, msg
	k.log.Info("committed", "round", k.cfg.Round, "collectors", len(ag.Collectors))
	return k.postCommit(ctx, v)
}

// postCommit sends the keeper's commit unless the view already shows it.
func (k *Keeper) postCommit(ctx context.Context, v *wire.RoundView) error {
	for _, m := range v.Commits {
		if m.Signer == k.commitMsg.Signer && bytes.Equal(m.Body, k.commitMsg.Body) {
			return nil
		}
	}
	if err := k.client.PostCommit(ctx, k.commitMsg); err != nil {
		return fmt.Errorf("committing (will retry): %w", err)
	}
	return nil
}

// release sends the aggregate share once K distinct keepers of the round
// (checked against this keeper's own list) committed to our agreement.
func (k *Keeper) release(ctx context.Context, v *wire.RoundView) error {
	if k.commit == "" || k.released || v.Shared {
		return nil
	}
	committed := map[string]bool{}
	for _, m := range v.Commits {
		var c wire.Commit
		fp, err := wire.OpenBody(m, wire.KindCommit, "", &c)
		if err != nil || !slices.Contains(k.opts.Keepers, fp) || c.Keeper != fp {
			continue
		}
		if c.ConfigHash == k.hash && c.Agreement == k.commit {
			committed[fp] = true
		}
	}
	// K commits suffice when keepers are honest; against dishonest keepers
	// that sign two agreements, a larger quorum keeps any two from both
	// being released.
	if len(committed) < policy.ReleaseQuorum(len(k.cfg.Keepers), k.cfg.Threshold, k.opts.DishonestKeepers) {
		return nil
	}
	values, err := k.state.AggregateShare()
	if err != nil {
		return err
	}
	me, _ := k.cfg.Keeper(k.opts.Identity.Fingerprint)
	msg, err := wire.SignBody(k.opts.Identity, wire.KindAggregateShare, wire.AggregateShareMsg{
		ConfigHash: k.hash, Keeper: me.Fingerprint, X: me.X, Agreement: k.commit, Values: values})
	if err != nil {
		return err
	}
	if err := k.client.PostShare(ctx, msg); err != nil {
		return fmt.Errorf("releasing share: %w", err)
	}
	k.released = true
	k.log.Info("aggregate share released", "round", k.cfg.Round, "commits", len(committed))
	return nil
}

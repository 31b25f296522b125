// Package node is what share keepers and collectors share as clients of
// the tally server: their common options, their client and logger, the
// long-poll loop that hands each new view of the round to the role, and the
// signed refusal a node sends when it sits a round out.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/wait"
	"github.com/privstats/privstats/transport"
)

// Options are what a share keeper and a collector are both configured
// with; each role's Options embed them.
type Options struct {
	Identity *identity.Identity
	// Tally is the tally server's address; TallyFingerprint pins it.
	Tally            string
	TallyFingerprint string
	// Keepers pins the keeper list, in x-coordinate order: a round naming
	// other keepers (or, for a collector, round keys they did not sign) is
	// refused, so the tally server cannot swap in keepers of its own.
	Keepers []string
	// Policy is the node's local policy check; nil accepts.
	Policy func(cfg *round.Config, now time.Time) error
	// Record is told of every round the node takes part in (the policy
	// ledger).
	Record func(cfg *round.Config) error
	// ExitWhenFinished makes Run return when the tally server says no more
	// rounds will run.
	ExitWhenFinished bool
	// Health, when set, is told whether the node reaches the tally server
	// and the round's phase (for its health /metrics).
	Health func(connected bool, phase string)
	Logger *slog.Logger
	// Dial, when set, opens the node's TCP connections to the tally server
	// (the load test counts the bytes on them); nil dials directly.
	Dial transport.Dialer
}

// Prepare checks that o names the node's identity key and returns the
// node's client of the tally server and its logger. The client's timeout
// outlasts the server's longest long poll, so a poll that waits for news is
// not cut short; the logger (o.Logger, or slog.Default()) names role and
// the start of the node's fingerprint on every line.
func (o Options) Prepare(role string) (*wire.Client, *slog.Logger, error) {
	if o.Identity == nil {
		return nil, nil, fmt.Errorf("%s: no identity key", role)
	}
	c, err := wire.NewClientDial(o.Identity, o.Tally, o.TallyFingerprint, (wire.MaxLongPollS+15)*time.Second, o.Dial)
	if err != nil {
		return nil, nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return c, log.With(role, o.Identity.Fingerprint[:12]), nil
}

// Poller long-polls the tally server for the round's state.
type Poller struct {
	Client *wire.Client
	Log    *slog.Logger
	// Health, when set, is told whether the last poll worked and the phase.
	Health func(connected bool, phase string)
	// ExitWhenFinished ends Run when the server says no round will follow.
	ExitWhenFinished bool
	// Check, when set, runs before every poll; an error ends Run.
	Check func() error
}

// maxBackoff caps the wait between polls of an unreachable server.
const maxBackoff = 30 * time.Second

// Run polls until ctx ends, calling handle with every new view. When handle
// fails, the same view is asked for again a second later, so the step is
// retried.
func (p Poller) Run(ctx context.Context, handle func(context.Context, *wire.RoundView) error) error {
	var since uint64
	backoff := time.Second
	toldFinished := false
	for ctx.Err() == nil {
		if p.Check != nil {
			if err := p.Check(); err != nil {
				return err
			}
		}
		v, err := p.Client.PollRound(ctx, since)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.health(false, "")
			p.Log.Warn("tally server unreachable; retrying", "err", err, "in", backoff)
			wait.Sleep(ctx, backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = time.Second
		p.health(true, v.Phase)
		if err := handle(ctx, v); err != nil {
			p.Log.Error("round", "err", err)
			wait.Sleep(ctx, time.Second)
			continue
		}
		since = v.Version
		if v.Finished && !toldFinished {
			toldFinished = true
			p.Log.Info("the tally server's series finished: no more rounds will run", "exit", p.ExitWhenFinished)
		}
		if v.Finished && p.ExitWhenFinished {
			return nil
		}
	}
	return nil
}

func (p Poller) health(connected bool, phase string) {
	if p.Health != nil {
		p.Health(connected, phase)
	}
}

// Refuse tells the tally server, signed, why this node sits the round with
// the given config hash out, and logs it.
func Refuse(ctx context.Context, c *wire.Client, id *identity.Identity, log *slog.Logger, hash, reason string) {
	log.Warn("refusing round", "config_hash", hash, "reason", reason)
	msg, err := wire.SignBody(id, wire.KindRefusal, wire.Refusal{ConfigHash: hash, Node: id.Fingerprint, Reason: reason})
	if err == nil {
		err = c.PostRefusal(ctx, msg)
	}
	if err != nil {
		log.Warn("could not send refusal", "err", err)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/outcome"
)

// crashKillsEnv sets how many kills each crash loop makes (default 20).
const crashKillsEnv = "PRIVSTATS_CRASH_KILLS"

// crashPhases are the phases the crash loop aims its kills at, in turn.
var crashPhases = []string{round.PhaseAnnounced, round.PhaseSetup, round.PhaseCollecting, round.PhaseReporting,
	round.PhaseAgreeing, round.PhaseReleasing, round.PhaseDone}

// TestCrashLoop runs a series of short rounds across separate processes
// and kill -9s one of them over and over, aiming each kill at the next
// phase in turn: the tally server (restarted each time from its data
// directory), a random keeper, or a random collector (restarted each time,
// so it sits out the round it lost its secrets in). After every kill:
//
//   - the tally server is up (restarted, if it was the victim);
//   - nothing it acknowledged is lost: every bundle, report and aggregate
//     share a node logged as accepted before the kill is still held by the
//     restarted server (asked as that node), or its round has ended —
//     published with the acknowledged shares in its outcome, or failed with
//     a stated reason.
//
// After the last kill the series must complete a round, and every round
// that ended must have a valid outcome or a logged reason for failing.
// PRIVSTATS_CRASH_KILLS=100 makes the long run.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts processes for about a minute per victim")
	}
	kills := 20
	if v := os.Getenv(crashKillsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of kills", crashKillsEnv, v)
		}
		kills = n
	}
	for _, victim := range []string{"tally", "keeper", "collector"} {
		t.Run(victim, func(t *testing.T) { crashLoop(t, victim, kills) })
	}
}

func crashLoop(t *testing.T, victim string, kills int) {
	d := newDeployment(t)
	keys := d.configure(seriesSpec{name: "crash", rounds: 0, roundLength: "3s", setupTime: "2s"})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	running := map[string]*proc{"tally": d.start("tally", "tally", "-c", "tally.yaml")}
	roles := map[string][]string{"tally": {"tally"}}
	for i := 1; i <= 3; i++ {
		k, dc := fmt.Sprintf("keeper%d", i), fmt.Sprintf("dc%d", i)
		running[k] = d.start(k, "keeper", "-c", k+".yaml")
		running[dc] = d.start(dc, "collect", "-c", dc+".yaml")
		roles["keeper"] = append(roles["keeper"], k)
		roles["collector"] = append(roles["collector"], dc)
	}
	command := map[string]string{"tally": "tally", "keeper": "keeper", "collector": "collect"}
	d.waitUp(running["tally"])

	hit := map[string]int{}
	var lastRound uint64
	for i := range kills {
		phase, number := d.aim(crashPhases[i%len(crashPhases)], 20*time.Second, running["tally"])
		// Long phases are hit anywhere in them; short ones at once.
		if phase == round.PhaseCollecting || phase == round.PhaseSetup || phase == round.PhaseAnnounced {
			time.Sleep(time.Duration(rng.Int64N(int64(800 * time.Millisecond))))
		} else {
			time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond))))
		}
		name := roles[victim][rng.IntN(len(roles[victim]))]
		running[name].kill(t)
		hit[phase]++
		lastRound = max(lastRound, number)
		running[name] = d.start(fmt.Sprintf("%s-%d", name, i+1), command[victim], "-c", name+".yaml")
		if victim == "tally" {
			d.waitUp(running["tally"])
		} else if running["tally"].exited() {
			t.Fatalf("kill %d (%s in %s): the tally server exited", i+1, name, phase)
		}
		d.checkAcknowledged(keys, fmt.Sprintf("kill %d (%s, round %d, %s)", i+1, name, number, phase))
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills of the %s by phase: %v", kills, victim, hit)

	// The series goes on: a round announced after the last kill completes.
	deadline := time.Now().Add(90 * time.Second)
	for next := lastRound + 1; !d.published(next); {
		if time.Now().After(deadline) || running["tally"].exited() {
			t.Fatalf("no round after round %d completed within 90 s of the last kill", lastRound)
		}
		time.Sleep(200 * time.Millisecond)
		// A round that failed (its reason is checked below) gives way to the next.
		if _, reason := d.ended(next); reason != "" {
			next++
		}
	}
	d.checkAcknowledged(keys, "after the last kill")
	d.auditRounds(t)
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// waitUp waits for the tally server's /metrics to answer; it fails the
// test if the server exits (a restart that refuses its data directory).
func (d *deployment) waitUp(ts *proc) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, ok := d.progress(); ok {
			return
		}
		if ts.exited() {
			d.t.Fatalf("%s exited instead of serving", ts.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("%s did not answer /metrics within 20 s", ts.name)
}

// aim waits (at most within) for the round to be in phase and returns the
// phase and round it found: the aimed-at one, or, if it did not come in
// time, whatever the round is in then.
func (d *deployment) aim(phase string, within time.Duration, ts *proc) (string, uint64) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, n, ok := d.progress()
		if ok && (got == phase || time.Now().After(deadline)) {
			return got, n
		}
		if ts.exited() {
			d.t.Fatalf("%s exited", ts.name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ack is an answer "stored" a node logged: the tally server accepted its
// bundles (joined), its report (reported) or its aggregate share (released).
type ack struct {
	node  string
	round uint64
	what  string
}

var ackLine = regexp.MustCompile(`msg="?(joined round|reported|aggregate share released)"?\s(?:.*\s)?round=(\d+)`)

// acks reads every acknowledgement the nodes logged so far. A keeper's
// "joined round" is logged before it posts anything, so it is no ack.
func (d *deployment) acks() []ack {
	var out []ack
	for _, p := range d.procs {
		node, _, _ := strings.Cut(p.name, "-")
		b, err := os.ReadFile(p.log)
		if err != nil {
			d.t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			m := ackLine.FindStringSubmatch(line)
			if m == nil || (m[1] == "joined round" && strings.HasPrefix(node, "keeper")) {
				continue
			}
			n, _ := strconv.ParseUint(m[2], 10, 64)
			out = append(out, ack{node: node, round: n, what: m[1]})
		}
	}
	return out
}

// checkAcknowledged asks the tally server, as each node that logged an
// acknowledgement, what it holds of that node, and fails the test for any
// acknowledged message the server no longer has while its round runs, or
// any share missing from the outcome of a round that ended.
func (d *deployment) checkAcknowledged(keys map[string]string, when string) {
	d.t.Helper()
	type seen struct {
		v       *wire.RoundView
		current uint64
	}
	views := map[string]seen{}
	for _, a := range d.acks() {
		sv, ok := views[a.node]
		if !ok {
			v, current := d.viewAs(a.node, keys["tally"], when)
			sv = seen{v, current}
			views[a.node] = sv
		}
		v, current := sv.v, sv.current
		switch {
		case current < a.round:
			d.t.Errorf("%s: %s's %q in round %d was acknowledged, but the restarted server is back at round %d", when, a.node, a.what, a.round, current)
		case current == a.round && v.Phase != round.PhaseDone && v.Phase != round.PhaseFailed:
			held := map[string]bool{"joined round": v.Joined, "reported": v.Reported, "aggregate share released": v.Shared}[a.what]
			if !held {
				d.t.Errorf("%s: %s's %q in round %d was acknowledged, and the server no longer holds it", when, a.node, a.what, a.round)
			}
		default:
			// The round is over: what it accepted is in its outcome. (Its
			// bundles and reports may be gone: the server drops them as it
			// announces the next round.)
			o, reason := d.ended(a.round)
			if o == nil && reason == "" {
				d.t.Errorf("%s: round %d is over, but the server neither published it nor logged why it failed", when, a.round)
			}
			if o != nil && a.what == "aggregate share released" && !slices.ContainsFunc(o.Shares, func(s identity.Signed) bool {
				fp, err := s.VerifyAny(wire.KindAggregateShare)
				return err == nil && fp == keys[a.node]
			}) {
				d.t.Errorf("%s: %s's aggregate share in round %d was acknowledged, but the outcome does not hold it", when, a.node, a.round)
			}
		}
	}
}

// viewAs is the round as the tally server shows it to node.
// viewAs polls the tally server as node and returns its view and the
// number of the round it runs (0 before the first announcement), read from
// the config it serves by hash.
func (d *deployment) viewAs(node, tallyFP, when string) (*wire.RoundView, uint64) {
	d.t.Helper()
	id, err := identity.Load(filepath.Join(d.dir, node+".key"))
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := wire.NewClient(id, d.listen, tallyFP, 10*time.Second)
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.CloseIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		v, err := c.PollRound(ctx, 0)
		if err == nil && v.ConfigHash == "" {
			return v, 0
		}
		if err == nil {
			var signed identity.Signed
			if signed, err = c.GetConfig(ctx, v.ConfigHash); err == nil {
				cfg, derr := round.Decode(signed.Body)
				if derr != nil {
					d.t.Fatalf("%s: the server's round config: %v", when, derr)
				}
				return v, cfg.Round
			}
		}
		// The server may be between a kill and its restart's listener.
		if ctx.Err() != nil {
			d.t.Fatalf("asking the server as %s: %v", node, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// published reports whether round n's outcome is written.
func (d *deployment) published(n uint64) bool {
	_, err := os.Stat(d.outcomePath(n))
	return err == nil
}

func (d *deployment) outcomePath(n uint64) string {
	return filepath.Join(d.dir, "data", "outcomes", fmt.Sprintf("%s-%06d.json", d.series, n))
}

// ended is round n's outcome, if it was published, or the reason the
// tally server logged for failing it.
func (d *deployment) ended(n uint64) (*outcome.Outcome, string) {
	d.t.Helper()
	o, err := outcome.Read(d.outcomePath(n))
	if err == nil {
		return o, ""
	}
	if !errors.Is(err, fs.ErrNotExist) {
		d.t.Fatalf("outcome of round %d: %v", n, err)
	}
	failed := regexp.MustCompile(`msg="round failed"\s(?:.*\s)?round=` + strconv.FormatUint(n, 10) + ` reason=(.+)`)
	for _, p := range d.procs {
		if !strings.HasPrefix(p.name, "tally") {
			continue
		}
		b, _ := os.ReadFile(p.log)
		if m := failed.FindSubmatch(b); m != nil {
			return nil, string(m[1])
		}
	}
	return nil, ""
}

// auditRounds checks that every round the tally server announced, but for
// the one still running, was published with an outcome that verifies or
// failed with a logged reason, and logs each round's result.
func (d *deployment) auditRounds(t *testing.T) {
	t.Helper()
	announced := regexp.MustCompile(`msg="round announced"\s(?:.*\s)?round=(\d+)`)
	var last uint64
	for _, p := range d.procs {
		if strings.HasPrefix(p.name, "tally") {
			b, _ := os.ReadFile(p.log)
			for _, m := range announced.FindAllSubmatch(b, -1) {
				n, _ := strconv.ParseUint(string(m[1]), 10, 64)
				last = max(last, n)
			}
		}
	}
	var summary []string
	done := 0
	for n := uint64(1); n < last; n++ {
		o, reason := d.ended(n)
		switch {
		case o != nil:
			if err := outcome.Verify(o); err != nil {
				t.Errorf("round %d: the published outcome does not verify: %v", n, err)
			}
			done++
			summary = append(summary, fmt.Sprintf("%d: done (%d collectors, %d shares)", n, o.Collectors.Count, len(o.Shares)))
		case reason != "":
			summary = append(summary, fmt.Sprintf("%d: failed: %s", n, reason))
		default:
			t.Errorf("round %d ended neither published nor failed with a reason", n)
		}
	}
	t.Logf("%d rounds ended, %d published:\n%s", last-1, done, strings.Join(summary, "\n"))
}

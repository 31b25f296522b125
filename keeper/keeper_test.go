package keeper_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/internal/deploytest/slow"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/tally"
	"github.com/privstats/privstats/transport"
)

// With N = K = 2 every keeper must take part: each publishes a round key,
// opens the collectors' bundles, commits to the tally server's agreement
// and releases its aggregate share for it, at its own x.
func TestKeepersJoinCommitAndRelease(t *testing.T) {
	opts := deploytest.ShortRound()
	opts.Threshold = 2
	ctx, d := slow.Start(t, 60*time.Second, deploytest.Options{Keepers: 2, Collectors: 2, Tally: opts})
	o, err := d.VerifiedOutcome(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Collectors.Count != 2 {
		t.Errorf("%d collectors in S, want 2", o.Collectors.Count)
	}
	digest := wire.AgreementDigest(o.Agreement.Body)
	for x, id := range d.KeeperIDs {
		x++
		var commit wire.Commit
		if !signedBy(t, o.Commits, wire.KindCommit, id.Fingerprint, &commit) || commit.Agreement != digest {
			t.Errorf("keeper x=%d: no commit on the agreement in the outcome", x)
		}
		var share wire.AggregateShareMsg
		if !signedBy(t, o.Shares, wire.KindAggregateShare, id.Fingerprint, &share) {
			t.Errorf("keeper x=%d released no share", x)
			continue
		}
		if share.X != x || share.Agreement != digest || len(share.Values) != o.Config.NumCounters() {
			t.Errorf("keeper x=%d released a share at x=%d for agreement %.12s with %d values", x, share.X, share.Agreement, len(share.Values))
		}
	}
}

// signedBy opens the message of the kind signed by fp among msgs.
func signedBy(t *testing.T, msgs []identity.Signed, kind, fp string, into any) bool {
	t.Helper()
	for _, m := range msgs {
		if signer, err := wire.OpenBody(m, kind, "", into); err == nil && signer == fp {
			return true
		}
	}
	return false
}

// A keeper sits out a round it will not take part in and tells the tally
// server why, without publishing a round key.
func TestKeeperRefusesWithItsReason(t *testing.T) {
	short := func(fp string) string { return fp[:12] }
	for _, tc := range []struct {
		name   string
		round  tally.Options // zero: deploytest.PendingRound()
		adjust func(d *deploytest.Deployment, o *keeper.Options)
		reason func(d *deploytest.Deployment) string // the refusal, or a part of it
	}{
		{
			name: "its policy says no",
			adjust: func(_ *deploytest.Deployment, o *keeper.Options) {
				o.Policy = func(*round.Config, time.Time) error {
					return errors.New("policy: max_epsilon 0.5 is below the round's ε 1")
				}
			},
			reason: func(*deploytest.Deployment) string { return "policy: max_epsilon 0.5 is below the round's ε 1" },
		},
		{
			name: "the round lists its keepers in another order",
			adjust: func(d *deploytest.Deployment, o *keeper.Options) {
				o.Keepers = []string{d.KeeperIDs[1].Fingerprint, d.KeeperIDs[0].Fingerprint, d.KeeperIDs[2].Fingerprint}
			},
			reason: func(d *deploytest.Deployment) string {
				k := d.KeeperFingerprints()
				return fmt.Sprintf("round 1 names keepers [%s %s %s], this keeper is configured for [%s %s %s]",
					short(k[0]), short(k[1]), short(k[2]), short(k[1]), short(k[0]), short(k[2]))
			},
		},
		{
			// Every keeper checks the claim whatever the tally server says.
			name:   "a composed round's σ are 1% short of its (ε, δ)",
			round:  deploytest.UndernoisedComposedRound(0.01),
			adjust: func(*deploytest.Deployment, *keeper.Options) {},
			reason: func(*deploytest.Deployment) string {
				return "the round claims more privacy than its noise gives: the statistics' noise composed over 1 collectors"
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if tc.round.Rounds == 0 {
				tc.round = deploytest.PendingRound()
			}
			d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Tally: tc.round, Idle: true})
			if _, err := d.StartKeeper(0, func(o *keeper.Options) { tc.adjust(d, o) }); err != nil {
				t.Fatal(err)
			}
			fp := d.KeeperIDs[0].Fingerprint
			st, err := d.WaitRefusal(ctx, fp)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st.Refusals[fp], tc.reason(d); !strings.Contains(got, want) {
				t.Errorf("refusal %q, want %q", got, want)
			}
			if st.KeepersKeyed != 0 {
				t.Errorf("%d round keys published; the refusing keeper published one", st.KeepersKeyed)
			}
		})
	}
}

// A keeper that first sees a round after its key phase cannot be sent
// bundles any more; it says so rather than publish a key nobody uses.
func TestLateKeeperSitsOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Two of three keys are enough once half the setup time has passed.
	opts := deploytest.PendingRound()
	opts.SetupTime = 2 * time.Second
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Tally: opts, Idle: true})
	for i := 1; i < 3; i++ {
		if _, err := d.StartKeeper(i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.WaitStatus(ctx, "the setup phase", func(st tally.Status) bool { return st.Phase == round.PhaseSetup }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartKeeper(0, nil); err != nil {
		t.Fatal(err)
	}
	fp := d.KeeperIDs[0].Fingerprint
	st, err := d.WaitRefusal(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	if want := "keeper joined after the round's key phase ended"; st.Refusals[fp] != want {
		t.Errorf("refusal %q, want %q", st.Refusals[fp], want)
	}
	if st.KeepersKeyed != 2 {
		t.Errorf("%d round keys, want the 2 of the keepers that were on time", st.KeepersKeyed)
	}
}

// A keeper that restarts after publishing its round key has lost the
// private half and every share sealed to it: it says so and sits the round
// out, and the other K keepers finish the round.
func TestRestartedKeeperSitsOut(t *testing.T) {
	ctx, d := slow.Start(t, 60*time.Second, deploytest.Options{Keepers: 3, Collectors: 2, Tally: deploytest.ShortRound()})
	if _, err := d.WaitStatus(ctx, "every round key", func(st tally.Status) bool { return st.KeepersKeyed == 3 }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Keeper(0).Restart(); err != nil {
		t.Fatal(err)
	}
	o, err := d.VerifiedOutcome(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restarted := d.KeeperIDs[0].Fingerprint
	if want := "keeper restarted during the round and no longer holds its round key"; o.Refusals[restarted] != want {
		t.Errorf("restarted keeper's refusal %q, want %q", o.Refusals[restarted], want)
	}
	var share wire.AggregateShareMsg
	if signedBy(t, o.Shares, wire.KindAggregateShare, restarted, &share) {
		t.Error("the restarted keeper released a share")
	}
	if len(o.Shares) != 2 || o.Collectors.Count != 2 {
		t.Errorf("%d shares and %d collectors, want the other 2 keepers' shares over both collectors", len(o.Shares), o.Collectors.Count)
	}
}

// scripted is a tally server that says whatever the test tells it: real
// TLS with the tally server's pinned key and real signed messages, but the
// views are the test's, so it can equivocate as a compromised tally server
// would. It records what the keeper posts, and the last view the keeper
// has handled (the since of its next poll).
type scripted struct {
	addr string

	mu      sync.Mutex
	view    wire.RoundView
	bundles []identity.Signed
	posts   map[string][]identity.Signed
	handled uint64
	changed chan struct{} // closed and replaced on every change
}

func startScripted(t *testing.T, id *identity.Identity, allowed []string) *scripted {
	t.Helper()
	tlsConf, err := transport.ServerConfig(id, func(fp string) bool { return slices.Contains(allowed, fp) }, func(string, error) {})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{addr: ln.Addr().String(), posts: map[string][]identity.Signed{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathRound, s.poll)
	mux.HandleFunc("GET "+wire.PathBundles, func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		s.mu.Lock()
		list := s.bundles[min(from, len(s.bundles)):]
		s.mu.Unlock()
		json.NewEncoder(w).Encode(list)
	})
	for _, path := range []string{wire.PathRoundKey, wire.PathAck, wire.PathCommit, wire.PathShare, wire.PathRefusal} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var m identity.Signed
			if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.update(func() { s.posts[path] = append(s.posts[path], m) })
		})
	}
	srv := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	go srv.Serve(tls.NewListener(ln, tlsConf))
	t.Cleanup(func() { srv.Close() })
	return s
}

// poll answers a long poll once the view is newer than since.
func (s *scripted) poll(w http.ResponseWriter, r *http.Request) {
	since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	s.update(func() { s.handled = max(s.handled, since) })
	for {
		s.mu.Lock()
		v, changed := s.view, s.changed
		s.mu.Unlock()
		if v.Version > since {
			json.NewEncoder(w).Encode(v)
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

func (s *scripted) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
}

// show makes v the round's next view and returns its version.
func (s *scripted) show(v wire.RoundView) uint64 {
	var version uint64
	s.update(func() {
		v.Version = s.view.Version + 1
		s.view, version = v, v.Version
	})
	return version
}

// until waits for cond, which runs with s.mu held.
func (s *scripted) until(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for {
		s.mu.Lock()
		ok, changed := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// posted waits for the n-th message posted to path and returns it.
func (s *scripted) posted(ctx context.Context, t *testing.T, path string, n int) identity.Signed {
	t.Helper()
	s.until(ctx, t, "a post to "+path, func() bool { return len(s.posts[path]) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts[path][n-1]
}

// count is how many messages were posted to path.
func (s *scripted) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.posts[path])
}

// A keeper commits once per round. When the tally server, having got its
// commit on agreement A, shows a different agreement B (fewer collectors,
// so that the two totals would difference out the missing one) and even K
// commits on B, the keeper neither commits to B nor releases a share: it
// refuses, says why, and leaves the round, releasing nothing even for A.
func TestKeeperCommitsToOneAgreementOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := make([]*identity.Identity, 6)
	for i := range ids {
		id, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	tallyID, keepers, collectors := ids[0], ids[1:4], ids[4:6]
	cfg := roundtest.Config(3, 2, 2, 0, 1)
	for j, k := range keepers {
		cfg.Keepers[j].Fingerprint = k.Fingerprint
	}
	for i, c := range collectors {
		cfg.Collectors[i].Fingerprint = c.Fingerprint
	}
	body, err := cfg.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := cfg.HashHex()
	announce := tallyID.Sign(wire.KindAnnounce, body)
	var keeperFPs, allowed []string
	for _, id := range keepers {
		keeperFPs = append(keeperFPs, id.Fingerprint)
	}
	for _, id := range ids[1:] {
		allowed = append(allowed, id.Fingerprint)
	}
	tallyServer := startScripted(t, tallyID, allowed)

	me := keepers[0]
	k, err := keeper.New(keeper.Options{Options: node.Options{Identity: me, Tally: tallyServer.addr, TallyFingerprint: tallyID.Fingerprint,
		Keepers: keeperFPs, Logger: slog.New(slog.DiscardHandler)}, Roster: keeper.FixedRoster(fingerprints(collectors))})
	if err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { k.Run(kctx); close(done) }()
	defer func() { kcancel(); <-done }()

	view := wire.RoundView{ConfigHash: hash, Phase: round.PhaseAnnounced, Announce: &announce}
	tallyServer.show(view)
	keyMsg := tallyServer.posted(ctx, t, wire.PathRoundKey, 1)
	var key wire.RoundKey
	if _, err := wire.OpenBody(keyMsg, wire.KindRoundKey, me.Fingerprint, &key); err != nil {
		t.Fatal(err)
	}

	// Two collectors set up for real, count, and seal keeper 1's bundles
	// to its round key; the test keeps keeper 2's shares to check the
	// released share against.
	counts := []uint64{1234, 567}
	reports := map[string][]field.Element{}
	for i, c := range collectors {
		counters, bundles, err := aggregator.SetupCollector(cfg, 1, noise.Sample, nil)
		if err != nil {
			t.Fatal(err)
		}
		counters.Add(0, counts[i])
		reports[c.Fingerprint] = counters.Report()
		ct, err := wire.SealShares(key.PublicKey, hash, c.Fingerprint, me.Fingerprint, bundles[0].Shares)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := wire.SignBody(c, wire.KindShareBundle, wire.SealedBundle{ConfigHash: hash, Collector: c.Fingerprint, Keeper: me.Fingerprint, Ciphertext: ct})
		if err != nil {
			t.Fatal(err)
		}
		tallyServer.update(func() { tallyServer.bundles = append(tallyServer.bundles, msg) })
	}
	view.Phase, view.RoundKeys, view.Bundles = round.PhaseSetup, []identity.Signed{keyMsg}, 2
	tallyServer.show(view)
	var ack wire.Ack
	if _, err := wire.OpenBody(tallyServer.posted(ctx, t, wire.PathAck, 1), wire.KindAck, me.Fingerprint, &ack); err != nil {
		t.Fatal(err)
	}
	both := []string{collectors[0].Fingerprint, collectors[1].Fingerprint}
	slices.Sort(both)
	if !slices.Equal(ack.Collectors, both) {
		t.Fatalf("keeper acknowledged %v, want both collectors", ack.Collectors)
	}

	// Each collector commits to its masked report, as a real one does.
	commitments := map[string]identity.Signed{}
	blindings := map[string]commit.Scalar{}
	masks := map[string][]uint64{}
	for _, c := range collectors {
		m, err := commit.NewMasks(rand.Reader, cfg.NumCounters())
		if err != nil {
			t.Fatal(err)
		}
		rho, err := commit.NewBlinding(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := commit.Commit(reports[c.Fingerprint], m, rho)
		if err != nil {
			t.Fatal(err)
		}
		if commitments[c.Fingerprint], err = wire.SignBody(c, wire.KindCommitment, wire.ReportCommitment{ConfigHash: hash, Collector: c.Fingerprint, Commitment: cm}); err != nil {
			t.Fatal(err)
		}
		blindings[c.Fingerprint], masks[c.Fingerprint] = rho, m
	}
	agreement := func(S ...string) (identity.Signed, string) {
		slices.Sort(S)
		picked, pickedMasks := map[string][]field.Element{}, map[string][]uint64{}
		msg := wire.AgreementMsg{ConfigHash: hash, Collectors: S}
		var rhos []commit.Scalar
		for _, fp := range S {
			picked[fp], pickedMasks[fp] = reports[fp], masks[fp]
			msg.Commitments = append(msg.Commitments, commitments[fp])
			rhos = append(rhos, blindings[fp])
		}
		var err error
		if msg.SumV, err = aggregator.SumReports(cfg.NumCounters(), picked, pickedMasks); err != nil {
			t.Fatal(err)
		}
		if msg.SumBlinding, err = commit.SumScalars(rhos); err != nil {
			t.Fatal(err)
		}
		m, err := wire.SignBody(tallyID, wire.KindAgreement, msg)
		if err != nil {
			t.Fatal(err)
		}
		return m, wire.AgreementDigest(m.Body)
	}
	commitOn := func(id *identity.Identity, digest string) identity.Signed {
		m, err := wire.SignBody(id, wire.KindCommit, wire.Commit{ConfigHash: hash, Keeper: id.Fingerprint, Agreement: digest})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// Agreement A, over both collectors: the keeper commits.
	a, digestA := agreement(both...)
	view.Phase, view.Agreement = round.PhaseAgreeing, &a
	tallyServer.show(view)
	myCommit := tallyServer.posted(ctx, t, wire.PathCommit, 1)
	var c wire.Commit
	if _, err := wire.OpenBody(myCommit, wire.KindCommit, me.Fingerprint, &c); err != nil || c.Agreement != digestA {
		t.Fatalf("commit on %.12s (%v), want agreement A %.12s", c.Agreement, err, digestA)
	}

	// Agreement B, over the first collector only (an honest ΣV for it, so
	// only commit-once stands in the way), then B with K commits from the
	// other keepers: the keeper refuses B, says why, and leaves the round.
	b, digestB := agreement(collectors[0].Fingerprint)
	view.Agreement = &b
	handled := tallyServer.show(view)
	var ref wire.Refusal
	if _, err := wire.OpenBody(tallyServer.posted(ctx, t, wire.PathRefusal, 1), wire.KindRefusal, me.Fingerprint, &ref); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ref.Reason, "second agreement") || !strings.Contains(ref.Reason, digestB[:12]) {
		t.Fatalf("refusal %q, want it to name the second agreement", ref.Reason)
	}
	view.Phase, view.Commits = round.PhaseReleasing, []identity.Signed{commitOn(keepers[1], digestB), commitOn(keepers[2], digestB)}
	tallyServer.until(ctx, t, "the keeper to see agreement B", func() bool { return tallyServer.handled >= handled })
	handled = tallyServer.show(view)
	tallyServer.until(ctx, t, "the keeper to see K commits on B", func() bool { return tallyServer.handled >= handled })
	// Back to A with K commits: having left the round, it releases nothing.
	view.Agreement, view.Commits = &a, []identity.Signed{myCommit, commitOn(keepers[1], digestA)}
	handled = tallyServer.show(view)
	tallyServer.until(ctx, t, "the keeper to see K commits on A", func() bool { return tallyServer.handled >= handled })
	if n := tallyServer.count(wire.PathCommit); n != 1 {
		t.Fatalf("the keeper posted %d commits; it committed to a second agreement", n)
	}
	if n := tallyServer.count(wire.PathShare); n != 0 {
		t.Fatalf("the keeper released %d shares after the tally server showed two agreements", n)
	}
}

func fingerprints(ids []*identity.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Fingerprint
	}
	return out
}

// A keeper that assumes one dishonest keeper (policy dishonest_keepers: 1)
// releases only on seeing commits from more than (N+1)/2 keepers: with
// N = 3, K = 2 all three. With all three alive the round completes; with
// the third stopped before there is anything to commit to, the two others
// never release,
// since K commits could have been two agreements sharing one dishonest
// keeper.
func TestReleaseQuorumAgainstADishonestKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two rounds of a few seconds")
	}
	for _, stopThird := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		opts := deploytest.ShortRound()
		opts.Threshold, opts.PhaseTimeout = 2, 5*time.Second
		d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 2, Tally: opts,
			Keeper: func(i int, o *keeper.Options) { o.DishonestKeepers = 1 }})
		if stopThird {
			// Stopped once the window has closed, before any agreement exists:
			// it acknowledged the bundles but can never commit.
			if _, err := d.WaitStatus(ctx, "the window to close", func(st tally.Status) bool { return st.Phase == round.PhaseReporting }); err != nil {
				t.Fatal(err)
			}
			d.Keeper(2).Stop()
			st, err := d.WaitStatus(ctx, "the round to end", func(st tally.Status) bool { return st.Completed+st.Failed >= 1 })
			if err != nil {
				t.Fatal(err)
			}
			if st.Completed != 0 || st.Released != 0 {
				t.Errorf("with two of three keepers committed, %d shares were released and %d rounds completed; want none", st.Released, st.Completed)
			}
		} else if _, err := d.VerifiedOutcome(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

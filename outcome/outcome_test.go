package outcome

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
)

// testRound runs the protocol's arithmetic for n keepers (threshold k) and
// three collectors that each count 10 per counter, with σ = 0, and returns
// the signed artefacts an outcome is built from.
func testRound(t *testing.T, n, k int) (Inputs, []*identity.Identity) {
	t.Helper()
	ts, _ := identity.New()
	keepers := make([]*identity.Identity, n)
	cfg := &round.Config{
		Version: round.ConfigVersion, Series: "t", Round: 1,
		Start: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC),
		Epsilon: 1, Delta: 1e-6, Threshold: k, MinCollectors: 2,
		Statistics: []round.StatisticSpec{{Name: "a", MaxPerCollector: 100}, {Name: "b", Bins: []string{"x", "y"}, MaxPerCollector: 100}},
	}
	for j := range keepers {
		keepers[j], _ = identity.New()
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: keepers[j].Fingerprint, X: j + 1})
	}
	collectors := map[string]*identity.Identity{}
	for range 3 {
		id, _ := identity.New()
		collectors[id.Fingerprint] = id
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: id.Fingerprint, NoiseWeight: 1})
	}
	body, _ := cfg.Canonical()
	hash, _ := cfg.HashHex()
	states := make([]*aggregator.KeeperRound, n)
	for j := range states {
		states[j], _ = aggregator.NewKeeperRound(cfg, j+1)
	}
	reports := map[string][]field.Element{}
	var S []string
	for _, dc := range cfg.Collectors {
		ctr, bundles, err := aggregator.SetupCollector(cfg, 1, func(float64) (int64, error) { return 0, nil }, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j, b := range bundles {
			states[j].Accept(dc.Fingerprint, b.Shares)
		}
		for c := range ctr.Len() {
			ctr.Add(c, 10)
		}
		reports[dc.Fingerprint] = ctr.Report()
		S = append(S, dc.Fingerprint)
	}
	slices.Sort(S)
	// Each collector commits to its masked report; ΣV opens their sum.
	var commitments []identity.Signed
	var cs []commit.Commitment
	var blindings []commit.Scalar
	masks := map[string][]uint64{}
	for _, fp := range S {
		masks[fp], _ = commit.NewMasks(rand.Reader, cfg.NumCounters())
		rho, _ := commit.NewBlinding(rand.Reader)
		c, err := commit.Commit(reports[fp], masks[fp], rho)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := wire.SignBody(collectors[fp], wire.KindCommitment, wire.ReportCommitment{ConfigHash: hash, Collector: fp, Commitment: c})
		commitments, cs, blindings = append(commitments, m), append(cs, c), append(blindings, rho)
	}
	sum, err := aggregator.SumReports(cfg.NumCounters(), reports, masks)
	if err != nil {
		t.Fatal(err)
	}
	sumRho, _ := commit.SumScalars(blindings)
	// One collector lost its tor for ten minutes; one keeper candidate's
	// refusal is on record.
	gaps := map[string][]wire.Gap{S[1]: {{Start: cfg.Start.Add(10 * time.Minute), End: cfg.Start.Add(20 * time.Minute)}}}
	gapsDigest, err := wire.GapsDigest(gaps)
	if err != nil {
		t.Fatal(err)
	}
	agreement, _ := wire.SignBody(ts, wire.KindAgreement, wire.AgreementMsg{ConfigHash: hash, Collectors: S, SumV: sum, SumBlinding: sumRho, Commitments: commitments,
		GapsDigest: gapsDigest, Refusals: map[string]string{fmt.Sprintf("%064x", 99): "policy: round ε = 1 is more than this node's max_epsilon 0.3"}})
	digest := wire.AgreementDigest(agreement.Body)
	in := Inputs{Announce: ts.Sign(wire.KindAnnounce, body), Agreement: agreement, Now: cfg.End, Gaps: gaps, Tally: ts}
	for j, st := range states {
		if err := st.Commit(aggregator.Agreement{Collectors: S, SumV: sum, SumBlinding: sumRho, Commitments: cs}); err != nil {
			t.Fatal(err)
		}
		c, _ := wire.SignBody(keepers[j], wire.KindCommit, wire.Commit{ConfigHash: hash, Keeper: keepers[j].Fingerprint, Agreement: digest})
		in.Commits = append(in.Commits, c)
		values, _ := st.AggregateShare()
		sh, _ := wire.SignBody(keepers[j], wire.KindAggregateShare, wire.AggregateShareMsg{
			ConfigHash: hash, Keeper: keepers[j].Fingerprint, X: j + 1, Agreement: digest, Values: values})
		in.Shares = append(in.Shares, sh)
	}
	return in, keepers
}

func TestBuildAndVerify(t *testing.T) {
	in, _ := testRound(t, 3, 2)
	o, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			if b.NoisyTotal != 30 {
				t.Fatalf("%s/%s = %d, want 30", s.Name, b.Label, b.NoisyTotal)
			}
		}
	}
	if err := Verify(o); err != nil {
		t.Fatal(err)
	}
	if len(o.Collectors.Gaps) != 1 || len(o.Refusals) != 1 {
		t.Errorf("gaps %v, refusals %v: want the agreement's one of each", o.Collectors.Gaps, o.Refusals)
	}
}

// The tally server cannot publish gaps other than those its agreement signed.
func TestBuildRefusesGapsTheAgreementDidNotSign(t *testing.T) {
	in, _ := testRound(t, 3, 2)
	in.Gaps = nil
	if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "gaps differ from those the agreement signs") {
		t.Fatalf("Build without the signed gaps: %v", err)
	}
}

// offByOne is share re-signed by keeper with its first value off by one.
func offByOne(t *testing.T, share identity.Signed, keeper *identity.Identity) identity.Signed {
	t.Helper()
	var m wire.AggregateShareMsg
	if _, err := wire.OpenBody(share, wire.KindAggregateShare, keeper.Fingerprint, &m); err != nil {
		t.Fatal(err)
	}
	m.Values[0] = field.Add(m.Values[0], 1)
	s, err := wire.SignBody(keeper, wire.KindAggregateShare, m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withBadShare builds the outcome of a round of five keepers (K = 3) in
// which keeper 2's share is off by one. It returns the inputs (bad share
// included), the outcome and keeper 2.
func withBadShare(t *testing.T) (Inputs, *Outcome, *identity.Identity) {
	t.Helper()
	in, keepers := testRound(t, 5, 3)
	in.Shares[1] = offByOne(t, in.Shares[1], keepers[1])
	o, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	return in, o, keepers[1]
}

func TestInconsistentKeeperShareIsRejectedAndNamed(t *testing.T) {
	in, o, bad := withBadShare(t)
	if len(o.RejectedShares) != 1 || o.RejectedShares[0].Keeper != bad.Fingerprint {
		t.Fatalf("rejected %+v, want keeper 2's share named", o.RejectedShares)
	}
	if o.Statistics[0].Bins[0].NoisyTotal != 30 || len(o.Shares) != 4 {
		t.Fatalf("total %d from %d shares, want 30 from the 4 consistent ones", o.Statistics[0].Bins[0].NoisyTotal, len(o.Shares))
	}
	if err := Verify(o); err != nil {
		t.Fatal(err)
	}
	// Slipping the bad share back in is caught by verify.
	o.Shares = append(o.Shares, in.Shares[1])
	if err := Verify(o); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Fatalf("verify with the bad share: %v", err)
	}
}

func TestVerifyRefusesForgedArtefacts(t *testing.T) {
	in, _ := testRound(t, 3, 2)
	stranger, _ := identity.New()
	for name, edit := range map[string]func(o *Outcome){
		"commit by a stranger": func(o *Outcome) {
			o.Commits[0] = stranger.Sign(wire.KindCommit, o.Commits[0].Body)
		},
		"too few commits": func(o *Outcome) { o.Commits = o.Commits[:1] },
		"announcement re-signed": func(o *Outcome) {
			o.Announce = stranger.Sign(wire.KindAnnounce, o.Announce.Body)
		},
		"collector dropped from S": func(o *Outcome) { o.Collectors.Fingerprints = o.Collectors.Fingerprints[1:] },
		"epsilon changed":          func(o *Outcome) { o.Statistics[0].Epsilon = 0.5 },
		"gap shortened": func(o *Outcome) {
			for _, gs := range o.Collectors.Gaps {
				gs[0].End = gs[0].End.Add(-time.Minute)
			}
		},
		"gap removed": func(o *Outcome) { o.Collectors.Gaps = nil },
		"gap added": func(o *Outcome) {
			o.Collectors.Gaps[o.Collectors.Fingerprints[0]] = []wire.Gap{{Start: o.Window.Start, End: o.Window.End}}
		},
		"refusal removed": func(o *Outcome) { o.Refusals = nil },
		"refusal reworded": func(o *Outcome) {
			for k := range o.Refusals {
				o.Refusals[k] = "no reason"
			}
		},
	} {
		o, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		edit(o)
		if err := Verify(o); err == nil {
			t.Errorf("%s: verify accepted it", name)
		}
	}
}

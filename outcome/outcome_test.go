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

	"encoding/json"
	"math"

	"github.com/privstats/privstats/noise"
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
	// S in the config's order, which the agreement's bitmap gives it.
	S = slices.DeleteFunc(cfg.CollectorFingerprints(), func(fp string) bool { return !slices.Contains(S, fp) })
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
	agMsg := wire.AgreementMsg{ConfigHash: hash, SumV: sum, SumBlinding: sumRho, Commitments: commitments,
		GapsDigest: gapsDigest, Refusals: map[string]string{fmt.Sprintf("%064x", 99): "policy: round ε = 1 is more than this node's max_epsilon 0.3"}}
	if err := agMsg.SetCollectors(cfg.CollectorFingerprints(), S); err != nil {
		t.Fatal(err)
	}
	agreement, _ := wire.SignBody(ts, wire.KindAgreement, agMsg)
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

// syntheticInputs are the signed artefacts of a round of n collectors ×
// counters, made quickly but checked in full by Verify: every collector
// has its own identity and signs its own commitment; they all report the
// same blinded values under the same blinding, so one Pedersen commitment
// serves them all and ΣV, Σρ are n times one report's. Two of three
// keepers commit and share (random shares: with exactly K shares the
// interpolation has nothing to check them against).
func syntheticInputs(tb testing.TB, n, counters int) Inputs {
	tb.Helper()
	ts, _ := identity.New()
	keepers := make([]*identity.Identity, 3)
	bins := make([]string, counters)
	for i := range bins {
		bins[i] = fmt.Sprint(i)
	}
	const beta = 0.6
	w := 1 / math.Sqrt(beta*float64(n))
	cfg := &round.Config{
		Version: round.ConfigVersion, Series: "scale", Round: 1,
		Start: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Epsilon: 0.3, Delta: 1e-6, Threshold: 2, MinCollectors: int(math.Ceil(beta * float64(n))),
		Statistics: []round.StatisticSpec{{Name: "h", Bins: bins, Sigma: noise.MinCollectorSigma / w * 1.001,
			Epsilon: 0.3, Delta: 1e-6, Sensitivity: 1, BinsTouched: 1, MaxPerCollector: 1 << 20}},
	}
	for j := range keepers {
		keepers[j], _ = identity.New()
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: keepers[j].Fingerprint, X: j + 1})
	}
	collectors := make([]*identity.Identity, n)
	for i := range collectors {
		collectors[i], _ = identity.New()
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: collectors[i].Fingerprint, NoiseWeight: w})
	}
	if err := noise.CheckClaim(cfg); err != nil {
		tb.Fatal(err)
	}
	body, _ := cfg.Canonical()
	hash, _ := cfg.HashHex()
	values := make([]field.Element, counters)
	if err := field.Random(nil, values); err != nil {
		tb.Fatal(err)
	}
	masks, err := commit.NewMasks(rand.Reader, counters)
	if err != nil {
		tb.Fatal(err)
	}
	rho, _ := commit.NewBlinding(rand.Reader)
	c, err := commit.Commit(values, masks, rho)
	if err != nil {
		tb.Fatal(err)
	}
	ag := wire.AgreementMsg{ConfigHash: hash, SumV: commit.NewIntSum(counters)}
	rhos := make([]commit.Scalar, n)
	byFP := map[string]*identity.Identity{}
	for _, id := range collectors {
		byFP[id.Fingerprint] = id
	}
	for i, dc := range cfg.Collectors {
		ag.Collectors = append(ag.Collectors, dc.Fingerprint)
		rhos[i] = rho
		if err := ag.SumV.AddMasked(values, masks); err != nil {
			tb.Fatal(err)
		}
	}
	if err := ag.SetCollectors(cfg.CollectorFingerprints(), ag.Collectors); err != nil {
		tb.Fatal(err)
	}
	for _, fp := range ag.Collectors {
		m, err := wire.SignBody(byFP[fp], wire.KindCommitment, wire.ReportCommitment{ConfigHash: hash, Collector: fp, Commitment: c})
		if err != nil {
			tb.Fatal(err)
		}
		ag.Commitments = append(ag.Commitments, m)
	}
	if ag.SumBlinding, err = commit.SumScalars(rhos); err != nil {
		tb.Fatal(err)
	}
	agreement, err := wire.SignBody(ts, wire.KindAgreement, ag)
	if err != nil {
		tb.Fatal(err)
	}
	digest := wire.AgreementDigest(agreement.Body)
	in := Inputs{Announce: ts.Sign(wire.KindAnnounce, body), Agreement: agreement, Now: cfg.End, Tally: ts}
	for j, k := range keepers[:2] {
		cm, _ := wire.SignBody(k, wire.KindCommit, wire.Commit{ConfigHash: hash, Keeper: k.Fingerprint, Agreement: digest})
		share := make([]field.Element, counters)
		if err := field.Random(nil, share); err != nil {
			tb.Fatal(err)
		}
		sh, _ := wire.SignBody(k, wire.KindAggregateShare, wire.AggregateShareMsg{ConfigHash: hash, Keeper: k.Fingerprint, X: j + 1, Agreement: digest, Values: share})
		in.Commits, in.Shares = append(in.Commits, cm), append(in.Shares, sh)
	}
	return in
}

// BenchmarkVerify7000Collectors1000Counters is what privstats verify does
// with a round of the whole Tor network's size: decode the file strictly,
// check every signature (7,000 commitments among them), that ΣV opens the
// commitments, the interpolation, and the privacy S's noise gives.
//
//	go test -run '^$' -bench Verify7000 -benchtime 3x ./outcome
func BenchmarkVerify7000Collectors1000Counters(b *testing.B) {
	o, err := Build(syntheticInputs(b, 7000, 1000))
	if err != nil {
		b.Fatal(err)
	}
	var file []byte
	if file, err = marshalOutcome(o); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		back, err := Parse(file)
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(back); err != nil {
			b.Fatal(err)
		}
		if p := CheckPrivacy(back); !p.Private {
			b.Fatal(p.Why)
		}
	}
	b.ReportMetric(float64(len(file))/1e6, "MB/outcome")
}

func marshalOutcome(o *Outcome) ([]byte, error) { return json.MarshalIndent(o, "", "  ") }

// BenchmarkKeeperCheck7000Collectors1000Counters is a keeper's work at
// commit time for a round of the whole Tor network's size: open the signed
// agreement and S's 7,000 signed commitments, check that ΣV opens them,
// that S carries the noise and that its discrete Gaussian sum is as private
// as claimed (the same steps as keeper.commitTo).
//
//	go test -run '^$' -bench KeeperCheck7000 -benchtime 3x ./outcome
func BenchmarkKeeperCheck7000Collectors1000Counters(b *testing.B) {
	in := syntheticInputs(b, 7000, 1000)
	cfg, err := round.Decode(in.Announce.Body)
	if err != nil {
		b.Fatal(err)
	}
	shares := make([]field.Element, cfg.NumCounters())
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		k, err := aggregator.NewKeeperRound(cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		for _, dc := range cfg.Collectors {
			if err := k.Accept(dc.Fingerprint, shares); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		var ag wire.AgreementMsg
		if _, err := wire.OpenBody(in.Agreement, wire.KindAgreement, in.Tally.Fingerprint, &ag); err != nil {
			b.Fatal(err)
		}
		cs, err := wire.OpenCommitments(&ag)
		if err != nil {
			b.Fatal(err)
		}
		if err := k.Commit(aggregator.Agreement{Collectors: ag.Collectors, SumV: ag.SumV, SumBlinding: ag.SumBlinding, Commitments: cs}); err != nil {
			b.Fatal(err)
		}
	}
}

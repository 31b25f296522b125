package outcome

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/noise"
)

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
	slices.Sort(ag.Collectors)
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

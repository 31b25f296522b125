package outcome_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
	"github.com/privstats/privstats/outcome"
)

var update = flag.Bool("update", false, vectortest.UpdateUsage)

// What each collector of the vector round counted, and the noise it drew,
// per counter (exit_streams, then exit_streams_by_port's four bins).
var (
	vectorCounts = [][]uint64{{1200, 800, 90, 15, 5}, {3400, 2100, 300, 22, 13}, {560, 400, 60, 0, 9}}
	vectorNoise  = [][]int64{{-212, 97, 341, -58, 12}, {180, -260, 7, 125, -33}, {64, 150, -402, -19, 88}}
)

// vectorInputs runs the vector round's arithmetic deterministically: each
// collector's blinding and polynomials come from a ChaCha8 stream seeded by
// its name, its noise from vectorNoise. The artefacts are signed by the
// vectortest identities, so every byte is reproducible.
func vectorInputs(t *testing.T) outcome.Inputs {
	t.Helper()
	cfg := vectortest.Config()
	hash := vectortest.ConfigHash()
	body, err := cfg.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	tally := vectortest.Identity(vectortest.Tally)
	states := make([]*aggregator.KeeperRound, len(cfg.Keepers))
	for j := range states {
		if states[j], err = aggregator.NewKeeperRound(cfg, j+1); err != nil {
			t.Fatal(err)
		}
	}
	reports := map[string][]field.Element{}
	var S []string
	for i, name := range vectortest.Collectors {
		fp := vectortest.Identity(name).Fingerprint
		draws := slices.Clone(vectorNoise[i])
		sample := func(float64) (int64, error) {
			z := draws[0]
			draws = draws[1:]
			return z, nil
		}
		stream := rand.NewChaCha8([32]byte(vectortest.Seed(name + " randomness")))
		ctr, bundles, err := aggregator.SetupCollector(cfg, cfg.Collectors[i].NoiseWeight, sample, stream)
		if err != nil {
			t.Fatal(err)
		}
		for j, b := range bundles {
			if err := states[j].Accept(fp, b.Shares); err != nil {
				t.Fatal(err)
			}
		}
		for c, n := range vectorCounts[i] {
			ctr.Add(c, n)
		}
		reports[fp] = ctr.Report()
		S = append(S, fp)
	}
	// S in the config's order, which the agreement's bitmap gives it.
	S = slices.DeleteFunc(cfg.CollectorFingerprints(), func(fp string) bool { return !slices.Contains(S, fp) })
	// Each collector commits to its masked report under masks and a
	// blinding from its seeded streams; the agreement carries the
	// commitments, ΣV of the masked reports and Σρ.
	var commitments []identity.Signed
	var cs []commit.Commitment
	var blindings []commit.Scalar
	masks := map[string][]uint64{}
	for _, fp := range S {
		name := nameOf(fp)
		if masks[fp], err = commit.NewMasks(rand.NewChaCha8([32]byte(vectortest.Seed(name+" masks"))), cfg.NumCounters()); err != nil {
			t.Fatal(err)
		}
		stream := rand.NewChaCha8([32]byte(vectortest.Seed(name + " blinding")))
		rho, err := commit.NewBlinding(stream)
		if err != nil {
			t.Fatal(err)
		}
		c, err := commit.Commit(reports[fp], masks[fp], rho)
		if err != nil {
			t.Fatal(err)
		}
		m, err := wire.SignBody(vectortest.Identity(name), wire.KindCommitment, wire.ReportCommitment{ConfigHash: hash, Collector: fp, Commitment: c})
		if err != nil {
			t.Fatal(err)
		}
		commitments, cs, blindings = append(commitments, m), append(cs, c), append(blindings, rho)
	}
	sum, err := aggregator.SumReports(cfg.NumCounters(), reports, masks)
	if err != nil {
		t.Fatal(err)
	}
	sumRho, err := commit.SumScalars(blindings)
	if err != nil {
		t.Fatal(err)
	}
	gaps := map[string][]wire.Gap{vectortest.Identity("collector-2").Fingerprint: {{Start: cfg.Start.Add(3 * time.Hour), End: cfg.Start.Add(3*time.Hour + 20*time.Minute)}}}
	gapsDigest, err := wire.GapsDigest(gaps)
	if err != nil {
		t.Fatal(err)
	}
	agMsg := wire.AgreementMsg{ConfigHash: hash, SumV: sum, SumBlinding: sumRho, Commitments: commitments, GapsDigest: gapsDigest,
		Refusals: map[string]string{vectortest.Identity(vectortest.Refuser).Fingerprint: "policy: round ε = 0.3 is more than this node's max_epsilon 0.2"}}
	if err := agMsg.SetCollectors(cfg.CollectorFingerprints(), S); err != nil {
		t.Fatal(err)
	}
	agreement, err := wire.SignBody(tally, wire.KindAgreement, agMsg)
	if err != nil {
		t.Fatal(err)
	}
	digest := wire.AgreementDigest(agreement.Body)
	in := outcome.Inputs{Announce: tally.Sign(wire.KindAnnounce, body), Agreement: agreement, Gaps: gaps, Now: cfg.End.Add(10 * time.Minute), Tally: tally}
	for j, st := range states {
		keeper := vectortest.Identity(vectortest.Keepers[j])
		if err := st.Commit(aggregator.Agreement{Collectors: S, SumV: sum, SumBlinding: sumRho, Commitments: cs}); err != nil {
			t.Fatal(err)
		}
		c, err := wire.SignBody(keeper, wire.KindCommit, wire.Commit{ConfigHash: hash, Keeper: keeper.Fingerprint, Agreement: digest})
		if err != nil {
			t.Fatal(err)
		}
		values, err := st.AggregateShare()
		if err != nil {
			t.Fatal(err)
		}
		sh, err := wire.SignBody(keeper, wire.KindAggregateShare, wire.AggregateShareMsg{ConfigHash: hash, Keeper: keeper.Fingerprint, X: j + 1, Agreement: digest, Values: values})
		if err != nil {
			t.Fatal(err)
		}
		in.Commits = append(in.Commits, c)
		in.Shares = append(in.Shares, sh)
	}
	return in
}

// tampering is one altered copy of the vector outcome that Verify must
// refuse, with words its error must contain.
type tampering struct {
	name, what, refused string
	edit                func(o *outcome.Outcome)
}

var tamperings = []tampering{
	{"total-raised", "the first bin's noisy total is one more than the shares interpolate to", "published total",
		func(o *outcome.Outcome) { o.Statistics[0].Bins[0].NoisyTotal++ }},
	{"sigma-lowered", "the histogram's total σ is halved", "σ differ",
		func(o *outcome.Outcome) { o.Statistics[1].TotalSigma /= 2 }},
	{"interval-narrowed", "a bin's 95% interval is narrowed", "interval",
		func(o *outcome.Outcome) { o.Statistics[1].Bins[2].CI95Low++ }},
	{"config-sigma-doubled", "the config shown asks for twice the σ the signed one does", "config shown differs",
		func(o *outcome.Outcome) { o.Config.Statistics[0].Sigma *= 2 }},
	{"collector-dropped", "a collector is dropped from the list of S", "collector list differs",
		func(o *outcome.Outcome) {
			o.Collectors.Fingerprints = o.Collectors.Fingerprints[1:]
			o.Collectors.Count--
		}},
	{"commit-signature", "a bit of keeper-1's commit signature is flipped", "commit: bad signature",
		func(o *outcome.Outcome) { o.Commits[0].Signature[7] ^= 1 }},
	{"share-signature", "a bit of keeper-2's aggregate share signature is flipped", "aggregate_share: bad signature",
		func(o *outcome.Outcome) { o.Shares[1].Signature[40] ^= 1 }},
	{"agreement-signature", "a bit of the agreement's signature is flipped", "agreement: bad signature",
		func(o *outcome.Outcome) { o.Agreement.Signature[0] ^= 1 }},
	{"too-few-commits", "only one keeper's commit is kept; the round needs two", "the round needs 2",
		func(o *outcome.Outcome) { o.Commits = o.Commits[:1] }},
	{"gap-shortened", "collector-2's gap ends a minute early", "gaps differ",
		func(o *outcome.Outcome) {
			for _, gs := range o.Collectors.Gaps {
				gs[0].End = gs[0].End.Add(-time.Minute)
			}
		}},
	{"refusal-removed", "the refuser's refusal is dropped", "refusals differ",
		func(o *outcome.Outcome) { o.Refusals = nil }},
	{"sum-forged", "the agreement's ΣV is raised by 1,000,000 and re-signed by the tally server", "not the sum S's collectors committed to",
		func(o *outcome.Outcome) {
			var ag wire.AgreementMsg
			if _, err := wire.OpenBody(o.Agreement, wire.KindAgreement, "", &ag); err != nil {
				panic(err)
			}
			ag.SumV[0].Lo += 1000000
			o.Agreement, _ = wire.SignBody(vectortest.Identity(vectortest.Tally), wire.KindAgreement, ag)
		}},
	{"published-at-moved", "published_at is moved a day later than the tally server signed", "differs from the signed",
		func(o *outcome.Outcome) { o.PublishedAt = o.PublishedAt.Add(24 * time.Hour) }},
	{"tally-renamed", "the outcome names another tally server than the one that signed", "announcement signed by",
		func(o *outcome.Outcome) { o.Tally = vectortest.Identity("keeper-1").Fingerprint }},
}

const outcomeComment = `The outcome of the vector round (config in testdata/vectors/round), as
outcome.Write stores it: three collectors' blinded reports, the tally
server's agreement with collector-2's gap and the refuser's refusal, and
the three keepers' commits and aggregate shares, each signed by the
identity of its participant's test seed.
outcome format version: %d, protocol version: %d
`

func outcomeVectors(t *testing.T) *vectortest.Suite {
	o, err := outcome.Build(vectorInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	// The totals must be what the collectors counted plus the noise they
	// drew, or the vector would pin wrong arithmetic.
	c := 0
	for _, st := range o.Statistics {
		for _, b := range st.Bins {
			var want int64
			for i := range vectorCounts {
				want += int64(vectorCounts[i][c]) + vectorNoise[i][c]
			}
			if b.NoisyTotal != want {
				t.Fatalf("%s/%s: total %d, the collectors counted and drew %d", st.Name, b.Label, b.NoisyTotal, want)
			}
			c++
		}
	}
	valid := encodeOutcome(t, o)
	want := map[string]*txtar.Archive{
		"verifies.txtar": vectortest.New(fmt.Sprintf(outcomeComment, outcome.FormatVersion, wire.ProtocolVersion)+"expect: verifies",
			vectortest.Text("outcome.json", string(valid))),
	}
	for _, tm := range tamperings {
		var o outcome.Outcome
		if err := json.Unmarshal(valid, &o); err != nil {
			t.Fatal(err)
		}
		tm.edit(&o)
		want["refused-"+tm.name+".txtar"] = vectortest.New(
			fmt.Sprintf(outcomeComment, outcome.FormatVersion, wire.ProtocolVersion)+"Tampered: "+tm.what+".\nexpect: refused: "+tm.refused,
			vectortest.Text("outcome.json", string(encodeOutcome(t, &o))))
	}
	return &vectortest.Suite{Dir: "outcome", Want: want, Check: checkOutcomeVector}
}

// encodeOutcome is the outcome as outcome.Write stores it, without the
// final newline.
func encodeOutcome(t *testing.T, o *outcome.Outcome) []byte {
	b, err := writeOutcome(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeOutcome(o *outcome.Outcome) ([]byte, error) {
	dir, err := os.MkdirTemp("", "privstats-vector")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "outcome.json")
	if err := outcome.Write(path, o); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	return bytes.TrimSuffix(b, []byte("\n")), err
}

func readOutcome(b []byte) (*outcome.Outcome, error) {
	dir, err := os.MkdirTemp("", "privstats-vector")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "outcome.json")
	if err := os.WriteFile(path, append(slices.Clip(b), '\n'), 0o600); err != nil {
		return nil, err
	}
	return outcome.Read(path)
}

// checkOutcomeVector reads the outcome as any verifier would and checks it
// meets the file's expect line. An outcome that verifies must also be
// exactly what Build makes from its own signed artefacts.
func checkOutcomeVector(_ string, a *txtar.Archive) error {
	_, expect, ok := bytes.Cut(a.Comment, []byte("\nexpect: "))
	if !ok {
		return fmt.Errorf("the comment has no expect line")
	}
	enc, err := vectortest.Get(a, "outcome.json")
	if err != nil {
		return err
	}
	o, err := readOutcome(enc)
	if err != nil {
		return err
	}
	verr := outcome.Verify(o)
	switch e := strings.TrimSpace(string(expect)); {
	case e == "verifies":
		if verr != nil {
			return fmt.Errorf("expected to verify: %w", verr)
		}
		rebuilt, err := outcome.Build(outcome.Inputs{Announce: o.Announce, Agreement: o.Agreement, Commits: o.Commits, Shares: o.Shares,
			Gaps: o.Collectors.Gaps, Now: o.PublishedAt, Tally: vectortest.Identity(vectortest.Tally)})
		if err != nil {
			return fmt.Errorf("rebuilding from its artefacts: %w", err)
		}
		again, err := writeOutcome(rebuilt)
		if err != nil {
			return err
		}
		if !bytes.Equal(again, enc) {
			return fmt.Errorf("Build from the outcome's own artefacts gives other bytes")
		}
	case strings.HasPrefix(e, "refused: "):
		if verr == nil {
			return fmt.Errorf("Verify accepted an outcome that must be refused (%s)", e)
		}
		if want := strings.TrimPrefix(e, "refused: "); !strings.Contains(verr.Error(), want) {
			return fmt.Errorf("Verify refused it with %q, want an error containing %q", verr, want)
		}
	default:
		return fmt.Errorf("unknown expect line %q", e)
	}
	return nil
}

// nameOf is the vectortest participant with the fingerprint.
func nameOf(fp string) string {
	for _, name := range vectortest.Collectors {
		if vectortest.Identity(name).Fingerprint == fp {
			return name
		}
	}
	panic("no participant " + fp)
}

func TestVectors(t *testing.T) {
	outcomeVectors(t).Run(t, *update)
}

func TestVectorsBite(t *testing.T) {
	outcomeVectors(t).Bite(t)
}

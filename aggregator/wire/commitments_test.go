package wire

import (
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/identity"
)

// The agreement's commitments must be S's, in S's order, each signed by its
// collector for this round: one replayed from another round, moved to
// another collector or signed by someone else is refused.
func TestOpenCommitmentsRefusesReplayedAndMovedCommitments(t *testing.T) {
	a, _ := identity.New()
	b, _ := identity.New()
	sign := func(id *identity.Identity, hash, collector string) identity.Signed {
		m, err := SignBody(id, KindCommitment, ReportCommitment{ConfigHash: hash, Collector: collector, Commitment: commit.Commitment{}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := func() *AgreementMsg {
		return &AgreementMsg{ConfigHash: "this", Collectors: []string{a.Fingerprint, b.Fingerprint},
			Commitments: []identity.Signed{sign(a, "this", a.Fingerprint), sign(b, "this", b.Fingerprint)}}
	}
	if cs, err := OpenCommitments(good()); err != nil || len(cs) != 2 {
		t.Fatalf("honest commitments: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(ag *AgreementMsg)
		want string
	}{
		"from an earlier round":       {func(ag *AgreementMsg) { ag.Commitments[1] = sign(b, "earlier", b.Fingerprint) }, "made for another round or collector"},
		"naming another collector":    {func(ag *AgreementMsg) { ag.Commitments[1] = sign(b, "this", a.Fingerprint) }, "made for another round or collector"},
		"signed by another collector": {func(ag *AgreementMsg) { ag.Commitments[1] = sign(a, "this", b.Fingerprint) }, "signed by"},
		"in another order": {func(ag *AgreementMsg) {
			ag.Commitments[0], ag.Commitments[1] = ag.Commitments[1], ag.Commitments[0]
		}, "signed by"},
		"one missing": {func(ag *AgreementMsg) { ag.Commitments = ag.Commitments[:1] }, "1 commitments for 2 collectors"},
	} {
		ag := good()
		tc.edit(ag)
		if _, err := OpenCommitments(ag); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: OpenCommitments = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

package tally

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/keeper"
)

// A tally server that lists a collector the keepers' operators did not
// admit (one whose key it may hold itself, to thin the noise) is refused by
// every keeper, with the reason on record.
func TestKeeperRefusesACollectorOutsideItsRoster(t *testing.T) {
	n := startServer(t, 0)
	admitted := fps(n.collectors[:1]) // the round lists both collectors
	k, err := keeper.New(keeper.Options{Identity: n.keepers[0], Tally: n.server.Addr(), TallyFingerprint: n.ts.Fingerprint,
		Keepers: fps(n.keepers), Roster: keeper.FixedRoster(admitted), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go k.Run(ctx)
	deadline := time.Now().Add(8 * time.Second)
	for len(n.server.Status().Refusals) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	reason := n.server.Status().Refusals[n.keepers[0].Fingerprint]
	if !strings.Contains(reason, "not on this keeper's roster") || !strings.Contains(reason, n.collectors[1].Fingerprint[:12]) {
		t.Fatalf("recorded refusal %q, want the roster reason naming collector %s", reason, n.collectors[1].Fingerprint[:12])
	}
	if got := n.metric(t, `privstats_round_refusals_total{role="keeper"}`); got != 1 {
		t.Fatalf("keeper refusals = %d, want 1", got)
	}
}

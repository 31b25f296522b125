package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/internal/deploytest"
)

// Every attack of the demo's tally server is refused by every keeper, with
// its reason in the keeper's log, in /api/v1/status and counted in
// /metrics, and the attacked round publishes no outcome.
func TestEveryAttackIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round per attack")
	}
	for _, a := range Attacks {
		t.Run(a.Name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var log deploytest.Log
			rep, err := Run(ctx, Options{Collectors: 4, Keepers: 3, Duration: 2 * time.Second, Attack: a.Name, Dir: t.TempDir(), Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			r := rep.Attack
			if r == nil || r.Published {
				t.Fatalf("the attacked round published an outcome: %+v", r)
			}
			keepers := 0
			for _, ref := range r.Refusals {
				if strings.HasPrefix(ref.Node, "keeper ") && strings.Contains(ref.Reason, a.Reason) {
					keepers++
				}
			}
			if keepers != 3 {
				t.Fatalf("%d of 3 keepers refused with %q in /api/v1/status: %+v", keepers, a.Reason, r.Refusals)
			}
			if r.Counted["keeper"] != 3 {
				t.Fatalf("/metrics counts %v keeper refusals, want 3", r.Counted["keeper"])
			}
			if r.Failure == "" {
				t.Fatal("the tally server did not say why it gave the round up")
			}
			logged := 0
			for _, line := range strings.Split(log.String(), "\n") {
				if strings.Contains(line, `msg="refusing round"`) && strings.Contains(line, "role=keeper") && strings.Contains(line, a.Reason) {
					logged++
				}
			}
			if logged != 3 {
				t.Fatalf("%d keeper log lines give the refusal, want 3:\n%s", logged, log.String())
			}
		})
	}
}

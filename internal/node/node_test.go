package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/keeper"
)

// A keeper or collector pinned to another tally server's key never talks to
// this one: its first poll does not get through (its health says it is not
// connected), and the tally server hears nothing from it: no round key, no
// bundle, no refusal.
func TestNodePinnedToAnotherTallyNeverConnects(t *testing.T) {
	for _, role := range []struct {
		name  string
		start func(d *deploytest.Deployment, pin string) (*deploytest.Node, error)
	}{
		{"keeper", func(d *deploytest.Deployment, pin string) (*deploytest.Node, error) {
			return d.StartKeeper(0, func(o *keeper.Options) { o.TallyFingerprint = pin })
		}},
		{"collector", func(d *deploytest.Deployment, pin string) (*deploytest.Node, error) {
			return d.StartCollector(0, func(o *collector.Options) { o.TallyFingerprint = pin })
		}},
	} {
		t.Run(role.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			impostor, err := identity.New()
			if err != nil {
				t.Fatal(err)
			}
			d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Tally: deploytest.PendingRound(), Idle: true})
			n, err := role.start(d, impostor.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			if reached, err := n.FirstPoll(ctx); err != nil || reached {
				t.Fatalf("a %s pinned to another key reached the tally server (%v)", role.name, err)
			}
			if st := d.Tally.Status(); st.KeepersKeyed != 0 || st.CollectorsJoined != 0 || len(st.Refusals) != 0 {
				t.Fatalf("status %+v: the tally server heard from a %s that does not trust it", st, role.name)
			}
		})
	}
}

package deploytest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/tally"
)

func TestStartNeedsADataDirectory(t *testing.T) {
	if _, err := deploytest.Start(context.Background(), deploytest.Options{Keepers: 1}); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("Start without a directory: %v", err)
	}
}

// An idle deployment runs only the tally server; a node started into it
// reaches the server, and a restart is a new node with the same key that
// replaces the old one, which has stopped.
func TestNodesStartAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 1, Idle: true, Tally: deploytest.PendingRound()})
	if d.Keeper(0) != nil || d.Collector(0) != nil {
		t.Fatal("an idle deployment started nodes")
	}
	k, err := d.StartKeeper(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if reached, err := k.FirstPoll(ctx); err != nil || !reached {
		t.Fatalf("the keeper's first poll did not reach the tally server (%v)", err)
	}
	if _, err := d.WaitStatus(ctx, "the keeper's round key", func(st tally.Status) bool { return st.KeepersKeyed == 1 }); err != nil {
		t.Fatal(err)
	}
	again, err := k.Restart()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.Done():
	default:
		t.Fatal("the restarted keeper's old node is still running")
	}
	if again == k || again.ID != k.ID || d.Keeper(0) != again {
		t.Fatal("a restart is not a new node with the same key in the keeper's place")
	}
}

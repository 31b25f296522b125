package wait_test

import (
	"context"
	"testing"
	"time"

	"github.com/privstats/privstats/internal/wait"
)

func TestSleepReportsWhetherTheContextIsLive(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !wait.Sleep(ctx, time.Millisecond) {
		t.Error("Sleep on a live context reported it ended")
	}
	if !wait.Sleep(ctx, 0) {
		t.Error("Sleep(0) on a live context reported it ended")
	}
	cancel()
	if wait.Sleep(ctx, 0) {
		t.Error("Sleep(0) on a cancelled context reported it live")
	}
	// An hour would fail the test by its timeout if cancellation did not
	// cut it short.
	if wait.Sleep(ctx, time.Hour) {
		t.Error("Sleep on a cancelled context reported it live")
	}
}

func TestSleepEndsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	if wait.Sleep(ctx, time.Hour) {
		t.Error("Sleep reported a live context after cancel")
	}
}

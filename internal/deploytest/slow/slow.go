// Package slow starts the in-process deployments of tests that run whole
// rounds. Those take seconds, so under -short they are skipped. It is the
// part of deploytest that needs package testing, which deploytest itself
// stays free of because the demo links it.
package slow

import (
	"context"
	"testing"
	"time"

	"github.com/privstats/privstats/internal/deploytest"
)

// Start skips t under -short. Otherwise it starts a deployment (as
// deploytest.New does) under a context that ends after timeout, or when the
// test ends, so that a round that hangs fails the test instead of stalling
// the run; it returns both.
func Start(t *testing.T, timeout time.Duration, opts deploytest.Options) (context.Context, *deploytest.Deployment) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs whole rounds, which take seconds")
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx, deploytest.New(ctx, t, opts)
}

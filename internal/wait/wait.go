// Package wait is the one sleep that a cancelled context cuts short, for
// the retry and pacing loops of the event sources, the control-port session
// and the nodes' polling. It is not a scheduler or a clock to fake in tests.
package wait

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends, whichever comes first, and reports
// whether ctx is still live: false means the caller should stop. A d of
// zero or less does not wait.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

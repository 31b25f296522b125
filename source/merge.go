package source

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Merge runs several sources at once as one, for a relay watched through
// both its control port and its MetricsPort. Events reach emit one at a
// time; a gap of any part is a gap of the whole (the collector was partly
// blind). Merge returns when every part has returned, with their errors.
func Merge(parts ...Source) Source {
	if len(parts) == 1 {
		return parts[0]
	}
	return merged(parts)
}

type merged []Source

func (m merged) Run(ctx context.Context, w *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(m))
	for i, s := range m {
		wg.Go(func() {
			errs[i] = s.Run(ctx, w,
				func(at time.Time, line []byte) {
					mu.Lock()
					defer mu.Unlock()
					emit(at, line)
				},
				func(start, end time.Time) {
					mu.Lock()
					defer mu.Unlock()
					gap(start, end)
				})
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

package source

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Window is a round's counting window, [Start, End).
type Window struct {
	Start, End time.Time
}

// Windows is what a collector tells its event sources of the rounds it
// counts, and how it learns that its sampling sources (Sampled) have read
// at their edges. A streaming source ignores it: its events carry their own
// times. A sampling source cannot place an event in time, only the change
// of a counter between two reads, so it reads at each window's start and
// end; the collector adds a window when it joins a round (before the
// window opens), waits with Wait before it reports, and removes the window
// when it is done with the round.
//
// A nil *Windows holds no windows: a sampling source given nil reads only
// every interval, which suits a local preview but not a round.
type Windows struct {
	mu      sync.Mutex
	windows []Window
	readers map[*edgeReader]struct{}
	// results are what the readers did at each edge of the windows held,
	// keyed by the edge's UnixNano.
	results map[int64]*EdgeRead
	changed chan struct{} // closed and replaced on every change
}

// EdgeRead is what a collector's sampling sources did at one window edge.
type EdgeRead struct {
	// Read is how many sources read their counters at the edge.
	Read int
	// Late is how long after the edge the latest of those reads
	// completed: each source's window edge is at most this late.
	Late time.Duration
	// Failed is how many sources could not read at the edge in time and
	// reported a gap over the span they could not place instead.
	Failed int
}

// NewWindows returns an empty set of windows.
func NewWindows() *Windows {
	return &Windows{readers: map[*edgeReader]struct{}{}, results: map[int64]*EdgeRead{}, changed: make(chan struct{})}
}

// Add tells the sources of a window. An edge that has already passed for a
// sampling source cannot be read any more: the source reports a gap from
// that edge over the span it can no longer place.
func (w *Windows) Add(win Window) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Contains(w.windows, win) {
		return
	}
	w.windows = append(w.windows, win)
	for r := range w.readers {
		for _, e := range []time.Time{win.Start, win.End} {
			if e.Before(r.mark) {
				w.missLocked(r, e)
			}
		}
	}
	w.notifyLocked()
}

// Remove forgets a window: its edges are read no more (unless another
// window shares them) and what was read there is forgotten.
func (w *Windows) Remove(win Window) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := slices.Index(w.windows, win)
	if i < 0 {
		return
	}
	w.windows = slices.Delete(w.windows, i, i+1)
	for _, e := range []time.Time{win.Start, win.End} {
		if !w.isEdgeLocked(e) {
			delete(w.results, e.UnixNano())
		}
	}
	w.notifyLocked()
}

// Wait returns once every sampling source has settled the window's end:
// read its counters there and emitted the increases up to it, or reported
// a gap over what it could not place. A sampling source settles an edge
// at most MaxEdgeLateness after it (longer only while a read that began
// before the window was added runs out its timeout). Wait returns what
// the sources did at both edges, or ctx's error.
func (w *Windows) Wait(ctx context.Context, win Window) (start, end EdgeRead, err error) {
	for {
		w.mu.Lock()
		settled := true
		for r := range w.readers {
			if r.mark.Before(win.End) || slices.ContainsFunc(r.missed, func(e time.Time) bool { return !e.After(win.End) }) {
				settled = false
			}
		}
		if settled {
			start, end = w.resultLocked(win.Start), w.resultLocked(win.End)
		}
		changed := w.changed
		w.mu.Unlock()
		if settled {
			return start, end, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return EdgeRead{}, EdgeRead{}, ctx.Err()
		}
	}
}

func (w *Windows) resultLocked(e time.Time) EdgeRead {
	if r := w.results[e.UnixNano()]; r != nil {
		return *r
	}
	return EdgeRead{}
}

func (w *Windows) isEdgeLocked(e time.Time) bool {
	return slices.ContainsFunc(w.windows, func(win Window) bool { return win.Start.Equal(e) || win.End.Equal(e) })
}

func (w *Windows) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// missLocked records that r let edge e pass without reading there.
func (w *Windows) missLocked(r *edgeReader, e time.Time) {
	r.missed = append(r.missed, e)
	w.noteLocked(e, func(res *EdgeRead) { res.Failed++ })
}

func (w *Windows) noteLocked(e time.Time, f func(*EdgeRead)) {
	if !w.isEdgeLocked(e) {
		return
	}
	res := w.results[e.UnixNano()]
	if res == nil {
		res = &EdgeRead{}
		w.results[e.UnixNano()] = res
	}
	f(res)
}

// edgeReader is one sampling source's standing with a Windows: how far it
// has settled (mark: every counter increase up to then emitted, or a gap
// over it reported) and the edges it let pass unread and has yet to report
// as gaps. A nil *edgeReader, from a nil *Windows, has no edges.
type edgeReader struct {
	w      *Windows
	mark   time.Time
	missed []time.Time
}

// join registers a sampling source, settled up to now. Edges of windows
// already held that have passed are missed: the source was not reading.
func (w *Windows) join(now time.Time) *edgeReader {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := &edgeReader{w: w, mark: now}
	for _, win := range w.windows {
		for _, e := range []time.Time{win.Start, win.End} {
			if e.Before(now) && !slices.ContainsFunc(r.missed, e.Equal) {
				w.missLocked(r, e)
			}
		}
	}
	w.readers[r] = struct{}{}
	w.notifyLocked()
	return r
}

// leave unregisters the source: Wait no longer waits for it.
func (r *edgeReader) leave() {
	if r == nil {
		return
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	delete(r.w.readers, r)
	r.w.notifyLocked()
}

// next returns the earliest edge after the source's mark, and a channel
// closed when the windows change.
func (r *edgeReader) next() (edge time.Time, ok bool, changed <-chan struct{}) {
	if r == nil {
		return time.Time{}, false, nil
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	for _, win := range r.w.windows {
		for _, e := range []time.Time{win.Start, win.End} {
			if e.After(r.mark) && (!ok || e.Before(edge)) {
				edge, ok = e, true
			}
		}
	}
	return edge, ok, r.w.changed
}

// missedEdges returns the edges the source let pass unread; it reports a
// gap for each, then calls reported with how many it handled.
func (r *edgeReader) missedEdges() []time.Time {
	if r == nil {
		return nil
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return slices.Clone(r.missed)
}

func (r *edgeReader) reported(n int) {
	if r == nil || n == 0 {
		return
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.missed = slices.Delete(r.missed, 0, n)
	r.w.notifyLocked()
}

// readAt records a read between edges, completed at t: the source has
// settled up to t. An edge it passed meanwhile (one added during the read)
// is missed.
func (r *edgeReader) readAt(t time.Time) {
	if r == nil {
		return
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.settleLocked(t)
	r.w.notifyLocked()
}

// edgeDone records what the source did at edge e: read there, late by
// late, or failed (and reported a gap up to e).
func (r *edgeReader) edgeDone(e time.Time, late time.Duration, read bool) {
	if r == nil {
		return
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.settleLocked(e.Add(-1))
	r.mark = e
	r.w.noteLocked(e, func(res *EdgeRead) {
		if read {
			res.Read++
			res.Late = max(res.Late, late)
		} else {
			res.Failed++
		}
	})
	r.w.notifyLocked()
}

// settleLocked moves the mark to t; edges passed on the way were missed.
func (r *edgeReader) settleLocked(t time.Time) {
	for _, win := range r.w.windows {
		for _, e := range []time.Time{win.Start, win.End} {
			if e.After(r.mark) && !e.After(t) && !slices.ContainsFunc(r.missed, e.Equal) {
				r.w.missLocked(r, e)
			}
		}
	}
	if t.After(r.mark) {
		r.mark = t
	}
}

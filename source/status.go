package source

import (
	"sync/atomic"
	"time"
)

// Status is what a source knows of its link to tor: whether it is
// connected now and when it last heard from tor. It is about the
// collector, never about the relay's traffic: a source moves LastHeard
// only on tor's own schedule (a connection set up, tor's once-a-second BW
// event, a MetricsPort read every interval), not on the relay's events.
type Status struct {
	Connected bool
	LastHeard time.Time
}

// Watched is a source that talks to tor and can say how that goes.
// Sources that do not (a trace, the synthetic workload) are not Watched.
type Watched interface {
	Source
	Status() Status
}

// Watch returns how to read src's link to tor, and false if src has none
// to report. A merged source is connected only if every part that talks
// to tor is, and has last heard from tor when its stalest part did.
func Watch(src Source) (func() Status, bool) {
	var parts []Watched
	if m, ok := src.(merged); ok {
		for _, p := range m {
			if w, ok := p.(Watched); ok {
				parts = append(parts, w)
			}
		}
	} else if w, ok := src.(Watched); ok {
		parts = append(parts, w)
	}
	if len(parts) == 0 {
		return nil, false
	}
	return func() Status {
		all := Status{Connected: true}
		for i, p := range parts {
			s := p.Status()
			all.Connected = all.Connected && s.Connected
			if i == 0 || s.LastHeard.Before(all.LastHeard) {
				all.LastHeard = s.LastHeard
			}
		}
		return all
	}, true
}

// link is a source's Status, updated from its goroutines and read at
// scrapes.
type link struct {
	connected atomic.Bool
	heard     atomic.Int64 // Unix nanoseconds; 0 if never
}

func (l *link) up(at time.Time) {
	l.heard.Store(at.UnixNano())
	l.connected.Store(true)
}

func (l *link) down() { l.connected.Store(false) }

func (l *link) status() Status {
	s := Status{Connected: l.connected.Load()}
	if n := l.heard.Load(); n != 0 {
		s.LastHeard = time.Unix(0, n)
	}
	return s
}

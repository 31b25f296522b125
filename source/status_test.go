package source_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
)

// toggleSampler reads fine while up is set and fails otherwise.
type toggleSampler struct{ up atomic.Bool }

func (s *toggleSampler) Sample(context.Context) (map[source.Series]uint64, error) {
	if !s.up.Load() {
		return nil, errors.New("connection refused")
	}
	return map[source.Series]uint64{{Name: "tor_relay_traffic_bytes"}: 1}, nil
}

// TestSampledStatus: a sampling source is connected while its reads work
// and says when the last one did; a failed read cuts it off. Merged with a
// source that has no tor (the synthetic workload), the merge is watched
// through the sampling part alone.
func TestSampledStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := &toggleSampler{}
	s.up.Store(true)
	src := source.Merge(source.Sampled("test", s, 5*time.Millisecond), source.Synthetic(source.SyntheticOptions{Rate: 1}))
	read, ok := source.Watch(src)
	if !ok {
		t.Fatal("a merge with a sampling part is not watched")
	}
	if _, ok := source.Watch(source.Synthetic(source.SyntheticOptions{Rate: 1})); ok {
		t.Error("the synthetic workload, which has no tor, is watched")
	}
	if st := read(); st.Connected || !st.LastHeard.IsZero() {
		t.Errorf("before any read: %+v", st)
	}
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, source.NewWindows(), func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	}()
	defer func() { cancel(); <-done }()
	until := func(what string, cond func(source.Status) bool) source.Status {
		t.Helper()
		for ctx.Err() == nil {
			if st := read(); cond(st) {
				return st
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatalf("the source never became %s: %+v", what, read())
		return source.Status{}
	}
	first := until("connected", func(st source.Status) bool { return st.Connected })
	if first.LastHeard.IsZero() {
		t.Error("connected without having heard from tor")
	}
	s.up.Store(false)
	cut := until("cut off", func(st source.Status) bool { return !st.Connected })
	s.up.Store(true)
	until("connected again with a later read", func(st source.Status) bool {
		return st.Connected && st.LastHeard.After(cut.LastHeard)
	})
}

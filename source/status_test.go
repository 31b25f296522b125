package source_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privstats/privstats/torctl/torctltest"

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

// TestControlLastHeardIsTorsSchedule: a control-port source hears from tor
// when it connects and at each BW event, which tor sends once a second
// whatever the relay carries; the relay's own events (connections,
// circuits, streams) do not move it, and it is kept to whole seconds, so
// that how long the BW event waited behind a burst of the relay's events
// does not show on /metrics.
func TestControlLastHeardIsTorsSchedule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ft := torctltest.New(t, "tcp", "NULL")
	ft.Events = map[string]bool{"BW": true, "ORCONN": true, "CIRC": true, "STREAM": true, "PRIVCOUNT_STREAM_ENDED": true}
	conns := make(chan *torctltest.Conn, 1)
	ft.OnCommand = func(c *torctltest.Conn, line string) {
		if strings.HasPrefix(line, "SETCONF EnablePrivCount") {
			c.Send("650 BW 155 593")
			conns <- c
		}
	}
	src := source.Control(source.ControlOptions{Address: ft.Addr, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	read, ok := source.Watch(src)
	if !ok {
		t.Fatal("a control-port source is not watched")
	}
	var emitted atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, source.NewWindows(), func(time.Time, []byte) { emitted.Add(1) }, func(time.Time, time.Time) {})
	}()
	defer func() { cancel(); <-done }()
	var c *torctltest.Conn
	select {
	case c = <-conns:
	case <-ctx.Done():
		t.Fatal("the source never subscribed")
	}
	waitEmitted := func(n int64) {
		t.Helper()
		for emitted.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("%d events emitted, want %d", emitted.Load(), n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitEmitted(1)
	heard := read().LastHeard
	if heard.IsZero() || heard.Nanosecond() != 0 {
		t.Fatalf("last heard %s: want a time in whole seconds", heard.Format(time.RFC3339Nano))
	}
	// A burst of the relay's own events, spread over more than a second.
	for i := range 40 {
		c.Send(fmt.Sprintf("650 ORCONN 198.51.100.23:%d NEW ID=%d", 40000+i, i),
			fmt.Sprintf("650 PRIVCOUNT_STREAM_ENDED 7 3 12 443 48213 1312 1795315990.120001 1795316003.455002 www.example.com 203.0.113.%d", i))
		time.Sleep(30 * time.Millisecond)
	}
	waitEmitted(81)
	if got := read().LastHeard; !got.Equal(heard) {
		t.Errorf("the relay's events moved last heard from %s to %s", heard.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
	}
	c.Send("650 BW 20480 18944")
	waitEmitted(82)
	if got := read().LastHeard; !got.After(heard) || got.Nanosecond() != 0 {
		t.Errorf("a BW event over a second later left last heard at %s (was %s)", got.Format(time.RFC3339Nano), heard.Format(time.RFC3339Nano))
	}
}

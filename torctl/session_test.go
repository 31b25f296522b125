package torctl

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/torctl/torctltest"
)

// sessionHarness runs a Session against a fake tor and lets a test wait
// for connections and events.
type sessionHarness struct {
	s        *Session
	connects chan ConnectInfo
	events   chan string
	cancel   context.CancelFunc
	done     chan error

	mu     sync.Mutex
	gaps   []Gap
	errors []error
}

func startSession(t *testing.T, ft *torctltest.Tor, cfg SessionConfig) *sessionHarness {
	t.Helper()
	h := &sessionHarness{
		connects: make(chan ConnectInfo, 16),
		events:   make(chan string, 1024),
		done:     make(chan error, 1),
	}
	cfg.Network, cfg.Address = ft.Network, ft.Addr
	cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	cfg.SetupTimeout = 2 * time.Second
	cfg.OnEvent = func(ev *Event) { h.events <- string(ev.Line()) }
	cfg.OnConnect = func(ctx context.Context, c *Conn, info ConnectInfo) error {
		h.connects <- info
		return nil
	}
	cfg.OnGap = func(g Gap) {
		h.mu.Lock()
		h.gaps = append(h.gaps, g)
		h.mu.Unlock()
	}
	cfg.OnError = func(err error) {
		h.mu.Lock()
		h.errors = append(h.errors, err)
		h.mu.Unlock()
	}
	h.s = NewSession(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.cancel = cancel
	go func() { h.done <- h.s.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *sessionHarness) connected(t *testing.T) ConnectInfo {
	t.Helper()
	return receive(t, h.connects, "session did not connect")
}

func (h *sessionHarness) event(t *testing.T) string {
	t.Helper()
	return receive(t, h.events, "no event arrived")
}

// receive waits for the session's next value on ch; the test fails with
// missing if none comes within 5 seconds.
func receive[T any](t *testing.T, ch <-chan T, missing string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal(missing)
		var zero T
		return zero
	}
}

func (h *sessionHarness) stop(t *testing.T) {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		h.done <- err // let a second stop return at once
	case <-time.After(5 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

func TestSessionReconnectsAndRecordsGap(t *testing.T) {
	ft := torctltest.New(t, "tcp", "SAFECOOKIE")
	h := startSession(t, ft, SessionConfig{Events: []string{"BW"}})
	info := h.connected(t)
	if info.AuthMethod != AuthSafeCookie || !slices.Equal(info.Events, []string{"BW"}) {
		t.Errorf("ConnectInfo = %+v", info)
	}
	ft.Emit("650 BW 1 2")
	if got := h.event(t); got != "BW 1 2" {
		t.Errorf("event = %q", got)
	}

	// Tor restarts: it hangs up and refuses connections for a while.
	ft.Refuse(true)
	lost := time.Now()
	ft.DropAll()
	time.Sleep(150 * time.Millisecond)
	if len(h.s.Gaps()) != 1 || !h.s.Gaps()[0].End.IsZero() {
		t.Errorf("while tor is down, Gaps = %+v, want one open gap", h.s.Gaps())
	}
	ft.Refuse(false)
	h.connected(t)
	back := time.Now()
	ft.Emit("650 BW 3 4")
	if got := h.event(t); got != "BW 3 4" {
		t.Errorf("event after reconnect = %q", got)
	}

	gaps := h.s.Gaps()
	if len(gaps) != 1 {
		t.Fatalf("Gaps = %+v, want exactly one", gaps)
	}
	g := gaps[0]
	if g.Start.Before(lost) || g.End.After(back) || g.Duration() < 150*time.Millisecond {
		t.Errorf("gap %v..%v (%v) not within the outage %v..%v", g.Start, g.End, g.Duration(), lost, back)
	}
	if g.Err == nil {
		t.Error("gap has no cause")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.gaps) != 1 || h.gaps[0] != g {
		t.Errorf("OnGap got %+v, want %+v", h.gaps, g)
	}
	if len(h.errors) < 2 {
		t.Errorf("OnError told of %d errors, want the lost connection and the refused attempts", len(h.errors))
	}
}

func TestSessionStartsWhileTorIsDown(t *testing.T) {
	ft := torctltest.New(t, "unix", "NULL")
	ft.Refuse(true)
	start := time.Now()
	h := startSession(t, ft, SessionConfig{Events: []string{"BW"}})
	time.Sleep(60 * time.Millisecond)
	ft.Refuse(false)
	h.connected(t)
	gaps := h.s.Gaps()
	if len(gaps) != 1 || gaps[0].Start.Sub(start) > 50*time.Millisecond || gaps[0].Duration() < 60*time.Millisecond {
		t.Errorf("Gaps = %+v, want one from the start of Run", gaps)
	}
}

func TestSessionStopClosesOpenGap(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	h := startSession(t, ft, SessionConfig{Events: []string{"BW"}})
	h.connected(t)
	ft.Refuse(true)
	ft.DropAll()
	time.Sleep(50 * time.Millisecond)
	h.stop(t)
	gaps := h.s.Gaps()
	if len(gaps) != 1 || gaps[0].End.IsZero() {
		t.Errorf("after Run returned, Gaps = %+v, want one closed gap", gaps)
	}
}

func TestSessionDropsUnrecognizedEvents(t *testing.T) {
	ft := torctltest.New(t, "unix", "HASHEDPASSWORD")
	ft.Password = "secret"
	h := startSession(t, ft, SessionConfig{
		Auth:    AuthOptions{Password: "secret"},
		Events:  []string{"BW", "TB_EMPTY", "ORCONN", "PRIVCOUNT_STREAM_ENDED"},
		SetConf: []KeyValue{{"EnablePrivCount", "1"}},
	})
	info := h.connected(t)
	if !slices.Equal(info.Events, []string{"BW", "ORCONN"}) ||
		!slices.Equal(info.Unrecognized, []string{"TB_EMPTY", "PRIVCOUNT_STREAM_ENDED"}) {
		t.Errorf("Events = %q, Unrecognized = %q", info.Events, info.Unrecognized)
	}
	setconf := ft.SetConf()
	if !slices.Equal(setconf, []string{`EnablePrivCount="1"`}) {
		t.Errorf("SETCONF sent %q", setconf)
	}
	if len(h.s.Gaps()) != 0 {
		t.Errorf("Gaps = %+v, want none", h.s.Gaps())
	}
}

func TestSessionRetriesAfterAuthFailure(t *testing.T) {
	ft := torctltest.New(t, "tcp", "HASHEDPASSWORD")
	ft.Password = "right"
	h := startSession(t, ft, SessionConfig{Auth: AuthOptions{Password: "wrong"}})
	time.Sleep(80 * time.Millisecond)
	h.stop(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errors) < 2 {
		t.Errorf("%d failed attempts reported, want several", len(h.errors))
	}
	if gaps := h.s.Gaps(); len(gaps) != 1 || gaps[0].Err == nil {
		t.Errorf("Gaps = %+v, want one gap with the auth error", gaps)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for attempt := range 70 {
		d := hi
		if attempt < 6 {
			d = lo << attempt
		}
		for range 20 {
			got := backoff(attempt, lo, hi)
			if got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, d/2, d)
			}
		}
	}
}

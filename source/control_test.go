package source_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/torctl/torctltest"
)

// privcountTor is a fake tor that knows the events of a PrivCount tor
// (and not CONN_BW, to see a refused event handled). Connection n sends
// scripts[n] once the controller has set EnablePrivCount; the first
// connection then hangs up, like a tor that restarts.
func privcountTor(t *testing.T, scripts ...[]string) *torctltest.Tor {
	ft := torctltest.New(t, "tcp", "NULL")
	ft.Events = map[string]bool{}
	for _, e := range []string{"BW", "ORCONN", "CIRC", "STREAM", "PRIVCOUNT_STREAM_ENDED", "PRIVCOUNT_CIRCUIT_CLOSE",
		"PRIVCOUNT_CONNECTION_CLOSE", "PRIVCOUNT_HSDIR_CACHE_STORE", "PRIVCOUNT_HSDIR_CACHE_FETCH"} {
		ft.Events[e] = true
	}
	ft.OnCommand = func(c *torctltest.Conn, line string) {
		if line != `SETCONF EnablePrivCount="1"` || c.N >= len(scripts) {
			return
		}
		for _, ev := range scripts[c.N] {
			c.Send("650 " + ev)
		}
		if c.N == 0 {
			c.Close()
		}
	}
	return ft
}

// commandLog is every command ft received, each as "connection: line".
func commandLog(ft *torctltest.Tor) []string {
	var out []string
	for _, c := range ft.Commands() {
		out = append(out, fmt.Sprintf("%d: %s", c.Conn, c.Line))
	}
	return out
}

func TestControlSubscribesCountsAndReconnects(t *testing.T) {
	first := []string{"BW 155 593", "ORCONN 198.51.100.23:41234 NEW ID=101"}
	second := []string{"BW 20480 18944",
		"PRIVCOUNT_STREAM_ENDED 7 3 12 443 48213 1312 1795315990.120001 1795316003.455002 www.example.com 203.0.113.80"}
	ft := privcountTor(t, first, second)

	var logs strings.Builder
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var evs []event
	var gaps []gap
	got := make(chan struct{})
	src := source.Control(source.ControlOptions{
		Address:    ft.Addr,
		Logger:     logger,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	})
	errc := make(chan error, 1)
	go func() {
		errc <- src.Run(ctx, nil,
			func(at time.Time, line []byte) {
				mu.Lock()
				defer mu.Unlock()
				evs = append(evs, event{at, string(line)})
				if len(evs) == len(first)+len(second) {
					close(got)
				}
			},
			func(s, e time.Time) {
				mu.Lock()
				defer mu.Unlock()
				gaps = append(gaps, gap{s, e})
			})
	}()
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatalf("not every event arrived; commands: %q", commandLog(ft))
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	var lines []string
	for _, e := range evs {
		lines = append(lines, e.line)
	}
	var want []string
	for _, e := range append(slices.Clone(first), second...) {
		want = append(want, "650 "+e)
	}
	if !slices.Equal(lines, want) {
		t.Errorf("emitted %q\nwant %q", lines, want)
	}
	if len(gaps) != 1 || !gaps[0].end.After(gaps[0].start) || gaps[0].start.Before(evs[1].at) || gaps[0].end.After(evs[2].at) {
		t.Errorf("gaps = %v; want one between the connections (events at %v and %v)", gaps, evs[1].at, evs[2].at)
	}

	cmds := commandLog(ft)
	all := "SETEVENTS BW CONN_BW ORCONN PRIVCOUNT_CIRCUIT_CLOSE PRIVCOUNT_CONNECTION_CLOSE PRIVCOUNT_HSDIR_CACHE_FETCH PRIVCOUNT_HSDIR_CACHE_STORE PRIVCOUNT_STREAM_ENDED"
	without := strings.Replace(all, " CONN_BW", "", 1)
	for conn := range 2 {
		wantCmds := []string{"PROTOCOLINFO 1", "AUTHENTICATE", all, without, `SETCONF EnablePrivCount="1"`}
		var gotCmds []string
		for _, c := range cmds {
			if rest, ok := strings.CutPrefix(c, fmt.Sprintf("%d: ", conn)); ok {
				gotCmds = append(gotCmds, rest)
			}
		}
		if !slices.Equal(gotCmds, wantCmds) {
			t.Errorf("connection %d commands:\n%q\nwant\n%q", conn, gotCmds, wantCmds)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "tor does not know these events") || !strings.Contains(logs.String(), "events=CONN_BW") {
		t.Errorf("the refused event was not logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A stock tor refuses every PRIVCOUNT_ event; the source then never asks
// for EnablePrivCount.
func TestControlOnStockTorSkipsPrivCount(t *testing.T) {
	ft := privcountTor(t)
	for e := range ft.Events {
		if strings.HasPrefix(e, "PRIVCOUNT_") {
			delete(ft.Events, e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- source.Control(source.ControlOptions{Address: ft.Addr, Events: []string{"BW", "PRIVCOUNT_STREAM_ENDED"},
			Logger: slog.New(slog.DiscardHandler)}).Run(ctx, nil, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(commandLog(ft), "0: SETEVENTS BW") {
		if time.Now().After(deadline) {
			t.Fatalf("commands: %q", commandLog(ft))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, c := range commandLog(ft) {
		if strings.Contains(c, "SETCONF") {
			t.Errorf("asked a stock tor for %s", c)
		}
	}
}

// runLogged runs a control source until ctx ends or until its log holds want lines
// containing match, and returns the log.
func runLogged(t *testing.T, opts source.ControlOptions, match string, want int) string {
	t.Helper()
	var logs strings.Builder
	var logMu sync.Mutex
	opts.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	opts.MinBackoff, opts.MaxBackoff = time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- source.Control(opts).Run(ctx, nil, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	}()
	for {
		logMu.Lock()
		n := strings.Count(logs.String(), match)
		logMu.Unlock()
		if n >= want || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	return logs.String()
}

// A missing socket is the operator's to fix: it is an ERROR naming the fix,
// and the source keeps retrying, so it recovers once tor is there.
func TestControlPermanentErrorIsLoggedWithFixAndRetried(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control")
	logs := runLogged(t, source.ControlOptions{Address: "unix:" + sock}, "level=ERROR", 3)
	var lines []string
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, "cannot use tor's control port") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 3 {
		t.Fatalf("want 3 attempts logged, got:\n%s", logs)
	}
	for _, l := range lines {
		if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, `fix="no control socket at `+sock) {
			t.Errorf("log line %q: want an ERROR naming the fix", l)
		}
	}
}

// Stock tor refuses the PRIVCOUNT_* events on every connection; the
// operator is told once, at INFO.
func TestControlUnknownPrivCountEventsSaidOnce(t *testing.T) {
	ft := privcountTor(t)
	for e := range ft.Events {
		if strings.HasPrefix(e, "PRIVCOUNT_") {
			delete(ft.Events, e)
		}
	}
	// Hang up after each subscription, as a restarting tor would.
	ft.OnCommand = func(c *torctltest.Conn, line string) {
		if strings.HasPrefix(line, "SETEVENTS") && !strings.Contains(line, "PRIVCOUNT") {
			c.Close()
		}
	}
	logs := runLogged(t, source.ControlOptions{Address: ft.Addr}, "tor control port connected", 3)
	if n := strings.Count(logs, "tor is not PrivCount-patched"); n != 1 {
		t.Errorf("told %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, `level=INFO msg="tor is not PrivCount-patched`) {
		t.Errorf("not at INFO:\n%s", logs)
	}
	// The test tor does not know CONN_BW either: that is worth a warning.
	if !strings.Contains(logs, "level=WARN msg=\"tor does not know these events") {
		t.Errorf("CONN_BW not warned about:\n%s", logs)
	}
}

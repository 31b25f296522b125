package source_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
)

// fakeTor is a control port that speaks just enough of tor's side:
// PROTOCOLINFO offering NULL authentication, AUTHENTICATE, SETEVENTS (552
// for events it does not know, like a tor without TestingTorNetwork
// refusing nothing but an unknown name), SETCONF, and events. Each
// connection sends its script of events once the controller has set
// EnablePrivCount; the first connection then hangs up, like a tor that
// restarts.
type fakeTor struct {
	ln      net.Listener
	known   map[string]bool
	scripts [][]string

	mu       sync.Mutex
	conns    int
	commands []string
}

func newFakeTor(t *testing.T, scripts ...[]string) *fakeTor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeTor{ln: ln, scripts: scripts, known: map[string]bool{}}
	for _, e := range []string{"BW", "ORCONN", "CIRC", "STREAM", "PRIVCOUNT_STREAM_ENDED", "PRIVCOUNT_CIRCUIT_CLOSE",
		"PRIVCOUNT_CONNECTION_CLOSE", "PRIVCOUNT_HSDIR_CACHE_STORE", "PRIVCOUNT_HSDIR_CACHE_FETCH"} {
		ft.known[e] = true
	}
	go ft.serve()
	t.Cleanup(func() { ln.Close() })
	return ft
}

func (ft *fakeTor) serve() {
	for {
		nc, err := ft.ln.Accept()
		if err != nil {
			return
		}
		ft.mu.Lock()
		n := ft.conns
		ft.conns++
		ft.mu.Unlock()
		go ft.handle(nc, n)
	}
}

func (ft *fakeTor) handle(nc net.Conn, n int) {
	defer nc.Close()
	r := bufio.NewReader(nc)
	send := func(lines ...string) {
		for _, l := range lines {
			fmt.Fprintf(nc, "%s\r\n", l)
		}
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		ft.mu.Lock()
		ft.commands = append(ft.commands, fmt.Sprintf("%d: %s", n, cmd))
		ft.mu.Unlock()
		verb, args, _ := strings.Cut(cmd, " ")
		switch verb {
		case "PROTOCOLINFO":
			send("250-PROTOCOLINFO 1", "250-AUTH METHODS=NULL", `250-VERSION Tor="0.4.8.13"`, "250 OK")
		case "AUTHENTICATE":
			send("250 OK")
		case "SETEVENTS":
			unknown := ""
			for _, e := range strings.Fields(args) {
				if !ft.known[e] {
					unknown = e
					break
				}
			}
			if unknown != "" {
				send(fmt.Sprintf("552 Unrecognized event %q", unknown))
				continue
			}
			send("250 OK")
		case "SETCONF":
			send("250 OK")
			if args == `EnablePrivCount="1"` && n < len(ft.scripts) {
				for _, ev := range ft.scripts[n] {
					send("650 " + ev)
				}
				if n == 0 {
					return // hang up
				}
			}
		default:
			send(`510 Unrecognized command "` + verb + `"`)
		}
	}
}

func (ft *fakeTor) log() []string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return slices.Clone(ft.commands)
}

func TestControlSubscribesCountsAndReconnects(t *testing.T) {
	first := []string{"BW 155 593", "ORCONN 198.51.100.23:41234 NEW ID=101"}
	second := []string{"BW 20480 18944",
		"PRIVCOUNT_STREAM_ENDED 7 3 12 443 48213 1312 1795315990.120001 1795316003.455002 www.example.com 203.0.113.80"}
	ft := newFakeTor(t, first, second)

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
		Address:    ft.ln.Addr().String(),
		Logger:     logger,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	})
	errc := make(chan error, 1)
	go func() {
		errc <- src.Run(ctx,
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
		t.Fatalf("not every event arrived; commands: %q", ft.log())
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

	cmds := ft.log()
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
	ft := newFakeTor(t)
	for e := range ft.known {
		if strings.HasPrefix(e, "PRIVCOUNT_") {
			delete(ft.known, e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- source.Control(source.ControlOptions{Address: ft.ln.Addr().String(), Events: []string{"BW", "PRIVCOUNT_STREAM_ENDED"},
			Logger: slog.New(slog.DiscardHandler)}).Run(ctx, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(ft.log(), "0: SETEVENTS BW") {
		if time.Now().After(deadline) {
			t.Fatalf("commands: %q", ft.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, c := range ft.log() {
		if strings.Contains(c, "SETCONF") {
			t.Errorf("asked a stock tor for %s", c)
		}
	}
}

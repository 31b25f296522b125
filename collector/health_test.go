package collector_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/health"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/torctl/torctltest"
)

// scrapeInterval is Prometheus's default scrape interval: a collector cut
// off from tor must show it on /metrics within one.
const scrapeInterval = 15 * time.Second

// TestCollectorHealthShowsTorStopped: a collector reading a (fake) tor's
// control port says on /metrics that its source is connected; when tor
// stops, the next scrapes say it is not, within one scrape interval; when
// tor is back it is connected again and the gap it had is counted. Nothing
// on the page is counted from the relay's events.
func TestCollectorHealthShowsTorStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ft := torctltest.New(t, "tcp", "NULL")
	// Every BW event the fake is asked for carries traffic; none of it may
	// reach /metrics.
	ft.OnCommand = func(c *torctltest.Conn, line string) {
		if strings.HasPrefix(line, "SETEVENTS") {
			c.Send("650 BW 123456 654321")
		}
	}
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	// No tally server listens here: the source's health does not depend on it.
	c, err := collector.New(collector.Options{
		Options: node.Options{Identity: id, Tally: "127.0.0.1:1", TallyFingerprint: id.Fingerprint, Keepers: []string{id.Fingerprint}},
		Source:  source.Control(source.ControlOptions{Address: ft.Addr, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
	})
	if err != nil {
		t.Fatal(err)
	}
	status := health.New("collector")
	read, ok := c.SourceHealth()
	if !ok {
		t.Fatal("a control-port source has no health to show")
	}
	status.WatchSource(func() health.Source {
		st, gaps := read()
		return health.Source{Connected: st.Connected, LastHeard: st.LastHeard, Gaps: gaps}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go status.ServeListener(ctx, ln)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// waitFor scrapes until the page shows want, for at most bound.
	waitFor := func(want string, bound time.Duration) string {
		t.Helper()
		var page string
		for end := time.Now().Add(bound); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if page = scrape(); strings.Contains(page, want+"\n") {
				return page
			}
		}
		t.Fatalf("/metrics did not show %q within %s:\n%s", want, bound, page)
		return ""
	}
	page := waitFor("privstats_collector_source_connected 1", 20*time.Second)
	if !strings.Contains(page, "privstats_collector_source_gaps_total 0\n") {
		t.Errorf("a fresh connection shows gaps:\n%s", page)
	}
	if strings.Contains(page, "privstats_collector_source_last_heard_timestamp_seconds 0\n") {
		t.Errorf("connected but never heard from tor:\n%s", page)
	}
	for _, n := range []string{"123456", "654321", "1.23456e+05", "6.54321e+05"} {
		if strings.Contains(page, n) {
			t.Errorf("/metrics shows the relay's traffic (%s):\n%s", n, page)
		}
	}

	// tor stops: it hangs up and takes no new connection.
	ft.Refuse(true)
	ft.DropAll()
	waitFor("privstats_collector_source_connected 0", scrapeInterval)

	// tor is back: connected again, and the gap it had is counted.
	ft.Refuse(false)
	waitFor("privstats_collector_source_gaps_total 1", 20*time.Second)
	waitFor("privstats_collector_source_connected 1", 20*time.Second)
}

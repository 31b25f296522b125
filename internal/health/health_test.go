package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHealthShowsOnlyHealth: a collector's /metrics says whether it is
// connected, in which phase the round is, how its tor source is and which
// release it runs, and nothing else.
func TestHealthShowsOnlyHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := New("collector")
	s.Set(true, "collecting")
	s.WatchSource(func() Source { return Source{Connected: true, LastHeard: time.Unix(1795824000, 0), Gaps: 2} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, addr)
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		break
	}
	for _, want := range []string{"privstats_collector_connected 1", `privstats_collector_round_phase{phase="collecting"} 1`, `privstats_collector_round_phase{phase="done"} 0`,
		"privstats_collector_source_connected 1", "privstats_collector_source_last_heard_timestamp_seconds 1.795824e+09", "privstats_collector_source_gaps_total 2",
		`privstats_build_info{goversion="go`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "privstats_collector_connected") && !strings.HasPrefix(line, "privstats_collector_round_phase") &&
			!strings.HasPrefix(line, "privstats_build_info{") && !strings.HasPrefix(line, "privstats_collector_source_") {
			t.Errorf("unexpected series on a collector's /metrics: %s", line)
		}
	}
}

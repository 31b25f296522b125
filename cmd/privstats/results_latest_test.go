package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/outcome/export"
)

// TestResultsLatestIsTheNewestWindow: --round latest is the round whose
// window ended last, not the last in series order, so a data directory
// that still holds a renamed series' rounds shows the current series'.
func TestResultsLatestIsTheNewestWindow(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, series := range []string{"test", "prod"} {
		s := start.Add(time.Duration(i) * 24 * time.Hour)
		o := &outcome.Outcome{Version: outcome.FormatVersion, Series: series, Round: 1,
			Config: &round.Config{Series: series, Round: 1, Epsilon: 1, Delta: 1e-6},
			Window: outcome.Window{Start: s, End: s.Add(time.Hour)}, PublishedAt: s.Add(time.Hour + time.Minute),
			Statistics: []outcome.Statistic{{Name: "relay_bytes_read", Bins: []outcome.Bin{{Label: "total", NoisyTotal: int64(i)}}}}}
		if err := outcome.Write(filepath.Join(dir, fmt.Sprintf("%s-000001.json", series)), o); err != nil {
			t.Fatal(err)
		}
	}
	var got export.RoundJSON
	if err := json.Unmarshal([]byte(runOK(t, "results", "--round", "latest", "--json", dir)), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "prod-000001" {
		t.Errorf("--round latest is %s, want prod-000001, whose window ended last", got.Name)
	}
}

// TestVerifyURLOfARoundPage: verify given the URL of a round's page on the
// tally server (/?round=NAME, what a reader copies from the browser)
// checks that round, not the latest.
func TestVerifyURLOfARoundPage(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"verify", srv.URL + "/?round=demo-000002"}, &out, &errb); code != 1 {
		t.Errorf("verify of a round the server does not have: status %d, want 1", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != "/api/v1/rounds/demo-000002" {
		t.Errorf("verify asked for %q, want /api/v1/rounds/demo-000002", asked)
	}
}

// TestResultsURLSaysItDidNotVerify: what results reads from a server is
// shown as served, and it says on stderr that it checked no signature,
// and how to.
func TestResultsURLSaysItDidNotVerify(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/rounds" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("[]"))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"results", "--csv", srv.URL}, &out, &errb); code != 0 {
		t.Fatalf("status %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "not verified") || !strings.Contains(errb.String(), "privstats verify "+srv.URL) {
		t.Errorf("stderr %q does not say the rounds were not verified, and how to", errb.String())
	}
}

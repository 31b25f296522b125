package tally

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/outcome"
)

// TestResultsAPIReadsAnOutcomeOnce: the public results API answers from
// the outcomes it has read, reading a file again only when its size or time
// changes, as the results page does. Before, every GET of /api/v1/rounds,
// /api/v1/rounds/latest or /api/v1/export.csv parsed every outcome file in
// full (about 0.9 s of CPU for 1000 small rounds), for anyone who asked.
// Here a file is overwritten behind the server's back with its size and
// time kept: the answers still hold the round as first read.
func TestResultsAPIReadsAnOutcomeOnce(t *testing.T) {
	n := startServer(t, 0)
	dir := filepath.Join(n.opts.DataDir, "outcomes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for r := uint64(1); r <= 3; r++ {
		s := start.Add(time.Duration(r) * time.Hour)
		o := &outcome.Outcome{Version: outcome.FormatVersion, Series: "test", Round: r,
			Config: &round.Config{Series: "test", Round: r, Epsilon: 1, Delta: 1e-6},
			Window: outcome.Window{Start: s, End: s.Add(time.Hour)}, PublishedAt: s.Add(time.Hour + time.Minute),
			Statistics: []outcome.Statistic{{Name: "relay_bytes_read", Bins: []outcome.Bin{{Label: "total", NoisyTotal: int64(r)}}}}}
		if err := outcome.Write(filepath.Join(dir, fmt.Sprintf("test-%06d.json", r)), o); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(n.server.publicHandler())
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	before := get("/api/v1/export.csv")
	if strings.Count(before, "\ntest,") != 3 {
		t.Fatalf("export.csv:\n%s", before)
	}
	list := get("/api/v1/rounds")

	path := filepath.Join(dir, "test-000003.json")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat(" ", int(info.Size()))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if after := get("/api/v1/export.csv"); after != before {
		t.Errorf("export.csv read the files again:\n%s\nwas\n%s", after, before)
	}
	if again := get("/api/v1/rounds"); again != list {
		t.Errorf("/api/v1/rounds read the files again:\n%s\nwas\n%s", again, list)
	}
	if one := get("/api/v1/export.csv?round=latest"); !strings.Contains(one, "\ntest,3,") {
		t.Errorf("export.csv?round=latest:\n%s", one)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/outcome/export"
)

// TestResultsFromDirAndURL runs three rounds on an in-process tally
// server and reads them back every way a researcher can: the long-form CSV
// from the data directory, from the server's URL and from its
// /api/v1/export.csv are the same, one row per round × statistic × bin;
// -round latest --json carries the round's metadata; verify takes an
// outcome URL; a missing directory or an unreachable server is an error
// with status 1.
func TestResultsFromDirAndURL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three rounds of a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := deploytest.ShortRound()
	opts.Rounds, opts.HTTPListen = 3, "127.0.0.1:0"
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 2, Tally: opts, KeepServing: true})
	if _, err := d.WaitOutcomes(ctx, 3); err != nil {
		t.Fatal(err)
	}
	url := "http://" + d.Tally.HTTPAddr()

	// The flags may follow the directory.
	fromDir := runOK(t, "results", d.Dir, "--csv")
	rows, err := csv.NewReader(strings.NewReader(fromDir)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != strings.Join(export.CSVHeader, ",") {
		t.Fatalf("header %v", rows[0])
	}
	if len(rows) != 1+3 { // 3 rounds × relay_bytes_read's one bin
		t.Fatalf("%d rows, want a header and 3:\n%s", len(rows), fromDir)
	}
	for i, r := range rows[1:] {
		if r[0] != "test" || r[1] != string(rune('1'+i)) || r[4] != "relay_bytes_read" || r[6] != "bytes" || r[13] != "2" {
			t.Errorf("row %d: %v", i+1, r)
		}
		start, err1 := time.Parse(time.RFC3339, r[2])
		end, err2 := time.Parse(time.RFC3339, r[3])
		if err1 != nil || err2 != nil || end.Sub(start) != opts.RoundLength {
			t.Errorf("row %d: window %s – %s", i+1, r[2], r[3])
		}
	}
	if fromURL := runOK(t, "results", "--csv", url); fromURL != fromDir {
		t.Errorf("CSV from the URL differs from the directory's:\n%s\n---\n%s", fromURL, fromDir)
	}
	if api := get(ctx, t, url+"/api/v1/export.csv"); api != fromDir {
		t.Errorf("/api/v1/export.csv differs from results --csv:\n%s\n---\n%s", api, fromDir)
	}
	lines := strings.Split(strings.TrimSpace(fromDir), "\n")
	if one := strings.TrimSpace(get(ctx, t, url+"/api/v1/export.csv?round=latest")); one != lines[0]+"\n"+lines[3] {
		t.Errorf("/api/v1/export.csv?round=latest:\n%s", one)
	}

	var latest export.RoundJSON
	if err := json.Unmarshal([]byte(runOK(t, "results", "-round", "latest", "--json", url)), &latest); err != nil {
		t.Fatal(err)
	}
	if latest.Name != "test-000003" || latest.Round != 3 || latest.Series != "test" || latest.Epsilon != 1 || latest.Delta != 1e-6 ||
		latest.Collectors != 2 || latest.Window.End.Sub(latest.Window.Start) != opts.RoundLength || latest.Statistics[0].Unit != "bytes" {
		t.Errorf("-round latest --json: %+v", latest)
	}

	// verify takes the server's outcome URL; σ = 0, so it is valid and
	// not private (status 3).
	var out, errb bytes.Buffer
	if code := run([]string{"verify", url + "/api/v1/rounds/latest"}, &out, &errb); code != exitNotPrivate || !strings.Contains(out.String(), "valid: round test/3") {
		t.Errorf("verify URL: status %d\n%s%s", code, out.String(), errb.String())
	}

	out.Reset()
	if code := run([]string{"verify", url}, &out, &errb); code != exitNotPrivate || !strings.Contains(out.String(), "valid: round test/3") {
		t.Errorf("verify of the server's URL: status %d\n%s%s", code, out.String(), errb.String())
	}

	pc := runOK(t, "results", "-round", "test-000002", "--format", "privcount", d.Dir)
	if !strings.Contains(pc, `"relay_bytes_read": {`) || !strings.Contains(pc, "-Infinity,\n                Infinity,") {
		t.Errorf("PrivCount tallies:\n%s", pc)
	}
	if om := runOK(t, "results", "--openmetrics", d.Dir); !strings.HasSuffix(om, "# EOF\n") || strings.Count(om, "\nprivstats_estimate_bytes{") != 3 {
		t.Errorf("OpenMetrics:\n%s", om)
	}

	// A restarted tally server shows its latest outcome on /metrics at once.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	again := deploytest.New(ctx, t, deploytest.Options{Dir: d.Dir, Keepers: 3, Collectors: 2, Tally: opts, Idle: true, KeepServing: true})
	if page := get(ctx, t, "http://"+again.Tally.HTTPAddr()+"/metrics"); !strings.Contains(page, "\nprivstats_outcome_round{series=\"test\"} 3\n") {
		t.Errorf("the restarted tally server does not show round 3:\n%s", page)
	}

	for _, args := range [][]string{
		{"results", filepath.Join(d.Dir, "no-such-dir")},
		{"results", "--csv", filepath.Join(d.Dir, "no-such-dir")},
		{"results", "http://127.0.0.1:1"},
		{"verify", "http://127.0.0.1:1/api/v1/rounds/latest"},
		{"results", "-round", "test-000009", d.Dir},
	} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 1 || errb.Len() == 0 {
			t.Errorf("privstats %s: status %d, stderr %q; want 1 and an error", strings.Join(args, " "), code, errb.String())
		}
	}
}

// runOK runs privstats and returns its stdout, failing the test on a
// non-zero status.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("privstats %s: status %d\n%s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s", url, err, resp.Status)
	}
	return string(b)
}

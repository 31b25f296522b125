package site_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/site"
)

// writeOutcome writes round n of the fixture, changed by edit, as NAME.json.
func writeOutcome(t *testing.T, dir, name string, n uint64, edit func(o *outcome.Outcome)) {
	t.Helper()
	o := fixtureRound(t, n)
	if edit != nil {
		edit(o)
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pageWithin renders a page, failing if it has not come back by the
// deadline: a hang would otherwise hold the archive's lock, and every
// later request, for ever.
func pageWithin(t *testing.T, a *site.Archive, opts site.PageOptions) (string, error) {
	t.Helper()
	type result struct {
		html string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		err := a.WritePage(&buf, opts)
		done <- result{buf.String(), err}
	}()
	select {
	case r := <-done:
		return r.html, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("the page did not come back within 30 s")
		return "", nil
	}
}

// A tampered outcome whose intervals span more than a float64 can hold
// (no tally server writes one: totals are int64 and a round's noise is
// bounded) is named as unreadable, not plotted: gonum's tick labelling
// never returns on such a range, and the page, with the archive's lock
// held, never came back.
func TestPageSkipsValuesNoOutcomeHolds(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 2)
	writeOutcome(t, dir, "demo-000003", 3, func(o *outcome.Outcome) {
		o.Statistics[2].Bins[1].CI95High = 1e308
		o.Statistics[2].Bins[2].CI95Low = -1e308
	})
	a := site.Open(dir)
	html, err := pageWithin(t, a, site.PageOptions{Series: true, RoundLink: func(n string) string { return n }})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html, "Round demo/2:") || !strings.Contains(html, "skipped: demo-000003.json") {
		t.Errorf("the page does not show round 2 as the latest and name the tampered file as skipped:\n%.600s", html)
	}
	if !strings.Contains(html, "this page checks no signature") {
		t.Error("the page does not say that it verified nothing")
	}
	if _, err := pageWithin(t, a, site.PageOptions{Round: "demo-000003"}); err == nil {
		t.Error("the tampered round has a page")
	}
}

// The page needs no script, so it says so: a Content-Security-Policy that
// allows none (and loads nothing but the page's own styles and data: URIs)
// on the tally server's answers and in every page of the static export, so
// that a name an escaping bug let through still could not run. Nothing is
// sniffed into another type.
func TestPagesAllowNoScript(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 2)
	a := site.Open(dir)
	srv := httptest.NewServer(a.Handler(nil))
	defer srv.Close()
	const csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
	for _, path := range []string{"/", "/csv/series/demo/or_connections.csv"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, csp) {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, got, csp)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
	}
	out := t.TempDir()
	if _, err := a.Export(out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.html", "round-demo-000001.html"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `<meta http-equiv="Content-Security-Policy" content="`+csp+`">`) {
			t.Errorf("%s has no Content-Security-Policy", name)
		}
	}
}

// A long series is plotted over its latest rounds only, so the page stays
// the same size however many rounds there are (at 3000 rounds it was 6 MB,
// growing by 2 kB a round); the caption says so, and the series CSV still
// has every round.
func TestSeriesPlotIsBounded(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, site.PlottedRounds+20)
	html, err := pageWithin(t, site.Open(dir), site.PageOptions{Series: true, RoundLink: func(n string) string { return n }})
	if err != nil {
		t.Fatal(err)
	}
	// Each round is a dot on each of relay_bytes_read's 1, or_connections'
	// 3 and or_connection_lifetime's 9 bins; a dot is two arcs.
	if arcs, want := strings.Count(html, "A2.5,2.5"), 2*13*site.PlottedRounds; arcs != want {
		t.Errorf("%d dot arcs in the series plots, want %d (%d rounds × 13 bins × 2)", arcs, want, site.PlottedRounds)
	}
	if want := fmt.Sprintf("the last %d of the %d rounds of series demo", site.PlottedRounds, site.PlottedRounds+20); !strings.Contains(html, want) {
		t.Errorf("the caption does not say %q", want)
	}
}

package site_test

import (
	"bytes"
	"encoding/json"
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
	if _, err := pageWithin(t, a, site.PageOptions{Round: "demo-000003"}); err == nil {
		t.Error("the tampered round has a page")
	}
}

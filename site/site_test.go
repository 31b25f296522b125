package site_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/privstats/privstats/site"
)

func page(t *testing.T, a *site.Archive, opts site.PageOptions) string {
	t.Helper()
	if opts.RoundLink == nil {
		opts.RoundLink = func(name string) string { return "round-" + name + ".html" }
	}
	var buf bytes.Buffer
	if err := a.WritePage(&buf, opts); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

var svgOpen = regexp.MustCompile(`<svg class="plot"`)

// The page of the latest round plots every statistic over the rounds and
// each multi-bin statistic's bins in the round, labels its axes with the
// statistic's unit, and says what the round's privacy, collectors, gaps
// and refusals were.
func TestPageShowsTheSeriesAndTheRound(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 4)
	a := site.Open(dir)
	html := page(t, a, site.PageOptions{Series: true})

	// Three series plots, and histograms for the two statistics with bins.
	if n := len(svgOpen.FindAllString(html, -1)); n != 5 {
		t.Errorf("%d plots on the page, want 3 series and 2 histograms", n)
	}
	for _, want := range []string{
		"Round demo/4:", "ε = 1, δ = 1e-06 for the whole round",
		"3 of the 4 listed reported", "(at least 3 needed)", "0 shares used of 3 keepers (K = 2)",
		">noisy total (bytes)<", ">noisy total (connections)<", ">bin (seconds)<", ">bin<",
		">end of the round&#39;s window (UTC)<",
		`href="csv/series/demo/relay_bytes_read.csv"`, `href="csv/round/demo-000004/or_connection_lifetime.csv"`,
		`<tr class="this"><td><a href="round-demo-000004.html">demo-000004</a>`,
		`<a href="round-demo-000001.html">demo-000001</a>`,
		"How to read this", "Negative totals", "σ carried",
		"σ planned 4000000, σ carried 4000000, σ needed ",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The lifetime histogram's bin with a negative total puts the value
	// axis below zero: it has a negative tick label.
	if !regexp.MustCompile(`>-\d+<`).MatchString(html) {
		t.Error("no negative tick label: the value axis does not reach below zero")
	}
	if strings.Contains(html, "The totals across rounds are plotted on") {
		t.Error("the page with the series plots points to another page for them")
	}
}

// An older round's page shows that round, its gap and its refusal; without
// Series it points to the overview for the plots over rounds.
func TestPageOfAnOlderRound(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 4)
	a := site.Open(dir)
	two := page(t, a, site.PageOptions{Round: "demo-000002", Overview: "index.html"})
	for _, want := range []string{"Round demo/2:", `<tr class="this"><td><a href="round-demo-000002.html">`,
		`href="#gaps">1</a> reported`, "2026-11-28 09:00:25Z", "3s</td>", "No node refused the round.",
		`plotted on the <a href="index.html">overview</a>`} {
		if !strings.Contains(two, want) {
			t.Errorf("round 2's page lacks %q", want)
		}
	}
	if n := len(svgOpen.FindAllString(two, -1)); n != 2 {
		t.Errorf("%d plots on a round page without series, want its 2 histograms", n)
	}
	three := page(t, a, site.PageOptions{Round: "demo-000003"})
	if !strings.Contains(three, "max_epsilon 0.5") || !strings.Contains(three, "No collector in S reported a gap.") {
		t.Error("round 3's page does not show its refusal, or shows a gap it does not have")
	}
	var buf bytes.Buffer
	if err := a.WritePage(&buf, site.PageOptions{Round: "demo-000009"}); !errors.Is(err, site.ErrNoRound) {
		t.Errorf("a round that is not there: %v, want ErrNoRound", err)
	}
}

// A round published after a page was drawn is on the next page, plotted;
// a file that is not an outcome is named, not shown.
func TestPageFollowsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	a := site.Open(dir + "/not-yet")
	if html := page(t, a, site.PageOptions{Series: true}); !strings.Contains(html, "No published rounds yet.") {
		t.Error("an archive whose directory does not exist yet does not say there are no rounds")
	}
	a = site.Open(dir)
	writeRounds(t, dir, 2)
	before := page(t, a, site.PageOptions{Series: true})
	writeRounds(t, dir, 3)
	os.WriteFile(filepath.Join(dir, "junk.json"), []byte(`{"version":1}`), 0o644)
	after := page(t, a, site.PageOptions{Series: true})
	if !strings.Contains(after, "Round demo/3:") || !strings.Contains(after, "junk.json") {
		t.Fatal("the new round or the unreadable file is not on the page")
	}
	// Each round is a dot on each bin's line of the series plots.
	dots := func(html string) int { return strings.Count(html, "A2.5,2.5") }
	if b, a := dots(before), dots(after); a <= b {
		t.Errorf("series plots have %d points before the third round and %d after", b, a)
	}
}

// Each plot's CSV has one row per round and bin, with the statistic's unit,
// the σ the totals carry and the interval.
func TestCSV(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 3)
	rounds, _, err := site.Open(dir).Rounds()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := site.WriteCSV(&buf, "or_connections", rounds); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+3*3 {
		t.Fatalf("%d rows, want a header and 3 rounds × 3 bins", len(rows))
	}
	head := strings.Join(rows[0], ",")
	if head != "series,round,window_start,window_end,statistic,bin,unit,noisy_total,sigma,ci95_low,ci95_high,epsilon,delta,collectors" {
		t.Fatalf("header %s", head)
	}
	last := rows[len(rows)-1]
	want := []string{"demo", "3", "2026-11-28T09:00:40Z", "2026-11-28T09:01:00Z", "or_connections", "outbound", "connections", "797", "105", "591.2", "1002.8", "0.3333333333333333", "3.3333333333333335e-07", "3"}
	if strings.Join(last, ",") != strings.Join(want, ",") {
		t.Errorf("last row\n%v\nwant\n%v", last, want)
	}
	for _, r := range rows[1:] {
		v, _ := strconv.ParseFloat(r[7], 64)
		lo, _ := strconv.ParseFloat(r[9], 64)
		hi, _ := strconv.ParseFloat(r[10], 64)
		if !(lo <= v && v <= hi) {
			t.Errorf("row %v: total outside its interval", r)
		}
	}
}

// The tally server's handler serves the page, any round's page, and the
// CSV at every link the page has; what is not there is a 404.
func TestHandler(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 3)
	srv := httptest.NewServer(site.Open(dir).Handler(func() *site.Live {
		return &site.Live{Series: "demo", Round: 4, Phase: "collecting", Joined: 4}
	}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, html := get("/")
	if code != 200 || !strings.Contains(html, "Current round 4: <b>collecting</b>") || !strings.Contains(html, `href="?round=demo-000001"`) {
		t.Fatalf("GET / = %d without the live round or round links:\n%.400s", code, html)
	}
	links := regexp.MustCompile(`href="(csv/[^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(links) != 6 {
		t.Errorf("%d CSV links, want 3 series and 3 rounds' (one per statistic)", len(links))
	}
	for _, l := range links {
		if code, body := get("/" + l[1]); code != 200 || !strings.HasPrefix(body, "series,round,") {
			t.Errorf("GET /%s = %d %.60q", l[1], code, body)
		}
	}
	if code, body := get("/?round=demo-000002"); code != 200 || !strings.Contains(body, "Round demo/2:") {
		t.Errorf("GET /?round=demo-000002 = %d", code)
	}
	for _, path := range []string{"/?round=demo-000009", "/csv/series/other/relay_bytes_read.csv", "/csv/round/demo-000001/exit_bytes.csv",
		"/csv/round/demo-000001/relay_bytes_read", "/csv/x/demo/relay_bytes_read.csv"} {
		if code, _ := get(path); code != 404 {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
}

// The static export opens from disk: nothing in it is loaded from a
// network, and every link in it is to a file it wrote or to a place on
// its own page.
func TestExportIsSelfContained(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	writeRounds(t, dir, 3)
	ex, err := site.Open(dir).Export(out)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Rounds != 3 || ex.Pages != 4 || ex.CSVs != 3*3+3 {
		t.Errorf("exported %+v, want 3 rounds, index + 3 round pages, 12 CSVs", ex)
	}
	// The only URLs allowed are the SVG and XLink namespace names, which
	// name and do not load.
	namespaces := regexp.MustCompile(`xmlns(:xlink)?="http://www\.w3\.org/(2000/svg|1999/xlink)"`)
	ref := regexp.MustCompile(`(?:href|src)="([^"]*)"`)
	files := 0
	err = filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := namespaces.ReplaceAllString(string(b), "")
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(text); m != "" {
			t.Errorf("%s refers to %q", path, m)
		}
		for _, m := range ref.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.HasPrefix(target, "#") || target == "data:," {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), target)); err != nil {
				t.Errorf("%s links %q, which the export did not write", path, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != ex.Pages+ex.CSVs {
		t.Errorf("%d files in the export, want %d", files, ex.Pages+ex.CSVs)
	}
	index, _ := os.ReadFile(filepath.Join(out, "index.html"))
	if n := len(svgOpen.FindAll(index, -1)); n != 5 {
		t.Errorf("index.html has %d plots, want 5", n)
	}
}

func TestExportNeedsRounds(t *testing.T) {
	dir := t.TempDir()
	if _, err := site.Open(filepath.Join(dir, "missing")).Export(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no outcomes directory") {
		t.Errorf("export of a missing directory: %v", err)
	}
	if _, err := site.Open(dir).Export(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no published rounds") {
		t.Errorf("export of an empty directory: %v", err)
	}
}

// A round whose noise is too thin for the (ε, δ) it claims says so at the
// top of its page, as privstats verify would.
func TestPageWarnsOfARoundThatIsNotPrivate(t *testing.T) {
	dir := t.TempDir()
	writeRounds(t, dir, 1)
	path := filepath.Join(dir, "demo-000001.json")
	b, _ := os.ReadFile(path)
	// Declare a day's sensitivity for relay_bytes_read, which its σ of
	// 4000000 is far too small for.
	thin := strings.Replace(string(b), `"sensitivity": 40000,`, `"sensitivity": 221459251.2,`, 1)
	if thin == string(b) {
		t.Fatal("the fixture's relay_bytes_read sensitivity is not where the test expects it")
	}
	os.WriteFile(path, []byte(thin), 0o644)
	html := page(t, site.Open(dir), site.PageOptions{})
	if !strings.Contains(html, "NOT PRIVATE: relay_bytes_read:") {
		t.Error("the page of a round that is not private does not say so")
	}
}

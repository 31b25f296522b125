package site_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/privstats/privstats/demo"
	"github.com/privstats/privstats/site"
)

var screenshot = flag.String("screenshot", "", "also save TestBrowserShowsThePlots' screenshot of the results page as `FILE` (docs/img/results.png)")

// browserStats are what the browser test measures: a single counter,
// categories and a numeric histogram.
var browserStats = []string{"relay_bytes_read", "or_connections", "exit_stream_bytes_web"}

// TestBrowserShowsThePlots runs a deployment through three rounds and
// opens its tally server's results page in headless chromium: every plot
// is drawn, with its axis labels, nothing is logged as an error, and the
// round selector works without JavaScript. Then the static export of the
// same rounds, opened from disk, draws the same plots without a single
// request off the disk.
func TestBrowserShowsThePlots(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	addr := make(chan string, 1)
	reported := make(chan *demo.Report, 1)
	serving, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() {
		_, runErr = demo.Run(serving, demo.Options{Collectors: 4, Keepers: 3, Duration: 2 * time.Second, Rounds: 3,
			Statistics: browserStats, Dir: dir, Serve: true,
			Served: func(a string) { addr <- a }, OnReport: func(r *demo.Report) { reported <- r }})
	})
	defer func() {
		stop()
		wg.Wait()
		if runErr != nil {
			t.Errorf("demo: %v", runErr)
		}
	}()
	var rep *demo.Report
	select {
	case rep = <-reported:
	case <-ctx.Done():
		t.Fatal("the demo's three rounds did not end")
	}
	if len(rep.History) != 3 {
		t.Fatalf("%d rounds published, want 3", len(rep.History))
	}
	url := "http://" + <-addr + "/"

	tab := newTab(t, ctx, browser)
	errs := console(t, tab)
	want := plotsWanted{series: 3, histograms: 2}
	png := checkPage(t, tab, url, want, "Round demo/3:")
	write(t, filepath.Join(t.TempDir(), "results.png"), png)
	if *screenshot != "" {
		write(t, *screenshot, png)
	}
	// The selector is a plain link: the first round's page, no script.
	choose(t, tab, `nav.rounds a[href="?round=demo-000001"]`, "Round demo/1:")
	if e := errs(); len(e) > 0 {
		t.Errorf("the browser logged errors on the tally server's page:\n%s", strings.Join(e, "\n"))
	}

	// The static export, from disk.
	out := t.TempDir()
	if _, err := site.Open(filepath.Join(dir, "data", "outcomes")).Export(out); err != nil {
		t.Fatal(err)
	}
	disk := newTab(t, ctx, browser)
	errs = console(t, disk)
	requests := requested(t, disk)
	checkPage(t, disk, "file://"+filepath.Join(out, "index.html"), want, "Round demo/3:")
	choose(t, disk, `nav.rounds a[href="round-demo-000002.html"]`, "Round demo/2:")
	if e := errs(); len(e) > 0 {
		t.Errorf("the browser logged errors on the exported page:\n%s", strings.Join(e, "\n"))
	}
	// Every request the pages made stayed on the disk.
	urls := requests()
	if len(urls) < 2 {
		t.Errorf("saw %d requests, want at least the index and a round page", len(urls))
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the exported site requested %s", u)
		}
	}
}

type plotsWanted struct{ series, histograms int }

// checkPage opens url and checks its plots as the browser laid them out:
// how many of each, that each has a size, and its axis labels. It returns
// a screenshot of the whole page.
func checkPage(t *testing.T, tab context.Context, url string, want plotsWanted, heading string) []byte {
	t.Helper()
	// Navigate returns once the page has loaded; the plots are in it.
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	type plot struct {
		Kind   string  `json:"kind"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
		Text   string  `json:"text"`
	}
	plots, err := chromedp.Run(tab, chromedp.Evaluate[[]plot](`Array.from(document.querySelectorAll('svg.plot')).map(s => {
		const r = s.getBoundingClientRect();
		return {kind: s.parentElement.className, width: r.width, height: r.height,
			text: Array.from(s.querySelectorAll('text')).map(x => x.textContent).join('|')};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range plots {
		count[p.Kind]++
		if p.Width < 200 || p.Height < 80 {
			t.Errorf("%s: a %s plot is laid out %gx%g px", url, p.Kind, p.Width, p.Height)
		}
		labels := []string{"noisy total ("}
		switch p.Kind {
		case "series":
			labels = append(labels, "end of the round's window (UTC)")
		case "histogram":
			labels = append(labels, "bin")
		}
		for _, l := range labels {
			if !strings.Contains(p.Text, l) {
				t.Errorf("%s: a %s plot lacks the axis label %q: %.200s", url, p.Kind, l, p.Text)
			}
		}
	}
	if count["series"] != want.series || count["histogram"] != want.histograms {
		t.Errorf("%s: plots %v, want %d series and %d histograms", url, count, want.series, want.histograms)
	}
	all, err := chromedp.Run(tab, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('svg.plot text')).map(x => x.textContent).join('|')`))
	if err != nil {
		t.Fatal(err)
	}
	for _, unit := range []string{"noisy total (bytes)", "noisy total (connections)", "noisy total (streams)", "bin (bytes)"} {
		if !strings.Contains(all, unit) {
			t.Errorf("%s: no plot is labelled %q", url, unit)
		}
	}
	if h, err := chromedp.Run(tab, chromedp.Text(`h2#round`)); err != nil || !strings.HasPrefix(h, heading) {
		t.Errorf("%s: heading %q, want %q (%v)", url, h, heading, err)
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	return png
}

// choose clicks a round in the selector and waits for its page.
func choose(t *testing.T, tab context.Context, link, heading string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Click(link)); err != nil {
		t.Fatal(err)
	}
	// The click starts a navigation; until the new page is in, the
	// heading is the old one's, or there is no document to ask.
	js := fmt.Sprintf(`document.querySelector('h2#round')?.textContent.startsWith(%q) === true`, heading)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](js)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("clicking %s did not lead to the page of %q", link, heading)
			return
		}
	}
}

// chromium finds Debian's chromium, or skips the test saying how to get it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed (apt-get install -y chromium): the results page is not checked in a browser")
	return ""
}

// newTab starts a headless browser with its own profile, closed when the
// test ends.
func newTab(t *testing.T, ctx context.Context, browser string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1200, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	return tab
}

// console collects what the tab logs as an error or throws; the returned
// function stops collecting and says what was collected.
func console(t *testing.T, tab context.Context) func() []string {
	listen, stop := context.WithCancel(tab)
	var mu sync.Mutex
	var got []string
	messages := chromedp.Console(listen)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				got = append(got, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(stop)
	return func() []string {
		// Let messages of the last action arrive.
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// requested collects the URLs the tab requests; the returned function
// says which it requested so far.
func requested(t *testing.T, tab context.Context) func() []string {
	listen, stop := context.WithCancel(tab)
	var mu sync.Mutex
	var got []string
	events := chromedp.Events(listen, network.RequestWillBeSent)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, ev.Request.URL)
			mu.Unlock()
		}
	}()
	t.Cleanup(stop)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

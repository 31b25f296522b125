package site

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"num":   number,
	"total": func(v float64) string { return fmt.Sprintf("%.0f", v) },
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"short": func(fp string) string { return fp[:min(len(fp), 12)] },
	"csv":   func(kind, owner, stat string) string { return csvPath(kind, owner, stat) },
}).ParseFS(pageFS, "page.html"))

// number shows a σ, ε or δ: whole numbers up to 10^15 in full, since a σ
// of 4e+06 bytes reads worse than 4000000; anything else to four digits.
func number(v float64) string {
	if a := math.Abs(v); a >= 1e4 && a < 1e15 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// ErrNoRound is WritePage's error for a round the archive does not hold.
var ErrNoRound = errors.New("no such round")

// Live is what a running tally server adds to its page: the round in
// progress, which no outcome file holds yet.
type Live struct {
	Series       string
	Round        uint64
	Phase        string
	Joined       int
	Reported     int
	Committed    int
	Failure      string
	NotAnnounced string
	Refusals     map[string]string
}

// PageOptions choose what a page shows and how it links.
type PageOptions struct {
	// Round is the round to show, by name; "" is the latest.
	Round string
	// Series draws each statistic's totals over every round of the
	// series; the static export does so on its index page only, so that
	// N round pages do not carry N copies of the same plots.
	Series bool
	// RoundLink is the address of a round's page.
	RoundLink func(name string) string
	// Overview is the address of the page with the series plots, linked
	// from pages without them.
	Overview string
	// Live, when set, shows the tally server's round in progress and
	// links its machine-readable endpoints.
	Live *Live
}

// roundView is what a page shows of one round, worked out once per round.
type roundView struct {
	Round
	Privacy    outcome.Privacy
	Statistics []statView
	Gaps       []gapView
	Refusals   []refusal
	Listed     int
}

type statView struct {
	*outcome.Statistic
	Unit, BinUnit, Description string
	// Needed is the σ the statistic's (ε, δ) need; Sigma the plan's,
	// TotalSigma what S carried.
	Needed    float64
	Histogram template.HTML
}

type gapView struct {
	Collector  string
	Start, End time.Time
	Length     time.Duration
}

type refusal struct{ Node, Reason string }

type pageData struct {
	PageOptions
	Title      string
	Rounds     []Round // the shown round's series, newest first
	View       *roundView
	Series     map[string]template.HTML
	Unreadable []string
	Refusals   []refusal // of the live round
}

// WritePage writes the results page of opts.Round.
func (a *Archive) WritePage(w io.Writer, opts PageOptions) error {
	d, err := a.page(opts)
	if err != nil {
		return err
	}
	return pageTmpl.Execute(w, d)
}

func (a *Archive) page(opts PageOptions) (*pageData, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	all, unreadable, err := a.rounds()
	if err != nil {
		return nil, err
	}
	d := &pageData{PageOptions: opts, Title: "privstats results", Unreadable: unreadable}
	if opts.Live != nil {
		d.Title = "privstats: series " + opts.Live.Series
		d.Refusals = sortedRefusals(opts.Live.Refusals)
	}
	var shown *Round
	if opts.Round == "" {
		shown = latest(all)
	} else {
		for i := range all {
			if all[i].Name == opts.Round {
				shown = &all[i]
			}
		}
		if shown == nil {
			return nil, fmt.Errorf("%w %q in %s", ErrNoRound, opts.Round, a.dir)
		}
	}
	if shown == nil {
		return d, nil
	}
	series := inSeries(all, shown.Series)
	d.Rounds = slices.Clone(series)
	slices.Reverse(d.Rounds)
	if d.View, err = a.view(*shown); err != nil {
		return nil, err
	}
	if opts.Series {
		d.Series = map[string]template.HTML{}
		for _, s := range shown.Statistics {
			if d.Series[s.Name], err = a.seriesPlot(series, s.Name); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// latest is the round whose window ended last, or nil.
func latest(rounds []Round) *Round {
	var l *Round
	for i := range rounds {
		if l == nil || !rounds[i].Window.End.Before(l.Window.End) {
			l = &rounds[i]
		}
	}
	return l
}

func (a *Archive) seriesPlot(series []Round, stat string) (template.HTML, error) {
	key, v := series[0].Series+"\x00"+stat, version(series)
	if d, ok := a.series[key]; ok && d.version == v {
		return d.svg, nil
	}
	svg, err := seriesSVG(stat, series)
	if err != nil {
		return "", fmt.Errorf("plotting %s: %w", stat, err)
	}
	a.series[key] = drawn{v, svg}
	return svg, nil
}

// view works out what a page shows of round r from its whole outcome
// file.
func (a *Archive) view(listed Round) (*roundView, error) {
	if v, ok := a.views[listed.Name]; ok {
		return v, nil
	}
	o, err := outcome.Read(filepath.Join(a.dir, listed.Name+".json"))
	if err != nil {
		return nil, err
	}
	if o.Config == nil {
		return nil, fmt.Errorf("%s: no config", listed.Name)
	}
	r := Round{Name: listed.Name, Outcome: o}
	v := &roundView{Round: r, Privacy: outcome.CheckPrivacy(o), Refusals: sortedRefusals(o.Refusals), Listed: len(o.Config.Collectors)}
	needed := map[string]float64{}
	for _, p := range v.Privacy.Statistics {
		needed[p.Name] = p.Needed
	}
	for i := range r.Statistics {
		s := &r.Statistics[i]
		sv := statView{Statistic: s, Unit: stats.Unit(s.Name), BinUnit: stats.BinUnit(s.Name), Needed: needed[s.Name]}
		if st, ok := stats.Lookup(s.Name); ok {
			sv.Description = st.Description
		}
		var err error
		if sv.Histogram, err = histogramSVG(s); err != nil {
			return nil, fmt.Errorf("round %s: plotting %s: %w", r.Name, s.Name, err)
		}
		v.Statistics = append(v.Statistics, sv)
	}
	for _, fp := range slices.Sorted(maps.Keys(r.Collectors.Gaps)) {
		for _, g := range r.Collectors.Gaps[fp] {
			v.Gaps = append(v.Gaps, gapView{Collector: fp, Start: g.Start, End: g.End, Length: g.End.Sub(g.Start)})
		}
	}
	a.views[r.Name] = v
	a.shown = append(a.shown, r.Name)
	if len(a.shown) > keptViews {
		delete(a.views, a.shown[0])
		a.shown = a.shown[1:]
	}
	return v, nil
}

func sortedRefusals(m map[string]string) []refusal {
	var out []refusal
	for _, node := range slices.Sorted(maps.Keys(m)) {
		out = append(out, refusal{node, m[node]})
	}
	return out
}

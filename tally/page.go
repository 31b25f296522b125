package tally

import (
	"embed"
	"html/template"
	"math"
	"net/http"
	"path/filepath"

	"github.com/privstats/privstats/outcome"
)

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"bar": barGeometry,
	"sub": func(a, b float64) float64 { return a - b },
}).ParseFS(pageFS, "page.html"))

// pageData is what the results page shows: the rounds, and one round's
// totals with their intervals drawn as bars with whiskers.
type pageData struct {
	Status  Status
	Rounds  []RoundSummary
	Outcome *outcome.Outcome
	Name    string
}

// bar is the geometry of one bin's bar and interval, as percentages of the
// chart's width.
type bar struct {
	Left, Width, Low, High float64
}

// barGeometry scales a bin against the statistic's largest interval bound.
func barGeometry(s outcome.Statistic, b outcome.Bin) bar {
	hi := 0.0
	lo := 0.0
	for _, x := range s.Bins {
		hi = math.Max(hi, x.CI95High)
		lo = math.Min(lo, x.CI95Low)
	}
	span := hi - lo
	if span <= 0 {
		return bar{}
	}
	pos := func(v float64) float64 { return 100 * (v - lo) / span }
	zero, v := pos(0), pos(float64(b.NoisyTotal))
	return bar{Left: math.Min(zero, v), Width: math.Abs(v - zero), Low: pos(b.CI95Low), High: pos(b.CI95High)}
}

// handlePage serves the results page: GET /?round=NAME (default: the latest).
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	dir := filepath.Join(s.opts.DataDir, "outcomes")
	list, err := ListOutcomes(dir)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := pageData{Status: s.Status(), Rounds: list, Name: r.URL.Query().Get("round")}
	if d.Name == "" && len(list) > 0 {
		d.Name = list[len(list)-1].Name
	}
	for _, rs := range list {
		if rs.Name == d.Name {
			d.Outcome, _ = outcome.Read(filepath.Join(dir, rs.Name+".json"))
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, d); err != nil {
		s.log.Error("results page", "err", err)
	}
}

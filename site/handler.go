package site

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Handler serves the results site as the tally server publishes it:
//
//	GET /?round=NAME                         the page of a round (default: the latest)
//	GET /csv/series/{series}/{statistic}.csv a statistic over every round of a series
//	GET /csv/round/{round}/{statistic}.csv   a statistic in one round
//
// live, when not nil, is asked for the round in progress.
func (a *Archive) Handler(live func() *Live) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		opts := PageOptions{Round: r.URL.Query().Get("round"), Series: true, Overview: "/",
			RoundLink: func(name string) string { return "?round=" + url.QueryEscape(name) }}
		if live != nil {
			opts.Live = live()
		}
		// Rendered into a buffer so that a failure is an error status,
		// not half a page.
		var buf bytes.Buffer
		err := a.WritePage(&buf, opts)
		switch {
		case errors.Is(err, ErrNoRound):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(buf.Bytes())
	})
	mux.HandleFunc("GET /csv/{kind}/{owner}/{file}", func(w http.ResponseWriter, r *http.Request) {
		stat, ok := strings.CutSuffix(r.PathValue("file"), ".csv")
		if !ok {
			http.NotFound(w, r)
			return
		}
		all, _, err := a.Rounds()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var rounds []Round
		switch owner := r.PathValue("owner"); r.PathValue("kind") {
		case "series":
			rounds = inSeries(all, owner)
		case "round":
			if i := slices.IndexFunc(all, func(x Round) bool { return x.Name == owner }); i >= 0 {
				rounds = all[i : i+1]
			}
		}
		if !slices.ContainsFunc(rounds, func(x Round) bool { return find(x.Outcome, stat) != nil }) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		WriteCSV(w, stat, rounds)
	})
	return mux
}

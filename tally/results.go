package tally

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/privstats/privstats/outcome"
)

// resultsAPI serves the published outcomes as JSON:
//
//	GET /api/v1/rounds            the list of published rounds
//	GET /api/v1/rounds/{name}     one outcome file, as written
func (s *Server) resultsAPI(mux *http.ServeMux) {
	dir := filepath.Join(s.opts.DataDir, "outcomes")
	mux.HandleFunc("GET /api/v1/rounds", func(w http.ResponseWriter, r *http.Request) {
		list, err := ListOutcomes(dir)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, list)
	})
	mux.HandleFunc("GET /api/v1/rounds/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(name, ".json")+".json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}

// RoundSummary is one line of the rounds list.
type RoundSummary struct {
	Name       string `json:"name"`
	Series     string `json:"series"`
	Round      uint64 `json:"round"`
	Start      string `json:"start"`
	End        string `json:"end"`
	Collectors int    `json:"collectors"`
	Statistics int    `json:"statistics"`
}

// ListOutcomes summarises the outcome files in dir, oldest first.
func ListOutcomes(dir string) ([]RoundSummary, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return []RoundSummary{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []RoundSummary{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		o, err := outcome.Read(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, RoundSummary{
			Name: strings.TrimSuffix(e.Name(), ".json"), Series: o.Series, Round: o.Round,
			Start: o.Window.Start.Format("2006-01-02T15:04:05Z07:00"), End: o.Window.End.Format("2006-01-02T15:04:05Z07:00"),
			Collectors: o.Collectors.Count, Statistics: len(o.Statistics),
		})
	}
	slices.SortFunc(out, func(a, b RoundSummary) int {
		if c := strings.Compare(a.Series, b.Series); c != 0 {
			return c
		}
		return int(a.Round) - int(b.Round)
	})
	return out, nil
}

package tally

import (
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/privstats/privstats/outcome"
)

// resultsAPI serves the published outcomes as JSON:
//
//	GET /api/v1/status            the current round's progress and refusals
//	GET /api/v1/rounds            the list of published rounds
//	GET /api/v1/rounds/{name}     one outcome file, as written
func (s *Server) resultsAPI(mux *http.ServeMux) {
	dir := filepath.Join(s.opts.DataDir, "outcomes")
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Status()) })
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

// Status is the public view of the tally server's progress: what an
// operator looks at to see why a round is stuck or who refused it.
type Status struct {
	Series           string            `json:"series"`
	Round            uint64            `json:"round,omitempty"`
	ConfigHash       string            `json:"config_hash,omitempty"`
	Phase            string            `json:"phase,omitempty"`
	Start            string            `json:"start,omitempty"`
	End              string            `json:"end,omitempty"`
	KeepersKeyed     int               `json:"keepers_keyed"`
	CollectorsJoined int               `json:"collectors_joined"`
	Reported         int               `json:"collectors_reported"`
	Committed        int               `json:"keepers_committed"`
	Released         int               `json:"keepers_released"`
	Refusals         map[string]string `json:"refusals,omitempty"`
	Failure          string            `json:"failure,omitempty"`
	// NotAnnounced is why the tally server's own checks held the next
	// round back, if they did.
	NotAnnounced string `json:"not_announced,omitempty"`
	Completed    int    `json:"rounds_completed"`
	Failed       int    `json:"rounds_failed"`
}

// Status reports the server's progress.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Series: s.st.Series, NotAnnounced: s.st.LastRefuse, Completed: s.st.Completed, Failed: s.st.Failed}
	if r := s.st.Current; r != nil {
		st.Round, st.ConfigHash, st.Phase, st.Failure = r.cfg.Round, r.Hash, r.Phase, r.Failure
		st.Start, st.End = r.cfg.Start.Format(time.RFC3339), r.cfg.End.Format(time.RFC3339)
		st.KeepersKeyed, st.CollectorsJoined, st.Reported = len(r.RoundKeys), len(r.Joined), len(r.Reports)
		st.Committed, st.Released = len(r.Commits), len(r.Shares)
		st.Refusals = maps.Clone(r.Refusals)
	}
	return st
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

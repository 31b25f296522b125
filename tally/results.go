package tally

import (
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/privstats/privstats/outcome/export"
)

// resultsAPI serves the published outcomes:
//
//	GET /api/v1/status            the current round's progress and refusals
//	GET /api/v1/rounds            the list of published rounds
//	GET /api/v1/rounds/{name}     one outcome file, as written ("latest": the newest)
//	GET /api/v1/export.csv        every round in long form (export.WriteCSV);
//	                              ?round=NAME|latest and ?statistic=NAME narrow it
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
		if name == "latest" {
			rounds := s.readOutcomes(dir)
			if len(rounds) == 0 {
				http.Error(w, "no round has been published yet", http.StatusNotFound)
				return
			}
			name = rounds[len(rounds)-1].Name
		}
		b, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(name, ".json")+".json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /api/v1/export.csv", func(w http.ResponseWriter, r *http.Request) {
		rounds := s.readOutcomes(dir)
		q := r.URL.Query()
		switch name := q.Get("round"); {
		case name == "latest" && len(rounds) > 0:
			rounds = rounds[len(rounds)-1:]
		case name != "":
			rounds = slices.DeleteFunc(rounds, func(x export.Round) bool { return x.Name != name })
		}
		if stat := q.Get("statistic"); stat != "" {
			rounds = export.Only(rounds, stat)
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="privstats-`+s.opts.Series+`.csv"`)
		if err := export.WriteCSV(w, rounds); err != nil {
			s.log.Warn("export.csv", "err", err)
		}
	})
}

// readOutcomes reads the published rounds, oldest first, skipping (and
// logging) a file that does not read as an outcome rather than failing
// every request for it.
func (s *Server) readOutcomes(dir string) []export.Round {
	rounds, err := export.ReadDir(dir, func(err error) { s.log.Warn("skipping an unreadable outcome file", "err", err) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("cannot read the outcomes directory", "dir", dir, "err", err)
	}
	return rounds
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

// ListOutcomes summarises the outcome files in dir, oldest first; files
// that do not read as outcomes are left out.
func ListOutcomes(dir string) ([]RoundSummary, error) {
	rounds, err := export.ReadDir(dir, func(error) {})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []RoundSummary{}, nil
	case err != nil:
		return nil, err
	}
	out := make([]RoundSummary, 0, len(rounds))
	for _, r := range rounds {
		o := r.Outcome
		out = append(out, RoundSummary{
			Name: r.Name, Series: o.Series, Round: o.Round,
			Start: o.Window.Start.Format(time.RFC3339), End: o.Window.End.Format(time.RFC3339),
			Collectors: o.Collectors.Count, Statistics: len(o.Statistics),
		})
	}
	return out, nil
}

// showLatest puts the latest outcome on disk on /metrics, so a restarted
// server shows what it last published rather than nothing until the next
// round.
func (s *Server) showLatest() {
	if rounds := s.readOutcomes(filepath.Join(s.opts.DataDir, "outcomes")); len(rounds) > 0 {
		s.metrics.publish(rounds[len(rounds)-1].Outcome)
	}
}

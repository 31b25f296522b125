// Package site shows a tally server's published outcomes to people: a
// results page with, per statistic, the noisy totals of every round with
// their 95% intervals and, per round, its histograms, privacy parameters,
// collector set, gaps and refusals, drawn as server-side SVG
// (gonum.org/v1/plot) with a CSV behind each plot. The tally server serves
// it at / and `privstats results DIR --html OUTDIR` writes it as static
// files that open from disk.
//
// It reads outcome files and nothing else: it neither verifies them
// (`privstats verify` does) nor shows anything an outcome does not say.
// See docs/results.md.
package site

import (
	"errors"
	"hash/fnv"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privstats/privstats/outcome"
)

// Round is one published outcome under the name it is published as: its
// file name without ".json", e.g. "demo-000003". Rounds listed by the
// archive hold what plots and CSVs need: series, number, window,
// statistics, the count of collectors in S and the publication time, not
// the signed artefacts, the config or the fingerprints in S, which for a
// large deployment are most of the file.
type Round struct {
	Name string
	*outcome.Outcome
}

// Archive is a directory of outcome files as the site sees it. It keeps
// what it needs of each outcome, each series plot, and the views of the
// rounds last shown, so that a page over many rounds costs a directory
// listing and a template, not a re-read and a re-draw of every round:
// outcome files are written once and never change, and a file that does
// change (by size or time) is read again.
type Archive struct {
	dir string

	mu     sync.Mutex
	files  map[string]file
	views  map[string]*roundView // by round name; dropped when its file changes
	shown  []string              // views' names, oldest first
	series map[string]drawn      // by series and statistic
}

// keptViews bounds the views kept: a view holds a whole outcome and its
// histograms, and a page shows one.
const keptViews = 32

type file struct {
	mod  time.Time
	size int64
	// round is nil for a file that is not a readable outcome.
	round *Round
}

// drawn is a plot of the rounds that hashed to version.
type drawn struct {
	version uint64
	svg     template.HTML
}

// Open returns the archive of the outcome files in dir (a tally server's
// data directory's "outcomes"). The directory need not exist yet.
func Open(dir string) *Archive {
	return &Archive{dir: dir, files: map[string]file{}, views: map[string]*roundView{}, series: map[string]drawn{}}
}

// Dir is the directory the archive reads.
func (a *Archive) Dir() string { return a.dir }

// Rounds returns every readable outcome, ordered by series and round
// number, and the names of files in the directory that are not outcomes.
// A directory that does not exist holds no rounds.
func (a *Archive) Rounds() (rounds []Round, unreadable []string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rounds()
}

func (a *Archive) rounds() ([]Round, []string, error) {
	entries, err := os.ReadDir(a.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []Round
	var unreadable []string
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		seen[name] = true
		f, ok := a.files[name]
		if !ok || !f.mod.Equal(info.ModTime()) || f.size != info.Size() {
			f = file{mod: info.ModTime(), size: info.Size()}
			// An outcome without its config cannot say what its totals
			// mean; it is listed as unreadable rather than half shown.
			if o, err := outcome.Read(filepath.Join(a.dir, name)); err == nil && o.Config != nil {
				f.round = &Round{Name: strings.TrimSuffix(name, ".json"), Outcome: slim(o)}
			}
			a.files[name] = f
			delete(a.views, strings.TrimSuffix(name, ".json"))
		}
		if f.round == nil {
			unreadable = append(unreadable, name)
			continue
		}
		out = append(out, *f.round)
	}
	for name := range a.files {
		if !seen[name] {
			delete(a.files, name)
			delete(a.views, strings.TrimSuffix(name, ".json"))
		}
	}
	slices.SortFunc(out, func(x, y Round) int {
		if c := strings.Compare(x.Series, y.Series); c != 0 {
			return c
		}
		if x.Round != y.Round {
			if x.Round < y.Round {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return out, unreadable, nil
}

// slim keeps what plots and CSVs need of an outcome.
func slim(o *outcome.Outcome) *outcome.Outcome {
	return &outcome.Outcome{Version: o.Version, Series: o.Series, Round: o.Round, ConfigHash: o.ConfigHash, Tally: o.Tally,
		Window: o.Window, Collectors: outcome.Collectors{Count: o.Collectors.Count}, Statistics: o.Statistics, PublishedAt: o.PublishedAt}
}

// inSeries returns the rounds of one series, in order.
func inSeries(rounds []Round, series string) []Round {
	var out []Round
	for _, r := range rounds {
		if r.Series == series {
			out = append(out, r)
		}
	}
	return out
}

// version identifies a list of rounds, so a plot drawn from them is drawn
// again only when a round is added, removed or rewritten.
func version(rounds []Round) uint64 {
	h := fnv.New64a()
	for _, r := range rounds {
		h.Write([]byte(r.Name))
		h.Write([]byte(r.PublishedAt.Format(time.RFC3339Nano)))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

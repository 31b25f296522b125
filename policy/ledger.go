package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/internal/atomicfile"
)

// LedgerFile is the name every role gives its ledger inside its data
// directory.
const LedgerFile = "policy-ledger.json"

// ledgerVersion is the version of the file format this code reads and writes.
const ledgerVersion = 1

// Ledger is a node's memory of the rounds it took part in, per series: what
// the delay rule compares a new round with. It holds statistic names, bins
// and σ, round numbers and times, never a count, so it is not sensitive.
//
// The ledger lives in one JSON file, rewritten atomically on every change so
// that a crash leaves either the old or the new history. A Ledger is safe
// for concurrent use; two processes must not share one file.
type Ledger struct {
	path string

	mu     sync.Mutex
	series map[string]*seriesState
}

// ledgerJSON is the file format.
type ledgerJSON struct {
	Version int                     `json:"version"`
	Series  map[string]*seriesState `json:"series"`
}

// seriesState is what the ledger remembers of one series.
type seriesState struct {
	// Baseline is the statistic set and σ of the series' first round, or of
	// the last round that changed them after the delay period.
	BaselineRound uint64         `json:"baseline_round"`
	Baseline      []statBaseline `json:"baseline"`
	// LastRound, LastEnd and LastHash describe the latest round recorded.
	LastRound uint64    `json:"last_round"`
	LastEnd   time.Time `json:"last_end"`
	LastHash  string    `json:"last_hash"`
}

type statBaseline struct {
	Name  string   `json:"name"`
	Bins  []string `json:"bins,omitempty"`
	Sigma float64  `json:"sigma"`
}

// OpenLedger loads the ledger at path. A missing file is an empty ledger (a
// node's first start); a file that cannot be read or parsed is an error,
// never a silent reset, because forgetting the history would switch the
// delay rule off.
func OpenLedger(path string) (*Ledger, error) {
	l := &Ledger{path: path, series: map[string]*seriesState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy ledger: %w", err)
	}
	corrupt := func(problem string) error {
		return fmt.Errorf("policy ledger %s is corrupt: %s; privstats will not start without the history the delay rule needs (restore the file from a backup, or delete it knowing that the delay rule starts afresh)", path, problem)
	}
	var f ledgerJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, corrupt(err.Error())
	}
	if dec.More() {
		return nil, corrupt("data after the JSON object")
	}
	if f.Version != ledgerVersion {
		return nil, corrupt(fmt.Sprintf("format version %d, this privstats reads version %d", f.Version, ledgerVersion))
	}
	for name, st := range f.Series {
		if name == "" || st == nil {
			return nil, corrupt(fmt.Sprintf("series %q has no record", name))
		}
		for _, b := range st.Baseline {
			if b.Name == "" || !(b.Sigma >= 0) {
				return nil, corrupt(fmt.Sprintf("series %q has a baseline statistic %q with σ %v", name, b.Name, b.Sigma))
			}
		}
		l.series[name] = st
	}
	return l, nil
}

// Path is the file the ledger is kept in.
func (l *Ledger) Path() string { return l.path }

// Record notes that this node takes part in the round cfg. Call it as soon
// as the node commits to the round, not when the round ends: the next
// round is announced before this one ends, and must be checked against it.
// If cfg changes the statistic set, bins or σ in the sense p's delay rule
// uses, cfg becomes the series' new baseline. Recording a round twice is a
// no-op. The file is written before Record returns; on error the ledger
// is unchanged.
func (l *Ledger) Record(cfg *round.Config, p Policy) error {
	if cfg.Series == "" {
		return errors.New("policy ledger: round config has no series")
	}
	hash, err := cfg.HashHex()
	if err != nil {
		return fmt.Errorf("policy ledger: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	old := l.series[cfg.Series]
	if old != nil && old.LastHash == hash {
		return nil
	}
	st := &seriesState{}
	if old != nil {
		*st = *old
	}
	if old == nil || len(old.changes(cfg, p.SigmaTolerance)) > 0 {
		st.BaselineRound = cfg.Round
		st.Baseline = make([]statBaseline, len(cfg.Statistics))
		for i, s := range cfg.Statistics {
			st.Baseline[i] = statBaseline{Name: s.Name, Bins: slices.Clone(s.Bins), Sigma: s.Sigma}
		}
	}
	if old == nil || !cfg.End.Before(old.LastEnd) {
		st.LastRound = cfg.Round
		st.LastEnd = cfg.End.UTC()
		st.LastHash = hash
	}

	next := maps.Clone(l.series)
	next[cfg.Series] = st
	b, err := json.MarshalIndent(ledgerJSON{Version: ledgerVersion, Series: next}, "", "  ")
	if err != nil {
		return fmt.Errorf("policy ledger: %w", err)
	}
	// Replaced whole, so that a crash leaves the old history or the new.
	if err := atomicfile.Write(l.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("policy ledger: %w", err)
	}
	l.series = next
	return nil
}

// series returns a copy of what the ledger holds for one series.
// latest returns the series whose last recorded round ended last.
func (l *Ledger) latest() (string, *seriesState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var name string
	var best *seriesState
	for n, st := range l.series {
		if best == nil || st.LastEnd.After(best.LastEnd) || (st.LastEnd.Equal(best.LastEnd) && n < name) {
			name, best = n, st
		}
	}
	if best == nil {
		return "", nil, false
	}
	c := *best
	return name, &c, true
}

func (l *Ledger) lookup(name string) (*seriesState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.series[name]
	if !ok {
		return nil, false
	}
	c := *st
	return &c, true
}

package tally

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/atomicfile"
)

// state is everything the tally server must not forget across a restart.
// It holds only public or blinded data (signed messages, sealed bundles,
// blinded reports), so keeping it on disk reveals nothing about any relay.
type state struct {
	Series    string `json:"series"`
	NextRound uint64 `json:"next_round"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
	// LastStart is when the previous round's window began; the next starts
	// a period later.
	LastStart time.Time `json:"last_start"`
	// Version counts every change keepers care about; PhaseVersion only
	// the changes collectors care about (announcement, phase, failure), so
	// thousands of polling collectors are not woken by every bundle.
	Version      uint64      `json:"version"`
	PhaseVersion uint64      `json:"phase_version"`
	Current      *roundState `json:"current,omitempty"`
	LastRefuse   string      `json:"last_refusal,omitempty"`
}

// round is one round's progress.
type roundState struct {
	Announce  identity.Signed            `json:"announce"`
	Hash      string                     `json:"config_hash"`
	Phase     string                     `json:"phase"`
	RoundKeys map[string]identity.Signed `json:"round_keys"`
	Refusals  map[string]string          `json:"refusals"`
	Acks      map[string][]string        `json:"acks"`
	Agreement *identity.Signed           `json:"agreement,omitempty"`
	Digest    string                     `json:"agreement_digest,omitempty"`
	Commits   map[string]identity.Signed `json:"commits"`
	Shares    map[string]identity.Signed `json:"shares"`
	Deadline  time.Time                  `json:"deadline"`
	Failure   string                     `json:"failure,omitempty"`
	Outcome   string                     `json:"outcome,omitempty"`

	// Bundles (by keeper), Joined and Reports grow with the number of
	// collectors, so they live in the round's append-only journal rather
	// than in state.json, which is rewritten on every small change.
	Bundles map[string][]identity.Signed `json:"-"`
	Joined  map[string]bool              `json:"-"`
	Reports map[string]identity.Signed   `json:"-"`

	cfg *round.Config
	// secondPosted is set once an Adversary's second agreement is posted.
	secondPosted bool
}

func newRound(announce identity.Signed, cfg *round.Config, hash string) *roundState {
	return &roundState{
		Announce: announce, Hash: hash, Phase: round.PhaseAnnounced, cfg: cfg,
		RoundKeys: map[string]identity.Signed{}, Refusals: map[string]string{},
		Bundles: map[string][]identity.Signed{}, Joined: map[string]bool{}, Acks: map[string][]string{},
		Reports: map[string]identity.Signed{}, Commits: map[string]identity.Signed{}, Shares: map[string]identity.Signed{},
	}
}

const stateFile = "state.json"

func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); move it aside to start afresh, nothing in it is secret", path, err)
	}
	if r := st.Current; r != nil {
		cfg, err := round.Decode(r.Announce.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: current round: %w", path, err)
		}
		r.cfg = cfg
		r.Bundles, r.Joined, r.Reports = map[string][]identity.Signed{}, map[string]bool{}, map[string]identity.Signed{}
		if err := loadJournal(journalPath(dir, r.Hash), r); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// journalEntry is one line of a round's journal: a collector's accepted
// bundles (one per keeper), or its accepted report.
type journalEntry struct {
	Collector string                     `json:"collector"`
	Bundles   map[string]identity.Signed `json:"bundles,omitempty"`
	Report    *identity.Signed           `json:"report,omitempty"`
}

func journalPath(dir, hash string) string {
	return filepath.Join(dir, "rounds", hash+".jsonl")
}

// apply adds a journal entry to the round.
func (r *roundState) apply(e journalEntry) {
	if e.Bundles != nil {
		for _, k := range r.cfg.Keepers {
			if m, ok := e.Bundles[k.Fingerprint]; ok {
				r.Bundles[k.Fingerprint] = append(r.Bundles[k.Fingerprint], m)
			}
		}
		r.Joined[e.Collector] = true
	}
	if e.Report != nil {
		r.Reports[e.Collector] = *e.Report
	}
}

// loadJournal replays a round's journal. A torn last line (a crash while
// appending: any line without its newline, which appendJournal writes with
// the line) is dropped, its sender never got an answer and will retry, and
// cut off the file, so that the next append starts a line of its own
// rather than joining the torn one and damaging the journal for good.
func loadJournal(path string, r *roundState) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if end := bytes.LastIndexByte(b, '\n') + 1; end < len(b) {
		if err := os.Truncate(path, int64(end)); err != nil {
			return fmt.Errorf("%s: cutting off a torn last line: %w", path, err)
		}
		b = b[:end]
	}
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e journalEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%s:%d: damaged journal line (%v); move the file aside to drop this round's bundles and reports", path, i+1, err)
		}
		r.apply(e)
	}
	return nil
}

// appendJournal durably appends one entry to the round's journal. If the
// write fails part way, the journal is cut back to where it was: the caller
// does not apply the entry and the sender retries it, and a torn line left
// in the middle would make the whole journal unreadable on restart.
func appendJournal(dir string, r *roundState, e journalEntry) error {
	path := journalPath(dir, r.Hash)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal entry of %s: %w", e.Collector, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if terr := f.Truncate(end); terr != nil {
			return fmt.Errorf("%w; cutting %s back to %d bytes: %v", err, path, end, terr)
		}
		return err
	}
	return f.Close()
}

func saveState(dir string, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), b, 0o600)
}

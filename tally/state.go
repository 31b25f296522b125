package tally

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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
	Agreement *identity.Signed           `json:"agreement,omitempty"`
	Digest    string                     `json:"agreement_digest,omitempty"`
	Commits   map[string]identity.Signed `json:"commits"`
	Shares    map[string]identity.Signed `json:"shares"`
	Deadline  time.Time                  `json:"deadline"`
	Failure   string                     `json:"failure,omitempty"`
	Outcome   string                     `json:"outcome,omitempty"`

	// Bundles (by keeper), Joined, Reports and Acks (by keeper) grow with
	// the number of collectors, so they live in the round's append-only
	// journal rather than in state.json, which is rewritten on every small
	// change.
	Bundles map[string][]identity.Signed `json:"-"`
	Joined  map[string]bool              `json:"-"`
	Reports map[string]identity.Signed   `json:"-"`
	Acks    map[string]map[string]bool   `json:"-"`
	// announceJSON and agreementJSON are Announce and Agreement encoded
	// once for the many nodes that fetch them (nil until first asked
	// for; agreementJSON is reset with the agreement).
	announceJSON, agreementJSON []byte
	// joinedAt is each joined collector's place in every keeper's Bundles.
	joinedAt map[string]int
	// collectors finds a permitted collector's place in cfg.Collectors.
	collectors map[string]int
	// journalEnd is the journal's length up to the last entry stored
	// (synced and applied); journalWritten includes the entries written
	// and waiting for their batch's fsync.
	journalEnd, journalWritten int64
	// jf is the open journal; jcreated says its directory entry still
	// needs an fsync; jdirty that a failed write may have left bytes past
	// journalWritten, to be cut before the next write.
	jf               *os.File
	jcreated, jdirty bool
	// batch is what waits for the next fsync; syncing is set while a
	// goroutine commits batches (Server.commitEntries).
	batch   []*pendingEntry
	syncing bool
	// pending are the collectors whose bundles or report wait in batch, so
	// that a retry sent meanwhile is not journaled twice.
	pending map[string]bool

	cfg *round.Config
	// secondPosted is set once an Adversary's second agreement is posted.
	secondPosted bool
}

func newRound(announce identity.Signed, cfg *round.Config, hash string) *roundState {
	r := &roundState{
		Announce: announce, Hash: hash, Phase: round.PhaseAnnounced, cfg: cfg,
		RoundKeys: map[string]identity.Signed{}, Refusals: map[string]string{},
		Commits: map[string]identity.Signed{}, Shares: map[string]identity.Signed{},
	}
	r.init()
	return r
}

// init makes the maps that the journal fills.
func (r *roundState) init() {
	r.Bundles, r.Joined, r.Reports = map[string][]identity.Signed{}, map[string]bool{}, map[string]identity.Signed{}
	r.Acks, r.joinedAt, r.pending = map[string]map[string]bool{}, map[string]int{}, map[string]bool{}
	r.collectors = r.cfg.CollectorIndex()
}

// closeJournal closes the round's open journal file, if any.
func (r *roundState) closeJournal() {
	if r.jf != nil {
		r.jf.Close()
		r.jf = nil
	}
}

const stateFile = "state.json"

func loadState(dir string, log *slog.Logger) (*state, error) {
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
		r.init()
		if err := loadJournal(journalPath(dir, r.Hash), r, log); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// journalEntry is one record of a round's journal (journal.go): a collector's accepted
// bundles (one per keeper), its accepted report, or the collectors a
// keeper newly acknowledged.
type journalEntry struct {
	Collector string                     `json:"collector,omitempty"`
	Bundles   map[string]identity.Signed `json:"bundles,omitempty"`
	Report    *identity.Signed           `json:"report,omitempty"`
	Keeper    string                     `json:"keeper,omitempty"`
	Acked     []string                   `json:"acked,omitempty"`
}

// pendingEntry is a journal entry written and waiting for its batch's
// fsync; done is told the outcome.
type pendingEntry struct {
	e    journalEntry
	done chan error
}

func journalPath(dir, hash string) string {
	return filepath.Join(dir, "rounds", hash+".journal")
}

// apply adds a journal entry to the round.
func (r *roundState) apply(e journalEntry) {
	if e.Bundles != nil {
		at := -1
		for _, k := range r.cfg.Keepers {
			if m, ok := e.Bundles[k.Fingerprint]; ok {
				at = len(r.Bundles[k.Fingerprint])
				r.Bundles[k.Fingerprint] = append(r.Bundles[k.Fingerprint], m)
			}
		}
		r.Joined[e.Collector] = true
		r.joinedAt[e.Collector] = at
	}
	if e.Report != nil {
		r.Reports[e.Collector] = *e.Report
	}
	if e.Keeper != "" {
		set := r.Acks[e.Keeper]
		if set == nil {
			set = make(map[string]bool, len(e.Acked))
			r.Acks[e.Keeper] = set
		}
		for _, fp := range e.Acked {
			set[fp] = true
		}
	}
}

// cutJournal durably truncates the journal to its first size bytes.
func cutJournal(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cutting the torn end off %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cutting the torn end off %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cutting the torn end off %s: %w", path, err)
	}
	return f.Close()
}

// writeJournal writes one record at off; tests replace it to fail part way.
var writeJournal = (*os.File).WriteAt

// appendJournal durably appends one entry to the round's journal: it
// writes it (writeEntry) and syncs it (syncJournal) on its own. The tally
// server's requests go through Server.commitEntry instead, which syncs the
// entries of many requests at once.
func appendJournal(dir string, r *roundState, e journalEntry) error {
	if err := writeEntry(dir, r, e); err != nil {
		return err
	}
	return syncJournal(dir, r, r.journalWritten)
}

// writeEntry writes one entry at r.journalWritten, after the entries
// stored and those waiting for their fsync, without syncing it. Whatever
// follows that offset is the remains of a write that failed and could not
// be cut back; it is cut now, so a torn record never ends up before a stored
// one. When the write fails it is cut back, and the caller does not apply
// the entry: its sender retries it.
func writeEntry(dir string, r *roundState, e journalEntry) error {
	line, err := encodeEntry(e)
	if err != nil {
		return fmt.Errorf("journal entry of %s%s: %w", e.Collector, e.Keeper, err)
	}
	f, err := openJournal(dir, r)
	if err != nil {
		return err
	}
	if err := checkJournal(f, r); err != nil {
		return err
	}
	if r.jdirty {
		if err := f.Truncate(r.journalWritten); err != nil {
			return fmt.Errorf("cutting a failed append off %s: %w", f.Name(), err)
		}
		r.jdirty = false
	}
	if _, err := writeJournal(f, line, r.journalWritten); err != nil {
		if terr := f.Truncate(r.journalWritten); terr != nil {
			r.jdirty = true
			return fmt.Errorf("%w; cutting %s back to %d bytes: %v (cut before the next append)", err, f.Name(), r.journalWritten, terr)
		}
		return err
	}
	r.journalWritten += int64(len(line))
	return nil
}

// openJournal opens (creating it if need be) the round's journal for
// writing, once; it checks the file holds at least the entries stored.
func openJournal(dir string, r *roundState) (*os.File, error) {
	if r.jf != nil {
		return r.jf, nil
	}
	path := journalPath(dir, r.Hash)
	if err := atomicfile.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	created := true
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		created = false
		f, err = os.OpenFile(path, os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	r.journalWritten = r.journalEnd
	r.jdirty = true // whatever follows journalEnd is cut before writing
	r.jf, r.jcreated = f, created
	return f, nil
}

// checkJournal refuses to append to a journal shorter than the entries
// stored and written: it was cut or replaced behind the server's back, and
// appending after it would hide the loss.
func checkJournal(f *os.File, r *roundState) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < r.journalWritten {
		return fmt.Errorf("%s holds %d bytes, fewer than the %d of entries already stored: it was cut or replaced behind the server's back; restart to reload it", f.Name(), fi.Size(), r.journalWritten)
	}
	// Bytes past the entries written (a failed write not cut back) are
	// cut before the next.
	r.jdirty = r.jdirty || fi.Size() > r.journalWritten
	return nil
}

// syncJournal makes the journal durable up to upTo (a value of
// r.journalWritten); the entries up to there are then stored.
func syncJournal(dir string, r *roundState, upTo int64) error {
	return synced(r, syncFile(r.jf, r.jcreated), upTo)
}

// syncFile fsyncs the journal and, when it was just created, its
// directory: the new file's name must be as durable as its first record.
// Tests replace it to count or fail the fsyncs.
var syncFile = func(f *os.File, created bool) error {
	err := f.Sync()
	if err == nil && created {
		err = atomicfile.SyncDir(filepath.Dir(f.Name()))
	}
	return err
}

// synced records the outcome err of syncing the journal up to upTo. A
// failure cuts the journal back to the entries stored before, so every
// entry written since, in this batch or after it, fails with it.
func synced(r *roundState, err error, upTo int64) error {
	if err == nil {
		r.jcreated = false
		r.journalEnd = upTo
		return nil
	}
	r.journalWritten = r.journalEnd
	if terr := r.jf.Truncate(r.journalEnd); terr != nil {
		r.jdirty = true
		return fmt.Errorf("%w; cutting %s back to %d bytes: %v (cut before the next append)", err, r.jf.Name(), r.journalEnd, terr)
	}
	return err
}

func saveState(dir string, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), b, 0o600)
}

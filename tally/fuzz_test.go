package tally

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
)

// fuzzRound is the vector round as the tally server holds it, with a
// bundle and a report signed by collector-1.
func fuzzRound(tb testing.TB) (r *roundState, bundle, report identity.Signed) {
	cfg := vectortest.Config()
	body, err := cfg.Canonical()
	if err != nil {
		tb.Fatal(err)
	}
	hash, _ := cfg.HashHex()
	announce := vectortest.Identity(vectortest.Tally).Sign(wire.KindAnnounce, body)
	dc := vectortest.Identity("collector-1")
	return newRound(announce, cfg, hash), dc.Sign(wire.KindShareBundle, []byte(`{}`)), dc.Sign(wire.KindReport, []byte(`{}`))
}

// journalView is what a replayed journal leaves in a round. (Compared
// with reflect.DeepEqual, not encoded: encoding sorts map keys, whose
// varying work would make the coverage of identical inputs differ.)
func journalView(r *roundState) []any {
	return []any{r.Bundles, r.Joined, r.Reports}
}

// FuzzLoadJournal replays arbitrary journal files. A journal that loads
// must stay loadable once the server appends to it (as it does next), and
// the entry appended must be replayed on top of what loaded before: a
// crash mid-append must never turn into a journal the server refuses.
//
//	go test ./tally -run '^$' -fuzz '^FuzzLoadJournal$'
func FuzzLoadJournal(f *testing.F) {
	r, bundle, report := fuzzRound(f)
	keeper := r.cfg.Keepers[0].Fingerprint
	dc := vectortest.Identity("collector-1").Fingerprint
	record := func(e journalEntry) []byte {
		b, err := encodeEntry(e)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	joined := record(journalEntry{Collector: dc, Bundles: map[string]identity.Signed{keeper: bundle}})
	reported := record(journalEntry{Collector: dc, Report: &report})
	f.Add(slices.Concat(joined, reported))
	f.Add(slices.Concat(joined, reported[:len(reported)/2]))                        // torn
	f.Add(slices.Concat(joined, make([]byte, len(reported))))                       // torn, the tail zeros
	f.Add(slices.Concat(joined, reported[:len(reported)-1], joined))                // damage before an intact record
	f.Add(slices.Concat(joined[:len(joined)-1], []byte{joined[len(joined)-1] ^ 1})) // a bad CRC or payload
	f.Add([]byte(""))
	next := vectortest.Identity("collector-2")
	nextReport := next.Sign(wire.KindReport, []byte(`{"n":1}`))
	fresh := func() *roundState { return newRound(r.Announce, r.cfg, r.Hash) }
	// One directory for every exec, made once: a fresh temporary directory
	// per exec costs more than the decoding fuzzed, and its random name
	// would vary the coverage of identical inputs.
	dir := f.TempDir()
	path := journalPath(dir, r.Hash)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, journal []byte) {
		if err := os.WriteFile(path, journal, 0o600); err != nil {
			t.Fatal(err)
		}
		before := fresh()
		if loadJournal(path, before, log) != nil {
			return
		}
		e := journalEntry{Collector: next.Fingerprint, Report: &nextReport}
		if err := appendJournal(dir, before, e); err != nil {
			t.Fatal(err)
		}
		before.apply(e)
		after := fresh()
		if err := loadJournal(path, after, log); err != nil {
			t.Fatalf("journal %q loaded, but not after one append: %v", journal, err)
		}
		if !reflect.DeepEqual(journalView(after), journalView(before)) {
			t.Fatalf("journal %q replays after an append as\n%v\nwant\n%v", journal, journalView(after), journalView(before))
		}
	})
}

// FuzzLoadState loads arbitrary state files. What loads must encode as
// saveState does and load again to the same state.
func FuzzLoadState(f *testing.F) {
	r, _, _ := fuzzRound(f)
	r.Phase = round.PhaseAnnounced
	r.Deadline = time.Date(2026, 11, 23, 0, 10, 0, 0, time.UTC)
	st := &state{Series: "vectors", NextRound: 8, Completed: 3, Failed: 1, LastStart: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
		Version: 12, PhaseVersion: 4, Current: r}
	b, err := json.Marshal(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	b, _ = json.Marshal(&state{Series: "s", NextRound: 1})
	f.Add(b)
	dir := f.TempDir() // one for every exec, as in FuzzLoadJournal
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, stateFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(dir, log)
		if err != nil {
			return
		}
		if st.Current != nil && st.Current.cfg == nil {
			t.Fatal("a current round loaded without its config")
		}
		first, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("loaded state does not encode: %v", err)
		}
		// What saveState writes, without its temporary file and fsyncs
		// (package atomicfile's tests cover those): they cost more than the
		// decoding, and the temporary file's random name would vary the
		// coverage of identical inputs.
		if err := os.WriteFile(filepath.Join(dir, stateFile), first, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := loadState(dir, log)
		if err != nil {
			t.Fatalf("saved state does not load: %v", err)
		}
		if second, _ := json.Marshal(again); !bytes.Equal(first, second) {
			t.Fatalf("state changes on save and load:\n%s\n%s", first, second)
		}
	})
}

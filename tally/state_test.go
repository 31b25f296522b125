package tally

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
)

func journalRound(t *testing.T) (*roundState, *identity.Identity) {
	t.Helper()
	ids := newIDs(t, 3)
	cfg := &round.Config{Version: round.ConfigVersion, Series: "j", Round: 1,
		Start: time.Unix(0, 0).UTC(), End: time.Unix(60, 0).UTC(), Threshold: 1, MinCollectors: 1,
		Statistics: []round.StatisticSpec{{Name: "a"}},
		Keepers:    []round.KeeperSpec{{Fingerprint: ids[1].Fingerprint, X: 1}},
		Collectors: []round.CollectorSpec{{Fingerprint: ids[2].Fingerprint, NoiseWeight: 1}}}
	body, _ := cfg.Canonical()
	hash, _ := cfg.HashHex()
	return newRound(ids[0].Sign(wire.KindAnnounce, body), cfg, hash), ids[2]
}

// journalModel is what a replayed journal holds, in a form to compare: each
// keeper's bundle bodies in order, the joined collectors and each report's
// body.
type journalModel struct {
	Bundles map[string][]string
	Joined  map[string]bool
	Reports map[string]string
}

func modelOf(r *roundState) journalModel {
	m := journalModel{Bundles: map[string][]string{}, Joined: map[string]bool{}, Reports: map[string]string{}}
	for k, list := range r.Bundles {
		for _, b := range list {
			m.Bundles[k] = append(m.Bundles[k], string(b.Body))
		}
	}
	maps.Copy(m.Joined, r.Joined)
	for c, rep := range r.Reports {
		m.Reports[c] = string(rep.Body)
	}
	return m
}

// modelFrom applies entries to an empty copy of r and returns the result.
func modelFrom(r *roundState, entries []journalEntry) journalModel {
	back := newRound(r.Announce, r.cfg, r.Hash)
	for _, e := range entries {
		back.apply(e)
	}
	return modelOf(back)
}

// twoKeeperRound is a round with two keepers, for journals whose bundle
// entries hold more than one bundle.
func twoKeeperRound(t *testing.T) (*roundState, []*identity.Identity) {
	t.Helper()
	ids := newIDs(t, 6)
	cfg := &round.Config{Version: round.ConfigVersion, Series: "j", Round: 1,
		Start: time.Unix(0, 0).UTC(), End: time.Unix(60, 0).UTC(), Threshold: 1, MinCollectors: 1,
		Statistics: []round.StatisticSpec{{Name: "a"}},
		Keepers:    []round.KeeperSpec{{Fingerprint: ids[1].Fingerprint, X: 1}, {Fingerprint: ids[2].Fingerprint, X: 2}}}
	for _, c := range ids[3:] {
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: c.Fingerprint, NoiseWeight: 1})
	}
	body, _ := cfg.Canonical()
	hash, _ := cfg.HashHex()
	return newRound(ids[0].Sign(wire.KindAnnounce, body), cfg, hash), ids[3:]
}

func bundleEntry(r *roundState, c *identity.Identity, tag string) journalEntry {
	e := journalEntry{Collector: c.Fingerprint, Bundles: map[string]identity.Signed{}}
	for _, k := range r.cfg.Keepers {
		e.Bundles[k.Fingerprint] = c.Sign(wire.KindShareBundle, []byte(`{"to":"`+k.Fingerprint[:8]+`","tag":"`+tag+`"}`))
	}
	return e
}

func reportEntry(c *identity.Identity, tag string) journalEntry {
	rep := c.Sign(wire.KindReport, []byte(`{"tag":"`+tag+`"}`))
	return journalEntry{Collector: c.Fingerprint, Report: &rep}
}

// TestJournalSurvivesACrashAtEveryByte: a crash may leave the journal cut
// at any byte, or (a file system that grew the file before writing its
// data) with zeros after the cut. For every byte of a real journal of
// bundles and reports, the server recovers exactly the entries complete
// before the cut, appends after them, and after another restart holds
// those and the new ones, none lost or repeated.
func TestJournalSurvivesACrashAtEveryByte(t *testing.T) {
	dir := t.TempDir()
	r, cs := twoKeeperRound(t)
	entries := []journalEntry{
		bundleEntry(r, cs[0], "a"), bundleEntry(r, cs[1], "b"), reportEntry(cs[0], "a"),
		bundleEntry(r, cs[2], "c"), reportEntry(cs[1], "b"),
	}
	// ends[i] is the journal's length once entries[:i+1] are stored.
	var ends []int
	for _, e := range entries {
		if err := appendJournal(dir, r, e); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int(r.journalEnd))
	}
	path := journalPath(dir, r.Hash)
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != ends[len(ends)-1] || bytes.Count(full, []byte("\n")) != len(entries) {
		t.Fatalf("journal of %d bytes and %d lines, want %d bytes and %d lines", len(full), bytes.Count(full, []byte("\n")), ends[len(ends)-1], len(entries))
	}
	t.Logf("journal of %d entries, %d bytes", len(entries), len(full))

	for _, zeros := range []bool{false, true} {
		for cut := 0; cut <= len(full); cut++ {
			crashed := slices.Clone(full[:cut])
			if zeros {
				crashed = append(crashed, make([]byte, len(full)-cut)...)
			}
			if err := os.WriteFile(path, crashed, 0o600); err != nil {
				t.Fatal(err)
			}
			complete := 0
			for complete < len(ends) && ends[complete] <= cut {
				complete++
			}
			// The senders of the entries cut off never heard "stored" and
			// retry them; then a new entry arrives.
			kept := slices.Clone(entries[:complete])
			next := append(slices.Clone(entries[complete:]), reportEntry(cs[2], "c"))
			back := newRound(r.Announce, r.cfg, r.Hash)
			if err := loadJournal(path, back, discardLogger()); err != nil {
				t.Fatalf("cut at %d (zeros %v): %v", cut, zeros, err)
			}
			if got, want := modelOf(back), modelFrom(r, kept); !reflect.DeepEqual(got, want) {
				t.Fatalf("cut at %d (zeros %v): recovered %+v, want the %d complete entries %+v", cut, zeros, got, complete, want)
			}
			if st, _ := os.Stat(path); st.Size() != int64(ends0(ends, complete)) {
				t.Fatalf("cut at %d (zeros %v): journal left at %d bytes, want the torn end cut to %d", cut, zeros, st.Size(), ends0(ends, complete))
			}
			for _, e := range next {
				if err := appendJournal(dir, back, e); err != nil {
					t.Fatalf("cut at %d: append after recovery: %v", cut, err)
				}
				back.apply(e)
			}
			again := newRound(r.Announce, r.cfg, r.Hash)
			if err := loadJournal(path, again, discardLogger()); err != nil {
				t.Fatalf("cut at %d (zeros %v), appended, restarted: %v", cut, zeros, err)
			}
			if got, want := modelOf(again), modelFrom(r, append(kept, next...)); !reflect.DeepEqual(got, want) {
				t.Fatalf("cut at %d (zeros %v), appended, restarted: recovered %+v, want %+v", cut, zeros, got, want)
			}
		}
	}
}

// ends0 is the journal's length after the first n entries.
func ends0(ends []int, n int) int {
	if n == 0 {
		return 0
	}
	return ends[n-1]
}

// TestJournalRefusesDamageBeforeTheEnd: a complete line that does not parse
// is not a crash's doing; it is refused, naming the file and line, and the
// journal is left as it was for the operator.
func TestJournalRefusesDamageBeforeTheEnd(t *testing.T) {
	dir := t.TempDir()
	r, cs := twoKeeperRound(t)
	if err := appendJournal(dir, r, bundleEntry(r, cs[0], "a")); err != nil {
		t.Fatal(err)
	}
	path := journalPath(dir, r.Hash)
	good, _ := os.ReadFile(path)
	for _, damaged := range []string{"garbage\n" + string(good), string(good) + "garbage\n" + string(good), string(good) + "{\n"} {
		if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
			t.Fatal(err)
		}
		err := loadJournal(path, newRound(r.Announce, r.cfg, r.Hash), discardLogger())
		if err == nil || !strings.Contains(err.Error(), filepath.Base(path)+":") || !strings.Contains(err.Error(), "move the file aside") {
			t.Fatalf("damaged journal %q: %v, want an error naming the file and line", damaged, err)
		}
		if after, _ := os.ReadFile(path); string(after) != damaged {
			t.Fatalf("a refused journal was changed")
		}
	}
}

// failJournalWrites makes journal appends write the first half of their
// line and then fail, as a full disk would, until the returned func is
// called.
func failJournalWrites(t *testing.T) (restore func()) {
	t.Helper()
	orig := writeJournal
	writeJournal = func(f *os.File, b []byte, off int64) (int, error) {
		n, err := f.WriteAt(b[:len(b)/2], off)
		if err != nil {
			return n, err
		}
		return n, syscall.ENOSPC
	}
	restore = sync.OnceFunc(func() { writeJournal = orig })
	t.Cleanup(restore)
	return restore
}

// TestFailedAppendLeavesTheJournalWhole: an append that fails part way is
// cut back, and one whose cut-back failed too (its half line still in the
// file) is cut before the next append; either way the stored entries and
// the next ones replay.
func TestFailedAppendLeavesTheJournalWhole(t *testing.T) {
	dir := t.TempDir()
	r, cs := twoKeeperRound(t)
	first := bundleEntry(r, cs[0], "a")
	if err := appendJournal(dir, r, first); err != nil {
		t.Fatal(err)
	}
	path := journalPath(dir, r.Hash)
	stored, _ := os.ReadFile(path)

	restore := failJournalWrites(t)
	if err := appendJournal(dir, r, bundleEntry(r, cs[1], "b")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, stored) {
		t.Fatalf("a failed append left %d bytes, want the %d stored", len(after), len(stored))
	}
	restore()

	// The half line of a failed append whose cut-back failed as well.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"collector":"half`)
	f.Close()
	second := bundleEntry(r, cs[1], "b")
	if err := appendJournal(dir, r, second); err != nil {
		t.Fatal(err)
	}
	back := newRound(r.Announce, r.cfg, r.Hash)
	if err := loadJournal(path, back, discardLogger()); err != nil {
		t.Fatal(err)
	}
	if got, want := modelOf(back), modelFrom(r, []journalEntry{first, second}); !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed %+v, want %+v", got, want)
	}

	// A journal shorter than what was stored was cut behind the server's
	// back: appending after it would hide the loss, so the append is refused.
	if err := os.Truncate(path, int64(len(stored))); err != nil {
		t.Fatal(err)
	}
	if err := appendJournal(dir, r, reportEntry(cs[0], "a")); err == nil || !strings.Contains(err.Error(), "fewer than") {
		t.Fatalf("append to a shortened journal: %v, want a refusal", err)
	}
}

package tally

import (
	"os"
	"path/filepath"
	"strings"
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

func TestJournalSurvivesATornLastLine(t *testing.T) {
	dir := t.TempDir()
	r, dc := journalRound(t)
	keeper := r.cfg.Keepers[0].Fingerprint
	bundle := dc.Sign(wire.KindShareBundle, []byte(`{}`))
	report := dc.Sign(wire.KindReport, []byte(`{}`))
	if err := appendJournal(dir, r, journalEntry{Collector: dc.Fingerprint, Bundles: map[string]identity.Signed{keeper: bundle}}); err != nil {
		t.Fatal(err)
	}
	if err := appendJournal(dir, r, journalEntry{Collector: dc.Fingerprint, Report: &report}); err != nil {
		t.Fatal(err)
	}
	path := journalPath(dir, r.Hash)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"collector":"torn`) // a crash mid-append
	f.Close()

	back, _ := journalRound(t)
	back.Hash = r.Hash
	back.cfg = r.cfg
	if err := loadJournal(path, back); err != nil {
		t.Fatal(err)
	}
	if !back.Joined[dc.Fingerprint] || len(back.Bundles[keeper]) != 1 || back.Reports[dc.Fingerprint].Body == nil {
		t.Fatalf("journal replay lost data: joined %v, bundles %d, report %v", back.Joined, len(back.Bundles[keeper]), back.Reports)
	}

	// The next append after the crash starts a line of its own (found by
	// FuzzLoadJournal: it used to join the torn line, and the journal
	// then failed to load at every later start).
	other := newIDs(t, 1)[0]
	otherReport := other.Sign(wire.KindReport, []byte(`{}`))
	if err := appendJournal(dir, back, journalEntry{Collector: other.Fingerprint, Report: &otherReport}); err != nil {
		t.Fatal(err)
	}
	again, _ := journalRound(t)
	again.Hash, again.cfg = r.Hash, r.cfg
	if err := loadJournal(path, again); err != nil {
		t.Fatalf("journal appended to after a torn line: %v", err)
	}
	if len(again.Reports) != 2 || len(again.Bundles[keeper]) != 1 {
		t.Fatalf("journal appended to after a torn line replays %d reports and %d bundles, want 2 and 1", len(again.Reports), len(again.Bundles[keeper]))
	}

	// Damage before the last line is not silently dropped.
	os.WriteFile(path, []byte("garbage\n{}\n"), 0o600)
	err := loadJournal(path, back)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(path)+":1") {
		t.Fatalf("damaged journal: %v, want an error naming the file and line", err)
	}
}

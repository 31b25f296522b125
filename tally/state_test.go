package tally

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"maps"
	"net/http"
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

	"crypto/rand"
	"log/slog"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/internal/logbuf"
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
	if len(full) != ends[len(ends)-1] {
		t.Fatalf("journal of %d bytes, want %d", len(full), ends[len(ends)-1])
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

// TestJournalRefusesDamageBeforeTheEnd: a record that is not intact but
// followed by an intact one, or an intact record that does not decode, is
// not a crash's doing; it is refused, naming the file and the place, and
// the journal is left as it was for the operator.
func TestJournalRefusesDamageBeforeTheEnd(t *testing.T) {
	dir := t.TempDir()
	r, cs := twoKeeperRound(t)
	if err := appendJournal(dir, r, bundleEntry(r, cs[0], "a")); err != nil {
		t.Fatal(err)
	}
	path := journalPath(dir, r.Hash)
	good, _ := os.ReadFile(path)
	flipped := slices.Clone(good)
	flipped[len(flipped)-1] ^= 1
	undecodable := slices.Concat(journalMagic, []byte{0, 0, 0, 1}, binary.BigEndian.AppendUint32(nil, crc32.Checksum([]byte("x"), crcTable)), []byte("x"))
	for _, damaged := range []string{"garbage\n" + string(good), string(good) + "garbage\n" + string(good),
		string(good) + string(flipped) + string(good), string(good) + string(undecodable)} {
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

// report is a collector's well-formed report for the round: zero values
// under fresh masks, committed to for this round and collector.
func (n *testNet) report(t *testing.T, c *identity.Identity, hash string, cfg *round.Config) identity.Signed {
	t.Helper()
	values := make([]field.Element, cfg.NumCounters())
	masks, rho, cm := commitTo(t, values, nil)
	rc := sign(t, c, wire.KindCommitment, wire.ReportCommitment{ConfigHash: hash, Collector: c.Fingerprint, Commitment: cm})
	return sign(t, c, wire.KindReport, wire.Report{ConfigHash: hash, Collector: c.Fingerprint, Values: values, Masks: masks, Blinding: rho, Commitment: rc})
}

// commitTo commits to values under masks (fresh ones if nil) and a fresh
// blinding, and returns all three.
func commitTo(t *testing.T, values, masks []uint64) ([]uint64, commit.Scalar, commit.Commitment) {
	t.Helper()
	var err error
	if masks == nil {
		if masks, err = commit.NewMasks(rand.Reader, len(values)); err != nil {
			t.Fatal(err)
		}
	}
	rho, err := commit.NewBlinding(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := commit.Commit(values, masks, rho)
	if err != nil {
		t.Fatal(err)
	}
	return masks, rho, c
}

// closeWindow moves the round to reporting, as its clock would at the end
// of the window, with a deadline far off: the test net's window is an hour.
func (n *testNet) closeWindow(t *testing.T) {
	t.Helper()
	n.server.mu.Lock()
	defer n.server.mu.Unlock()
	r := n.server.st.Current
	r.Phase, r.Deadline = round.PhaseReporting, time.Now().Add(time.Hour)
	if err := n.server.save(); err != nil {
		t.Fatal(err)
	}
}

// wantProgress checks the server holds joined collectors and reports.
func (n *testNet) wantProgress(t *testing.T, when string, joined, reported int) {
	t.Helper()
	if st := n.server.Status(); st.CollectorsJoined != joined || st.Reported != reported {
		t.Fatalf("%s: %d collectors joined and %d reported, want %d and %d", when, st.CollectorsJoined, st.Reported, joined, reported)
	}
}

// threeCollectorNet is a test net with a third collector, so that two
// reports leave the round still waiting, and a log to read.
func threeCollectorNet(t *testing.T) (*testNet, *logbuf.Buffer) {
	t.Helper()
	n := newTestNet(t, 0)
	extra := newIDs(t, 1)[0]
	n.collectors = append(n.collectors, extra)
	n.opts.Collectors = append(n.opts.Collectors, extra.Fingerprint)
	log := &logbuf.Buffer{}
	n.opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	n.start(t)
	return n, log
}

// TestTornJournalThenReportsSurvivesTheNextCrash is the repro: the
// server dies while collecting with a partial line at the end of the
// round's journal, restarts, stores two reports, dies again and restarts.
// Before the fix the reports were glued onto the fragment, and the second
// restart refused the journal, losing the round.
func TestTornJournalThenReportsSurvivesTheNextCrash(t *testing.T) {
	n, log := threeCollectorNet(t)
	hash, cfg := n.keyRound(t)
	for _, c := range n.collectors {
		n.mustStore(t, c, wire.PathBundles, n.bundles(t, c, hash, cfg))
	}
	n.closeWindow(t)

	// The crash: a report's line half written when the server died.
	n.stop()
	path := journalPath(n.opts.DataDir, hash)
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	half := n.report(t, n.collectors[0], hash, cfg)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"collector":"` + n.collectors[0].Fingerprint + `","report":{"kind":"` + half.Kind)
	f.Close()

	n.start(t)
	if !strings.Contains(log.String(), "cut a torn entry off the round's journal") {
		t.Fatalf("the cut was not logged:\n%s", log.String())
	}
	if got, _ := os.ReadFile(path); string(got) != string(stored) {
		t.Fatalf("after restart the journal holds %d bytes, want the %d stored before the crash", len(got), len(stored))
	}
	n.wantProgress(t, "after the first restart", 3, 0)
	reports := make([]identity.Signed, len(n.collectors))
	for i, c := range n.collectors {
		reports[i] = n.report(t, c, hash, cfg)
	}
	n.mustStore(t, n.collectors[0], wire.PathReport, reports[0])
	n.mustStore(t, n.collectors[1], wire.PathReport, reports[1])

	n.restart(t)
	n.wantProgress(t, "after the second restart", 3, 2)
	if got, err := n.send(t, n.collectors[1], wire.PathReport, reports[1]); err != nil || got != alreadyHeld.String() {
		t.Fatalf("a stored report sent again: %q, %v; want it already held", got, err)
	}
	n.mustStore(t, n.collectors[2], wire.PathReport, reports[2])
	n.restart(t)
	n.wantProgress(t, "after the third restart", 3, 3)
}

// TestJournalWriteFailureCorruptsNothing: while the disk fails appends part
// way, the server answers each collector 500 as its own failure and stores
// nothing; once the disk is back the retries are stored, and a restart
// recovers everything accepted before, during and after the failure.
func TestJournalWriteFailureCorruptsNothing(t *testing.T) {
	n, log := threeCollectorNet(t)
	hash, cfg := n.keyRound(t)
	c0, c1, c2 := n.collectors[0], n.collectors[1], n.collectors[2]
	n.mustStore(t, c0, wire.PathBundles, n.bundles(t, c0, hash, cfg))
	n.mustStore(t, c1, wire.PathBundles, n.bundles(t, c1, hash, cfg))
	path := journalPath(n.opts.DataDir, hash)
	before, _ := os.ReadFile(path)

	restore := failJournalWrites(t)
	b2 := n.bundles(t, c2, hash, cfg)
	_, err := n.send(t, c2, wire.PathBundles, b2)
	n.wantInternal(t, err, opJournalWrite)
	if !strings.Contains(log.String(), "no space left on device") {
		t.Fatalf("the log does not say why the journal write failed:\n%s", log.String())
	}
	n.closeWindow(t)
	r0 := n.report(t, c0, hash, cfg)
	if _, err := n.send(t, c0, wire.PathReport, r0); err == nil {
		t.Fatal("a report was stored while the journal could not be written")
	}
	n.wantProgress(t, "while appends fail", 2, 0)
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatalf("failed appends left the journal at %d bytes, want the %d stored", len(after), len(before))
	}

	restore()
	n.mustStore(t, c0, wire.PathReport, r0)
	n.restart(t)
	n.wantProgress(t, "after the disk came back and a restart", 2, 1)
	// c2's bundles arrived during the failure and were never stored: it
	// is not in the round, as it was told by the 500.
	r1 := n.report(t, c1, hash, cfg)
	n.mustStore(t, c1, wire.PathReport, r1)
	n.restart(t)
	n.wantProgress(t, "after another restart", 2, 2)
}

// holdSyncs makes the journal's fsyncs wait until release is called and
// counts them.
func holdSyncs(t *testing.T) (syncs func() int, release func()) {
	t.Helper()
	orig := syncFile
	var mu sync.Mutex
	n := 0
	gate := make(chan struct{})
	syncFile = func(f *os.File, created bool) error {
		<-gate
		mu.Lock()
		n++
		mu.Unlock()
		return orig(f, created)
	}
	t.Cleanup(func() { syncFile = orig })
	return func() int { mu.Lock(); defer mu.Unlock(); return n }, sync.OnceFunc(func() { close(gate) })
}

// Entries written while an fsync runs share the next one: many requests,
// few fsyncs. No entry is applied (visible to keepers, counted in S) before
// the fsync that covers it returns, entries are applied in journal order,
// and a restart replays exactly what was applied.
func TestJournalGroupCommits(t *testing.T) {
	dir := t.TempDir()
	r, cs := twoKeeperRound(t)
	s := &Server{opts: Options{DataDir: dir}, metrics: newMetrics(), st: &state{Current: r}, changed: make(chan struct{}), phaseChanged: make(chan struct{})}
	syncs, release := holdSyncs(t)

	var entries []journalEntry
	var waits []<-chan error
	write := func(es ...journalEntry) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range es {
			w, err := s.commitEntry(r, e)
			if err != nil {
				t.Fatal(err)
			}
			entries, waits = append(entries, e), append(waits, w)
		}
	}
	// The first entry's fsync starts and is held; the rest are written
	// meanwhile.
	write(bundleEntry(r, cs[0], "a"))
	for taken := false; !taken; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		taken = len(r.batch) == 0
		s.mu.Unlock()
	}
	for _, c := range cs[1:] {
		write(bundleEntry(r, c, "b"), reportEntry(c, "r"))
	}
	write(reportEntry(cs[0], "a"))
	s.mu.Lock()
	if len(r.Joined) != 0 || len(r.Reports) != 0 {
		t.Fatal("entries were applied before their fsync")
	}
	s.mu.Unlock()

	release()
	for _, w := range waits {
		if err := <-w; err != nil {
			t.Fatal(err)
		}
	}
	if n := syncs(); n != 2 {
		t.Fatalf("%d entries took %d fsyncs, want 2: the first's, and one for those written while it ran", len(entries), n)
	}
	s.mu.Lock()
	got := modelOf(r)
	s.mu.Unlock()
	if want := modelFrom(r, entries); !reflect.DeepEqual(got, want) {
		t.Fatalf("applied %+v, want %+v", got, want)
	}
	back := newRound(r.Announce, r.cfg, r.Hash)
	if err := loadJournal(journalPath(dir, r.Hash), back, discardLogger()); err != nil {
		t.Fatal(err)
	}
	if got, want := modelOf(back), modelFrom(r, entries); !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed %+v, want %+v", got, want)
	}
}

// When a batch's fsync fails, every entry written since the last good one
// fails with it, none is applied, and the journal is cut back to what was
// stored, so the senders' retries are appended after it.
func TestJournalGroupCommitFailureFailsTheBatch(t *testing.T) {
	dir := t.TempDir()
	r, cs := twoKeeperRound(t)
	s := &Server{opts: Options{DataDir: dir}, metrics: newMetrics(), st: &state{Current: r}, changed: make(chan struct{}), phaseChanged: make(chan struct{})}
	first := bundleEntry(r, cs[0], "a")
	if err := appendJournal(dir, r, first); err != nil {
		t.Fatal(err)
	}
	r.apply(first)
	stored, _ := os.ReadFile(journalPath(dir, r.Hash))

	orig := syncFile
	syncFile = func(*os.File, bool) error { return syscall.EIO }
	s.mu.Lock()
	var waits []<-chan error
	for _, e := range []journalEntry{bundleEntry(r, cs[1], "b"), reportEntry(cs[0], "a")} {
		w, err := s.commitEntry(r, e)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	s.mu.Unlock()
	for _, w := range waits {
		if err := <-w; !errors.Is(err, syscall.EIO) {
			t.Fatalf("entry of a failed batch: %v, want EIO", err)
		}
	}
	syncFile = orig
	if after, _ := os.ReadFile(journalPath(dir, r.Hash)); string(after) != string(stored) {
		t.Fatalf("a failed batch left %d bytes, want the %d stored", len(after), len(stored))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got, want := modelOf(r), modelFrom(r, []journalEntry{first}); !reflect.DeepEqual(got, want) || len(r.pending) != 0 {
		t.Fatalf("after a failed batch: %+v (pending %v), want %+v", got, r.pending, want)
	}
}

// A keeper acknowledges only the collectors it has not acknowledged
// before: the tally server keeps each keeper's set, stores each ack in the
// journal (a restart keeps them; state.json does not grow with them), and
// takes a repeated ack as already held. Acks and reports wake no long poll:
// they concern no node but the tally server.
func TestAcksAreIncremental(t *testing.T) {
	n := startServer(t, 0)
	hash, cfg := n.keyRound(t)
	k0 := n.keepers[0]
	for _, c := range n.collectors[:2] {
		n.mustStore(t, c, wire.PathBundles, n.bundles(t, c, hash, cfg))
	}
	ack := func(cs ...*identity.Identity) identity.Signed {
		return sign(t, k0, wire.KindAck, wire.Ack{ConfigHash: hash, Keeper: k0.Fingerprint, Collectors: fps(cs)})
	}
	n.server.mu.Lock()
	version := n.server.st.Version
	n.server.mu.Unlock()
	n.mustStore(t, k0, wire.PathAck, ack(n.collectors[0]))
	n.mustStore(t, k0, wire.PathAck, ack(n.collectors[1]))
	if got, err := n.send(t, k0, wire.PathAck, ack(n.collectors[0], n.collectors[1])); err != nil || got != alreadyHeld.String() {
		t.Fatalf("acking both again: %q, %v; want already held", got, err)
	}
	n.server.mu.Lock()
	if v := n.server.st.Version; v != version {
		t.Errorf("acks moved the keepers' poll version from %d to %d", version, v)
	}
	n.server.mu.Unlock()
	if b, err := os.ReadFile(n.opts.DataDir + "/" + stateFile); err != nil || strings.Contains(string(b), n.collectors[0].Fingerprint) || strings.Contains(string(b), n.collectors[1].Fingerprint) {
		t.Fatalf("state.json names acknowledged collectors (%v)", err)
	}
	n.restart(t)
	n.server.mu.Lock()
	defer n.server.mu.Unlock()
	if got := n.server.st.Current.Acks[k0.Fingerprint]; len(got) != 2 || !got[n.collectors[0].Fingerprint] || !got[n.collectors[1].Fingerprint] {
		t.Fatalf("after a restart keeper 0 has acknowledged %v, want both collectors", got)
	}
}

// A round view names the config by hash and carries no announcement; the
// signed config is served once from its hash, and a hash that is not the
// current round's is refused.
func TestConfigIsFetchedByHash(t *testing.T) {
	n := startServer(t, 0)
	c := n.client(t, n.collectors[0])
	v := n.currentRound(t, c)
	var m identity.Signed
	if _, err := c.Do(context.Background(), http.MethodGet, wire.PathConfig+v.ConfigHash, nil, &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(wire.KindAnnounce, n.ts.Fingerprint); err != nil {
		t.Fatal(err)
	}
	cfg, err := round.Decode(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := cfg.HashHex(); h != v.ConfigHash {
		t.Fatalf("served config of hash %s for %s", h, v.ConfigHash)
	}
	_, err = c.Do(context.Background(), http.MethodGet, wire.PathConfig+"00"+v.ConfigHash[2:], nil, &m)
	n.wantRejected(t, err, http.StatusConflict, reasonWrongRound)
}

// TestFinishedRoundsJournalOutlivesAnUnsavedAnnouncement shows the order
// of announce: the previous round's journal is removed only once the state
// naming the next round is durable. While saving fails (as a crash before
// the save would leave it), the saved state still names the finished round,
// and its journal is still there for a restart to load.
func TestFinishedRoundsJournalOutlivesAnUnsavedAnnouncement(t *testing.T) {
	n := startServer(t, 0)
	n.waitPhase(t, round.PhaseAnnounced)
	s := n.server
	dc := n.collectors[0]

	// A directory where state.json should be: the atomic rename fails.
	state := filepath.Join(n.opts.DataDir, stateFile)
	if err := os.Rename(state, state+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	prev := s.st.Current
	journal := journalPath(n.opts.DataDir, prev.Hash)
	if err := appendJournal(n.opts.DataDir, prev, journalEntry{Collector: dc.Fingerprint, Report: ptr(sign(t, dc, wire.KindReport, wire.Report{ConfigHash: prev.Hash, Collector: dc.Fingerprint}))}); err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	prev.Phase = round.PhaseFailed                       // as if it had ended
	err := s.announce(s.st.LastStart.Add(s.opts.Period)) // when the next round is due
	next := s.st.Current
	s.mu.Unlock()
	if next == prev {
		t.Fatalf("no next round announced (%v)", err)
	}
	if ie, ok := errors.AsType[*internalError](err); !ok || ie.op != opStateWrite {
		t.Fatalf("announcing with the state unwritable: %v, want %s", err, opStateWrite)
	}
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("the finished round's journal is gone before the state naming the next round was saved: %v", err)
	}

	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(state+".aside", state); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	err = s.save()
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journal); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the finished round's journal after the next round's state was saved: %v, want it removed", err)
	}
}

func ptr[T any](v T) *T { return &v }

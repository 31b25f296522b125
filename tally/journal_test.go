package tally

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
)

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

// syncLog is a log sink the server writes while the test reads it
// (deploytest.Log, which imports this package, in a test of it).
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// threeCollectorNet is a test net with a third collector, so that two
// reports leave the round still waiting, and a log to read.
func threeCollectorNet(t *testing.T) (*testNet, *syncLog) {
	t.Helper()
	n := newTestNet(t, 0)
	extra := newIDs(t, 1)[0]
	n.collectors = append(n.collectors, extra)
	n.opts.Collectors = append(n.opts.Collectors, extra.Fingerprint)
	log := &syncLog{}
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

package tally

import (
	"context"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
)

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

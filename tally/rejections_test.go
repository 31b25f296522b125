package tally

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/transport"

	"log/slog"
	"runtime"
	"sync"
)

// send posts body to path as id over pinned TLS and returns the result the
// server answered, or its refusal (a *transport.StatusError for an HTTP
// answer, another error for a refused handshake).
func (n *testNet) send(t *testing.T, id *identity.Identity, path string, body any) (string, error) {
	t.Helper()
	c := n.client(t, id)
	defer c.CloseIdle()
	var a acceptance
	read := func(in io.Reader) error { return json.NewDecoder(in).Decode(&a) }
	// Bundles and reports travel binary, everything else as JSON.
	var err error
	switch m := body.(type) {
	case []identity.Signed:
		var b []byte
		if b, err = wire.AppendSignedList(nil, m); err == nil {
			_, err = c.DoRaw(context.Background(), http.MethodPost, path, wire.ContentBinary, b, read)
		}
	case identity.Signed:
		if path != wire.PathReport {
			_, err = c.Do(context.Background(), http.MethodPost, path, body, &a)
			break
		}
		var b []byte
		if b, err = wire.AppendSigned(nil, m); err == nil {
			_, err = c.DoRaw(context.Background(), http.MethodPost, path, wire.ContentBinary, b, read)
		}
	default:
		_, err = c.Do(context.Background(), http.MethodPost, path, body, &a)
	}
	return a.Result, err
}

// mustStore posts a message that the server must store.
func (n *testNet) mustStore(t *testing.T, id *identity.Identity, path string, body any) {
	t.Helper()
	if got, err := n.send(t, id, path, body); err != nil || got != stored.String() {
		t.Fatalf("%s from %.8s: %q, %v; want it stored", path, id.Fingerprint, got, err)
	}
}

// sign signs a message body or fails the test.
func sign(t *testing.T, id *identity.Identity, kind string, body any) identity.Signed {
	t.Helper()
	m, err := wire.SignBody(id, kind, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitPhase waits until the current round is in the phase and returns it.
func (n *testNet) waitPhase(t *testing.T, phase string) (hash string, cfg *round.Config) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n.server.mu.Lock()
		r := n.server.st.Current
		if r != nil && r.Phase == phase {
			hash, cfg = r.Hash, r.cfg
		}
		n.server.mu.Unlock()
		if cfg != nil {
			return hash, cfg
		}
	}
	t.Fatalf("the round did not reach phase %s: %+v", phase, n.server.Status())
	return "", nil
}

// roundKey is a keeper's signed round key with a fresh public key, which it
// remembers for sealing bundles.
func (n *testNet) roundKey(t *testing.T, keeper *identity.Identity, hash string) identity.Signed {
	t.Helper()
	_, pub, err := wire.NewRoundKey()
	if err != nil {
		t.Fatal(err)
	}
	n.roundKeys[keeper.Fingerprint] = pub
	return sign(t, keeper, wire.KindRoundKey, wire.RoundKey{ConfigHash: hash, Keeper: keeper.Fingerprint, PublicKey: pub})
}

// keyRound has every keeper publish a round key and waits for setup.
func (n *testNet) keyRound(t *testing.T) (hash string, cfg *round.Config) {
	t.Helper()
	hash, _ = n.waitPhase(t, round.PhaseAnnounced)
	for _, k := range n.keepers {
		n.mustStore(t, k, wire.PathRoundKey, n.roundKey(t, k, hash))
	}
	return n.waitPhase(t, round.PhaseSetup)
}

// bundles are a collector's signed bundles, really sealed to each keeper's
// round key.
func (n *testNet) bundles(t *testing.T, c *identity.Identity, hash string, cfg *round.Config) []identity.Signed {
	t.Helper()
	var out []identity.Signed
	for _, k := range n.keepers {
		sealed, err := wire.SealShares(n.roundKeys[k.Fingerprint], hash, c.Fingerprint, k.Fingerprint, make([]uint64, cfg.NumCounters()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sign(t, c, wire.KindShareBundle, wire.SealedBundle{ConfigHash: hash, Collector: c.Fingerprint, Keeper: k.Fingerprint, Ciphertext: sealed}))
	}
	return out
}

// wantInternal checks that a request hit the server's own failure in op:
// answered 500 naming op, counted once as an internal error of op, and
// not counted as any rejection.
func (n *testNet) wantInternal(t *testing.T, err error, o op) {
	t.Helper()
	if se, ok := errors.AsType[*transport.StatusError](err); !ok || se.Code != http.StatusInternalServerError || !strings.Contains(se.Message, string(o)) {
		t.Fatalf("%v, want HTTP 500 naming %s", err, o)
	}
	if got := n.counts(t, "privstats_tally_internal_errors_total"); got[string(o)] != 1 || total(got) != 1 {
		t.Errorf("internal errors %v, want one %s", got, o)
	}
	if got := n.counts(t, "privstats_rejected_requests_total"); total(got) != 0 {
		t.Errorf("the server's failure was counted as a rejection: %v", got)
	}
}

func total(counts map[string]float64) float64 {
	var sum float64
	for _, v := range counts {
		sum += v
	}
	return sum
}

// TestEveryRejectionReasonIsAnsweredAndCounted reaches each reason for
// refusing a message with a real request over TLS: the sender hears the
// reason with its HTTP status, /metrics counts it under its label, and
// nothing is counted as an internal error. Accepted messages say whether
// they were stored or already held.
func TestEveryRejectionReasonIsAnsweredAndCounted(t *testing.T) {
	n := newTestNet(t, 16<<10)
	// Long enough for any honest handshake on a busy machine; the silent
	// client below waits it out.
	n.opts.HandshakeTimeout = 2 * time.Second
	n.start(t)
	k0, k1, c0 := n.keepers[0], n.keepers[1], n.collectors[0]
	hash, _ := n.waitPhase(t, round.PhaseAnnounced)
	key0 := n.roundKey(t, k0, hash)

	// Each step is refused for its reason with its status, in an order
	// that moves the round along as the later reasons need.
	steps := []struct {
		reason reason
		status int // 0: the TLS handshake itself is refused
		send   func() (string, error)
	}{
		{reasonUnknownKey, 0, func() (string, error) {
			return n.send(t, newIDs(t, 1)[0], wire.PathRefusal, json.RawMessage(`{}`))
		}},
		{reasonNoCertificate, 0, func() (string, error) {
			return "", n.tlsTry(t, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		}},
		{reasonBadHandshake, 0, func() (string, error) {
			c, err := transport.ClientConfig(k0, n.ts.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return "", n.tlsTry(t, c)
		}},
		{reasonPlainHTTP, 0, func() (string, error) {
			conn := n.dial(t)
			defer conn.Close()
			conn.Write([]byte("POST " + wire.PathRefusal + " HTTP/1.1\r\nHost: tally\r\nContent-Length: 2\r\n\r\n{}"))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP answered %v, %v; want 400", resp, err)
			}
			return "", errors.New(resp.Status)
		}},
		{reasonHandshakeTimeout, 0, func() (string, error) {
			// Connects and says nothing until the server hangs up.
			conn := n.dial(t)
			defer conn.Close()
			_, err := io.ReadAll(conn)
			return "", cmp.Or(err, io.EOF)
		}},
		{reasonTooManyRequests, http.StatusTooManyRequests, func() (string, error) {
			// The keeper's posts in flight, as if it had sent that many
			// that the server is still reading.
			for range n.server.opts.MaxInFlightPerPeer {
				if rej := n.server.keeperPosts.acquire(k0.Fingerprint); rej != nil {
					t.Fatal(rej)
				}
			}
			defer func() {
				for range n.server.opts.MaxInFlightPerPeer {
					n.server.keeperPosts.release(k0.Fingerprint)
				}
			}()
			return n.send(t, k0, wire.PathRoundKey, key0)
		}},
		{reasonServerBusy, http.StatusServiceUnavailable, func() (string, error) {
			// Other nodes' posts fill the server.
			for i := range n.server.opts.MaxInFlight {
				if rej := n.server.posts.acquire(fmt.Sprint("node ", i)); rej != nil {
					t.Fatal(rej)
				}
			}
			defer func() {
				for i := range n.server.opts.MaxInFlight {
					n.server.posts.release(fmt.Sprint("node ", i))
				}
			}()
			// A keeper still gets in, so collectors cannot crowd out the
			// keepers' acks and commits.
			if rej := n.server.keeperPosts.acquire(k0.Fingerprint); rej != nil {
				t.Fatalf("a keeper's post when collectors fill the server: %v", rej)
			}
			n.server.keeperPosts.release(k0.Fingerprint)
			return n.send(t, c0, wire.PathRefusal, sign(t, c0, wire.KindRefusal, wire.Refusal{ConfigHash: hash, Node: c0.Fingerprint, Reason: "busy"}))
		}},
		{reasonTooLarge, http.StatusRequestEntityTooLarge, func() (string, error) {
			return n.send(t, k0, wire.PathRoundKey, k0.Sign(wire.KindRoundKey, make([]byte, 20<<10)))
		}},
		{reasonMalformed, http.StatusBadRequest, func() (string, error) {
			return n.send(t, k0, wire.PathRoundKey, json.RawMessage(`{"surprise": 1}`))
		}},
		{reasonBadSignature, http.StatusBadRequest, func() (string, error) {
			// Keeper 1's round key sent over keeper 0's connection.
			return n.send(t, k0, wire.PathRoundKey, sign(t, k1, wire.KindRoundKey, wire.RoundKey{ConfigHash: hash, Keeper: k1.Fingerprint, PublicKey: make([]byte, 32)}))
		}},
		{reasonWrongRole, http.StatusForbidden, func() (string, error) {
			return n.send(t, c0, wire.PathRoundKey, key0)
		}},
		{reasonNotInRound, http.StatusForbidden, func() (string, error) {
			// The observer may read the round but takes no part in it.
			return n.send(t, n.observer, wire.PathRefusal, sign(t, n.observer, wire.KindRefusal, wire.Refusal{ConfigHash: hash, Node: n.observer.Fingerprint, Reason: "policy"}))
		}},
		{reasonWrongRound, http.StatusConflict, func() (string, error) {
			return n.send(t, c0, wire.PathReport, sign(t, c0, wire.KindReport, wire.Report{ConfigHash: strings.Repeat("ab", 32), Collector: c0.Fingerprint, Values: []uint64{1}, Masks: []uint64{0}}))
		}},
		{reasonWrongPhase, http.StatusConflict, func() (string, error) {
			return n.send(t, c0, wire.PathReport, sign(t, c0, wire.KindReport, wire.Report{ConfigHash: hash, Collector: c0.Fingerprint, Values: []uint64{1}, Masks: []uint64{0}}))
		}},
		{reasonDuplicate, http.StatusConflict, func() (string, error) {
			for _, want := range []result{stored, alreadyHeld} {
				if got, err := n.send(t, k0, wire.PathRoundKey, key0); err != nil || got != want.String() {
					t.Fatalf("round key: %q, %v; want %q", got, err, want)
				}
			}
			return n.send(t, k0, wire.PathRoundKey, n.roundKey(t, k0, hash))
		}},
		{reasonNotJoined, http.StatusConflict, func() (string, error) {
			for _, k := range n.keepers[1:] {
				n.mustStore(t, k, wire.PathRoundKey, n.roundKey(t, k, hash))
			}
			n.waitPhase(t, round.PhaseSetup)
			return n.send(t, k0, wire.PathAck, sign(t, k0, wire.KindAck, wire.Ack{ConfigHash: hash, Keeper: k0.Fingerprint, Collectors: []string{c0.Fingerprint}}))
		}},
		{reasonWrongVersion, http.StatusBadRequest, func() (string, error) {
			c := n.client(t, k0)
			defer c.CloseIdle()
			c.SetHeader(wire.HeaderVersion, "999")
			_, err := c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, key0, nil)
			return "", err
		}},
	}
	reached := map[reason]bool{}
	for _, st := range steps {
		got, err := st.send()
		se, isStatus := errors.AsType[*transport.StatusError](err)
		switch {
		case err == nil:
			t.Fatalf("%s: the server answered %q, want a refusal", st.reason, got)
		case st.status == 0 && isStatus:
			t.Fatalf("%s: answered %v, want the handshake refused", st.reason, err)
		case st.status != 0 && (!isStatus || se.Code != st.status):
			t.Fatalf("%s: %v, want HTTP %d", st.reason, err, st.status)
		case st.status != 0 && !strings.HasPrefix(se.Message, string(st.reason)+": "):
			t.Fatalf("%s: the answer %q does not name the reason", st.reason, se.Message)
		}
		if st.status == 0 {
			// The handshake is counted as it is refused, which the
			// client may learn a moment before the count is made.
			n.waitRejected(t, st.reason)
		}
		reached[st.reason] = true
	}
	for _, r := range reasons {
		if !reached[r] {
			t.Errorf("no step reaches reason %s", r)
		}
	}

	rejected := n.counts(t, "privstats_rejected_requests_total")
	if len(rejected) != len(reasons) {
		t.Errorf("/metrics has %d rejection reasons, want the %d of the closed set: %v", len(rejected), len(reasons), rejected)
	}
	for _, r := range reasons {
		if rejected[string(r)] != 1 {
			t.Errorf(`privstats_rejected_requests_total{reason=%q} = %v, want 1`, r, rejected[string(r)])
		}
	}
	if internal := n.counts(t, "privstats_tally_internal_errors_total"); total(internal) != 0 {
		t.Errorf("internal errors counted for client mistakes: %v", internal)
	}

	// The refusals changed nothing; the accepted messages are all there.
	hash, cfg := n.waitPhase(t, round.PhaseSetup)
	b := n.bundles(t, c0, hash, cfg)
	n.mustStore(t, c0, wire.PathBundles, b)
	if got, err := n.send(t, c0, wire.PathBundles, b); err != nil || got != alreadyHeld.String() {
		t.Fatalf("identical bundles again: %q, %v; want them already held", got, err)
	}
	if st := n.server.Status(); st.KeepersKeyed != 3 || st.CollectorsJoined != 1 {
		t.Fatalf("status %+v: want 3 keepers keyed and 1 collector joined", st)
	}
}

// tlsTry makes a TLS connection with c and returns why it failed: the
// handshake's error, or that of the first read (TLS 1.3 clients learn of a
// refused certificate only then).
func (n *testNet) tlsTry(t *testing.T, c *tls.Config) error {
	t.Helper()
	conn, err := tls.Dial("tcp", n.server.Addr(), c)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte("GET " + wire.PathRound + " HTTP/1.1\r\nHost: tally\r\n\r\n"))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return err
	}
	t.Fatal("the handshake was accepted")
	return nil
}

// dial opens a plain TCP connection to the TLS port.
func (n *testNet) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", n.server.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// waitRejected waits until /metrics counts one rejection for the reason.
func (n *testNet) waitRejected(t *testing.T, r reason) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n.rejected(t, r) >= 1 {
			return
		}
	}
	t.Fatalf("no %s rejection was counted", r)
}

// TestJournalWriteFailureIsInternal: when the round's journal cannot be
// written, a collector's bundles are answered 500 and counted as an internal
// error, not as its mistake; nothing already stored is lost, and its retry
// is stored once the disk is back.
func TestJournalWriteFailureIsInternal(t *testing.T) {
	n := startServer(t, 0)
	hash, cfg := n.keyRound(t)
	c0, c1 := n.collectors[0], n.collectors[1]
	b0, b1 := n.bundles(t, c0, hash, cfg), n.bundles(t, c1, hash, cfg)
	n.mustStore(t, c0, wire.PathBundles, b0)

	// A full disk: the journal's writes fail.
	restore := failJournalWrites(t)
	_, err := n.send(t, c1, wire.PathBundles, b1)
	n.wantInternal(t, err, opJournalWrite)
	if st := n.server.Status(); st.CollectorsJoined != 1 {
		t.Fatalf("%d collectors joined, want 1: unstored bundles must not count", st.CollectorsJoined)
	}
	restore()
	n.mustStore(t, c1, wire.PathBundles, b1)

	// Both collectors' bundles survive a restart, and the keepers get them.
	n.restart(t)
	if st := n.server.Status(); st.CollectorsJoined != 2 {
		t.Fatalf("after restart %d collectors joined, want 2", st.CollectorsJoined)
	}
	for i, k := range n.keepers {
		c, err := wire.NewClient(k, n.server.Addr(), n.ts.Fingerprint, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.GetBundles(context.Background(), 0)
		c.CloseIdle()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !bytes.Equal(got[0].Body, b0[i].Body) || !bytes.Equal(got[1].Body, b1[i].Body) {
			t.Fatalf("keeper %d gets %d bundles after restart, want both collectors' as sent", i, len(got))
		}
	}
}

// TestStateWriteFailureIsInternal: when state.json cannot be written, a
// keeper's round key is answered 500 and counted as an internal error; the
// keeper's retry makes it durable and is answered stored, and the key
// survives a restart.
func TestStateWriteFailureIsInternal(t *testing.T) {
	n := startServer(t, 0)
	hash, _ := n.waitPhase(t, round.PhaseAnnounced)
	k0 := n.keepers[0]
	key := n.roundKey(t, k0, hash)

	// A directory where state.json should be: the atomic rename fails.
	path := filepath.Join(n.opts.DataDir, stateFile)
	if err := os.Rename(path, path+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := n.send(t, k0, wire.PathRoundKey, key)
	n.wantInternal(t, err, opStateWrite)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".aside", path); err != nil {
		t.Fatal(err)
	}
	// The keeper retries: the server held the key in memory only, so the
	// retry saves it and the keeper hears "stored", not "already held".
	n.mustStore(t, k0, wire.PathRoundKey, key)
	if got, err := n.send(t, k0, wire.PathRoundKey, key); err != nil || got != alreadyHeld.String() {
		t.Fatalf("the same key once more: %q, %v; want it already held", got, err)
	}
	n.restart(t)
	if st := n.server.Status(); st.KeepersKeyed != 1 {
		t.Fatalf("after restart %d keepers keyed, want 1", st.KeepersKeyed)
	}
}

// captured is a slog handler that keeps what is logged.
type captured struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *captured) Enabled(context.Context, slog.Level) bool { return true }
func (c *captured) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *captured) WithGroup(string) slog.Handler            { return c }
func (c *captured) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}

// lines are the messages logged at WARN that start with prefix.
func (c *captured) lines(prefix string) []string { return c.linesAt(slog.LevelWarn, prefix) }

// linesAt are the messages logged at level that start with prefix.
func (c *captured) linesAt(level slog.Level, prefix string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		if r.Level == level && strings.HasPrefix(r.Message, prefix) {
			out = append(out, r.Message)
		}
	}
	return out
}

// gated is a request body whose first bytes are sent at once and the rest
// only once open is closed: a body the server is still reading.
type gated struct {
	head, rest []byte
	open       <-chan struct{}
}

func (g *gated) Read(p []byte) (int, error) {
	if len(g.head) > 0 {
		n := copy(p, g.head)
		g.head = g.head[n:]
		return n, nil
	}
	<-g.open
	if len(g.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	return n, nil
}

// TestOnePeersFloodIsCapped: a keeper posts 60 one-megabyte bodies at once
// and sends only their first kilobyte. The server reads as many as one peer
// may have in flight and refuses the rest 429 before reading them, counts
// each refusal, logs only a few of them, and meanwhile answers another
// node's requests. Released, the bodies it was reading are answered too.
func TestOnePeersFloodIsCapped(t *testing.T) {
	n := newTestNet(t, 0)
	logs := &captured{}
	n.opts.Logger = slog.New(logs)
	n.start(t)
	hash, _ := n.waitPhase(t, round.PhaseAnnounced)
	k0 := n.keepers[0]
	perPeer := n.server.opts.MaxInFlightPerPeer

	const flood, size = 60, 1 << 20
	conf, err := transport.ClientConfig(k0, n.ts.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	defer hc.CloseIdleConnections()
	// Whitespace, then a message that is not a round key: a body the
	// server must read to the end to judge.
	msg := []byte(`{"kind":"flood"}`)
	payload := append(bytes.Repeat([]byte(" "), size-len(msg)), msg...)
	release := make(chan struct{})
	codes := make(chan int, flood)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range flood {
		go func() {
			req, err := http.NewRequest(http.MethodPost, "https://"+n.server.Addr()+wire.PathRoundKey, &gated{head: payload[:1024], rest: payload[1024:], open: release})
			if err != nil {
				codes <- -1
				return
			}
			req.ContentLength = size
			resp, err := hc.Do(req)
			if err != nil {
				t.Logf("post: %v", err)
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := map[int]int{}
	wait := func(k int) {
		t.Helper()
		for i := 0; i < k; i++ {
			select {
			case c := <-codes:
				got[c]++
			case <-time.After(60 * time.Second):
				t.Fatalf("after %v answers the rest hang, want %d answered", got, k)
			}
		}
	}
	wait(flood - perPeer)
	if got[http.StatusTooManyRequests] != flood-perPeer {
		t.Fatalf("answers while %d bodies were being read: %v, want %d × 429", perPeer, got, flood-perPeer)
	}
	if inFlight := n.server.keeperPosts.of(k0.Fingerprint); inFlight != perPeer {
		t.Fatalf("%d posts of the flooding keeper in flight, want %d", inFlight, perPeer)
	}
	var during runtime.MemStats
	runtime.ReadMemStats(&during)

	// Another keeper is served meanwhile.
	other := n.client(t, n.keepers[1])
	defer other.CloseIdle()
	if _, err := other.Do(context.Background(), http.MethodPost, wire.PathRoundKey, n.roundKey(t, n.keepers[1], hash), nil); err != nil {
		t.Fatalf("another keeper during the flood: %v", err)
	}

	close(release)
	wait(perPeer)
	if got[http.StatusBadRequest] != perPeer {
		t.Fatalf("answers after release: %v, want %d × 400 for the bodies read", got, perPeer)
	}
	rejected := n.counts(t, "privstats_rejected_requests_total")
	if rejected[reasonTooManyRequests] != float64(flood-perPeer) || rejected[reasonMalformed] != float64(perPeer) {
		t.Errorf("rejections counted %v, want %d too_many_requests and %d malformed", rejected, flood-perPeer, perPeer)
	}
	if lines := logs.lines("request refused"); len(lines) >= flood {
		t.Errorf("%d refusals logged one line each; want them rate-limited", len(lines))
	}
	t.Logf("heap in use %.1f MiB before the flood, %.1f MiB with %d bodies being read and %d refused (%d MiB posted)",
		float64(before.HeapInuse)/(1<<20), float64(during.HeapInuse)/(1<<20), perPeer, flood-perPeer, flood*size>>20)
}

// TestRefusalLogIsRateLimited: a source's first refusals in an interval
// are logged, the rest counted by reason and summed up in one line once
// the interval is over; each source has its own allowance.
func TestRefusalLogIsRateLimited(t *testing.T) {
	logs := &captured{}
	l := newRefusalLog(slog.New(logs))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := range 1203 {
		why := reason(reasonMalformed)
		if i%12 == 11 {
			why = reasonTooManyRequests
		}
		l.warn("peer-a", string(why), "request refused", "n", i)
	}
	l.warn("peer-b", string(reasonBadSignature), "request refused")
	if got := len(logs.lines("request refused")); got != l.burst+1 {
		t.Fatalf("%d refusal lines, want %d from peer-a and 1 from peer-b", got, l.burst)
	}
	l.flush()
	if s := logs.lines("suppressed"); len(s) != 0 {
		t.Fatalf("summed up before the interval is over: %q", s)
	}
	now = now.Add(l.interval)
	l.flush()
	// 1203 refusals: the first three logged (none of them the 12th), of
	// the 1200 others every 12th is too_many_requests.
	want := "suppressed 1200 refusals from peer-a since 00:00:00: malformed 1100, too_many_requests 100"
	if s := logs.lines("suppressed"); len(s) != 1 || s[0] != want {
		t.Fatalf("summary %q, want one line %q (peer-b had nothing suppressed)", s, want)
	}
	// A new interval: peer-a may log again.
	l.warn("peer-a", string(reasonMalformed), "request refused")
	if got := len(logs.lines("request refused")); got != l.burst+2 {
		t.Fatalf("%d refusal lines after the interval, want %d", got, l.burst+2)
	}
	if len(l.sources) != 1 {
		t.Fatalf("%d sources remembered, want only peer-a's new interval", len(l.sources))
	}
}

// TestSignerThatIsNoKeyIsMalformed: a message whose signer is not a hex
// Ed25519 key, or whose body is not of its kind, is malformed; one whose
// signature does not verify is a bad signature.
func TestSignerThatIsNoKeyIsMalformed(t *testing.T) {
	n := startServer(t, 0)
	hash, _ := n.waitPhase(t, round.PhaseAnnounced)
	k0 := n.keepers[0]
	good := n.roundKey(t, k0, hash)
	for _, tc := range []struct {
		name   string
		change func(m *identity.Signed)
		want   reason
	}{
		{"non-hex signer", func(m *identity.Signed) { m.Signer = "zz" + m.Signer[2:] }, reasonMalformed},
		{"short signer", func(m *identity.Signed) { m.Signer = m.Signer[:40] }, reasonMalformed},
		{"another kind", func(m *identity.Signed) { *m = k0.Sign(wire.KindCommit, m.Body) }, reasonMalformed},
		{"body not JSON", func(m *identity.Signed) { *m = k0.Sign(wire.KindRoundKey, []byte("not json")) }, reasonMalformed},
		{"bad signature", func(m *identity.Signed) { m.Signature = bytes.Clone(m.Signature); m.Signature[0] ^= 1 }, reasonBadSignature},
	} {
		m := good
		tc.change(&m)
		before := n.rejected(t, tc.want)
		_, err := n.send(t, k0, wire.PathRoundKey, m)
		wantStatus(t, err, http.StatusBadRequest)
		if !strings.Contains(err.Error(), string(tc.want)+": ") {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
		if after := n.rejected(t, tc.want); after != before+1 {
			t.Errorf("%s: %s counted %v → %v, want one more", tc.name, tc.want, before, after)
		}
	}
	n.mustStore(t, k0, wire.PathRoundKey, good)
}

// TestOneRefusalPerNodePerRound: a node's refusal is stored once; the same
// refusal again is already held, and another reason is a duplicate that
// changes nothing. A collector already in the proposed S may not refuse.
func TestOneRefusalPerNodePerRound(t *testing.T) {
	n := startServer(t, 0)
	hash, _ := n.waitPhase(t, round.PhaseAnnounced)
	c0, c1 := n.collectors[0], n.collectors[1]
	refusal := func(c *identity.Identity, why string) identity.Signed {
		return sign(t, c, wire.KindRefusal, wire.Refusal{ConfigHash: hash, Node: c.Fingerprint, Reason: why})
	}
	n.mustStore(t, c0, wire.PathRefusal, refusal(c0, "epsilon too high"))
	if got, err := n.send(t, c0, wire.PathRefusal, refusal(c0, "epsilon too high")); err != nil || got != alreadyHeld.String() {
		t.Fatalf("the same refusal again: %q, %v; want it already held", got, err)
	}
	_, err := n.send(t, c0, wire.PathRefusal, refusal(c0, "changed my mind: "+strings.Repeat("x", 100)))
	n.wantRejected(t, err, http.StatusConflict, reasonDuplicate)
	n.server.mu.Lock()
	stored := n.server.st.Current.Refusals[c0.Fingerprint]
	n.server.mu.Unlock()
	if stored != "epsilon too high" {
		t.Fatalf("stored refusal %q, want the first", stored)
	}
	if got := n.counts(t, "privstats_round_refusals_total")["collector"]; got != 1 {
		t.Fatalf("%v collector refusals counted, want 1", got)
	}

	// An agreement whose S holds c1 (set directly: reaching it through
	// the protocol takes a whole round, and only S matters here).
	n.server.mu.Lock()
	msg := wire.AgreementMsg{ConfigHash: hash}
	if err := msg.SetCollectors(n.server.st.Current.cfg.CollectorFingerprints(), []string{c1.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	ag := sign(t, n.ts, wire.KindAgreement, msg)
	n.server.st.Current.Agreement = &ag
	n.server.mu.Unlock()
	_, err = n.send(t, c1, wire.PathRefusal, refusal(c1, "too late"))
	n.wantRejected(t, err, http.StatusConflict, reasonWrongPhase)
	n.server.mu.Lock()
	_, recorded := n.server.st.Current.Refusals[c1.Fingerprint]
	n.server.mu.Unlock()
	if recorded {
		t.Fatal("a refusal from a collector in S was recorded")
	}
}

// TestBodyBudgetRefusesUnread shows the global budget on body memory:
// once the bodies being read would cost more than Options.MaxBodyMemory, a
// collector's post is refused (server_busy) before its body is read,
// whatever its format, while a keeper's post still gets in; once the
// budget is free again the same post is read and judged.
func TestBodyBudgetRefusesUnread(t *testing.T) {
	n := newTestNet(t, 16<<10)
	n.start(t)
	hash, _ := n.waitPhase(t, round.PhaseAnnounced)
	k0, c0 := n.keepers[0], n.collectors[0]
	budget := n.server.opts.MaxBodyMemory
	if min := n.server.opts.MaxBodyBytes * jsonExpansion; budget < min {
		t.Fatalf("budget %d is less than one largest JSON body costs (%d)", budget, min)
	}
	refusal := sign(t, c0, wire.KindRefusal, wire.Refusal{ConfigHash: hash, Node: c0.Fingerprint, Reason: "busy"})
	report := sign(t, c0, wire.KindReport, wire.Report{ConfigHash: hash, Collector: c0.Fingerprint, Values: []uint64{1}, Masks: []uint64{0}})

	// Other posts' bodies hold all but a byte of the budget.
	if rej := n.server.bodies.reserve(budget - 1); rej != nil {
		t.Fatal(rej)
	}
	for _, m := range []struct {
		path string
		body identity.Signed
	}{{wire.PathRefusal, refusal}, {wire.PathReport, report}} {
		_, err := n.send(t, c0, m.path, m.body)
		se, ok := errors.AsType[*transport.StatusError](err)
		if !ok || se.Code != http.StatusServiceUnavailable || !strings.HasPrefix(se.Message, string(reasonServerBusy)+": ") {
			t.Fatalf("%s with the body budget spent: %v, want 503 %s", m.path, err, reasonServerBusy)
		}
	}
	// Keepers are outside the budget, as outside the global cap.
	n.mustStore(t, k0, wire.PathRoundKey, n.roundKey(t, k0, hash))
	n.server.bodies.release(budget - 1)

	// Free again: the report is read, and refused only for its phase.
	_, err := n.send(t, c0, wire.PathReport, report)
	if se, ok := errors.AsType[*transport.StatusError](err); !ok || !strings.HasPrefix(se.Message, string(reasonWrongPhase)+": ") {
		t.Fatalf("report with the budget free: %v, want %s", err, reasonWrongPhase)
	}
	n.server.bodies.mu.Lock()
	defer n.server.bodies.mu.Unlock()
	if n.server.bodies.used != 0 {
		t.Errorf("%d bytes of the budget still charged after every post was answered", n.server.bodies.used)
	}
}

// TestInternalFailureLogIsRateLimited: while the disk is full every post
// of bundles fails (journal_write) and is counted, but only the first few
// failures of an interval are logged at ERROR; the rest are summed up in
// one line when the interval is over.
func TestInternalFailureLogIsRateLimited(t *testing.T) {
	n := newTestNet(t, 0)
	logs := &captured{}
	n.opts.Logger = slog.New(logs)
	n.start(t)
	var later atomic.Int64 // how far the log's clock is ahead
	il := n.server.internalLog
	il.mu.Lock()
	il.now = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	il.mu.Unlock()
	hash, cfg := n.keyRound(t)
	c1 := n.collectors[1]
	b1 := n.bundles(t, c1, hash, cfg)

	const posts = 12
	restore := failJournalWrites(t)
	for range posts {
		_, err := n.send(t, c1, wire.PathBundles, b1)
		if se, ok := errors.AsType[*transport.StatusError](err); !ok || se.Code != http.StatusInternalServerError {
			t.Fatalf("bundles on a full disk: %v, want 500", err)
		}
	}
	restore()
	if got := n.counts(t, "privstats_tally_internal_errors_total"); got[string(opJournalWrite)] != posts {
		t.Errorf("internal errors %v, want %d journal_write: every failure is counted", got, posts)
	}
	if got := logs.linesAt(slog.LevelError, "tally server failure"); len(got) != il.burst {
		t.Fatalf("%d failure lines logged for %d failures, want %d", len(got), posts, il.burst)
	}
	later.Store(int64(il.interval))
	il.flush()
	want := fmt.Sprintf("suppressed %d failures from journal_write since ", posts-il.burst)
	if got := logs.linesAt(slog.LevelError, "suppressed"); len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.HasSuffix(got[0], fmt.Sprintf(": journal_write %d", posts-il.burst)) {
		t.Fatalf("summary %q, want one line %q…", got, want)
	}
}

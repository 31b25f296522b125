package tally

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/transport"
)

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
func (c *captured) lines(prefix string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		if r.Level == slog.LevelWarn && strings.HasPrefix(r.Message, prefix) {
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
	if inFlight := n.server.posts.of(k0.Fingerprint); inFlight != perPeer {
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
		l.warn("peer-a", why, "request refused", "n", i)
	}
	l.warn("peer-b", reasonBadSignature, "request refused")
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
	l.warn("peer-a", reasonMalformed, "request refused")
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
	ag := sign(t, n.ts, wire.KindAgreement, wire.AgreementMsg{ConfigHash: hash, Collectors: []string{c1.Fingerprint}})
	n.server.mu.Lock()
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

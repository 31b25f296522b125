package tally

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/transport"
)

type testNet struct {
	ts         *identity.Identity
	keepers    []*identity.Identity
	collectors []*identity.Identity
	server     *Server
}

func newIDs(t *testing.T, n int) []*identity.Identity {
	t.Helper()
	out := make([]*identity.Identity, n)
	for i := range out {
		id, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = id
	}
	return out
}

func fps(ids []*identity.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Fingerprint
	}
	return out
}

// startServer runs a tally server on loopback whose first round stays in
// its announcement phase for an hour.
func startServer(t *testing.T, maxBody int64) *testNet {
	t.Helper()
	n := &testNet{ts: newIDs(t, 1)[0], keepers: newIDs(t, 3), collectors: newIDs(t, 2)}
	srv, err := New(Options{
		Identity: n.ts, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(),
		Series: "test", Rounds: 1, RoundLength: time.Hour, SetupTime: time.Hour,
		Keepers: fps(n.keepers), Threshold: 2, Collectors: fps(n.collectors), MinCollectors: 1,
		Epsilon: 1, Delta: 1e-6, MaxBodyBytes: maxBody,
		Statistics: []round.StatisticSpec{{Name: "relay_bytes_read", MaxPerCollector: 1 << 40}},
		Logger:     discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Run(ctx, false)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	n.server = srv
	return n
}

func (n *testNet) client(t *testing.T, id *identity.Identity) *transport.Client {
	t.Helper()
	c, err := transport.NewClient(id, n.server.Addr(), n.ts.Fingerprint, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// currentRound waits for the announcement and returns the view.
func (n *testNet) currentRound(t *testing.T, c *transport.Client) wire.RoundView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var v wire.RoundView
		if _, err := c.Do(context.Background(), http.MethodGet, wire.PathRound+"?since=0", nil, &v); err != nil {
			t.Fatal(err)
		}
		if v.Announce != nil {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no round announced")
	return wire.RoundView{}
}

// rejected reads privstats_rejected_requests_total{reason} from /metrics.
func (n *testNet) rejected(t *testing.T, reason string) int {
	t.Helper()
	resp, err := http.Get("http://" + n.server.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf(`privstats_rejected_requests_total{reason=%q} `, reason)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			var x int
			fmt.Sscan(v, &x)
			return x
		}
	}
	t.Fatalf("/metrics has no %s line", want)
	return 0
}

func wantStatus(t *testing.T, err error, code int) {
	t.Helper()
	var se *transport.StatusError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got %v, want HTTP %d", err, code)
	}
}

func TestUnknownKeyIsRefusedAndCounted(t *testing.T) {
	n := startServer(t, 0)
	stranger := newIDs(t, 1)[0]
	_, err := n.client(t, stranger).Do(context.Background(), http.MethodGet, wire.PathRound, nil, nil)
	if err == nil {
		t.Fatal("a client with an unlisted key was served")
	}
	if got := n.rejected(t, reasonUnknownKey); got < 1 {
		t.Fatalf("unknown_key rejections = %d, want ≥ 1", got)
	}
}

func TestNodeOfAnotherProtocolVersionIsRefused(t *testing.T) {
	n := startServer(t, 0)
	c := n.client(t, n.keepers[0])
	c.SetHeader(wire.HeaderVersion, strconv.Itoa(wire.ProtocolVersion))
	n.currentRound(t, c)
	c.SetHeader(wire.HeaderVersion, strconv.Itoa(wire.ProtocolVersion+1))
	_, err := c.Do(context.Background(), http.MethodGet, wire.PathRound, nil, nil)
	wantStatus(t, err, http.StatusBadRequest)
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("refusal %q does not say which version the server speaks", err)
	}
	if got := n.rejected(t, reasonWrongVersion); got != 1 {
		t.Fatalf("wrong_version rejections = %d, want 1", got)
	}
}

func TestReportReplayedFromAnotherRoundIsRefused(t *testing.T) {
	n := startServer(t, 0)
	c := n.client(t, n.collectors[0])
	v := n.currentRound(t, c)
	other := strings.Repeat("ab", 32)
	if other == v.ConfigHash {
		t.Fatal("test hash collides")
	}
	msg, _ := wire.SignBody(n.collectors[0], wire.KindReport, wire.Report{ConfigHash: other, Collector: n.collectors[0].Fingerprint, Values: []uint64{1}})
	_, err := c.Do(context.Background(), http.MethodPost, wire.PathReport, msg, nil)
	wantStatus(t, err, http.StatusConflict)
	if got := n.rejected(t, reasonWrongRound); got != 1 {
		t.Fatalf("wrong_round rejections = %d, want 1", got)
	}
}

func TestOversizeBodyIsRefused(t *testing.T) {
	n := startServer(t, 4096)
	c := n.client(t, n.collectors[0])
	n.currentRound(t, c)
	big := n.collectors[0].Sign(wire.KindReport, make([]byte, 10000))
	_, err := c.Do(context.Background(), http.MethodPost, wire.PathReport, big, nil)
	wantStatus(t, err, http.StatusRequestEntityTooLarge)
	if got := n.rejected(t, reasonTooLarge); got != 1 {
		t.Fatalf("body_too_large rejections = %d, want 1", got)
	}
}

func TestMalformedAndForgedMessagesAreRefused(t *testing.T) {
	n := startServer(t, 0)
	c := n.client(t, n.keepers[0])
	v := n.currentRound(t, c)
	_, err := c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, json.RawMessage(`{"surprise": 1}`), nil)
	wantStatus(t, err, http.StatusBadRequest)
	if got := n.rejected(t, reasonMalformed); got != 1 {
		t.Fatalf("malformed rejections = %d, want 1", got)
	}
	// A round key signed by another keeper, sent over keeper 0's connection.
	forged, _ := wire.SignBody(n.keepers[1], wire.KindRoundKey, wire.RoundKey{ConfigHash: v.ConfigHash, Keeper: n.keepers[1].Fingerprint, PublicKey: make([]byte, 32)})
	_, err = c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, forged, nil)
	wantStatus(t, err, http.StatusBadRequest)
	if got := n.rejected(t, reasonBadSignature); got != 1 {
		t.Fatalf("bad_signature rejections = %d, want 1", got)
	}
	// A collector may not post keeper messages.
	_, err = n.client(t, n.collectors[1]).Do(context.Background(), http.MethodPost, wire.PathRoundKey, forged, nil)
	wantStatus(t, err, http.StatusForbidden)
	if got := n.rejected(t, reasonWrongRole); got != 1 {
		t.Fatalf("wrong_role rejections = %d, want 1", got)
	}
	// The genuine key is accepted; a second, different one is a duplicate.
	_, pub, _ := wire.NewRoundKey()
	good, _ := wire.SignBody(n.keepers[0], wire.KindRoundKey, wire.RoundKey{ConfigHash: v.ConfigHash, Keeper: n.keepers[0].Fingerprint, PublicKey: pub})
	if _, err := c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, good, nil); err != nil {
		t.Fatal(err)
	}
	_, pub2, _ := wire.NewRoundKey()
	again, _ := wire.SignBody(n.keepers[0], wire.KindRoundKey, wire.RoundKey{ConfigHash: v.ConfigHash, Keeper: n.keepers[0].Fingerprint, PublicKey: pub2})
	_, err = c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, again, nil)
	wantStatus(t, err, http.StatusConflict)
}

func TestServerPinIsChecked(t *testing.T) {
	n := startServer(t, 0)
	impostor := newIDs(t, 1)[0]
	c, err := transport.NewClient(n.collectors[0], n.server.Addr(), impostor.Fingerprint, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), http.MethodGet, wire.PathRound, nil, nil); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("client accepted a server whose key is not the pinned one: %v", err)
	}
}

func TestUnderNoisedWeightsAreRefused(t *testing.T) {
	ids := newIDs(t, 6)
	ts, keepers, collectors := ids[0], ids[1:4], ids[4:6]
	// Two collectors with w = 0.5: together they carry only σ²/2.
	srv, err := New(Options{
		Identity: ts, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(),
		Series: "test", Rounds: 1, RoundLength: time.Hour, SetupTime: time.Hour,
		Keepers: fps(keepers), Threshold: 2, Collectors: fps(collectors), MinCollectors: 1,
		Weights: noise.Weights{Default: 0.5}, Epsilon: 1, Delta: 1e-6,
		Statistics: []round.StatisticSpec{{Name: "relay_bytes_read", Sigma: 100, Epsilon: 1, Delta: 1e-6, MaxPerCollector: 1 << 40}},
		Logger:     discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go srv.Run(ctx, false)
	n := &testNet{server: srv}
	deadline := time.Now().Add(3 * time.Second)
	for srv.Status().NotAnnounced == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := srv.Status()
	if st.Phase != "" || !strings.Contains(st.NotAnnounced, "noise") {
		t.Fatalf("status %+v: want no round and a noise coverage refusal", st)
	}
	if got := n.metric(t, `privstats_round_refusals_total{role="tally"}`); got != 1 {
		t.Fatalf("tally refusals = %d, want 1", got)
	}
}

// metric reads one sample from /metrics.
func (n *testNet) metric(t *testing.T, series string) int {
	t.Helper()
	resp, err := http.Get("http://" + n.server.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var x int
			fmt.Sscan(v, &x)
			return x
		}
	}
	t.Fatalf("/metrics has no %s", series)
	return 0
}

func TestResultsPageShowsTheRound(t *testing.T) {
	n := startServer(t, 0)
	n.currentRound(t, n.client(t, n.collectors[0]))
	resp, err := http.Get("http://" + n.server.HTTPAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"privstats: series test", "<b>announced</b>", "None yet."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("results page lacks %q", want)
		}
	}
}

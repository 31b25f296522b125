package tally_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/tally"
	"github.com/privstats/privstats/transport"
)

// The reasons of privstats_rejected_requests_total, as operators see them.
const (
	reasonUnknownKey   = "unknown_key"
	reasonWrongRole    = "wrong_role"
	reasonBadSignature = "bad_signature"
	reasonWrongRound   = "wrong_round"
	reasonMalformed    = "malformed"
	reasonTooLarge     = "body_too_large"
)

// testNet is a tally server on loopback with the identities of three
// keepers and two collectors, none of them running: the tests speak for
// them.
type testNet struct {
	ts         *identity.Identity
	keepers    []*identity.Identity
	collectors []*identity.Identity
	server     *tally.Server
	d          *deploytest.Deployment
}

func newID(t *testing.T) *identity.Identity {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startNet starts an idle deployment of three keepers and two collectors
// with the given tally server options, stopped when the test ends.
func startNet(t *testing.T, opts tally.Options) *testNet {
	t.Helper()
	d, err := deploytest.Start(context.Background(), deploytest.Options{Dir: t.TempDir(), Keepers: 3, Collectors: 2, Idle: true, Tally: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return &testNet{ts: d.TallyID, keepers: d.KeeperIDs, collectors: d.CollectorIDs, server: d.Tally, d: d}
}

// startServer runs a tally server on loopback whose first round stays in
// its announcement phase for an hour.
func startServer(t *testing.T, maxBody int64) *testNet {
	t.Helper()
	return startNet(t, tally.Options{
		HTTPListen: "127.0.0.1:0", Series: "test", Rounds: 1, RoundLength: time.Hour, SetupTime: time.Hour,
		Threshold: 2, MinCollectors: 1, Epsilon: 1, Delta: 1e-6, MaxBodyBytes: maxBody,
		Statistics: []round.StatisticSpec{{Name: "relay_bytes_read", MaxPerCollector: 1 << 40}},
	})
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
	stranger := newID(t)
	_, err := n.client(t, stranger).Do(context.Background(), http.MethodGet, wire.PathRound, nil, nil)
	if err == nil {
		t.Fatal("a client with an unlisted key was served")
	}
	if got := n.rejected(t, reasonUnknownKey); got < 1 {
		t.Fatalf("unknown_key rejections = %d, want ≥ 1", got)
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
	impostor := newID(t)
	c, err := transport.NewClient(n.collectors[0], n.server.Addr(), impostor.Fingerprint, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), http.MethodGet, wire.PathRound, nil, nil); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("client accepted a server whose key is not the pinned one: %v", err)
	}
}

func TestUnderNoisedWeightsAreRefused(t *testing.T) {
	// Two collectors with w = 0.5: together they carry only σ²/2.
	n := startNet(t, tally.Options{
		HTTPListen: "127.0.0.1:0", Series: "test", Rounds: 1, RoundLength: time.Hour, SetupTime: time.Hour,
		Threshold: 2, MinCollectors: 1, Weights: noise.Weights{Default: 0.5}, Epsilon: 1, Delta: 1e-6,
		Statistics: []round.StatisticSpec{{Name: "relay_bytes_read", Sigma: 100, Epsilon: 1, Delta: 1e-6, MaxPerCollector: 1 << 40}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, _ := n.d.WaitStatus(ctx, "a refusal to announce", func(st tally.Status) bool { return st.NotAnnounced != "" })
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

func TestStricterKeeperRefusesWithItsReason(t *testing.T) {
	n := startServer(t, 0)
	// The keeper's real policy allows less ε than the tally server's round spends.
	pol := policy.Defaults()
	pol.MaxEpsilon = 0.1
	led, err := policy.OpenLedger(filepath.Join(t.TempDir(), policy.LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	strict := func(cfg *round.Config, now time.Time) error { return pol.Check(cfg, led, now) }
	if _, err := n.d.StartKeeper(0, func(o *keeper.Options) { o.Policy = strict }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	n.d.WaitStatus(ctx, "the keeper's refusal", func(st tally.Status) bool { return len(st.Refusals) > 0 })
	reason := n.server.Status().Refusals[n.keepers[0].Fingerprint]
	if !strings.Contains(reason, "max_epsilon 0.1") || !strings.HasPrefix(reason, "policy: ") {
		t.Fatalf("recorded refusal %q, want the keeper's policy reason", reason)
	}
	if got := n.metric(t, `privstats_round_refusals_total{role="keeper"}`); got != 1 {
		t.Fatalf("keeper refusals = %d, want 1", got)
	}
	resp, err := http.Get("http://" + n.server.HTTPAddr() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st tally.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Refusals[n.keepers[0].Fingerprint] != reason {
		t.Fatalf("/api/v1/status refusals %v (%v), want the keeper's reason", st.Refusals, err)
	}
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

package tally

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/transport"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testNet is a real tally server on loopback TLS with three keepers, two
// collectors and an observer. Its round waits an hour in each of its first
// phases, so a test moves it along by posting messages itself.
type testNet struct {
	ts, observer        *identity.Identity
	keepers, collectors []*identity.Identity
	opts                Options
	server              *Server
	stop                func()
	// roundKeys are the public round keys the keepers posted, by keeper.
	roundKeys map[string][]byte
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

// newTestNet makes a test net's identities and server options; a test may
// change the options before start.
func newTestNet(t *testing.T, maxBody int64) *testNet {
	t.Helper()
	ids := newIDs(t, 7)
	n := &testNet{ts: ids[0], keepers: ids[1:4], collectors: ids[4:6], observer: ids[6], roundKeys: map[string][]byte{}}
	n.opts = Options{
		Identity: n.ts, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(),
		Series: "test", Rounds: 1, RoundLength: time.Hour, SetupTime: time.Hour,
		Keepers: fps(n.keepers), Threshold: 2, Collectors: fps(n.collectors), MinCollectors: 1,
		Allow: []string{n.observer.Fingerprint}, Epsilon: 1, Delta: 1e-6, MaxBodyBytes: maxBody,
		Statistics: []round.StatisticSpec{{Name: "relay_bytes_read", MaxPerCollector: 1 << 40}},
		Logger:     discardLogger(),
	}
	return n
}

// startServer starts a test net whose bodies may be maxBody bytes (0: the
// default).
func startServer(t *testing.T, maxBody int64) *testNet {
	t.Helper()
	n := newTestNet(t, maxBody)
	n.start(t)
	return n
}

// start runs a server on the net's data directory.
func (n *testNet) start(t *testing.T) {
	t.Helper()
	srv, err := New(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Run(ctx, false)
		close(done)
	}()
	n.server = srv
	n.stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(n.stop)
}

// restart stops the server and starts another on the same data directory,
// as after a crash or an upgrade.
func (n *testNet) restart(t *testing.T) {
	t.Helper()
	n.stop()
	n.start(t)
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

// counts scrapes the public /metrics and returns the samples of one
// single-label counter family by label value.
func (n *testNet) counts(t *testing.T, family string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.server.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mf, ok := families[family]
	if !ok {
		t.Fatalf("/metrics has no %s", family)
	}
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != 1 {
			t.Fatalf("%s has labels %v, want one", family, m.GetLabel())
		}
		out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	return out
}

// rejected reads privstats_rejected_requests_total{reason} from /metrics.
func (n *testNet) rejected(t *testing.T, r reason) float64 {
	t.Helper()
	return n.counts(t, "privstats_rejected_requests_total")[string(r)]
}

func wantStatus(t *testing.T, err error, code int) {
	t.Helper()
	var se *transport.StatusError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got %v, want HTTP %d", err, code)
	}
}

// wantRejected checks that err is the server's refusal with HTTP code and
// that /metrics counts one rejection for reason r.
func (n *testNet) wantRejected(t *testing.T, err error, code int, r reason) {
	t.Helper()
	wantStatus(t, err, code)
	if got := n.rejected(t, r); got != 1 {
		t.Fatalf("%s rejections = %v, want 1", r, got)
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
		t.Fatalf("unknown_key rejections = %v, want ≥ 1", got)
	}
}

func TestNodeOfAnotherProtocolVersionIsRefused(t *testing.T) {
	n := startServer(t, 0)
	c := n.client(t, n.keepers[0])
	c.SetHeader(wire.HeaderVersion, strconv.Itoa(wire.ProtocolVersion))
	n.currentRound(t, c)
	c.SetHeader(wire.HeaderVersion, strconv.Itoa(wire.ProtocolVersion+1))
	_, err := c.Do(context.Background(), http.MethodGet, wire.PathRound, nil, nil)
	n.wantRejected(t, err, http.StatusBadRequest, reasonWrongVersion)
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("refusal %q does not say which version the server speaks", err)
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
	n.wantRejected(t, err, http.StatusConflict, reasonWrongRound)
}

func TestOversizeBodyIsRefused(t *testing.T) {
	n := startServer(t, 4096)
	c := n.client(t, n.collectors[0])
	n.currentRound(t, c)
	big := n.collectors[0].Sign(wire.KindReport, make([]byte, 10000))
	_, err := c.Do(context.Background(), http.MethodPost, wire.PathReport, big, nil)
	n.wantRejected(t, err, http.StatusRequestEntityTooLarge, reasonTooLarge)
}

func TestMalformedAndForgedMessagesAreRefused(t *testing.T) {
	n := startServer(t, 0)
	c := n.client(t, n.keepers[0])
	v := n.currentRound(t, c)
	_, err := c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, json.RawMessage(`{"surprise": 1}`), nil)
	n.wantRejected(t, err, http.StatusBadRequest, reasonMalformed)
	// A round key signed by another keeper, sent over keeper 0's connection.
	forged, _ := wire.SignBody(n.keepers[1], wire.KindRoundKey, wire.RoundKey{ConfigHash: v.ConfigHash, Keeper: n.keepers[1].Fingerprint, PublicKey: make([]byte, 32)})
	_, err = c.Do(context.Background(), http.MethodPost, wire.PathRoundKey, forged, nil)
	n.wantRejected(t, err, http.StatusBadRequest, reasonBadSignature)
	// A collector may not post keeper messages.
	_, err = n.client(t, n.collectors[1]).Do(context.Background(), http.MethodPost, wire.PathRoundKey, forged, nil)
	n.wantRejected(t, err, http.StatusForbidden, reasonWrongRole)
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
	n := newTestNet(t, 0)
	// Two collectors with w = 0.5: together they carry only σ²/2.
	n.opts.Weights = noise.Weights{Default: 0.5}
	n.opts.Statistics = []round.StatisticSpec{{Name: "relay_bytes_read", Sigma: 100, Epsilon: 1, Delta: 1e-6, MaxPerCollector: 1 << 40}}
	n.start(t)
	srv := n.server
	deadline := time.Now().Add(3 * time.Second)
	for srv.Status().NotAnnounced == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := srv.Status()
	if st.Phase != "" || !strings.Contains(st.NotAnnounced, "noise") {
		t.Fatalf("status %+v: want no round and a noise coverage refusal", st)
	}
	if got := n.counts(t, "privstats_round_refusals_total")["tally"]; got != 1 {
		t.Fatalf("tally refusals = %v, want 1", got)
	}
}

// The tally server holds a composed round to its whole (ε, δ) before it
// announces: the planner's σ is announced, σ 1% short of it is not.
func TestComposedRoundShortOfItsClaimIsNotAnnounced(t *testing.T) {
	plan, err := noise.AllocateComposed(1, 1e-6, []noise.StatisticBudget{{Name: "relay_bytes_read", L0: 1, LInf: 100, Estimate: 1e6}}, noise.HonestSet{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, short := range []float64{0, 0.01} {
		n := newTestNet(t, 0)
		n.opts.Accounting = round.AccountingComposed
		n.opts.Statistics = []round.StatisticSpec{{Name: "relay_bytes_read", Sigma: plan.Statistics[0].Sigma * (1 - short),
			Sensitivity: 100, BinsTouched: 1, MaxPerCollector: 1 << 40}}
		n.start(t)
		deadline := time.Now().Add(3 * time.Second)
		for n.server.Status().NotAnnounced == "" && n.server.Status().Phase == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		st := n.server.Status()
		switch {
		case short == 0 && (st.Phase == "" || st.NotAnnounced != ""):
			t.Errorf("the planner's σ: status %+v, want the round announced", st)
		case short > 0 && (st.Phase != "" || !strings.Contains(st.NotAnnounced, "claims more privacy than its noise gives") ||
			!strings.Contains(st.NotAnnounced, "weaker than the claimed ε = 1")):
			t.Errorf("σ 1%% short: status %+v, want no round and the composed claim refused", st)
		}
		n.stop()
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
	for _, want := range []string{"privstats: series test", "<b>announced</b>", "No published rounds yet."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("results page lacks %q", want)
		}
	}
}

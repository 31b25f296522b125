package tally

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/internal/node"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/transport"
)

// A tally server that lists a collector the keepers' operators did not
// admit (one whose key it may hold itself, to thin the noise) is refused by
// every keeper, with the reason on record.
func TestKeeperRefusesACollectorOutsideItsRoster(t *testing.T) {
	n := startServer(t, 0)
	admitted := fps(n.collectors[:1]) // the round lists both collectors
	k, err := keeper.New(keeper.Options{Options: node.Options{Identity: n.keepers[0], Tally: n.server.Addr(), TallyFingerprint: n.ts.Fingerprint,
		Keepers: fps(n.keepers), Logger: discardLogger()}, Roster: keeper.FixedRoster(admitted)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go k.Run(ctx)
	deadline := time.Now().Add(8 * time.Second)
	for len(n.server.Status().Refusals) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	reason := n.server.Status().Refusals[n.keepers[0].Fingerprint]
	if !strings.Contains(reason, "not on this keeper's roster") || !strings.Contains(reason, n.collectors[1].Fingerprint[:12]) {
		t.Fatalf("recorded refusal %q, want the roster reason naming collector %s", reason, n.collectors[1].Fingerprint[:12])
	}
	if got := n.counts(t, "privstats_round_refusals_total")["keeper"]; got != 1 {
		t.Fatalf("keeper refusals = %v, want 1", got)
	}
}

// A signed message followed by anything else, or spelled with a key in
// another case, is refused: the server and a later reader of the same
// bytes must see one message.
func TestServerRefusesTrailingDataAndCaseVariantKeys(t *testing.T) {
	n := startServer(t, 0)
	k := n.keepers[0]
	v := n.currentRound(t, n.client(t, k))
	msg, _ := wire.SignBody(k, wire.KindRoundKey, wire.RoundKey{ConfigHash: v.ConfigHash, Keeper: k.Fingerprint, PublicKey: make([]byte, 32)})
	good, _ := json.Marshal(msg)
	tlsConf, err := transport.ClientConfig(k, n.ts.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for name, body := range map[string]string{
		"trailing object": string(good) + `{"kind":"round_key"}`,
		"trailing junk":   string(good) + ` x`,
		"case-variant":    strings.Replace(string(good), `"signature"`, `"Signature"`, 1),
		"duplicate key":   strings.Replace(string(good), `{"kind":"round_key"`, `{"kind":"refusal","kind":"round_key"`, 1),
	} {
		if body == string(good) {
			t.Fatalf("%s: the edit did not apply", name)
		}
		resp, err := hc.Post("https://"+n.server.Addr()+wire.PathRoundKey, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(text), "malformed") {
			t.Errorf("%s: %d %s, want 400 malformed", name, resp.StatusCode, text)
		}
	}
	if got := n.rejected(t, "malformed"); got != 4 {
		t.Errorf("malformed rejections = %v, want 4", got)
	}
}

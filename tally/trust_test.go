package tally

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
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

// A collector whose commitment does not open to its report, values or
// masks, is found (by bisection) and left out of S; the others' sum opens.
func TestReportsWhoseCommitmentDoesNotOpenAreLeftOut(t *testing.T) {
	const n = 3
	ids := newIDs(t, 8)
	reports := map[string]wire.Report{}
	var S []string
	for i, id := range ids {
		values := []field.Element{uint64(i), 7, field.P - 1}
		masks, rho, c := commitTo(t, values, nil)
		switch i {
		case 2: // reports values other than it committed to
			values = []field.Element{uint64(i) + 1, 7, field.P - 1}
		case 5: // reports the values it committed to with another mask
			masks[1] = (masks[1] + 1) % commit.MaskBound
		}
		m, _ := wire.SignBody(id, wire.KindCommitment, wire.ReportCommitment{ConfigHash: "h", Collector: id.Fingerprint, Commitment: c})
		reports[id.Fingerprint] = wire.Report{ConfigHash: "h", Collector: id.Fingerprint, Values: values, Masks: masks, Blinding: rho, Commitment: m}
		S = append(S, id.Fingerprint)
	}
	slices.Sort(S)
	if _, err := agreementOver(n, "h", S, S, reports); err == nil {
		t.Fatal("the agreement over every report opened, with two bad commitments among them")
	}
	good, bad := openEach(n, S, reports)
	want := []string{ids[2].Fingerprint, ids[5].Fingerprint}
	slices.Sort(want)
	slices.Sort(bad)
	if !slices.Equal(bad, want) || len(good) != 6 {
		t.Fatalf("bad = %v, want %v; %d good", bad, want, len(good))
	}
	if _, err := agreementOver(n, "h", S, good, reports); err != nil {
		t.Fatalf("the agreement over the good reports: %v", err)
	}
}

// A report is stored only with one mask per counter, each below 2^40:
// the sums and openings need them. The binary report holds exactly one
// 5-byte mask per counter, so a mask of 2^40 or more, or a count of masks
// other than of values, cannot be sent: the encoder refuses to sign one
// and a body cut short, or with bytes left over, is refused as malformed.
// No refusal shows a mask's value.
func TestReportMasksAreChecked(t *testing.T) {
	r, dc := journalRound(t)
	r.Phase = round.PhaseReporting
	r.Joined[dc.Fingerprint] = true
	s := &Server{opts: Options{DataDir: t.TempDir()}, metrics: newMetrics()}
	values := []field.Element{field.P - 1}
	// Each report commits under mask 0: acceptReport checks the report's
	// form, and whether it opens its commitment only when S is chosen.
	_, rho, c := commitTo(t, values, []uint64{0})
	rc := sign(t, dc, wire.KindCommitment, wire.ReportCommitment{ConfigHash: r.Hash, Collector: dc.Fingerprint, Commitment: c})
	report := func(masks []uint64) wire.Report {
		return wire.Report{ConfigHash: r.Hash, Collector: dc.Fingerprint, Values: values, Masks: masks, Blinding: rho, Commitment: rc}
	}
	for name, masks := range map[string][]uint64{
		"no masks": nil, "two masks": {0, 0}, "mask 2^40": {commit.MaskBound}, "mask 2^64 − 1": {^uint64(0)},
	} {
		if _, err := wire.SignBody(dc, wire.KindReport, report(masks)); err == nil {
			t.Errorf("%s: signed", name)
		} else if strings.Contains(err.Error(), strconv.FormatUint(^uint64(0), 10)) {
			t.Errorf("%s: the error %q shows the mask", name, err)
		}
	}
	good := sign(t, dc, wire.KindReport, report([]uint64{commit.MaskBound - 1}))
	for name, body := range map[string][]byte{
		"cut short":        good.Body[:len(good.Body)-1],
		"with bytes after": append(slices.Clone(good.Body), 0),
	} {
		_, err := settle(s.acceptReport(r, dc.Fingerprint, dc.Sign(wire.KindReport, body)))
		if rej, ok := errors.AsType[*rejection](err); !ok || rej.reason != reasonMalformed {
			t.Errorf("%s: %v, want a malformed refusal", name, err)
		}
	}
	if len(r.Reports) != 0 {
		t.Fatalf("%d refused reports were stored", len(r.Reports))
	}
	if got, err := settle(s.acceptReport(r, dc.Fingerprint, good)); err != nil || got != stored {
		t.Fatalf("a report with mask 2^40 − 1: %v, %v; want it stored", got, err)
	}
}

// settle waits for a journaled message's batch, as the handler does.
func settle(res result, wait <-chan error, err error) (result, error) {
	if err != nil || wait == nil {
		return res, err
	}
	if err := <-wait; err != nil {
		return 0, err
	}
	return stored, nil
}

// A report's commitment must be its collector's, for this round: one signed
// by another node, replayed from another round or naming another collector
// is refused before anything is stored.
func TestReportCommitmentIsChecked(t *testing.T) {
	r, dc := journalRound(t)
	r.Phase = round.PhaseReporting
	r.Joined[dc.Fingerprint] = true
	s := &Server{opts: Options{DataDir: t.TempDir()}, metrics: newMetrics()}
	other := newIDs(t, 1)[0]
	values := []field.Element{7}
	masks, rho, c := commitTo(t, values, nil)
	report := func(signer *identity.Identity, hash, collector string) identity.Signed {
		rc := sign(t, signer, wire.KindCommitment, wire.ReportCommitment{ConfigHash: hash, Collector: collector, Commitment: c})
		return sign(t, dc, wire.KindReport, wire.Report{ConfigHash: r.Hash, Collector: dc.Fingerprint, Values: values, Masks: masks, Blinding: rho, Commitment: rc})
	}
	for name, tc := range map[string]struct {
		m    identity.Signed
		want reason
	}{
		"signed by another node":   {report(other, r.Hash, dc.Fingerprint), reasonBadSignature},
		"from another round":       {report(dc, strings.Repeat("ab", 32), dc.Fingerprint), reasonWrongRound},
		"naming another collector": {report(dc, r.Hash, other.Fingerprint), reasonWrongRound},
	} {
		_, err := settle(s.acceptReport(r, dc.Fingerprint, tc.m))
		if rej, ok := errors.AsType[*rejection](err); !ok || rej.reason != tc.want || !strings.Contains(rej.msg, "commitment") {
			t.Errorf("%s: %v, want a %s refusal about the commitment", name, err, tc.want)
		}
	}
	if len(r.Reports) != 0 {
		t.Fatalf("%d refused reports were stored", len(r.Reports))
	}
	if got, err := settle(s.acceptReport(r, dc.Fingerprint, report(dc, r.Hash, dc.Fingerprint))); err != nil || got != stored {
		t.Fatalf("the collector's own commitment: %v, %v; want it stored", got, err)
	}
}

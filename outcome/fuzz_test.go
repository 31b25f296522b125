package outcome_test

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
	"github.com/privstats/privstats/outcome"
)

// FuzzReadVerify reads arbitrary outcome files as privstats verify does
// (outcome.Read, then outcome.Verify). Seeds are the outcome vectors: one
// that verifies and fourteen forgeries. Every signature in an outcome is
// over fixed test keys the fuzzer cannot use, so whatever verifies must say
// what the verifying vector says: same round, window, collectors, gaps,
// refusals, publication and statistics (intervals and σ_total to Verify's
// relative tolerance of 1e-9, which are computed, not signed), and only
// signed commits and shares that the vector holds.
//
//	go test ./outcome -run '^$' -fuzz '^FuzzReadVerify$' -fuzztime 90s
func FuzzReadVerify(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(vectortest.Dir("outcome"), "*.txtar"))
	if err != nil || len(names) < 2 {
		f.Fatalf("outcome vectors: %v", err)
	}
	var want *outcome.Outcome
	for _, name := range names {
		a, err := txtar.ParseFile(name)
		if err != nil {
			f.Fatal(err)
		}
		b, err := vectortest.Get(a, "outcome.json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if filepath.Base(name) == "verifies.txtar" {
			if want, err = outcome.Parse(b); err != nil || outcome.Verify(want) != nil {
				f.Fatalf("the verifying vector does not verify: %v", err)
			}
		}
	}
	if want == nil {
		f.Fatal("no verifies.txtar vector")
	}
	signed := map[string]bool{}
	for _, s := range signedParts(want) {
		signed[string(s.Signature)] = true
	}
	wantMeaning := meaning(f, want)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := outcome.Parse(data)
		if err != nil || outcome.Verify(o) != nil {
			return
		}
		for _, s := range signedParts(o) {
			if !signed[string(s.Signature)] {
				t.Fatalf("verified with a %s the vector does not hold", s.Kind)
			}
		}
		if len(o.Statistics) != len(want.Statistics) {
			t.Fatalf("verified with %d statistics, want %d", len(o.Statistics), len(want.Statistics))
		}
		for i, s := range o.Statistics {
			w := want.Statistics[i]
			ok := len(s.Bins) == len(w.Bins) && near(s.TotalSigma, w.TotalSigma)
			for j := 0; ok && j < len(s.Bins); j++ {
				ok = near(s.Bins[j].CI95Low, w.Bins[j].CI95Low) && near(s.Bins[j].CI95High, w.Bins[j].CI95High)
			}
			if !ok {
				t.Fatalf("statistic %s verified with other intervals or σ_total: %+v, want %+v", s.Name, s, w)
			}
		}
		if got := meaning(t, o); !bytes.Equal(got, wantMeaning) {
			t.Fatalf("a changed outcome verifies:\n%s\nwant\n%s", got, wantMeaning)
		}
	})
}

// signedParts is every signed message in o.
func signedParts(o *outcome.Outcome) []identity.Signed {
	out := []identity.Signed{o.Announce, o.Agreement, o.Publication}
	out = append(out, o.Commits...)
	out = append(out, o.Shares...)
	for _, r := range o.RejectedShares {
		out = append(out, r.Share)
	}
	return out
}

// meaning is o's encoding without what Verify may accept in other forms:
// computed intervals and σ_total (compared to a tolerance above), the
// signed messages (checked to be genuine above) and the config (checked
// against the signed one by its canonical hash). Times are encoded in UTC,
// as instants.
func meaning(tb testing.TB, o *outcome.Outcome) []byte {
	c := *o
	c.Announce, c.Agreement, c.Publication = identity.Signed{}, identity.Signed{}, identity.Signed{}
	c.Commits, c.Shares, c.Config = nil, nil, nil
	c.RejectedShares = nil
	for _, r := range o.RejectedShares {
		r.Share = identity.Signed{}
		c.RejectedShares = append(c.RejectedShares, r)
	}
	c.Collectors.Gaps = map[string][]wire.Gap{}
	for fp, gs := range o.Collectors.Gaps {
		for _, g := range gs {
			c.Collectors.Gaps[fp] = append(c.Collectors.Gaps[fp], wire.Gap{Start: g.Start.UTC(), End: g.End.UTC()})
		}
	}
	c.Statistics = nil
	for _, s := range o.Statistics {
		s.TotalSigma = 0
		bins := s.Bins
		s.Bins = nil
		for _, b := range bins {
			b.CI95Low, b.CI95High = 0, 0
			s.Bins = append(s.Bins, b)
		}
		c.Statistics = append(c.Statistics, s)
	}
	c.PublishedAt = c.PublishedAt.UTC()
	c.Window.Start, c.Window.End = c.Window.Start.UTC(), c.Window.End.UTC()
	b, err := json.Marshal(&c)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

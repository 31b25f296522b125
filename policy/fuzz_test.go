package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/privstats/privstats/internal/vectortest"
)

// FuzzOpenLedger opens arbitrary ledger files. A ledger that opens must
// take the next round (Record) and open again holding the same history
// for every other series: a node must never lose or garble the history
// the delay rule needs by recording a round.
//
//	go test ./policy -run '^$' -fuzz '^FuzzOpenLedger$'
func FuzzOpenLedger(f *testing.F) {
	end := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	seed, _ := json.Marshal(ledgerJSON{Version: ledgerVersion, Series: map[string]*seriesState{
		"vectors": {BaselineRound: 3, Baseline: []statBaseline{{Name: "exit_streams", Sigma: 800},
			{Name: "exit_streams_by_port", Bins: []string{"web", "other"}, Sigma: 50}}, LastRound: 6, LastEnd: end, LastHash: "ab"},
		"other": {Baseline: []statBaseline{{Name: "x", Sigma: 0}}, LastEnd: end.Add(-time.Hour)},
	}})
	f.Add(seed)
	f.Add([]byte(`{"version":1,"series":{}}`))
	f.Add([]byte(`{"version":1,"series":{"s":null}}`))
	cfg := vectortest.Config()
	p := Defaults()
	hash, _ := cfg.HashHex()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), LedgerFile)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := OpenLedger(path)
		if err != nil {
			return
		}
		others := func(l *Ledger) []byte {
			m := map[string]*seriesState{}
			for name, st := range l.series {
				if name != cfg.Series {
					m[name] = st
				}
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("ledger does not encode: %v", err)
			}
			return b
		}
		before := others(l)
		_ = p.Check(cfg, l, cfg.Start) // the check a node runs first: must not panic
		if err := l.Record(cfg, p); err != nil {
			t.Fatalf("an open ledger refuses a round: %v", err)
		}
		again, err := OpenLedger(path)
		if err != nil {
			t.Fatalf("ledger written by Record does not open: %v", err)
		}
		if after := others(again); !bytes.Equal(before, after) {
			t.Fatalf("recording series %s changed others:\n%s\n%s", cfg.Series, before, after)
		}
		// The round is now the series' latest, unless the series already
		// held it or a round that ended later.
		st, ok := again.lookup(cfg.Series)
		if !ok {
			t.Fatal("the recorded series is missing")
		}
		if st.LastRound != cfg.Round && st.LastHash != hash && !cfg.End.Before(st.LastEnd) {
			t.Fatalf("round %d recorded, but the series' latest is %+v", cfg.Round, st)
		}
	})
}

// FuzzDuration parses durations as config files and JSON give them. Both
// ways must agree; what parses is not negative and prints to a form that
// parses back to the same duration.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"90s", "1h30m", "24h0m0s", "-1s", "0", "1.5h", "3", "", "9223372036854775807ns", "2562047h47m16.854775807s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var fromText, fromYAML Duration
		errText := fromText.UnmarshalText([]byte(s))
		errYAML := fromYAML.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Value: s, Line: 3})
		if (errText == nil) != (errYAML == nil) || fromText != fromYAML {
			t.Fatalf("%q: text gives %v, %v; YAML gives %v, %v", s, fromText, errText, fromYAML, errYAML)
		}
		if errText != nil {
			return
		}
		if fromText < 0 {
			t.Fatalf("%q parsed to a negative duration %v", s, fromText)
		}
		b, _ := fromText.MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != fromText {
			t.Fatalf("%q parsed to %v, printed as %q, which parses to %v, %v", s, fromText, b, back, err)
		}
	})
}

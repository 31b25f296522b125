package round_test

import (
	"bytes"
	"testing"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
)

// FuzzDecodeRoundConfig feeds arbitrary bytes to the decoder every keeper
// and collector runs on the tally server's announcement: it must never
// panic, and what it accepts must be valid and canonical.
func FuzzDecodeRoundConfig(f *testing.F) {
	good, _ := roundtest.Config(3, 2, 4, 10, 0.5).Canonical()
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add(bytes.Replace(good, []byte(`"threshold":2`), []byte(`"threshold":1`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := round.Decode(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		again, _ := cfg.Canonical()
		if !bytes.Equal(again, data) {
			t.Fatal("accepted a non-canonical encoding")
		}
		// Counter layout must be usable without panics.
		_ = cfg.CounterSigmas()
		_ = cfg.Offsets()
	})
}

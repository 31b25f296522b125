package round_test

import (
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/round/roundtest"
)

func TestConfigHashIsStableAndCanonical(t *testing.T) {
	cfg := roundtest.Config(3, 2, 4, 10, 0.5)
	h1, err := cfg.Hash()
	if err != nil {
		t.Fatal(err)
	}
	// The same instant in another zone is the same round.
	moved := *cfg
	moved.Start = cfg.Start.In(time.FixedZone("x", 3600))
	h2, _ := moved.Hash()
	if h1 != h2 {
		t.Fatal("hash depends on the time zone of the window")
	}
	enc, _ := cfg.Canonical()
	back, err := round.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if h3, _ := back.Hash(); h3 != h1 {
		t.Fatal("decoded config hashes differently")
	}
	changed := *cfg
	changed.MinCollectors = 2
	if h4, _ := changed.Hash(); h4 == h1 {
		t.Fatal("changing min_collectors did not change the hash")
	}
	// Whitespace makes an encoding non-canonical: a node must hash what it checks.
	if _, err := round.Decode(append([]byte(" "), enc...)); err == nil {
		t.Fatal("non-canonical encoding accepted")
	}
}

func TestConfigValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(c *round.Config)
		want string
	}{
		"threshold not a majority": {func(c *round.Config) { c.Threshold = 1 }, "must exceed half"},
		"x out of order":           {func(c *round.Config) { c.Keepers[0].X = 2 }, "x-coordinates are 1..N"},
		"bad fingerprint":          {func(c *round.Config) { c.Collectors[0].Fingerprint = "ABC" }, "not 64 hex digits"},
		"duplicate collector":      {func(c *round.Config) { c.Collectors[1] = c.Collectors[0] }, "listed twice"},
		"negative sigma":           {func(c *round.Config) { c.Statistics[0].Sigma = -1 }, "sigma"},
		"empty window":             {func(c *round.Config) { c.End = c.Start }, "not after start"},
		"min_collectors too high":  {func(c *round.Config) { c.MinCollectors = 99 }, "min_collectors"},
		"repeated bin":             {func(c *round.Config) { c.Statistics[1].Bins[1] = "web" }, "repeated"},
		"overflow":                 {func(c *round.Config) { c.Statistics[0].MaxPerCollector = 1 << 62 }, "could overflow"},
		"too many collectors": {func(c *round.Config) {
			c.Collectors = append(c.Collectors, make([]round.CollectorSpec, round.MaxCollectors+1-len(c.Collectors))...)
		}, "at most 1048576"},
	} {
		cfg := roundtest.Config(3, 2, 4, 10, 1)
		tc.edit(cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", name, err, tc.want)
		}
	}
	if err := roundtest.Config(5, 3, 10, 10, 1).Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

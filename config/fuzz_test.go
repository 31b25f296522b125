package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/policy"
)

// fuzzKinds is every type config.Load reads, as a fresh value.
var fuzzKinds = []func() any{
	func() any { return new(config.Tally) },
	func() any { return new(config.Keeper) },
	func() any { return new(config.Collector) },
	func() any { return new(config.PrivacyPlan) },
	func() any { p := policy.Defaults(); return &p },
}

// FuzzLoad loads arbitrary YAML as each kind of config file. What loads
// must load again from its own encoding to the same value (so nothing
// depends on how it was written, and defaults and resolved paths are
// stable), and a tally file's statistics must
// resolve, with numeric bins increasing.
//
//	go test ./config -run '^$' -fuzz '^FuzzLoad$'
func FuzzLoad(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("..", "testdata", "*.yaml"))
	if err != nil || len(names) < 5 {
		f.Fatalf("config examples: %v", err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for k := range fuzzKinds {
			f.Add(uint8(k), b)
		}
	}
	f.Add(uint8(0), []byte("statistics:\n  - name: exit_streams_by_bytes\n    bins: [0, 1024, 1024]\n"))
	f.Add(uint8(4), []byte("min_round_length: 90s\ndelay_period: -1h\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		newValue := fuzzKinds[int(kind)%len(fuzzKinds)]
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		v := newValue()
		if config.Load(path, v) != nil {
			return
		}
		if tc, ok := v.(*config.Tally); ok {
			checkTally(t, tc)
		}
		enc, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("loaded %T does not encode: %v", v, err)
		}
		if err := os.WriteFile(path, enc, 0o600); err != nil {
			t.Fatal(err)
		}
		again := newValue()
		if err := config.Load(path, again); err != nil {
			t.Fatalf("%T loaded from\n%s\nbut not from its encoding\n%s\n%v", v, data, enc, err)
		}
		// Compared encoded: a list given empty comes back empty where it
		// was nil, which means the same.
		if enc2, _ := yaml.Marshal(again); !bytes.Equal(enc, enc2) {
			t.Fatalf("%T changes on a round trip:\n%s\n%s", v, enc, enc2)
		}
	})
}

func checkTally(t *testing.T, tc *config.Tally) {
	if _, err := tc.StatisticSpecs(); err != nil {
		t.Fatalf("a tally file loads with statistics that do not resolve: %v", err)
	}
	for _, s := range tc.Statistics {
		var last int64
		for i, b := range s.Bins {
			v, err := strconv.ParseInt(b, 10, 64)
			if err != nil {
				break
			}
			if i > 0 && v <= last {
				t.Fatalf("statistic %s loads with bin edges that do not increase: %q", s.Name, s.Bins)
			}
			last = v
		}
	}
	if tc.Policy.MinRoundLength < 0 || tc.Policy.DelayPeriod < 0 {
		t.Fatalf("negative policy duration: %+v", tc.Policy)
	}
}

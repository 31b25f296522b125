package stats_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/stats"
)

// FuzzResolveBins re-bins a numeric histogram with arbitrary bins, one a
// line (lower edges or "[lo,hi)" labels), as a tally file's bins override
// does. What Resolve accepts must be as many canonical, contiguous,
// increasing ranges as were given, which Resolve accepts again unchanged
// and which compile to a program with one counter a bin.
//
//	go test ./stats -run '^$' -fuzz '^FuzzResolveBins$'
func FuzzResolveBins(f *testing.F) {
	var numeric []string
	for _, s := range stats.Catalogue() {
		if s.Bins.IsNumeric() {
			numeric = append(numeric, s.Name)
		}
	}
	if len(numeric) == 0 {
		f.Fatal("the catalogue has no numeric histogram")
	}
	for _, bins := range []string{"0\n1024\n65536", "[0,1024)\n[1024,inf)", "[ 0 , 10 )\n[10,+INF)", "[0,5)\n[5,7)",
		"0\n0", "5\n3", "[0,10)\n[11,inf)", "[0,inf)\n[5,inf)", "18446744073709551615", "[0,18446744073709551615)", "1\n[1,2)", ""} {
		f.Add(uint8(0), bins)
	}
	f.Fuzz(func(t *testing.T, which uint8, bins string) {
		name := numeric[int(which)%len(numeric)]
		override := strings.Split(bins, "\n")
		spec, err := stats.Resolve(name, override)
		if err != nil {
			return
		}
		if len(spec.Bins) != len(override) {
			t.Fatalf("%q resolved to %d bins %q", override, len(spec.Bins), spec.Bins)
		}
		var top uint64
		for i, label := range spec.Bins {
			var lo uint64
			var hi string
			if _, err := fmt.Sscanf(label, "[%d,%s", &lo, &hi); err != nil || !strings.HasSuffix(hi, ")") {
				t.Fatalf("bin %d is labelled %q", i, label)
			}
			if i > 0 && lo != top {
				t.Fatalf("bins %q are not contiguous", spec.Bins)
			}
			hi = strings.TrimSuffix(hi, ")")
			if hi == "inf" {
				if i != len(spec.Bins)-1 {
					t.Fatalf("bins %q: an open bin is not the last", spec.Bins)
				}
				continue
			}
			if _, err := fmt.Sscan(hi, &top); err != nil || top <= lo || fmt.Sprintf("[%d,%d)", lo, top) != label {
				t.Fatalf("bin %d is labelled %q", i, label)
			}
		}
		again, err := stats.Resolve(name, spec.Bins)
		if err != nil || !slices.Equal(again.Bins, spec.Bins) {
			t.Fatalf("resolved bins %q resolve again to %q, %v", spec.Bins, again.Bins, err)
		}
		if spec.BinsTouched < 1 || spec.BinsTouched > int64(len(spec.Bins)) {
			t.Fatalf("bins touched %d for %d bins", spec.BinsTouched, len(spec.Bins))
		}
		spec.Sigma, spec.Epsilon, spec.Delta = 1, 1, 1e-6
		if p, err := stats.Compile([]round.StatisticSpec{spec}); err != nil || p.NumCounters() != len(spec.Bins) {
			t.Fatalf("resolved bins %q do not compile to one counter a bin: %v", spec.Bins, err)
		}
	})
}

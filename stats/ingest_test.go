package stats_test

import (
	"bufio"
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// sampleLines returns the event lines of testdata/sample.trace without
// their timestamps, leaving out its deliberately malformed line.
func sampleLines(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(sampleTrace)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Bytes()
		if i := bytes.Index(l, []byte(" 650 ")); i >= 0 && !bytes.HasSuffix(l, []byte("650 BW 17")) {
			out = append(out, append([]byte(nil), l[i+1:]...))
		}
	}
	return out
}

// Counting a well-formed event never allocates: a collector's hot path
// must not make garbage in proportion to the relay's traffic.
func TestCountDoesNotAllocate(t *testing.T) {
	p, err := stats.Compile(allSpecs(t))
	if err != nil {
		t.Fatal(err)
	}
	// Converted to the interface once: boxing a slice allocates.
	var c stats.Counters = make(counts, p.NumCounters())
	lines := append(sampleLines(t), source.SyntheticTrace(20000, 3)...)
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	run := func() {
		for i, l := range lines {
			p.CountAt(at.Add(time.Duration(i)*time.Millisecond), l, c)
		}
	}
	run() // let the parsers' reusable slices grow
	if allocs := testing.AllocsPerRun(3, run); allocs != 0 {
		t.Errorf("%v allocations per %d events", allocs, len(lines))
	}
	if p.Malformed() != 0 {
		t.Errorf("Malformed() = %d", p.Malformed())
	}
}

// BenchmarkIngest measures the collector's hot path: classify, parse,
// dispatch and count one event, with every catalogue statistic compiled.
//
//	go test ./stats -run '^$' -bench Ingest -benchmem
func BenchmarkIngest(b *testing.B) {
	for _, tc := range []struct {
		name  string
		lines [][]byte
	}{
		{"synthetic", source.SyntheticTrace(100000, 1)},
		{"sample", sampleLines(b)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := stats.Compile(allSpecs(b))
			if err != nil {
				b.Fatal(err)
			}
			var c stats.Counters = make(counts, p.NumCounters())
			at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
			for _, l := range tc.lines {
				p.CountAt(at, l, c)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.CountAt(at.Add(time.Duration(i)*time.Microsecond), tc.lines[i%len(tc.lines)], c)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

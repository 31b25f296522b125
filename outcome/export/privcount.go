package export

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

// PrivCount's tally server writes each round's totals twice: a "tallies"
// file with only the counts, kept for its analysis and plotting scripts
// (`privcount plot -d privcount.tallies.*.json`), and an "outcome" file
// that wraps the same counts as "Tally" beside a "Context". The tallies
// file is json.dump(counts, sort_keys=True, indent=4) of
//
//	{"CounterName": {"bins": [[lo, hi, count], ...]}, ...}
//
// where lo and hi are floats (Python's float('inf') is written Infinity,
// as Python's json module does, although it is not strict JSON) and count
// the signed noisy total. A single counter has one bin, [-Infinity,
// Infinity]. See privcount/tally_server.py (write_results) and
// privcount/counter.py (SecureCounters) in github.com/privcount/privcount.
//
// privstats maps its statistics onto that shape: a single counter keeps
// the statistic's name with the one unbounded bin; a histogram keeps its
// name with one [lo, hi, count] per bin; categories, which PrivCount
// counts as separate counters (ExitWebStreamCount, …), become one counter
// each, named STATISTIC_CATEGORY with the unbounded bin. σ and the
// intervals are not in PrivCount's tallies file (its outcome file's
// Context carries the noise config); use the CSV or JSON export for them.

// TalliesFileName is the name PrivCount gives a round's tallies file:
// privcount.tallies.BEGIN-END.json, in Unix seconds.
func TalliesFileName(o *outcome.Outcome) string {
	return fmt.Sprintf("privcount.tallies.%d-%d.json", o.Window.Start.Unix(), o.Window.End.Unix())
}

// privcountBin is one [lo, hi, count] triplet.
type privcountBin struct {
	lo, hi float64
	count  int64
}

// Tallies is a round's totals as PrivCount counters: name to bins.
func Tallies(o *outcome.Outcome) map[string][]privcountBin {
	out := map[string][]privcountBin{}
	unbounded := func(n int64) []privcountBin { return []privcountBin{{math.Inf(-1), math.Inf(1), n}} }
	for _, s := range o.Statistics {
		switch {
		case len(s.Bins) == 1 && !isRange(s.Bins[0].Label):
			if s.Bins[0].Label == "total" {
				out[s.Name] = unbounded(s.Bins[0].NoisyTotal)
			} else {
				out[s.Name+"_"+s.Bins[0].Label] = unbounded(s.Bins[0].NoisyTotal)
			}
		case isRange(s.Bins[0].Label):
			bins := make([]privcountBin, len(s.Bins))
			for i, b := range s.Bins {
				lo, hi, open, _ := stats.BinRange(b.Label)
				bins[i] = privcountBin{float64(lo), float64(hi), b.NoisyTotal}
				if open {
					bins[i].hi = math.Inf(1)
				}
			}
			out[s.Name] = bins
		default:
			for _, b := range s.Bins {
				out[s.Name+"_"+b.Label] = unbounded(b.NoisyTotal)
			}
		}
	}
	return out
}

func isRange(label string) bool {
	_, _, _, ok := stats.BinRange(label)
	return ok
}

// WritePrivCount writes o's totals as PrivCount's tallies file, laid out
// as Python's json.dump(sort_keys=True, indent=4) lays it out.
func WritePrivCount(w io.Writer, o *outcome.Outcome) error {
	t := Tallies(o)
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	slices.Sort(names)
	bw := bufio.NewWriter(w)
	bw.WriteString("{")
	for i, n := range names {
		if i > 0 {
			bw.WriteString(",")
		}
		fmt.Fprintf(bw, "\n    %s: {\n        \"bins\": [", strconv.Quote(n))
		for j, b := range t[n] {
			if j > 0 {
				bw.WriteString(",")
			}
			fmt.Fprintf(bw, "\n            [\n                %s,\n                %s,\n                %d\n            ]", pyFloat(b.lo), pyFloat(b.hi), b.count)
		}
		bw.WriteString("\n        ]\n    }")
	}
	if len(names) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("}")
	return bw.Flush()
}

// pyFloat writes x as Python's repr does for the values bins hold: whole
// numbers below 1e16 with ".0", larger ones in exponent form, infinities
// as Infinity and -Infinity.
func pyFloat(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	case x == math.Trunc(x) && math.Abs(x) < 1e16:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

package site

import (
	"encoding/csv"
	"io"
	"path"
	"strconv"
	"time"

	"github.com/privstats/privstats/stats"
)

// csvHeader is the long form a plot's CSV has: one row per round and bin.
var csvHeader = []string{"series", "round", "window_start", "window_end", "statistic", "bin", "unit",
	"noisy_total", "sigma", "ci95_low", "ci95_high", "epsilon", "delta", "collectors"}

// WriteCSV writes the rows of one statistic in the given rounds, in their
// order; sigma is the σ the totals carry. A round without the statistic
// has no rows.
func WriteCSV(w io.Writer, statistic string, rounds []Round) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	unit := stats.Unit(statistic)
	for _, r := range rounds {
		s := find(r.Outcome, statistic)
		if s == nil {
			continue
		}
		for _, b := range s.Bins {
			cw.Write([]string{r.Series, strconv.FormatUint(r.Round, 10), r.Window.Start.Format(time.RFC3339), r.Window.End.Format(time.RFC3339),
				s.Name, b.Label, unit, strconv.FormatInt(b.NoisyTotal, 10), f(s.TotalSigma), f(b.CI95Low), f(b.CI95High),
				f(s.Epsilon), f(s.Delta), strconv.Itoa(r.Collectors.Count)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvPath is where a plot's CSV is, relative to the page: kind "series"
// (every round of series owner) or "round" (round owner alone). The tally
// server serves the same paths the static export writes.
func csvPath(kind, owner, statistic string) string {
	return path.Join("csv", kind, owner, statistic+".csv")
}

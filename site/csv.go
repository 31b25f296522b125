package site

import (
	"io"
	"path"

	"github.com/privstats/privstats/outcome/export"
)

// WriteCSV writes the rows of one statistic in the given rounds, in their
// order, in the long form every privstats CSV has (export.WriteCSV): one
// row per round and bin; sigma is the σ the totals carry. A round without
// the statistic has no rows.
func WriteCSV(w io.Writer, statistic string, rounds []Round) error {
	all := make([]export.Round, len(rounds))
	for i, r := range rounds {
		all[i] = export.Round{Name: r.Name, Outcome: r.Outcome}
	}
	return export.WriteCSV(w, export.Only(all, statistic))
}

// csvPath is where a plot's CSV is, relative to the page: kind "series"
// (every round of series owner) or "round" (round owner alone). The tally
// server serves the same paths the static export writes.
func csvPath(kind, owner, statistic string) string {
	return path.Join("csv", kind, owner, statistic+".csv")
}

package stats

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// catalogueEntry is a statistic as `privstats stats --json` shows it.
type catalogueEntry struct {
	Name            string   `json:"name"`
	Source          string   `json:"source"`
	Description     string   `json:"description"`
	Events          []string `json:"events,omitempty"`
	Metric          string   `json:"metric,omitempty"`
	Unit            string   `json:"unit"`
	BinKind         string   `json:"bin_kind"` // "single", "categories" or "histogram"
	Bins            []string `json:"bins,omitempty"`
	BinUnit         string   `json:"bin_unit,omitempty"`
	Sensitivity     float64  `json:"sensitivity"`
	BinsTouched     int64    `json:"bins_touched"`
	Estimate        float64  `json:"estimate_per_day"`
	MaxPerCollector uint64   `json:"max_per_collector"`
}

// WriteCatalogue prints the catalogue: a table of name, source, bins,
// sensitivity and description, or with asJSON every field as a JSON array.
func WriteCatalogue(w io.Writer, asJSON bool) error {
	if asJSON {
		out := make([]catalogueEntry, 0, len(catalogue))
		for _, s := range catalogue {
			out = append(out, catalogueEntry{
				Name: s.Name, Source: s.Source, Description: s.Description,
				Events: s.Events, Metric: s.Metric, Unit: s.Unit,
				BinKind: binKind(s.Bins), Bins: s.Bins.Labels(), BinUnit: s.BinUnit,
				Sensitivity: s.Sensitivity, BinsTouched: s.BinsTouched,
				Estimate: s.Estimate, MaxPerCollector: s.MaxPerCollector,
			})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tBINS\tSENSITIVITY\tDESCRIPTION")
	for _, s := range catalogue {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Source, binSummary(s.Bins),
			strconv.FormatFloat(s.Sensitivity, 'g', 4, 64)+" "+s.Unit, s.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nSensitivity is the default action bound (one user's day) per bin. Sources: "+
		SourceControl+" = stock tor control port; "+SourceTestNetwork+" = control port with TestingTorNetwork; "+
		SourcePrivCount+" = PrivCount-patched tor; "+SourceMetricsPort+" = tor's MetricsPort. "+
		"Histogram bins are lower edges; a round may choose its own.")
	return err
}

func binKind(b Bins) string {
	switch {
	case b.IsScalar():
		return "single"
	case b.IsNumeric():
		return "histogram"
	}
	return "categories"
}

// binSummary is a short form of the bins for the table.
func binSummary(b Bins) string {
	switch {
	case b.IsScalar():
		return "-"
	case b.IsNumeric():
		e := make([]string, len(b.Edges))
		for i, v := range b.Edges {
			e[i] = strconv.FormatUint(v, 10)
		}
		return "edges " + strings.Join(e, ",") + ",inf"
	}
	return strings.Join(b.Categories, "|")
}

// Package export turns published outcomes into the forms researchers and
// monitoring read: a long-form CSV (one row per round × statistic × bin),
// JSON with each round's metadata, PrivCount's tallies JSON, and the
// Prometheus families the tally server serves and `privstats results
// --openmetrics` writes for backfilling. It also reads a set of published
// rounds from a data directory or from a tally server's results API.
//
// It only reformats what an outcome already publishes (noisy totals, σ,
// intervals, ε/δ, who took part); it neither checks signatures (that is
// outcome.Verify) nor computes anything new from the totals.
package export

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

// Round is one published round and the name it is published under
// (SERIES-NNNNNN, the outcome file's name without ".json").
type Round struct {
	Name    string
	Outcome *outcome.Outcome
}

// sortRounds orders rounds by series, then round number.
func sortRounds(rs []Round) {
	slices.SortFunc(rs, func(a, b Round) int {
		if c := cmp.Compare(a.Outcome.Series, b.Outcome.Series); c != 0 {
			return c
		}
		return cmp.Compare(a.Outcome.Round, b.Outcome.Round)
	})
}

// Unit is what one count of the named statistic is ("bytes",
// "connections", …), from the catalogue; "units" for a statistic the
// catalogue does not know (a round from another release).
func Unit(statistic string) string {
	if u := stats.Unit(statistic); u != "" {
		return u
	}
	return "units"
}

// CSVHeader is the long form's columns, in order.
var CSVHeader = []string{"series", "round", "window_start", "window_end", "statistic", "bin", "unit",
	"noisy_total", "sigma", "ci95_low", "ci95_high", "epsilon", "delta", "collectors"}

// WriteCSV writes rounds in long form: a header, then one row per round ×
// statistic × bin, oldest round first. sigma is the σ the published
// total actually carries (outcome.Statistic.TotalSigma); epsilon and delta
// are the statistic's; collectors is how many were in the released set.
func WriteCSV(w io.Writer, rounds []Round) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, r := range rounds {
		o := r.Outcome
		for _, s := range o.Statistics {
			for _, b := range s.Bins {
				cw.Write([]string{o.Series, strconv.FormatUint(o.Round, 10), timestamp(o.Window.Start), timestamp(o.Window.End),
					s.Name, b.Label, Unit(s.Name), strconv.FormatInt(b.NoisyTotal, 10), float(s.TotalSigma),
					float(b.CI95Low), float(b.CI95High), float(s.Epsilon), float(s.Delta), strconv.Itoa(o.Collectors.Count)})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// Only narrows rounds to one statistic: each round keeps only that
// statistic's totals, and rounds without it are left out. The outcomes are
// copied, not changed.
func Only(rounds []Round, statistic string) []Round {
	var out []Round
	for _, r := range rounds {
		i := slices.IndexFunc(r.Outcome.Statistics, func(s outcome.Statistic) bool { return s.Name == statistic })
		if i < 0 {
			continue
		}
		o := *r.Outcome
		o.Statistics = o.Statistics[i : i+1 : i+1]
		out = append(out, Round{Name: r.Name, Outcome: &o})
	}
	return out
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func float(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// RoundJSON is a round as `results --json` and /api/v1/rounds/latest
// summarise it: its metadata, then its totals with units.
type RoundJSON struct {
	Name        string          `json:"name"`
	Series      string          `json:"series"`
	Round       uint64          `json:"round"`
	Window      outcome.Window  `json:"window"`
	Epsilon     float64         `json:"epsilon"`
	Delta       float64         `json:"delta"`
	Collectors  int             `json:"collectors"`
	Keepers     int             `json:"keepers"`
	Threshold   int             `json:"threshold"`
	PublishedAt time.Time       `json:"published_at"`
	ConfigHash  string          `json:"config_hash"`
	Statistics  []StatisticJSON `json:"statistics"`
}

// StatisticJSON is one statistic's totals with its unit and, for a
// histogram, what its bin edges measure.
type StatisticJSON struct {
	outcome.Statistic
	Unit    string `json:"unit"`
	BinUnit string `json:"bin_unit,omitempty"`
}

// Summary is r's JSON form. ε and δ are the round's budget (the config's);
// each statistic carries its own share of it.
func Summary(r Round) RoundJSON {
	o := r.Outcome
	j := RoundJSON{Name: r.Name, Series: o.Series, Round: o.Round, Window: o.Window,
		Collectors: o.Collectors.Count, PublishedAt: o.PublishedAt, ConfigHash: o.ConfigHash,
		Statistics: make([]StatisticJSON, len(o.Statistics))}
	if c := o.Config; c != nil {
		j.Epsilon, j.Delta, j.Keepers, j.Threshold = c.Epsilon, c.Delta, len(c.Keepers), c.Threshold
	}
	for i, s := range o.Statistics {
		j.Statistics[i] = StatisticJSON{Statistic: s, Unit: Unit(s.Name), BinUnit: stats.BinUnit(s.Name)}
	}
	return j
}

// WriteJSON writes one round's summary, or with several (or none) an
// array of them, indented.
func WriteJSON(w io.Writer, rounds []Round, one bool) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if one && len(rounds) == 1 {
		return enc.Encode(Summary(rounds[0]))
	}
	out := make([]RoundJSON, len(rounds))
	for i, r := range rounds {
		out[i] = Summary(r)
	}
	return enc.Encode(out)
}

// Package replay previews, on the operator's own machine, what a collector
// would count from a recorded trace of its relay's events.
//
// The preview shows raw counts: no blinding, no noise. They describe one
// relay's traffic and are exactly what privstats exists to keep private,
// so the preview says so on every output, never leaves the machine, and is
// meant only for an operator checking that a recording and the statistics
// work before joining a round.
package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// Notice heads every preview.
const Notice = "LOCAL PREVIEW of your own relay's data: raw counts, without blinding or noise, " +
	"computed on this machine from the trace. Nothing was sent anywhere. In a round these " +
	"numbers stay hidden; do not publish or share them."

// Preview counts the named statistics (all of the catalogue if none are
// named) over the trace at tracePath and writes the raw counts to w, as a
// "table" or as "json".
func Preview(ctx context.Context, tracePath string, statNames []string, w io.Writer, format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("replay: unknown format %q (want table or json)", format)
	}
	if len(statNames) == 0 {
		for _, s := range stats.Catalogue() {
			statNames = append(statNames, s.Name)
		}
	}
	specs := make([]round.StatisticSpec, len(statNames))
	for i, name := range statNames {
		spec, err := stats.Resolve(name, nil)
		if err != nil {
			return err
		}
		specs[i] = spec
	}
	prog, err := stats.Compile(specs)
	if err != nil {
		return err
	}
	counters := make(plainCounters, prog.NumCounters())
	var c stats.Counters = counters
	var r report
	err = source.Trace(tracePath, source.Fast).Run(ctx, nil,
		func(at time.Time, line []byte) {
			if r.Events == 0 {
				r.First = at.UTC()
			}
			r.Last = at.UTC()
			r.Events++
			prog.CountAt(at, line, c)
		},
		func(start, end time.Time) {
			r.Gaps = append(r.Gaps, gap{Start: start.UTC(), End: end.UTC()})
		})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.LocalPreview, r.Notice, r.Trace = true, Notice, tracePath
	r.Malformed, r.Evictions = prog.Malformed(), prog.Evictions()
	i := 0
	for _, spec := range specs {
		st, _ := stats.Lookup(spec.Name)
		s := statistic{Name: spec.Name, Source: st.Source, Unit: st.Unit}
		for b := range spec.Counters() {
			s.Bins = append(s.Bins, bin{Label: spec.BinLabel(b), Count: counters[i]})
			i++
		}
		r.Statistics = append(r.Statistics, s)
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&r)
	}
	return r.writeTable(w)
}

// plainCounters are the preview's counters: plain numbers.
type plainCounters []uint64

func (c plainCounters) Add(i int, n uint64) { c[i] += n }

type report struct {
	LocalPreview bool        `json:"local_preview"`
	Notice       string      `json:"notice"`
	Trace        string      `json:"trace"`
	Events       uint64      `json:"events"`
	Malformed    uint64      `json:"malformed_events"`
	Evictions    uint64      `json:"connection_table_evictions"`
	First        time.Time   `json:"first_event,omitzero"`
	Last         time.Time   `json:"last_event,omitzero"`
	Gaps         []gap       `json:"gaps,omitempty"`
	Statistics   []statistic `json:"statistics"`
}

type gap struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

type statistic struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Unit   string `json:"unit"`
	Bins   []bin  `json:"bins"`
}

type bin struct {
	Label string `json:"label"`
	Count uint64 `json:"count"`
}

func (r *report) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "%s\n\n", wrap(Notice, 78))
	fmt.Fprintf(w, "trace:     %s\n", r.Trace)
	fmt.Fprintf(w, "events:    %d", r.Events)
	if r.Events > 0 {
		fmt.Fprintf(w, " (%s to %s)", r.First.Format(time.RFC3339), r.Last.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nmalformed: %d (skipped)\n", r.Malformed)
	for _, g := range r.Gaps {
		fmt.Fprintf(w, "gap:       %s to %s (the recorder saw no events)\n", g.Start.Format(time.RFC3339), g.End.Format(time.RFC3339))
	}
	if r.Evictions > 0 {
		fmt.Fprintf(w, "evicted:   %d open connections from the full connection table (their lifetimes are not counted)\n", r.Evictions)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATISTIC\tSOURCE\tBIN\tCOUNT\tUNIT")
	for _, s := range r.Statistics {
		for _, b := range s.Bins {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Name, s.Source, b.Label, b.Count, s.Unit)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", "LOCAL PREVIEW: raw counts of your own relay; nothing was sent.")
	return err
}

// wrap breaks text into lines of at most width bytes at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(text) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

package export

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

// The Prometheus families of a published round. The tally server's
// /metrics serves them for its latest outcome (Collector) and `privstats
// results --openmetrics` writes them for every round, stamped with the
// round's window end (WriteOpenMetrics), so backfilled history and live
// scrapes are the same series.
//
// Totals get one family per unit (privstats_estimate_bytes,
// privstats_estimate_connections, …) with the statistic as a label, as
// Prometheus's naming guidance asks: a family carries a single unit and
// quantity, its name ends in the unit, and label values (statistics) are
// not put into names. A family per statistic would have made names out of
// round configs, so every new statistic would need new rules and
// dashboard queries; a single family for all (as before) mixed bytes with
// connections. Statistic names are a bounded label set (the catalogue).
//
// A histogram bin keeps its readable label (bin="[10,60)") and also gets
// bin_upper, its upper edge as a number ("+Inf" for the open last bin,
// empty for categories and single counters), so Grafana can sort bins
// numerically and draw heatmaps. It is not called le: le belongs to
// Prometheus histograms, whose buckets are cumulative, and these bins are
// not (promtool check metrics refuses le on a gauge).
const (
	familyEstimate = "privstats_estimate_"
	familyCILow    = "privstats_estimate_ci95_low_"
	familyCIHigh   = "privstats_estimate_ci95_high_"
	familySigma    = "privstats_estimate_sigma_"
)

// Families of a published round that do not depend on the unit.
const (
	FamilyStatisticEpsilon = "privstats_statistic_epsilon"
	FamilyStatisticDelta   = "privstats_statistic_delta"
	FamilyOutcomeRound     = "privstats_outcome_round"
	FamilyWindowStart      = "privstats_round_window_start_timestamp_seconds"
	FamilyWindowEnd        = "privstats_round_window_end_timestamp_seconds"
	FamilyOutcomeEpsilon   = "privstats_outcome_epsilon"
	FamilyOutcomeDelta     = "privstats_outcome_delta"
	FamilyOutcomeCollector = "privstats_outcome_collectors"
)

// EstimateFamily names the family of noisy totals counted in unit.
func EstimateFamily(unit string) string { return familyEstimate + metricWord(unit) }

// metricWord makes a unit usable in a metric name.
func metricWord(unit string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(unit))
}

// Sample is one gauge value of a published round.
type Sample struct {
	Family string
	Labels []Label
	Value  float64
}

// Label is one label of a sample, in the family's fixed order.
type Label struct{ Name, Value string }

// Help says what a family is.
func Help(family string) string {
	switch family {
	case FamilyStatisticEpsilon:
		return "ε of the statistic in the latest published round (its share of the round's budget)."
	case FamilyStatisticDelta:
		return "δ of the statistic in the latest published round."
	case FamilyOutcomeRound:
		return "Round number of the latest published outcome."
	case FamilyWindowStart:
		return "Start of the counting window of the latest published round (Unix time)."
	case FamilyWindowEnd:
		return "End of the counting window of the latest published round (Unix time); the totals describe the window that ends here."
	case FamilyOutcomeEpsilon:
		return "Privacy budget ε of the latest published round (its config)."
	case FamilyOutcomeDelta:
		return "Privacy budget δ of the latest published round (its config)."
	case FamilyOutcomeCollector:
		return "Collectors in the set whose totals the latest published round released."
	}
	for _, f := range []struct{ prefix, help string }{
		{familyCILow, "Lower bound of the 95% confidence interval of the published noisy total, in "},
		{familyCIHigh, "Upper bound of the 95% confidence interval of the published noisy total, in "},
		{familySigma, "Standard deviation of the noise the published totals carry (that of the released set), in "},
		{familyEstimate, "Published noisy network-wide total of the latest round, per statistic and bin, in "},
	} {
		if unit, ok := strings.CutPrefix(family, f.prefix); ok {
			return f.help + unit + "."
		}
	}
	return family
}

// Samples are the gauges a published round gives Prometheus.
func Samples(o *outcome.Outcome) []Sample {
	series := Label{"series", o.Series}
	var out []Sample
	add := func(family string, v float64, labels ...Label) {
		out = append(out, Sample{Family: family, Labels: append([]Label{series}, labels...), Value: v})
	}
	add(FamilyOutcomeRound, float64(o.Round))
	add(FamilyWindowStart, float64(o.Window.Start.Unix()))
	add(FamilyWindowEnd, float64(o.Window.End.Unix()))
	add(FamilyOutcomeCollector, float64(o.Collectors.Count))
	if c := o.Config; c != nil {
		add(FamilyOutcomeEpsilon, c.Epsilon)
		add(FamilyOutcomeDelta, c.Delta)
	}
	for _, s := range o.Statistics {
		unit := metricWord(Unit(s.Name))
		stat := Label{"statistic", s.Name}
		add(FamilyStatisticEpsilon, s.Epsilon, stat)
		add(FamilyStatisticDelta, s.Delta, stat)
		add(familySigma+unit, s.TotalSigma, stat)
		for _, b := range s.Bins {
			labels := []Label{stat, {"bin", b.Label}, {"bin_upper", BinUpper(b.Label)}}
			add(familyEstimate+unit, float64(b.NoisyTotal), labels...)
			add(familyCILow+unit, b.CI95Low, labels...)
			add(familyCIHigh+unit, b.CI95High, labels...)
		}
	}
	return out
}

// BinUpper is a bin's upper edge as Prometheus writes bounds: the number,
// "+Inf" for an open last bin, or "" for a category or single counter.
func BinUpper(label string) string {
	_, hi, open, ok := stats.BinRange(label)
	switch {
	case !ok:
		return ""
	case open:
		return "+Inf"
	}
	return strconv.FormatUint(hi, 10)
}

// Collector serves the latest published round's samples on /metrics.
type Collector struct {
	mu     sync.Mutex
	latest *outcome.Outcome
}

// Set makes o the round served.
func (c *Collector) Set(o *outcome.Outcome) {
	c.mu.Lock()
	c.latest = o
	c.mu.Unlock()
}

// Describe sends nothing: the families depend on the round's statistics,
// so the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the latest round's samples.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	o := c.latest
	c.mu.Unlock()
	if o == nil {
		return
	}
	for _, s := range Samples(o) {
		names := make([]string, len(s.Labels))
		values := make([]string, len(s.Labels))
		for i, l := range s.Labels {
			names[i], values[i] = l.Name, l.Value
		}
		desc := prometheus.NewDesc(s.Family, Help(s.Family), names, nil)
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, s.Value, values...)
	}
}

// WriteOpenMetrics writes every round's samples in the OpenMetrics text
// format, each stamped with its round's window end, for `promtool tsdb
// create-blocks-from openmetrics`. Families are written whole, each series'
// points in time order, and the text ends with "# EOF".
func WriteOpenMetrics(w io.Writer, rounds []Round) error {
	type point struct {
		value float64
		at    int64
	}
	type series struct {
		labels string
		points []point
	}
	var families []string
	bySeries := map[string][]*series{}
	index := map[string]*series{}
	for _, r := range rounds {
		at := r.Outcome.Window.End.Unix()
		for _, s := range Samples(r.Outcome) {
			ls := labelText(s.Labels)
			key := s.Family + ls
			sr := index[key]
			if sr == nil {
				if _, seen := bySeries[s.Family]; !seen {
					families = append(families, s.Family)
				}
				sr = &series{labels: ls}
				index[key] = sr
				bySeries[s.Family] = append(bySeries[s.Family], sr)
			}
			sr.points = append(sr.points, point{s.Value, at})
		}
	}
	bw := bufio.NewWriter(w)
	for _, f := range families {
		bw.WriteString("# TYPE " + f + " gauge\n")
		bw.WriteString("# HELP " + f + " " + escape(Help(f), false) + "\n")
		for _, sr := range bySeries[f] {
			for _, p := range sr.points {
				bw.WriteString(f + sr.labels + " " + number(p.value) + " " + strconv.FormatInt(p.at, 10) + "\n")
			}
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

func labelText(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + `="` + escape(l.Value, true) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

// escape escapes a label value or help text as OpenMetrics requires.
func escape(s string, quote bool) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	if quote {
		r = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	}
	return r.Replace(s)
}

func number(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

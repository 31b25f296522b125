package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/internal/suggest"
	"github.com/privstats/privstats/torctl"
)

// Counters is where a Program adds increments: a collector's blinded
// counters during a round, or plain numbers in a local preview.
type Counters interface {
	Add(counter int, n uint64)
}

// Where a statistic's events come from.
const (
	// SourceControl is stock tor's control port.
	SourceControl = "control"
	// SourceTestNetwork is stock tor's control port with TestingTorNetwork
	// set, which alone emits CONN_BW.
	SourceTestNetwork = "control-testnet"
	// SourcePrivCount is PrivCount-patched tor's control port
	// (EnablePrivCount 1).
	SourcePrivCount = "privcount"
	// SourceMetricsPort is tor's MetricsPort (Prometheus text).
	SourceMetricsPort = "metricsport"
)

// Statistic is one thing privstats can count.
type Statistic struct {
	// Name is the statistic's snake_case name, as round configs give it.
	Name string
	// Source is where its events come from: SourceControl,
	// SourceTestNetwork, SourcePrivCount or SourceMetricsPort.
	Source      string
	Description string
	// Events are the tor events it needs (SETEVENTS names); empty for
	// MetricsPort statistics.
	Events []string
	// Metric is the MetricsPort counter family it reads; empty otherwise.
	Metric string
	// Unit is what one increment counts, e.g. "bytes" or "connections".
	Unit string
	// BinUnit is what a numeric histogram's bin edges measure, e.g.
	// "seconds" for a lifetime histogram; empty for categories and single
	// counters.
	BinUnit string
	// Bins labels its counters; the zero Bins is a single counter.
	Bins Bins

	// Sensitivity is the action bound (L∞): the most the protected
	// activity, one Tor user's day, can change one counter network-wide.
	Sensitivity float64
	// BinsTouched (L0) is how many bins that activity can change.
	BinsTouched int64
	// Estimate is the expected network-wide value per day, summed over
	// bins, which the planner uses to balance relative errors.
	Estimate float64
	// MaxPerCollector bounds what one relay can add to one counter in a
	// round of up to MaxRoundDuration, for the overflow check.
	MaxPerCollector uint64

	on        torctl.EventKind // the event it counts (not for metrics)
	trackConn bool             // needs the table of open OR connections
	measure   measureFunc
}

// IsMetric reports whether the statistic reads tor's MetricsPort.
func (s Statistic) IsMetric() bool { return s.Metric != "" }

// Bins says how a statistic's counters are labelled: one counter (the zero
// value), one per category, or a numeric histogram.
type Bins struct {
	// Categories names the bins of a categorical statistic, in counter
	// order. Categories cannot be changed by a round.
	Categories []string
	// Edges are the increasing lower edges of a numeric histogram: bin i
	// counts values in [Edges[i], Edges[i+1]) and the last bin
	// [Edges[n-1], inf). Values below Edges[0] are not counted. A round
	// may choose other edges.
	Edges []uint64
}

// IsScalar reports whether the statistic has a single counter.
func (b Bins) IsScalar() bool { return len(b.Categories) == 0 && len(b.Edges) == 0 }

// IsNumeric reports whether the bins are a numeric histogram.
func (b Bins) IsNumeric() bool { return len(b.Edges) > 0 }

// Len is the number of counters.
func (b Bins) Len() int { return max(1, len(b.Categories), len(b.Edges)) }

// Labels returns the counters' labels as a round carries them: nil for a
// single counter, the categories, or canonical "[lo,hi)" ranges.
func (b Bins) Labels() []string {
	switch {
	case len(b.Categories) > 0:
		return slices.Clone(b.Categories)
	case len(b.Edges) > 0:
		return rangeLabels(b.Edges, inf)
	}
	return nil
}

// inf stands for an open upper end of a numeric bin.
const inf = math.MaxUint64

// rangeLabels labels numeric bins with lower edges and the last bin's upper
// end: "[0,1024)", …, "[65536,inf)".
func rangeLabels(edges []uint64, top uint64) []string {
	out := make([]string, len(edges))
	for i, lo := range edges {
		hi := top
		if i+1 < len(edges) {
			hi = edges[i+1]
		}
		out[i] = rangeLabel(lo, hi)
	}
	return out
}

func rangeLabel(lo, hi uint64) string {
	h := "inf"
	if hi != inf {
		h = strconv.FormatUint(hi, 10)
	}
	return "[" + strconv.FormatUint(lo, 10) + "," + h + ")"
}

// parseRange parses a label "[lo,hi)" (spaces allowed; hi may be "inf").
func parseRange(label string) (lo, hi uint64, err error) {
	s := strings.ReplaceAll(label, " ", "")
	inner, ok := strings.CutPrefix(s, "[")
	if ok {
		inner, ok = strings.CutSuffix(inner, ")")
	}
	l, h, comma := strings.Cut(inner, ",")
	if !ok || !comma {
		return 0, 0, fmt.Errorf("bin %q is not a range like [0,1024) or [65536,inf)", label)
	}
	if lo, err = strconv.ParseUint(l, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bin %q: lower edge %q is not a whole number", label, l)
	}
	switch strings.ToLower(h) {
	case "inf", "+inf":
		hi = inf
	default:
		if hi, err = strconv.ParseUint(h, 10, 64); err != nil || hi == inf {
			return 0, 0, fmt.Errorf("bin %q: upper edge %q is not a whole number or inf", label, h)
		}
	}
	if hi <= lo {
		return 0, 0, fmt.Errorf("bin %q is empty", label)
	}
	return lo, hi, nil
}

// parseRanges reads numeric bins from labels: contiguous ranges, the last of
// which may be open ("inf") or not. It returns the lower edges and the upper
// end of the last bin.
func parseRanges(labels []string) (edges []uint64, top uint64, err error) {
	if len(labels) == 0 {
		return nil, 0, errors.New("no bins")
	}
	edges = make([]uint64, len(labels))
	for i, l := range labels {
		lo, hi, err := parseRange(l)
		if err != nil {
			return nil, 0, err
		}
		if i > 0 && lo != top {
			return nil, 0, fmt.Errorf("bin %q does not start where %q ends (bins must be contiguous)", l, labels[i-1])
		}
		if i+1 < len(labels) && hi == inf {
			return nil, 0, fmt.Errorf("bin %q is open-ended but is not the last bin", l)
		}
		edges[i], top = lo, hi
	}
	return edges, top, nil
}

// parseEdges reads numeric bins from lower edges: increasing whole numbers.
func parseEdges(list []string) ([]uint64, error) {
	edges := make([]uint64, len(list))
	for i, s := range list {
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil || v == inf {
			// inf (MaxUint64) stands for an open upper end, so a bin
			// cannot start there: "[inf,inf)" would not read back.
			return nil, fmt.Errorf("bin edge %q is not a whole number below %d", s, uint64(inf))
		}
		if i > 0 && v <= edges[i-1] {
			return nil, fmt.Errorf("bin edges must increase: %q after %q", s, list[i-1])
		}
		edges[i] = v
	}
	return edges, nil
}

// isEdge reports whether s looks like a bare edge rather than a range label.
func isEdge(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// Catalogue returns every statistic, sorted by name.
func Catalogue() []Statistic {
	out := make([]Statistic, len(catalogue))
	for i, s := range catalogue {
		out[i] = s.clone()
	}
	return out
}

// clone copies s so that callers cannot change the catalogue through its
// slices.
func (s Statistic) clone() Statistic {
	s.Events = slices.Clone(s.Events)
	s.Bins.Categories = slices.Clone(s.Bins.Categories)
	s.Bins.Edges = slices.Clone(s.Bins.Edges)
	return s
}

// Lookup returns the statistic with the given name.
func Lookup(name string) (Statistic, bool) {
	i, ok := slices.BinarySearchFunc(catalogue, name, func(s Statistic, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return Statistic{}, false
	}
	return catalogue[i].clone(), true
}

// Unit is what one increment of the named statistic counts ("bytes",
// "connections", …), or "" for a name the catalogue does not know. Plots
// label their value axes with it and exports carry it in a column.
func Unit(name string) string {
	st, _ := Lookup(name)
	return st.Unit
}

// BinUnit is what the named statistic's histogram bin edges measure
// ("seconds", "bytes", …), or "" when its bins are categories or it is a
// single counter.
func BinUnit(name string) string {
	st, _ := Lookup(name)
	return st.BinUnit
}

// Resolve builds a round's spec for the named statistic: its name, its bin
// labels, its sensitivity (the catalogue's action bound and bins touched)
// and its MaxPerCollector; Sigma, Epsilon and Delta are left for the caller
// (the planner) to fill.
//
// binsOverride, if not empty, replaces a numeric histogram's bins. It is
// either lower edges (["0","1024","65536"] means [0,1024), [1024,65536),
// [65536,inf)) or range labels (["[0,1024)","[1024,inf)"]), which must be
// contiguous. Categorical statistics and single counters cannot be re-binned;
// an override equal to a statistic's own categories is accepted.
func Resolve(name string, binsOverride []string) (round.StatisticSpec, error) {
	st, ok := Lookup(name)
	if !ok {
		return round.StatisticSpec{}, unknownError(name)
	}
	spec := round.StatisticSpec{Name: st.Name, Bins: st.Bins.Labels(), MaxPerCollector: st.MaxPerCollector,
		Sensitivity: st.Sensitivity, BinsTouched: st.BinsTouched}
	if len(binsOverride) == 0 {
		return spec, nil
	}
	spec, err := rebin(st, spec, binsOverride)
	if err != nil {
		return spec, err
	}
	// A statistic whose activity can touch every one of its bins can touch
	// every one of the new ones too; otherwise L0 stays, within the count.
	if n := int64(spec.Counters()); st.BinsTouched >= int64(st.Bins.Len()) || st.BinsTouched > n {
		spec.BinsTouched = n
	}
	return spec, nil
}

// rebin replaces spec's bins with binsOverride as Resolve describes.
func rebin(st Statistic, spec round.StatisticSpec, binsOverride []string) (round.StatisticSpec, error) {
	name := st.Name
	switch {
	case st.Bins.IsScalar():
		return spec, fmt.Errorf("statistic %s is a single counter; it has no bins to override", name)
	case !st.Bins.IsNumeric():
		if slices.Equal(binsOverride, st.Bins.Categories) {
			return spec, nil
		}
		return spec, fmt.Errorf("statistic %s has fixed categories %s; its bins cannot be overridden",
			name, strings.Join(st.Bins.Categories, ", "))
	}
	edgeForm := isEdge(binsOverride[0])
	for _, b := range binsOverride[1:] {
		if isEdge(b) != edgeForm {
			return spec, fmt.Errorf("statistic %s: bins mix edges and range labels; give either lower edges like 0, 1024, 65536 or labels like [0,1024)", name)
		}
	}
	if edgeForm {
		edges, err := parseEdges(binsOverride)
		if err != nil {
			return spec, fmt.Errorf("statistic %s: %w", name, err)
		}
		spec.Bins = rangeLabels(edges, inf)
		return spec, nil
	}
	edges, top, err := parseRanges(binsOverride)
	if err != nil {
		return spec, fmt.Errorf("statistic %s: %w", name, err)
	}
	spec.Bins = rangeLabels(edges, top)
	return spec, nil
}

// unknownError names the statistics closest to an unknown name.
func unknownError(name string) error {
	return fmt.Errorf("unknown statistic %q; closest: %s (privstats stats lists them all)",
		name, strings.Join(closest(name, 3), ", "))
}

// closest returns the n catalogue names nearest to name: names containing
// it first, each group by edit distance.
func closest(name string, n int) []string {
	type cand struct {
		name string
		d    int
	}
	cs := make([]cand, 0, len(catalogue))
	for _, s := range catalogue {
		d := suggest.Distance(strings.ToLower(name), s.Name)
		if name != "" && strings.Contains(s.Name, strings.ToLower(name)) {
			d -= 1000
		}
		cs = append(cs, cand{s.Name, d})
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return a.d - b.d })
	out := make([]string, 0, n)
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.name)
	}
	return out
}

// ControlEvents returns the tor events the whole catalogue can use, sorted:
// what a control-port source subscribes to when not told otherwise. Events
// a tor does not know (PRIVCOUNT_* on stock tor, CONN_BW off test networks)
// are refused by tor and dropped by the source.
func ControlEvents() []string {
	var out []string
	for _, s := range catalogue {
		out = append(out, s.Events...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

package stats

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/torctl"
)

// measureFunc reads the current event for one statistic. It returns the
// value that picks the bin (the number a numeric histogram bins, or a
// category's index), the increment, and whether the event counts at all.
// A single counter ignores x.
type measureFunc func(e *event) (x, n uint64, ok bool)

// event is a Program's parse of the current line. One is reused for every
// line, so the parsers' slices keep their capacity and parsing does not
// allocate.
type event struct {
	at      time.Time
	bw      torctl.BWEvent
	orconn  torctl.ORConnEvent
	connBW  torctl.ConnBWEvent
	stream  torctl.PrivCountStreamEndedEvent
	circuit torctl.PrivCountCircuitCloseEvent
	conn    torctl.PrivCountConnectionCloseEvent
	hsdir   torctl.PrivCountHSDirCacheEvent
	metric  Metric

	// From the table of open OR connections, for ORCONN events.
	tracked  bool          // the connection's NEW or LAUNCHED was seen
	inbound  bool          // it was NEW (accepted), not LAUNCHED
	lifetime time.Duration // for CLOSED
}

// compiled is one statistic of a round.
type compiled struct {
	st     *Statistic
	offset int      // index of its first counter
	edges  []uint64 // numeric histogram: lower edges
	top    uint64   // numeric histogram: upper end of the last bin
	bins   int
}

// bin returns the bin of x, or -1 if x falls outside every bin.
func (c *compiled) bin(x uint64) int {
	if c.edges == nil {
		if c.bins == 1 {
			return 0
		}
		if x < uint64(c.bins) {
			return int(x)
		}
		return -1
	}
	if x < c.edges[0] || x >= c.top {
		return -1
	}
	lo, hi := 0, len(c.edges)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if c.edges[mid] <= x {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Program counts one round's statistics from tor event lines. It is used
// by one goroutine at a time.
type Program struct {
	stats    []compiled
	byKind   [256][]*compiled
	byMetric map[string][]*compiled
	conns    *connTable
	events   []string
	metrics  []string
	counters int

	ev        event
	malformed uint64
}

// Compile builds the counting program for a round's statistics. Every
// spec must name a catalogue statistic, once, with bins the statistic can
// have: none for a single counter, exactly its categories for a
// categorical one, and contiguous range labels (as Resolve writes them)
// for a numeric histogram.
func Compile(specs []round.StatisticSpec) (*Program, error) {
	p := &Program{byMetric: map[string][]*compiled{}}
	p.stats = make([]compiled, len(specs))
	seen := map[string]bool{}
	events := map[string]bool{}
	for i, spec := range specs {
		st, ok := Lookup(spec.Name)
		if !ok {
			return nil, unknownError(spec.Name)
		}
		if seen[spec.Name] {
			return nil, fmt.Errorf("statistic %s is listed twice", spec.Name)
		}
		seen[spec.Name] = true
		c := compiled{st: &st, offset: p.counters, bins: 1}
		switch {
		case st.Bins.IsScalar():
			if len(spec.Bins) != 0 {
				return nil, fmt.Errorf("statistic %s is a single counter, but the round gives it %d bins", spec.Name, len(spec.Bins))
			}
		case !st.Bins.IsNumeric():
			if !slices.Equal(spec.Bins, st.Bins.Categories) {
				return nil, fmt.Errorf("statistic %s: the round's bins %q are not its categories %q", spec.Name, spec.Bins, st.Bins.Categories)
			}
			c.bins = len(spec.Bins)
		default:
			edges, top, err := parseRanges(spec.Bins)
			if err != nil {
				return nil, fmt.Errorf("statistic %s: %w", spec.Name, err)
			}
			c.edges, c.top, c.bins = edges, top, len(edges)
		}
		p.stats[i] = c
		p.counters += c.bins
		for _, e := range st.Events {
			events[e] = true
		}
		if st.trackConn && p.conns == nil {
			p.conns = newConnTable(MaxTrackedConnections)
		}
	}
	for i := range p.stats {
		c := &p.stats[i]
		if c.st.IsMetric() {
			if len(p.byMetric[c.st.Metric]) == 0 {
				p.metrics = append(p.metrics, c.st.Metric)
			}
			p.byMetric[c.st.Metric] = append(p.byMetric[c.st.Metric], c)
			continue
		}
		p.byKind[c.st.on] = append(p.byKind[c.st.on], c)
	}
	for e := range events {
		p.events = append(p.events, e)
	}
	slices.Sort(p.events)
	slices.Sort(p.metrics)
	return p, nil
}

// Events returns the tor events the program needs, sorted: what a
// control-port source should subscribe to.
func (p *Program) Events() []string { return slices.Clone(p.events) }

// Metrics returns the MetricsPort counter families the program reads.
func (p *Program) Metrics() []string { return slices.Clone(p.metrics) }

// NumCounters is how many counters the program adds to.
func (p *Program) NumCounters() int { return p.counters }

// Malformed is how many lines of events the program needed could not be
// parsed and were skipped.
func (p *Program) Malformed() uint64 { return p.malformed }

// Evictions is how many open connections were forgotten because the
// connection table was full; their lifetimes go uncounted.
func (p *Program) Evictions() uint64 {
	if p.conns == nil {
		return 0
	}
	return p.conns.evictions
}

// Count reads one event line as tor sends it, without its line end (e.g.
// "650 BW 155 593"; the "650 " may be left off), and adds the increments of
// every statistic it concerns to c. Lines of events no statistic needs are
// ignored; malformed lines of needed events are counted by Malformed and
// otherwise ignored. Connection lifetimes are measured on the wall clock;
// use CountAt to give the event's time.
func (p *Program) Count(line []byte, c Counters) { p.CountAt(time.Time{}, line, c) }

// CountAt is Count for an event that happened at the given time (the zero
// time means now), as a source reports it.
func (p *Program) CountAt(at time.Time, line []byte, c Counters) {
	kind := torctl.EventType(line)
	if kind == torctl.EventUnknown {
		p.countMetric(line, c)
		return
	}
	targets := p.byKind[kind]
	if len(targets) == 0 {
		return
	}
	e := &p.ev
	e.at = at
	if !p.parse(kind, line) {
		p.malformed++
		return
	}
	for _, t := range targets {
		x, n, ok := t.st.measure(e)
		if !ok || n == 0 {
			continue
		}
		if b := t.bin(x); b >= 0 {
			c.Add(t.offset+b, n)
		}
	}
}

func (p *Program) countMetric(line []byte, c Counters) {
	if len(p.byMetric) == 0 || !bytes.Contains(line[:min(len(line), 24)], []byte(MetricEvent)) {
		return
	}
	e := &p.ev
	if ParseMetricLine(line, &e.metric) != nil {
		p.malformed++
		return
	}
	for _, t := range p.byMetric[string(e.metric.Name)] {
		x, n, ok := t.st.measure(e)
		if !ok || n == 0 {
			continue
		}
		if b := t.bin(x); b >= 0 {
			c.Add(t.offset+b, n)
		}
	}
}

// parse fills the event struct of kind from line.
func (p *Program) parse(kind torctl.EventKind, line []byte) bool {
	e := &p.ev
	var err error
	switch kind {
	case torctl.EventBW:
		err = torctl.ParseBW(line, &e.bw)
	case torctl.EventORConn:
		if err = torctl.ParseORConn(line, &e.orconn); err == nil {
			p.trackORConn()
		}
	case torctl.EventConnBW:
		err = torctl.ParseConnBW(line, &e.connBW)
	case torctl.EventPrivCountStreamEnded:
		err = torctl.ParsePrivCountStreamEnded(line, &e.stream)
	case torctl.EventPrivCountCircuitClose:
		err = torctl.ParsePrivCountCircuitClose(line, &e.circuit)
	case torctl.EventPrivCountConnectionClose:
		err = torctl.ParsePrivCountConnectionClose(line, &e.conn)
	case torctl.EventPrivCountHSDirCacheStore:
		err = torctl.ParsePrivCountHSDirCacheStore(line, &e.hsdir)
	case torctl.EventPrivCountHSDirCacheFetch:
		err = torctl.ParsePrivCountHSDirCacheFetch(line, &e.hsdir)
	default:
		return false
	}
	return err == nil
}

// trackORConn keeps the table of open OR connections up to date and tells
// the current event what the table knows of its connection. Tor writes an
// inbound peer as address:port until it proves a relay identity, so
// direction comes from NEW (inbound) or LAUNCHED (outbound), and the peer's
// kind from the CONNECTED event.
func (p *Program) trackORConn() {
	e := &p.ev
	e.tracked, e.inbound, e.lifetime = false, false, 0
	if p.conns == nil || len(e.orconn.ID) == 0 {
		return
	}
	var entry connEntry
	switch e.orconn.Status {
	case torctl.ORNew, torctl.ORLaunched:
		p.conns.open(e.orconn.ID, connEntry{opened: p.now().UnixNano(), inbound: e.orconn.Status == torctl.ORNew})
		return
	case torctl.ORConnected:
		entry, e.tracked = p.conns.get(e.orconn.ID)
	case torctl.ORClosed, torctl.ORFailed:
		entry, e.tracked = p.conns.close(e.orconn.ID)
		if e.tracked {
			e.lifetime = max(0, time.Duration(p.now().UnixNano()-entry.opened))
		}
	default:
		return
	}
	e.inbound = entry.inbound
}

func (p *Program) now() time.Time {
	if p.ev.at.IsZero() {
		p.ev.at = time.Now()
	}
	return p.ev.at
}

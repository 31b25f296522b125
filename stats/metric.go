package stats

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/privstats/privstats/torctl"
)

// MetricEvent is the keyword of the pseudo-event through which the increase
// of a MetricsPort counter reaches a Program, in the same line form as
// tor's own events:
//
//	650 PRIVSTATS_METRIC <name>{<label>="<value>",...} <increase>
//
// name is the Prometheus metric name, the labels (if any) are written as in
// the Prometheus text format, sorted by label name, and increase is a
// decimal count: how much the counter grew since the previous read. Tor
// never sends this event; only sampling sources (source.Sampled, such as
// the MetricsPort source) make it, stamped so that a round's window counts
// counter(end) − counter(start) (docs/sources.md).
const MetricEvent = "PRIVSTATS_METRIC"

const metricPrefix = "650 " + MetricEvent + " "

// MetricLine appends a PRIVSTATS_METRIC line (without line end) to dst.
// labels is what goes between the braces, as AppendMetricLabel builds it;
// empty for a series without labels.
func MetricLine(dst []byte, name, labels string, increase uint64) []byte {
	dst = append(dst, metricPrefix...)
	dst = append(dst, name...)
	if labels != "" {
		dst = append(dst, '{')
		dst = append(dst, labels...)
		dst = append(dst, '}')
	}
	dst = append(dst, ' ')
	return strconv.AppendUint(dst, increase, 10)
}

// AppendMetricLabel appends name="value" to a label list, with a comma
// first if dst already holds a label. The value is escaped as the
// Prometheus text format escapes it (backslash, double quote, newline).
func AppendMetricLabel(dst []byte, name, value string) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\', '"':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Metric is a parsed PRIVSTATS_METRIC line. Name and Labels are sub-slices
// of the line.
type Metric struct {
	Name     []byte
	Labels   []byte // between the braces, escapes kept
	Increase uint64
}

// Errors of ParseMetricLine. They are fixed values so that rejecting a
// line does not allocate.
var (
	errNotMetric      = errors.New("stats: not a " + MetricEvent + " line")
	errMetricName     = errors.New("stats: " + MetricEvent + ": bad metric name")
	errMetricLabels   = errors.New("stats: " + MetricEvent + ": bad labels")
	errMetricIncrease = errors.New("stats: " + MetricEvent + ": increase is not a whole number")
)

// ParseMetricLine parses a PRIVSTATS_METRIC line, with or without its
// "650 " prefix. It does not allocate.
func ParseMetricLine(line []byte, m *Metric) error {
	*m = Metric{}
	line = bytes.TrimRight(line, "\r\n")
	line = bytes.TrimPrefix(line, []byte("650 "))
	rest, ok := bytes.CutPrefix(line, []byte(MetricEvent+" "))
	if !ok {
		return errNotMetric
	}
	rest = bytes.TrimLeft(rest, " ")
	i := 0
	for i < len(rest) && isMetricNameChar(rest[i], i == 0) {
		i++
	}
	if i == 0 {
		return errMetricName
	}
	m.Name, rest = rest[:i], rest[i:]
	if len(rest) > 0 && rest[0] == '{' {
		end, ok := scanLabels(rest[1:])
		if !ok {
			return errMetricLabels
		}
		m.Labels, rest = rest[1:1+end], rest[2+end:]
	}
	if len(rest) == 0 || rest[0] != ' ' {
		return errMetricIncrease
	}
	rest = bytes.Trim(rest, " ")
	n, ok := torctl.ParseDecimal(rest)
	if !ok {
		return errMetricIncrease
	}
	m.Increase = n
	return nil
}

func isMetricNameChar(c byte, first bool) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':' || !first && '0' <= c && c <= '9'
}

// scanLabels checks a label list `a="x",b="y"` that ends with '}' and
// returns the index of that brace.
func scanLabels(b []byte) (end int, ok bool) {
	i := 0
	for {
		if i < len(b) && b[i] == '}' {
			return i, true
		}
		start := i
		for i < len(b) && isMetricNameChar(b[i], i == start) {
			i++
		}
		if i == start || i+1 >= len(b) || b[i] != '=' || b[i+1] != '"' {
			return 0, false
		}
		i += 2
		for i < len(b) && b[i] != '"' {
			if b[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(b) {
			return 0, false
		}
		i++ // closing quote
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// Label returns the value of the label named key, as written (escapes
// kept). Label values tor uses need no escapes.
func (m *Metric) Label(key string) ([]byte, bool) {
	b := m.Labels
	for len(b) > 0 {
		eq := bytes.IndexByte(b, '=')
		if eq < 0 || eq+1 >= len(b) {
			return nil, false
		}
		name := b[:eq]
		i := eq + 2
		start := i
		for i < len(b) && b[i] != '"' {
			if b[i] == '\\' {
				i++
			}
			i++
		}
		if i > len(b) {
			return nil, false
		}
		if string(name) == key {
			return b[start:min(i, len(b))], true
		}
		b = b[min(i+1, len(b)):]
		b = bytes.TrimPrefix(b, []byte{','})
	}
	return nil, false
}

// labelIs reports whether the label key has exactly the value want.
func (m *Metric) labelIs(key, want string) bool {
	v, ok := m.Label(key)
	return ok && string(v) == want
}

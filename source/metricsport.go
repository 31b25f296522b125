package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/privstats/privstats/stats"
)

// DefaultMetricsInterval is the time between MetricsPort scrapes when none
// is given.
const DefaultMetricsInterval = 10 * time.Second

// maxMetricsBody bounds one scrape; tor's relay metrics are a few KiB.
const maxMetricsBody = 16 << 20

// MetricsPort returns a source that reads tor's MetricsPort at url: at
// every window edge and every interval in between, as Sampled describes.
// Every counter series is read: a series of a counter family, of an untyped
// family named like one (…_total), or a created or rejected series of
// tor_relay_connections_total (old tors declared it a gauge). Values are
// floored to whole numbers.
//
// client may be nil for a plain client whose timeout is the interval
// (between 1 s and 30 s).
func MetricsPort(url string, interval time.Duration, client *http.Client) Source {
	if interval <= 0 {
		interval = DefaultMetricsInterval
	}
	if client == nil {
		client = &http.Client{Timeout: min(max(interval, time.Second), 30*time.Second)}
	}
	return &metricsPort{url: url, Source: Sampled("tor MetricsPort "+url, &metricsPortSampler{url: url, client: client}, interval)}
}

// metricsPort checks the URL before it samples.
type metricsPort struct {
	url string
	Source
}

func (m *metricsPort) Run(ctx context.Context, w *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	if u, err := url.Parse(m.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("metricsport: %q is not an http:// URL (e.g. http://127.0.0.1:9035/metrics)", m.url)
	}
	return m.Source.Run(ctx, w, emit, gap)
}

type metricsPortSampler struct {
	url    string
	client *http.Client
}

func (m *metricsPortSampler) Sample(ctx context.Context) (map[Series]uint64, error) {
	fams, err := m.scrape(ctx)
	if err != nil {
		return nil, err
	}
	vals := map[Series]uint64{}
	var labels []byte
	for name, fam := range fams {
		for _, mt := range fam.GetMetric() {
			v, ok := counterValue(fam, mt)
			if !ok || v >= math.MaxUint64 {
				continue
			}
			labels = labels[:0]
			pairs := slices.Clone(mt.GetLabel())
			slices.SortFunc(pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
			for _, p := range pairs {
				labels = stats.AppendMetricLabel(labels, p.GetName(), p.GetValue())
			}
			vals[Series{Name: name, Labels: string(labels)}] = uint64(v)
		}
	}
	return vals, nil
}

// counterValue returns a series' value if it is a counter: a series of a
// counter family, or of an untyped family named like one (…_total). Old
// tors declared tor_relay_connections_total a gauge although its
// "created" and "rejected" series only grow; those count too. Values are
// whole numbers: fractions are dropped.
func counterValue(fam *dto.MetricFamily, mt *dto.Metric) (float64, bool) {
	var v float64
	switch fam.GetType() {
	case dto.MetricType_COUNTER:
		v = mt.GetCounter().GetValue()
	case dto.MetricType_UNTYPED:
		if !strings.HasSuffix(fam.GetName(), "_total") {
			return 0, false
		}
		v = mt.GetUntyped().GetValue()
	case dto.MetricType_GAUGE:
		if fam.GetName() != "tor_relay_connections_total" || !hasLabel(mt, "state", "created", "rejected") {
			return 0, false
		}
		v = mt.GetGauge().GetValue()
	default:
		return 0, false
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, false
	}
	return math.Floor(v), true
}

func hasLabel(mt *dto.Metric, name string, values ...string) bool {
	for _, p := range mt.GetLabel() {
		if p.GetName() == name {
			return slices.Contains(values, p.GetValue())
		}
	}
	return false
}

// Fix says how to fix a failed read, for the log.
func (m *metricsPortSampler) Fix(err error) string { return metricsPortFix(err) }

// scrape fetches and parses one exposition.
func (m *metricsPortSampler) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", m.url, resp.Status)
	}
	body := &limitedReader{r: resp.Body, n: maxMetricsBody}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(body)
	if body.over {
		return nil, fmt.Errorf("%s: exposition larger than %d bytes", m.url, maxMetricsBody)
	}
	if pe := (expfmt.ParseError{}); errors.As(err, &pe) {
		// The parser's message may quote the offending token, which
		// could be one of the relay's counts: only the line is named.
		return nil, fmt.Errorf("%s: the exposition does not parse at line %d", m.url, pe.Line)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.url, err)
	}
	return fams, nil
}

// limitedReader is io.LimitReader that remembers hitting its limit.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
}

var errTooLarge = errors.New("too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.over = true
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

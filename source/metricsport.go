package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// MetricsPort returns a source that scrapes tor's MetricsPort at url every
// interval and emits, for every counter series that grew since the
// previous scrape, a stats.MetricEvent line with the increase.
//
// Counters follow Prometheus semantics: a value lower than the previous one
// means tor restarted, so the new value is the increase; a series that
// appears between scrapes started from zero. The first scrape, and the
// first after a failed one, only sets the baseline. A failed scrape is a
// gap from the last good scrape to the next one: the increase in between
// is not counted, because it cannot be placed in time.
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
	return &metricsPort{url: url, interval: interval, client: client}
}

type metricsPort struct {
	url      string
	interval time.Duration
	client   *http.Client
}

// series is what the source remembers of one counter series: its last
// value, and the scrape that last saw it.
type series struct {
	value float64
	seen  uint64
}

func (m *metricsPort) Run(ctx context.Context, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	if u, err := url.Parse(m.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("metricsport: %q is not an http:// URL (e.g. http://127.0.0.1:9035/metrics)", m.url)
	}
	log := slog.Default()
	ticker := time.NewTicker(m.interval)
	defer ticker.Stop()
	var (
		prev     = map[string]*series{}
		scrapes  uint64
		baseline = true
		inGap    bool
		gapStart = time.Now()
		lastOK   time.Time
		line     []byte
		labels   []byte
	)
	for {
		at := time.Now()
		fams, err := m.scrape(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if !inGap {
				inGap = true
				if !lastOK.IsZero() {
					gapStart = lastOK
				}
				log.Warn("tor MetricsPort scrape failed; counting stops until it works again", "url", m.url, "err", err)
			}
			baseline = true
		} else {
			if inGap {
				inGap = false
				log.Info("tor MetricsPort scrape works again", "url", m.url)
				gap(gapStart, at)
			}
			scrapes++
			for _, name := range sortedKeys(fams) {
				fam := fams[name]
				for _, mt := range fam.GetMetric() {
					v, ok := counterValue(fam, mt)
					if !ok {
						continue
					}
					labels = labels[:0]
					pairs := slices.Clone(mt.GetLabel())
					slices.SortFunc(pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
					for _, p := range pairs {
						labels = stats.AppendMetricLabel(labels, p.GetName(), p.GetValue())
					}
					key := name + "{" + string(labels) + "}"
					s := prev[key]
					if s == nil {
						s = &series{value: 0}
						prev[key] = s
					}
					inc := v
					switch {
					case baseline:
						inc = 0
					case v >= s.value:
						inc = v - s.value
					}
					s.value, s.seen = v, scrapes
					if inc >= 1 && inc < math.MaxUint64 {
						line = stats.MetricLine(line[:0], name, string(labels), uint64(inc))
						emit(at, line)
					}
				}
			}
			for k, s := range prev {
				if s.seen != scrapes {
					delete(prev, k)
				}
			}
			baseline = false
			lastOK = at
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
			continue
		}
		break
	}
	if inGap {
		gap(gapStart, time.Now())
	}
	return nil
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

func sortedKeys(fams map[string]*dto.MetricFamily) []string {
	keys := make([]string, 0, len(fams))
	for k := range fams {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// scrape fetches and parses one exposition.
func (m *metricsPort) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
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

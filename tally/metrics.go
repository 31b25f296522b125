package tally

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/outcome"
)

// metrics are what the tally server shows Prometheus: the published totals
// with their intervals, round progress, every rejected request by reason and
// every failure of the server itself by operation. Nothing here is per
// collector, and every label set is bounded.
type metrics struct {
	reg        *prometheus.Registry
	value      *prometheus.GaugeVec
	ciLow      *prometheus.GaugeVec
	ciHigh     *prometheus.GaugeVec
	sigma      *prometheus.GaugeVec
	phase      *prometheus.GaugeVec
	round      prometheus.Gauge
	joined     prometheus.Gauge
	reported   prometheus.Gauge
	keyed      prometheus.Gauge
	committed  prometheus.Gauge
	shared     prometheus.Gauge
	rejected   *prometheus.CounterVec
	internal   *prometheus.CounterVec
	refusals   *prometheus.CounterVec
	completed  prometheus.Counter
	failed     prometheus.Counter
	lastResult prometheus.Gauge
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	// Each metric is registered as it is made (promauto), so none can be
	// made and then left out of /metrics.
	f := promauto.With(reg)
	gauge := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	gauges := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	// counters starts every label value of its closed set at zero, so a
	// reason that never happened reads 0 rather than missing.
	counters := func(name, help, label string, values ...string) *prometheus.CounterVec {
		v := f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		for _, x := range values {
			v.WithLabelValues(x)
		}
		return v
	}
	perBin := []string{"statistic", "bin"}
	return &metrics{
		reg:    reg,
		value:  gauges("privstats_statistic_value", "Noisy network-wide total of the latest published round, per statistic and bin.", perBin...),
		ciLow:  gauges("privstats_statistic_ci95_low", "Lower bound of the 95% confidence interval of the published total.", perBin...),
		ciHigh: gauges("privstats_statistic_ci95_high", "Upper bound of the 95% confidence interval of the published total.", perBin...),
		sigma:  gauges("privstats_statistic_sigma", "Standard deviation of the noise in the published total.", "statistic"),
		phase:  gauges("privstats_round_phase", "1 for the phase the current round is in, 0 for the others.", "phase"),

		round:     gauge("privstats_round_number", "Sequence number of the current round in its series."),
		joined:    gauge("privstats_round_collectors_joined", "Collectors whose sealed share bundles the current round accepted."),
		reported:  gauge("privstats_round_collectors_reported", "Collectors that reported in the current round."),
		keyed:     gauge("privstats_round_keepers_keyed", "Share keepers that published a round key in the current round."),
		committed: gauge("privstats_round_keepers_committed", "Share keepers that committed to the current round's agreement."),
		shared:    gauge("privstats_round_keepers_released", "Share keepers whose aggregate share the current round accepted."),

		rejected: counters("privstats_rejected_requests_total",
			"Requests and handshakes the tally server refused, by reason (the sender's fault or the round's state; the server's own failures are privstats_tally_internal_errors_total).",
			"reason", labelValues(reasons)...),
		internal: counters("privstats_tally_internal_errors_total",
			"Failures of the tally server itself, by operation; each is logged at ERROR and a request it hit is answered 500.",
			"op", labelValues(ops)...),
		refusals: counters("privstats_round_refusals_total",
			"Rounds a node refused to take part in under its local policy, by the refusing node's role.",
			"role", "keeper", "collector", "tally"),
		completed:  counter("privstats_rounds_completed_total", "Rounds that published an outcome."),
		failed:     counter("privstats_rounds_failed_total", "Rounds that ended without an outcome."),
		lastResult: gauge("privstats_last_outcome_timestamp_seconds", "When the latest outcome was published (Unix time)."),
	}
}

// labelValues are a closed set's values as label values.
func labelValues[S ~string](set []S) []string {
	out := make([]string, len(set))
	for i, x := range set {
		out[i] = string(x)
	}
	return out
}

func (m *metrics) progress(r *roundState) {
	for _, p := range round.Phases {
		v := 0.0
		if r != nil && r.Phase == p {
			v = 1
		}
		m.phase.WithLabelValues(p).Set(v)
	}
	if r == nil {
		return
	}
	m.round.Set(float64(r.cfg.Round))
	m.joined.Set(float64(len(r.Joined)))
	m.reported.Set(float64(len(r.Reports)))
	m.keyed.Set(float64(len(r.RoundKeys)))
	m.committed.Set(float64(len(r.Commits)))
	m.shared.Set(float64(len(r.Shares)))
}

func (m *metrics) publish(o *outcome.Outcome) {
	m.value.Reset()
	m.ciLow.Reset()
	m.ciHigh.Reset()
	m.sigma.Reset()
	for _, s := range o.Statistics {
		m.sigma.WithLabelValues(s.Name).Set(s.TotalSigma)
		for _, b := range s.Bins {
			m.value.WithLabelValues(s.Name, b.Label).Set(float64(b.NoisyTotal))
			m.ciLow.WithLabelValues(s.Name, b.Label).Set(b.CI95Low)
			m.ciHigh.WithLabelValues(s.Name, b.Label).Set(b.CI95High)
		}
	}
	m.lastResult.Set(float64(o.PublishedAt.Unix()))
}

package tally

import (
	"github.com/prometheus/client_golang/prometheus"

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
	m := &metrics{
		reg: prometheus.NewRegistry(),
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_statistic_value",
			Help: "Noisy network-wide total of the latest published round, per statistic and bin."}, []string{"statistic", "bin"}),
		ciLow: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_statistic_ci95_low",
			Help: "Lower bound of the 95% confidence interval of the published total."}, []string{"statistic", "bin"}),
		ciHigh: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_statistic_ci95_high",
			Help: "Upper bound of the 95% confidence interval of the published total."}, []string{"statistic", "bin"}),
		sigma: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_statistic_sigma",
			Help: "Standard deviation of the noise in the published total."}, []string{"statistic"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_round_phase",
			Help: "1 for the phase the current round is in, 0 for the others."}, []string{"phase"}),
		round: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_round_number",
			Help: "Sequence number of the current round in its series."}),
		joined: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_round_collectors_joined",
			Help: "Collectors whose sealed share bundles the current round accepted."}),
		reported: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_round_collectors_reported",
			Help: "Collectors that reported in the current round."}),
		keyed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_round_keepers_keyed",
			Help: "Share keepers that published a round key in the current round."}),
		committed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_round_keepers_committed",
			Help: "Share keepers that committed to the current round's agreement."}),
		shared: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_round_keepers_released",
			Help: "Share keepers whose aggregate share the current round accepted."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privstats_rejected_requests_total",
			Help: "Requests and handshakes the tally server refused, by reason (the sender's fault or the round's state; the server's own failures are privstats_tally_internal_errors_total)."}, []string{"reason"}),
		internal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privstats_tally_internal_errors_total",
			Help: "Failures of the tally server itself, by operation; each is logged at ERROR and a request it hit is answered 500."}, []string{"op"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privstats_round_refusals_total",
			Help: "Rounds a node refused to take part in under its local policy, by the refusing node's role."}, []string{"role"}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{Name: "privstats_rounds_completed_total",
			Help: "Rounds that published an outcome."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "privstats_rounds_failed_total",
			Help: "Rounds that ended without an outcome."}),
		lastResult: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_last_outcome_timestamp_seconds",
			Help: "When the latest outcome was published (Unix time)."}),
	}
	m.reg.MustRegister(m.value, m.ciLow, m.ciHigh, m.sigma, m.phase, m.round, m.joined, m.reported,
		m.keyed, m.committed, m.shared, m.rejected, m.internal, m.refusals, m.completed, m.failed, m.lastResult)
	for _, r := range reasons {
		m.rejected.WithLabelValues(string(r))
	}
	for _, o := range ops {
		m.internal.WithLabelValues(string(o))
	}
	for _, r := range []string{"keeper", "collector", "tally"} {
		m.refusals.WithLabelValues(r)
	}
	return m
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

package tally

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/internal/health"
	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/outcome/export"
)

// metrics are what the tally server shows Prometheus: the published totals
// with their intervals, round progress, every rejected request by reason and
// every failure of the server itself by operation. Nothing here is per
// collector, and every label set is bounded.
type metrics struct {
	reg *prometheus.Registry
	// latest serves the latest outcome's families (package export: one
	// family per unit, ε/δ, the round's window).
	latest     *export.Collector
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

	// What the server is configured to run, for alerts: a keeper or
	// collector short of these, or a round late against the period.
	keepersExpected     prometheus.Gauge
	threshold           prometheus.Gauge
	collectorsPermitted prometheus.Gauge
	minCollectors       prometheus.Gauge
	period              prometheus.Gauge
	roundLength         prometheus.Gauge
	nextStart           prometheus.Gauge
	// schedule is the period and the number of rounds to run (0: forever),
	// from which nextStart is worked out.
	schedule struct {
		period time.Duration
		rounds int
	}
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
	latest := &export.Collector{}
	reg.MustRegister(latest, health.BuildInfo("tally"))
	return &metrics{
		reg:    reg,
		latest: latest,
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

		keepersExpected:     gauge("privstats_keepers_expected", "Share keepers the tally server's rounds list (N)."),
		threshold:           gauge("privstats_keepers_threshold", "Share keepers that must commit and release for a round to publish (K)."),
		collectorsPermitted: gauge("privstats_collectors_permitted", "Collectors the tally server's rounds list (those keepers may still refuse)."),
		minCollectors:       gauge("privstats_round_min_collectors", "Collectors that must report for a round to publish."),
		period:              gauge("privstats_round_period_seconds", "Least time between the starts of consecutive rounds."),
		roundLength:         gauge("privstats_round_length_seconds", "Length of a round's counting window."),
		nextStart:           gauge("privstats_next_round_start_timestamp_seconds", "When the next counting window opens at the earliest (Unix time); 0 when no further round is planned."),
	}
}

// configure records what the server runs.
func (m *metrics) configure(o Options) {
	m.keepersExpected.Set(float64(len(o.Keepers)))
	m.threshold.Set(float64(o.Threshold))
	m.collectorsPermitted.Set(float64(len(o.Collectors)))
	m.minCollectors.Set(float64(o.MinCollectors))
	m.period.Set(o.Period.Seconds())
	m.roundLength.Set(o.RoundLength.Seconds())
	m.schedule.period, m.schedule.rounds = o.Period, o.Rounds
}

// labelValues are a closed set's values as label values.
func labelValues[S ~string](set []S) []string {
	out := make([]string, len(set))
	for i, x := range set {
		out[i] = string(x)
	}
	return out
}

func (m *metrics) progress(st *state) {
	m.nextStart.Set(float64(nextStart(st, m.schedule.period, m.schedule.rounds)))
	var r *roundState
	if st != nil {
		r = st.Current
	}
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
	m.latest.Set(o)
	m.lastResult.Set(float64(o.PublishedAt.Unix()))
}

// nextStart is when the next window opens at the earliest, in Unix
// seconds: that of an announced round still waiting for its window, or
// the last start plus the period; 0 when the server has run every round
// it was asked to or has not announced one yet (the first round is
// announced a setup time after the server starts).
func nextStart(st *state, period time.Duration, rounds int) int64 {
	if st == nil {
		return 0
	}
	active := 0
	if r := st.Current; r != nil && r.Phase != round.PhaseDone && r.Phase != round.PhaseFailed {
		active = 1
		if r.Phase == round.PhaseAnnounced || r.Phase == round.PhaseSetup {
			return r.cfg.Start.Unix()
		}
	}
	if rounds > 0 && st.Completed+st.Failed+active >= rounds || st.LastStart.IsZero() {
		return 0
	}
	return st.LastStart.Add(period).Unix()
}

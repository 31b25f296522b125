// Package health serves the /metrics of a keeper or collector. It shows only
// the node's own health (connected to the tally server, round phase, the
// collector's event source: connected to tor, last heard from it, gaps) and
// the release it runs: never event counts or anything derived from a
// relay's traffic.
package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privstats/privstats/aggregator/round"
)

// Status is a node's health gauges.
type Status struct {
	reg       *prometheus.Registry
	role      string
	connected prometheus.Gauge
	phase     *prometheus.GaugeVec
}

// New makes the gauges for a node of the given role ("keeper" or "collector").
func New(role string) *Status {
	s := &Status{
		reg: prometheus.NewRegistry(), role: role,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_" + role + "_connected",
			Help: "1 when the last poll of the tally server succeeded."}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_" + role + "_round_phase",
			Help: "1 for the phase of the round the tally server reports, 0 for the others."}, []string{"phase"}),
	}
	s.reg.MustRegister(s.connected, s.phase, BuildInfo(role))
	return s
}

// Source is what a collector can say about its event source: whether it
// is connected to tor now, when it last heard from tor, and how many gaps
// (stretches in which it could not see events) it has had. None of it is
// counted from relay traffic: LastHeard moves on tor's own schedule (a
// connection set up, a once-a-second BW event, a MetricsPort read), never
// on a relay's events.
type Source struct {
	Connected bool
	LastHeard time.Time
	Gaps      uint64
}

// WatchSource shows a collector's source on /metrics, read at each scrape
// so a lost tor shows on the next one.
func (s *Status) WatchSource(read func() Source) {
	name := "privstats_" + s.role + "_source_"
	s.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name + "connected",
			Help: "1 when the event source is connected to tor (every part of it, for a merged source), 0 when it is cut off."},
			func() float64 {
				if read().Connected {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name + "last_heard_timestamp_seconds",
			Help: "When the event source last heard from tor (Unix time; for a merged source, its stalest part); 0 if never."},
			func() float64 {
				if t := read().LastHeard; !t.IsZero() {
					return float64(t.UnixNano()) / 1e9
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name + "gaps_total",
			Help: "Gaps the event source has reported: stretches in which it could not see tor's events."},
			func() float64 { return float64(read().Gaps) }),
	)
}

// BuildInfo is privstats_build_info{role,version,revision,goversion} = 1,
// the pseudo-metric Prometheus convention uses to tell which release a
// node runs (e.g. to spot nodes left on an old one).
func BuildInfo(role string) prometheus.Collector {
	version, revision, goversion := "(devel)", "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "privstats_build_info",
		Help:        "Always 1; the labels say which privstats release this node runs.",
		ConstLabels: prometheus.Labels{"role": role, "version": version, "revision": revision, "goversion": goversion}},
		func() float64 { return 1 })
}

// Set records the node's connection and the round's phase.
func (s *Status) Set(connected bool, phase string) {
	if connected {
		s.connected.Set(1)
	} else {
		s.connected.Set(0)
	}
	for _, p := range round.Phases {
		v := 0.0
		if p == phase {
			v = 1
		}
		s.phase.WithLabelValues(p).Set(v)
	}
}

// Serve serves /metrics on addr until ctx ends.
func (s *Status) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves /metrics on ln until ctx ends.
func (s *Status) ServeListener(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

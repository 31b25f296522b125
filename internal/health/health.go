// Package health serves the /metrics of a keeper or collector. It shows only
// the node's own health (connected to the tally server, round phase, event
// source status): never event counts or anything derived from a relay's
// traffic.
package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privstats/privstats/aggregator/round"
)

// Status is a node's health gauges.
type Status struct {
	reg       *prometheus.Registry
	connected prometheus.Gauge
	phase     *prometheus.GaugeVec
}

// New makes the gauges for a node of the given role ("keeper" or "collector").
func New(role string) *Status {
	s := &Status{
		reg: prometheus.NewRegistry(),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "privstats_" + role + "_connected",
			Help: "1 when the last poll of the tally server succeeded."}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "privstats_" + role + "_round_phase",
			Help: "1 for the phase of the round the tally server reports, 0 for the others."}, []string{"phase"}),
	}
	s.reg.MustRegister(s.connected, s.phase)
	return s
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

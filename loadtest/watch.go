package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/privstats/privstats/aggregator/round"
)

// Phases of a round as the load test reports them. Announce is from the
// announcement until every keeper's round key is in (announced → setup);
// setup until the window opens (collectors join); collect is the window;
// report until the tally server proposes S (reporting → agreeing); agree
// until K keepers committed (→ releasing); release until K keepers'
// aggregate shares are in; tally until the outcome is written (→ done).
var Phases = []string{"announce", "setup", "collect", "report", "agree", "release", "tally"}

// sample is one reading of the tally server's /metrics.
type sample struct {
	at       time.Time
	round    uint64
	phase    string
	joined   int
	released int
	// cpu is the load generator's CPU time at the reading, so the
	// simulated collectors' setup cost can be read off per phase.
	cpu float64
}

// roundTrace is when one round was seen entering each phase.
type roundTrace struct {
	round uint64
	// entered maps a phase name of package round ("setup", "releasing",
	// …) and "released" (K shares in) to when it was first seen.
	entered map[string]time.Time
	// cpu is the load generator's CPU seconds at the reading before each
	// phase was seen: no later than its start.
	cpu map[string]float64
	// allJoined is when every collector was first seen joined (zero if
	// never), and its CPU seconds.
	allJoined    time.Time
	allJoinedCPU float64
}

// watcher polls the tally server's /metrics to time the phases. Its
// resolution is the polling interval.
type watcher struct {
	url        string
	interval   time.Duration
	threshold  int
	collectors int

	mu      sync.Mutex // guards what follows, written by run
	rounds  map[uint64]*roundTrace
	latest  sample
	lastErr error
	// prevCPU is the load generator's CPU time at the previous reading
	// (at first, when the watcher was made).
	prevCPU float64
}

// run polls until ctx ends.
func (w *watcher) run(ctx context.Context) {
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		if s, err := w.read(ctx, client); err == nil {
			w.note(s)
		} else {
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *watcher) note(s sample) {
	if s.round == 0 || s.phase == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.latest = s
	before := w.prevCPU
	w.prevCPU = s.cpu
	rt := w.rounds[s.round]
	if rt == nil {
		rt = &roundTrace{round: s.round, entered: map[string]time.Time{}, cpu: map[string]float64{}}
		w.rounds[s.round] = rt
	}
	mark := func(name string) {
		if _, ok := rt.entered[name]; !ok {
			rt.entered[name], rt.cpu[name] = s.at, before
		}
	}
	mark(s.phase)
	if s.released >= w.threshold {
		mark("released")
	}
	if s.joined >= w.collectors && rt.allJoined.IsZero() {
		rt.allJoined, rt.allJoinedCPU = s.at, s.cpu
	}
}

// read takes one reading.
func (w *watcher) read(ctx context.Context, client *http.Client) (sample, error) {
	s := sample{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return s, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	s.at, s.cpu = time.Now(), selfUsage().CPUSeconds
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "privstats_round_phase{"):
			if v == 1 {
				s.phase = strings.TrimSuffix(strings.TrimPrefix(name, `privstats_round_phase{phase="`), `"}`)
			}
		case name == "privstats_round_number":
			s.round = uint64(v)
		case name == "privstats_round_collectors_joined":
			s.joined = int(v)
		case name == "privstats_round_keepers_released":
			s.released = int(v)
		}
	}
	return s, sc.Err()
}

// phases turns a round's trace into the seconds spent in each of Phases;
// a phase whose end was not seen is left out. end is when the round
// was last seen (the tally server's exit), for a round that never reached
// done.
func (rt *roundTrace) phases() map[string]float64 {
	bounds := []struct{ name, from, to string }{
		{"announce", round.PhaseAnnounced, round.PhaseSetup},
		{"setup", round.PhaseSetup, round.PhaseCollecting},
		{"collect", round.PhaseCollecting, round.PhaseReporting},
		{"report", round.PhaseReporting, round.PhaseAgreeing},
		{"agree", round.PhaseAgreeing, round.PhaseReleasing},
		{"release", round.PhaseReleasing, "released"},
		{"tally", "released", round.PhaseDone},
	}
	out := map[string]float64{}
	for _, b := range bounds {
		from, ok1 := rt.entered[b.from]
		to, ok2 := rt.entered[b.to]
		if ok1 && ok2 {
			out[b.name] = to.Sub(from).Seconds()
		}
	}
	return out
}

// snapshot is a one-line account of the latest round seen.
func (w *watcher) snapshot() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.latest.round == 0 {
		return "waiting for the first round"
	}
	s := w.latest
	return fmt.Sprintf("round %d: %s, %d collectors joined, %d keeper shares", s.round, s.phase, s.joined, s.released)
}

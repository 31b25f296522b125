package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/privstats/privstats/collector"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/internal/health"
	"github.com/privstats/privstats/keeper"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/torctl/torctltest"
)

// TestRulesPassPromtool: Prometheus's own checker accepts the rules, and
// its rule tests (prometheus/rules_test.yml) see each alert fire on the
// series that should trip it and stay quiet on healthy ones.
func TestRulesPassPromtool(t *testing.T) {
	promtool := needPromtool(t)
	for _, args := range [][]string{{"check", "rules", "prometheus/rules.yml"}, {"test", "rules", "prometheus/rules_test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus; .ci/run installs it)")
	}
	return p
}

// TestLiveMetrics runs a deployment of two rounds (a tally server, three
// keepers and two collectors, one of them reading a fake tor's control
// port) and scrapes every node: each /metrics passes `promtool check
// metrics` with no findings, and every metric the dashboard and the rules
// name is among what the nodes export.
func TestLiveMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two rounds of a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ft := torctltest.New(t, "tcp", "NULL")

	keeperHealth, collectorHealth := health.New("keeper"), health.New("collector")
	keeperAddr, collectorAddr := serve(ctx, t, keeperHealth), serve(ctx, t, collectorHealth)
	opts := deploytest.ShortRound()
	opts.Rounds, opts.HTTPListen = 2, "127.0.0.1:0"
	// A histogram counted in connections besides relay_bytes_read's bytes:
	// two unit families, and bins with numeric upper bounds.
	lifetime, err := stats.Resolve("or_connection_lifetime", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Statistics = append(opts.Statistics, lifetime)
	d := deploytest.New(ctx, t, deploytest.Options{Keepers: 3, Collectors: 2, Tally: opts, KeepServing: true,
		Keeper: func(i int, o *keeper.Options) {
			if i == 0 {
				o.Health = keeperHealth.Set
			}
		},
		Collector: func(i int, o *collector.Options) {
			if i == 0 {
				o.Source = source.Merge(o.Source, source.Control(source.ControlOptions{Address: ft.Addr}))
				read, _ := source.Watch(o.Source)
				collectorHealth.WatchSource(func() health.Source {
					st := read()
					return health.Source{Connected: st.Connected, LastHeard: st.LastHeard}
				})
				o.Health = collectorHealth.Set
			}
		}})
	if _, err := d.WaitOutcomes(ctx, 2); err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{
		"tally":     scrape(ctx, t, d.Tally.HTTPAddr()),
		"keeper":    scrape(ctx, t, keeperAddr),
		"collector": scrape(ctx, t, collectorAddr),
	}
	exported := map[string]bool{}
	for role, page := range pages {
		for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(page, -1) {
			exported[m[1]] = true
		}
		if promtool, err := exec.LookPath("promtool"); err == nil {
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(page)
			if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("promtool check metrics on the %s's /metrics: %v\n%s", role, err, out)
			}
		}
	}
	for _, want := range []string{"privstats_estimate_bytes", "privstats_estimate_connections", "privstats_build_info",
		"privstats_collector_source_connected", "privstats_keeper_connected", "privstats_round_window_end_timestamp_seconds"} {
		if !exported[want] {
			t.Errorf("no node exports %s", want)
		}
	}
	if !strings.Contains(pages["tally"], `bin="[10,60)",bin_upper="60"`) {
		t.Errorf("the tally server's histogram bins have no numeric upper bound:\n%s", grep(pages["tally"], "privstats_estimate_connections"))
	}

	named, recorded := namedMetrics(t)
	units := catalogueUnits()
	for name, where := range named {
		if exported[name] || recorded[name] {
			continue
		}
		// The dashboard picks a unit family by variable; a unit the live
		// round did not count must still be one the catalogue has.
		if u, ok := unitOf(name); ok && slices.Contains(units, u) && exported[strings.TrimSuffix(name, u)+"bytes"] {
			continue
		}
		t.Errorf("%s names %s, which no privstats node exports", where, name)
	}
}

// namedMetrics are the privstats metrics the dashboard and the rules
// name (with where), and the names the rules record.
func namedMetrics(t *testing.T) (named map[string]string, recorded map[string]bool) {
	t.Helper()
	named, recorded = map[string]string{}, map[string]bool{}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record, Alert, Expr string
			}
		}
	}
	b, err := os.ReadFile("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`privstats_[a-z0-9_]*[a-z0-9]`)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				named[m] = "rules.yml " + r.Record + r.Alert
			}
		}
	}

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query any
			}
		}
	}
	b, err = os.ReadFile("grafana/privstats.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var units []string
	exprs := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs[tg.Expr] = "dashboard panel " + p.Title
		}
	}
	for _, v := range dash.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Name == "unit" {
				units = strings.Split(q, ",")
			}
		case map[string]any:
			exprs[fmt.Sprint(q["query"])] = "dashboard variable " + v.Name
		}
	}
	if c := catalogueUnits(); !slices.Equal(sorted(units), c) {
		t.Errorf("the dashboard's unit variable offers %v, the catalogue counts in %v", units, c)
	}
	for expr, where := range exprs {
		expanded := []string{expr}
		if strings.Contains(expr, "${unit}") {
			expanded = nil
			for _, u := range units {
				expanded = append(expanded, strings.ReplaceAll(expr, "${unit}", u))
			}
		}
		for _, e := range expanded {
			for _, m := range metric.FindAllString(e, -1) {
				named[m] = where
			}
		}
	}
	if len(named) < 20 {
		t.Fatalf("found only %d metric names in the dashboard and rules: the parsing is broken", len(named))
	}
	return named, recorded
}

// catalogueUnits are the units the catalogue's statistics count in.
func catalogueUnits() []string {
	var units []string
	for _, s := range stats.Catalogue() {
		if !slices.Contains(units, s.Unit) {
			units = append(units, s.Unit)
		}
	}
	return sorted(units)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// unitOf is the unit of a per-unit estimate family.
func unitOf(name string) (string, bool) {
	for _, p := range []string{"privstats_estimate_ci95_low_", "privstats_estimate_ci95_high_", "privstats_estimate_sigma_", "privstats_estimate_"} {
		if u, ok := strings.CutPrefix(name, p); ok {
			return u, true
		}
	}
	return "", false
}

func serve(ctx context.Context, t *testing.T, s *health.Status) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeListener(ctx, ln)
	return ln.Addr().String()
}

// scrape GETs /metrics, retrying until the server answers or ctx ends.
func scrape(ctx context.Context, t *testing.T, addr string) string {
	t.Helper()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no /metrics at %s", addr)
	return ""
}

func grep(page, prefix string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

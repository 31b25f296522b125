package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

	named, recorded, queries := namedMetrics(t)
	units := catalogueUnits()
	labels := exportedLabels(t, pages)
	for name, where := range named {
		if exported[name] || recorded[name] {
			continue
		}
		// The dashboard picks a unit family by variable; a unit the live
		// round did not count must still be one the catalogue has, and
		// its family has the labels every unit's has.
		if u, ok := unitOf(name); ok && slices.Contains(units, u) && exported[strings.TrimSuffix(name, u)+"bytes"] {
			labels[name] = labels[strings.TrimSuffix(name, u)+"bytes"]
			continue
		}
		t.Errorf("%s names %s, which no privstats node exports", where, name)
	}
	for _, bad := range badLabels(queries, labels, recorded) {
		t.Error(bad)
	}
}

// exportedLabels are the label names each metric on the pages has.
func exportedLabels(t *testing.T, pages map[string]string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for role, page := range pages {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(page))
		if err != nil {
			t.Fatalf("the %s's /metrics does not parse: %v", role, err)
		}
		for name, f := range families {
			if out[name] == nil {
				out[name] = map[string]bool{}
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					out[name][l.GetName()] = true
				}
			}
		}
	}
	return out
}

// badLabels finds a label that the metrics a query names do not carry: in
// a selector, a grouping or a legend; and it does not pass a query whose
// labels are all right.
func TestBadLabelsFindsAWrongLabel(t *testing.T) {
	labels := map[string]map[string]bool{
		"privstats_rejected_requests_total": {"reason": true},
		"privstats_round_phase":             {"phase": true},
		"privstats_estimate_bytes":          {"series": true, "statistic": true, "bin": true, "bin_upper": true},
	}
	good := []query{
		{expr: "sum by (reason) (rate(privstats_rejected_requests_total[5m]))", legend: "{{reason}}"},
		{expr: `{__name__="privstats_estimate_bytes", statistic="x", bin_upper!=""}`, legend: "{{ bin }} on {{instance}}"},
		{expr: "max by (phase) (privstats_round_phase) == 1"},
		{expr: "sum by (anything) (reason:privstats_rejected_requests:rate5m)"},
	}
	if bad := badLabels(good, labels, map[string]bool{"reason:privstats_rejected_requests:rate5m": true}); len(bad) != 0 {
		t.Errorf("right labels found wrong: %q", bad)
	}
	for _, q := range []query{
		{expr: "sum by (reasons) (rate(privstats_rejected_requests_total[5m]))"},
		{expr: `privstats_estimate_bytes{stat="x"}`},
		{expr: "privstats_round_phase", legend: "{{phse}}"},
	} {
		if bad := badLabels([]query{q}, labels, nil); len(bad) != 1 {
			t.Errorf("%q (legend %q): %q, want one wrong label", q.expr, q.legend, bad)
		}
	}
}

// query is one PromQL expression of the dashboard or the rules (the
// dashboard's ${unit} expanded), with its legend and where it is.
type query struct{ expr, legend, where string }

// panel is a dashboard panel; a row may hold panels of its own.
type panel struct {
	Title   string
	Targets []struct {
		Expr         string
		LegendFormat string
	}
	Panels []panel
}

// namedMetrics are the privstats metrics the dashboard and the rules
// name (with where), the names the rules record, and every query.
func namedMetrics(t *testing.T) (named map[string]string, recorded map[string]bool, queries []query) {
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
	metric := metricName
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				named[m] = "rules.yml " + r.Record + r.Alert
			}
			queries = append(queries, query{expr: r.Expr, where: "rules.yml " + r.Record + r.Alert})
		}
	}

	var dash struct {
		Panels     []panel
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
	exprs := map[string]query{}
	// Rows hold panels too (a collapsed row keeps them in its own list):
	// every one is walked, so none escapes the check.
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				exprs[tg.Expr+"\x00"+tg.LegendFormat] = query{tg.Expr, tg.LegendFormat, "dashboard panel " + p.Title}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Name == "unit" {
				units = strings.Split(q, ",")
			}
		case map[string]any:
			e := fmt.Sprint(q["query"])
			exprs[e] = query{expr: e, where: "dashboard variable " + v.Name}
		}
	}
	if c := catalogueUnits(); !slices.Equal(sorted(units), c) {
		t.Errorf("the dashboard's unit variable offers %v, the catalogue counts in %v", units, c)
	}
	for _, q := range exprs {
		expanded := []string{q.expr}
		if strings.Contains(q.expr, "${unit}") {
			expanded = nil
			for _, u := range units {
				expanded = append(expanded, strings.ReplaceAll(q.expr, "${unit}", u))
			}
		}
		for _, e := range expanded {
			for _, m := range metric.FindAllString(e, -1) {
				named[m] = q.where
			}
			queries = append(queries, query{e, q.legend, q.where})
		}
	}
	if len(named) < 20 || len(queries) < 40 {
		t.Fatalf("found only %d metric names in %d queries of the dashboard and rules: the parsing is broken", len(named), len(queries))
	}
	return named, recorded, queries
}

var (
	metricName = regexp.MustCompile(`privstats_[a-z0-9_]*[a-z0-9]`)
	selector   = regexp.MustCompile(`\{([^{}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendVar  = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// badLabels checks that every label a query selects on, groups by or
// shows in its legend is one that a metric the query names carries
// (labels[metric]: the label names the nodes export it with; job and
// instance are Prometheus's own). A query of a recorded series is not
// checked here: its labels are those of the rule's expression, which is.
// It returns what is wrong, one line each.
func badLabels(queries []query, labels map[string]map[string]bool, recorded map[string]bool) []string {
	var bad []string
	for _, q := range queries {
		if slices.ContainsFunc(slices.Collect(maps.Keys(recorded)), func(r string) bool { return strings.Contains(q.expr, r) }) {
			continue
		}
		metrics := metricName.FindAllString(q.expr, -1)
		var used []string
		for _, sel := range selector.FindAllStringSubmatch(q.expr, -1) {
			for _, m := range matcher.FindAllStringSubmatch(sel[1], -1) {
				used = append(used, m[1])
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(q.expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					used = append(used, l)
				}
			}
		}
		for _, m := range legendVar.FindAllStringSubmatch(q.legend, -1) {
			used = append(used, m[1])
		}
		for _, l := range used {
			if l == "__name__" || l == "job" || l == "instance" {
				continue
			}
			if !slices.ContainsFunc(metrics, func(m string) bool { return labels[m][l] }) {
				bad = append(bad, fmt.Sprintf("%s: %q uses label %s, which none of %v carries", q.where, q.expr, l, metrics))
			}
		}
	}
	return bad
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

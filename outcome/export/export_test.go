package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/outcome"
)

// sampleRound is a round with a single counter, a categorical and a
// histogram statistic; its totals are made up (no signatures: exports
// reformat, they do not verify).
func sampleRound(n uint64) Round {
	start := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).Add(time.Duration(n-1) * time.Hour)
	total := int64(n) * 1000
	o := &outcome.Outcome{
		Version: outcome.FormatVersion, Series: "relays", Round: n,
		Config:     &round.Config{Series: "relays", Round: n, Epsilon: 1, Delta: 1e-6, Keepers: make([]round.KeeperSpec, 3), Threshold: 2},
		Window:     outcome.Window{Start: start, End: start.Add(time.Hour)},
		Collectors: outcome.Collectors{Count: 7},
		Statistics: []outcome.Statistic{
			{Name: "relay_bytes_read", Epsilon: 0.5, Delta: 5e-7, Sigma: 100, TotalSigma: 101.5,
				Bins: []outcome.Bin{{Label: "total", NoisyTotal: total, CI95Low: float64(total) - 199, CI95High: float64(total) + 199}}},
			{Name: "exit_streams_by_port", Epsilon: 0.25, Delta: 2.5e-7, Sigma: 10, TotalSigma: 10,
				Bins: []outcome.Bin{{Label: "web", NoisyTotal: 40, CI95Low: 20.4, CI95High: 59.6}, {Label: "other", NoisyTotal: -3, CI95Low: -22.6, CI95High: 16.6}}},
			{Name: "or_connection_lifetime", Epsilon: 0.25, Delta: 2.5e-7, Sigma: 5, TotalSigma: 5,
				Bins: []outcome.Bin{{Label: "[0,10)", NoisyTotal: 12}, {Label: "[10,60)", NoisyTotal: 30}, {Label: "[60,inf)", NoisyTotal: 2}}},
		},
		PublishedAt: start.Add(time.Hour + time.Minute),
	}
	return Round{Name: Name("relays", n), Outcome: o}
}

func sampleRounds(n int) []Round {
	var rs []Round
	for i := 1; i <= n; i++ {
		rs = append(rs, sampleRound(uint64(i)))
	}
	return rs
}

// TestCSVLongForm: one row per round × statistic × bin, every column.
func TestCSVLongForm(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, sampleRounds(3)); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "series,round,window_start,window_end,statistic,bin,unit,noisy_total,sigma,ci95_low,ci95_high,epsilon,delta,collectors" {
		t.Fatalf("header %v", rows[0])
	}
	if got, want := len(rows)-1, 3*(1+2+3); got != want {
		t.Fatalf("%d rows, want %d (3 rounds × 6 bins)", got, want)
	}
	want := []string{"relays", "2", "2026-11-28T01:00:00Z", "2026-11-28T02:00:00Z", "relay_bytes_read", "total", "bytes", "2000", "101.5", "1801", "2199", "0.5", "5e-07", "7"}
	if got := rows[1+6]; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("round 2's first row\n got %v\nwant %v", got, want)
	}
	last := rows[len(rows)-1]
	if last[1] != "3" || last[4] != "or_connection_lifetime" || last[5] != "[60,inf)" || last[6] != "connections" {
		t.Errorf("last row %v", last)
	}
	// A negative total is exported as it is, not clipped.
	found := false
	for _, r := range rows[1:] {
		if r[5] == "other" && r[7] == "-3" && r[9] == "-22.6" {
			found = true
		}
	}
	if !found {
		t.Error("the negative total is missing")
	}
}

// TestJSONCarriesRoundMetadata: round, series, window, ε, δ and
// collectors, and each statistic's unit.
func TestJSONCarriesRoundMetadata(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleRounds(1), true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"name": "relays-000001", "series": "relays", "round": 1.0, "epsilon": 1.0, "delta": 1e-6, "collectors": 7.0, "keepers": 3.0, "threshold": 2.0} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if w := got["window"].(map[string]any); w["start"] != "2026-11-28T00:00:00Z" || w["end"] != "2026-11-28T01:00:00Z" {
		t.Errorf("window %v", w)
	}
	st := got["statistics"].([]any)[2].(map[string]any)
	if st["unit"] != "connections" || st["bin_unit"] != "seconds" || st["name"] != "or_connection_lifetime" || st["total_sigma"] != 5.0 {
		t.Errorf("statistic %v", st)
	}
	buf.Reset()
	if err := WriteJSON(&buf, sampleRounds(2), false); err != nil {
		t.Fatal(err)
	}
	var all []RoundJSON
	if err := json.Unmarshal(buf.Bytes(), &all); err != nil || len(all) != 2 || all[1].Round != 2 {
		t.Fatalf("all rounds: %v %+v", err, all)
	}
}

// pythonJSON reads JSON as Python's json module writes it, Infinity and
// -Infinity included, into plain Go values (infinities as ±Inf).
func pythonJSON(t *testing.T, b []byte) map[string]map[string][][3]float64 {
	t.Helper()
	// Infinity is not JSON; quote it so encoding/json reads the rest.
	quoted := regexp.MustCompile(`(-?)Infinity`).ReplaceAll(b, []byte(`"${1}Inf"`))
	var raw map[string]map[string][][3]any
	if err := json.Unmarshal(quoted, &raw); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	out := map[string]map[string][][3]float64{}
	for name, c := range raw {
		if len(c) != 1 || c["bins"] == nil {
			t.Fatalf("counter %s has keys other than bins: %v", name, c)
		}
		var bins [][3]float64
		for _, b := range c["bins"] {
			var v [3]float64
			for i, x := range b {
				switch x := x.(type) {
				case float64:
					v[i] = x
				case string:
					f, err := strconv.ParseFloat(x, 64)
					if err != nil {
						t.Fatal(err)
					}
					v[i] = f
				}
			}
			bins = append(bins, v)
		}
		out[name] = map[string][][3]float64{"bins": bins}
	}
	return out
}

// TestPrivCountTallies: the export has the shape of PrivCount's own
// tallies file (testdata/privcount.tallies.sample.json, written from
// PrivCount's tally server code; see testdata/README.md): counters by
// name, each {"bins": [[lo, hi, count], …]}, single counters over
// [-Infinity, Infinity], histograms with float edges and an Infinity top.
func TestPrivCountTallies(t *testing.T) {
	sample, err := os.ReadFile("testdata/privcount.tallies.sample.json")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	r := sampleRound(1)
	if err := WritePrivCount(&buf, r.Outcome); err != nil {
		t.Fatal(err)
	}
	got, want := pythonJSON(t, buf.Bytes()), pythonJSON(t, sample)
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Errorf("export differs from the PrivCount-format sample\n got %s\nwant %s", g, w)
	}
	// Laid out as json.dump(sort_keys=True, indent=4) lays it out, so a
	// diff against PrivCount's own files shows only the numbers.
	if !bytes.Equal(bytes.ReplaceAll(sample, []byte(", \n"), []byte(",\n")), buf.Bytes()) {
		t.Errorf("layout differs from the sample:\n%s", buf.Bytes())
	}
	if name := TalliesFileName(r.Outcome); name != "privcount.tallies.1795824000-1795827600.json" {
		t.Errorf("file name %s", name)
	}
}

// TestSamplesOneFamilyPerUnit: totals are split by unit, histogram bins
// carry a numeric bin_upper, and the families pass Prometheus's lint.
func TestSamplesOneFamilyPerUnit(t *testing.T) {
	var c Collector
	c.Set(sampleRound(2).Outcome)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&c)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, mf := range mfs {
		names[mf.GetName()] = len(mf.GetMetric())
	}
	for name, n := range map[string]int{
		"privstats_estimate_bytes": 1, "privstats_estimate_streams": 2, "privstats_estimate_connections": 3,
		"privstats_estimate_ci95_low_connections": 3, "privstats_estimate_sigma_streams": 1,
		FamilyWindowEnd: 1, FamilyOutcomeRound: 1, FamilyStatisticEpsilon: 3, FamilyOutcomeDelta: 1,
	} {
		if names[name] != n {
			t.Errorf("%s: %d series, want %d", name, names[name], n)
		}
	}
	want := `# HELP privstats_estimate_connections Published noisy network-wide total of the latest round, per statistic and bin, in connections.
# TYPE privstats_estimate_connections gauge
privstats_estimate_connections{bin="[0,10)",bin_upper="10",series="relays",statistic="or_connection_lifetime"} 12
privstats_estimate_connections{bin="[10,60)",bin_upper="60",series="relays",statistic="or_connection_lifetime"} 30
privstats_estimate_connections{bin="[60,inf)",bin_upper="+Inf",series="relays",statistic="or_connection_lifetime"} 2
# HELP privstats_round_window_end_timestamp_seconds End of the counting window of the latest published round (Unix time); the totals describe the window that ends here.
# TYPE privstats_round_window_end_timestamp_seconds gauge
privstats_round_window_end_timestamp_seconds{series="relays"} 1.7958312e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "privstats_estimate_connections", FamilyWindowEnd); err != nil {
		t.Error(err)
	}
}

// TestOpenMetricsBackfill: the history is OpenMetrics with one point per
// round at its window end, and promtool (Debian's prometheus package)
// turns it into TSDB blocks.
func TestOpenMetricsBackfill(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOpenMetrics(&buf, sampleRounds(3)); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if !strings.HasSuffix(text, "\n# EOF\n") {
		t.Fatal("no # EOF at the end")
	}
	for _, line := range []string{
		`privstats_estimate_bytes{series="relays",statistic="relay_bytes_read",bin="total",bin_upper=""} 1000 1795827600`,
		`privstats_estimate_bytes{series="relays",statistic="relay_bytes_read",bin="total",bin_upper=""} 2000 1795831200`,
		`privstats_estimate_bytes{series="relays",statistic="relay_bytes_read",bin="total",bin_upper=""} 3000 1795834800`,
		`privstats_outcome_round{series="relays"} 3 1795834800`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("missing %s", line)
		}
	}
	// Each family is written once, whole.
	if n := strings.Count(text, "# TYPE privstats_estimate_bytes gauge\n"); n != 1 {
		t.Errorf("privstats_estimate_bytes typed %d times", n)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); the format was checked above")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "history.om")
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", in, filepath.Join(dir, "blocks")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	blocks, err := os.ReadDir(filepath.Join(dir, "blocks"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("promtool wrote no blocks (%v):\n%s", err, out)
	}
	// The blocks hold what was written (dump wants a WAL directory).
	if err := os.Mkdir(filepath.Join(dir, "blocks", "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	dump, err := exec.Command(promtool, "tsdb", "dump", filepath.Join(dir, "blocks")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb dump: %v\n%s", err, dump)
	}
	if !strings.Contains(string(dump), `privstats_estimate_bytes`) || !strings.Contains(string(dump), "3000 1795834800000") {
		t.Errorf("the blocks do not hold the last round's total:\n%.2000s", dump)
	}
}

// TestReadDir: rounds come back oldest first from DIR or DIR/outcomes; a
// damaged file is an error naming it, or, for a listing that asks to skip,
// is passed over and reported; a missing directory is fs.ErrNotExist.
func TestReadDir(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "outcomes")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Round{sampleRound(2), sampleRound(10), sampleRound(1)} {
		if err := outcome.Write(filepath.Join(dir, r.Name+".json"), r.Outcome); err != nil {
			t.Fatal(err)
		}
	}
	got, err := OutcomesDir(data)
	if err != nil || got != dir {
		t.Fatalf("OutcomesDir(data) = %q, %v", got, err)
	}
	if got, err := OutcomesDir(dir); err != nil || got != dir {
		t.Fatalf("OutcomesDir(outcomes) = %q, %v", got, err)
	}
	if _, err := OutcomesDir(filepath.Join(data, "nowhere")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("missing directory: %v", err)
	}
	rounds, err := ReadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rounds {
		names = append(names, r.Name)
	}
	if strings.Join(names, " ") != "relays-000001 relays-000002 relays-000010" {
		t.Errorf("order %v", names)
	}

	if err := os.WriteFile(filepath.Join(dir, "relays-000003.json"), []byte(`{"version": 1, "surprise": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(dir, nil); err == nil || !strings.Contains(err.Error(), "relays-000003.json") {
		t.Errorf("a damaged file: %v, want an error naming it", err)
	}
	var skipped []error
	rounds, err = ReadDir(dir, func(err error) { skipped = append(skipped, err) })
	if err != nil || len(rounds) != 3 || len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "relays-000003.json") {
		t.Errorf("skipping: %d rounds, %v, skipped %v", len(rounds), err, skipped)
	}
}

// TestOnly: narrowing to one statistic keeps its totals, drops rounds
// without it, and leaves the outcomes as they were.
func TestOnly(t *testing.T) {
	rs := sampleRounds(2)
	rs[1].Outcome.Statistics = rs[1].Outcome.Statistics[:1] // round 2 lacks the histogram
	got := Only(rs, "or_connection_lifetime")
	if len(got) != 1 || got[0].Name != "relays-000001" || len(got[0].Outcome.Statistics) != 1 || got[0].Outcome.Statistics[0].Name != "or_connection_lifetime" {
		t.Fatalf("Only: %+v", got)
	}
	if len(rs[0].Outcome.Statistics) != 3 {
		t.Error("Only changed the outcome it was given")
	}
}

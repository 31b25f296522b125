package config_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/policy"
)

// testdata is the repository's shared testdata directory, absolute, as the
// loader resolves relative paths against it.
func testdata(t *testing.T, name string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

func TestTallyExample(t *testing.T) {
	tc, err := config.LoadTally(testdata(t, "tally.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("identity_key", tc.IdentityKey, testdata(t, "keys/tally.key"))
	check("data_dir", tc.DataDir, testdata(t, "privstats-data"))
	check("listen", tc.Listen, "0.0.0.0:8443")
	check("http_listen", tc.HTTPListen, "127.0.0.1:9464")
	check("series", tc.Series, "relays-2026-11")
	check("rounds", tc.Rounds, 7)
	check("round_length", time.Duration(tc.RoundLength), 24*time.Hour)
	check("period (defaults to round_length)", time.Duration(tc.Period), 24*time.Hour)
	check("setup_time", time.Duration(tc.SetupTime), 5*time.Minute)
	check("keepers", len(tc.Keepers), 3)
	check("threshold", tc.Threshold, 2)
	check("collectors", len(tc.Collectors), 5)
	check("collectors[3].name", tc.Collectors[3].Name, "exit-sea-1")
	check("min_collectors", tc.MinCollectors, 3)
	check("honest_fraction", tc.NoiseWeights.HonestFraction, 0.6)
	check("delta", tc.Delta, 1e-6)
	check("statistics", len(tc.Statistics), 5)
	check("statistics[3]", tc.Statistics[3].Name, "exit_streams_by_port")
	check("statistics[0].sigma", tc.Statistics[0].Sigma, 1.893756666957987e12)
	check("accounting", tc.Accounting, round.AccountingComposed)
	check("statistics[0].max_per_collector", tc.Statistics[0].MaxPerCollector, uint64(1e14))
	check("policy.min_round_length", time.Duration(tc.Policy.MinRoundLength), 12*time.Hour)
	check("policy.sigma_tolerance (default)", tc.Policy.SigmaTolerance, 0.01)
	check("max_body_bytes", tc.MaxBodyBytes, int64(8<<20))
	check("allow", len(tc.Allow), 1)

	// The example is a round the tally server's own policy admits.
	cfg := exampleRound(t, tc, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Policy.Check(cfg, nil, cfg.Start); err != nil {
		t.Fatal(err)
	}
	if err := noise.CheckCoverage(tc.NoiseWeights.Resolve(tc.CollectorFingerprints()), tc.MinCollectors); err != nil {
		t.Fatal(err)
	}
	if err := noise.CheckClaim(cfg); err != nil {
		t.Fatal(err)
	}
}

// exampleRound is round 1 of a tally config as the tally server would
// announce it.
func exampleRound(t *testing.T, tc *config.Tally, start time.Time) *round.Config {
	t.Helper()
	specs, err := tc.StatisticSpecs()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &round.Config{
		Version: round.ConfigVersion, Series: tc.Series, Round: 1,
		Start: start, End: start.Add(time.Duration(tc.RoundLength)),
		Epsilon: tc.Epsilon, Delta: tc.Delta, Accounting: tc.Accounting, Statistics: specs,
		Threshold: tc.Threshold, MinCollectors: tc.MinCollectors,
	}
	for i, fp := range tc.Keepers {
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: fp, X: i + 1})
	}
	w := tc.NoiseWeights.Resolve(tc.CollectorFingerprints())
	for _, fp := range tc.CollectorFingerprints() {
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: fp, NoiseWeight: w[fp]})
	}
	return cfg
}

func TestKeeperExample(t *testing.T) {
	k, err := config.LoadKeeper(testdata(t, "keeper1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Keeper{
		IdentityKey: testdata(t, "keys/keeper1.key"),
		Tally:       config.Peer{Address: "tally.example.org:8443", Fingerprint: "24021828a29890be418fc7500ad77688a51683641e0d01ac2d7c0f449b880742"},
		Keepers: []string{
			"3533c5e8b2e9dc59729aa1df7e13fd730326d127413f5c0ff367922b7ca9ad59",
			"e5a01533a2311f8a2b90441f084c9f7923f526070790fbd7f8f10f4dfb2710ea",
			"2c58fafcc90f148fbbccffc0634278c0914697aeb908f142665fba21a357c80b",
		},
		CollectorsFile: testdata(t, "roster.yaml"),
		DataDir:        testdata(t, "privstats-keeper1"),
		Policy: policy.Policy{
			MaxEpsilon: 0.3, MaxDelta: 1e-3, MinCollectors: 3,
			MinRoundLength: policy.Duration(12 * time.Hour), MaxStatistics: 20,
			DelayPeriod: policy.Duration(24 * time.Hour), SigmaTolerance: 0.01, DishonestKeepers: 1,
		},
		HealthListen: "127.0.0.1:9465",
	}
	if k.IdentityKey != want.IdentityKey || k.Tally != want.Tally || !slices.Equal(k.Keepers, want.Keepers) ||
		k.DataDir != want.DataDir || !reflect.DeepEqual(k.Policy, want.Policy) || k.HealthListen != want.HealthListen {
		t.Errorf("got  %+v\nwant %+v", *k, want)
	}
}

func TestCollectorExamples(t *testing.T) {
	t.Run("control port", func(t *testing.T) {
		dc, err := config.LoadCollector(testdata(t, "collector1.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		ctl := dc.Source.Control
		if ctl == nil || dc.Source.MetricsPort != nil || dc.Source.Trace != nil || dc.Source.Synthetic != nil {
			t.Fatalf("source %+v, want only control", dc.Source)
		}
		if network, addr := ctl.Network(); network != "unix" || addr != "/run/tor/control" {
			t.Errorf("control dials %s %s, want Debian's socket", network, addr)
		}
		if ctl.CookieFile != "" || dc.LogFormat != config.LogJSON {
			t.Errorf("cookie_file %q (want tor's, from PROTOCOLINFO), log_format %q", ctl.CookieFile, dc.LogFormat)
		}
		if !slices.Equal(ctl.AllowedAuth, []string{"SAFECOOKIE"}) {
			t.Errorf("allowed_auth %v, want [SAFECOOKIE]", ctl.AllowedAuth)
		}
		if dc.RelayFingerprint != "5A1F0C3B7E9D2468ACE13579BDF02468ACE13579" {
			t.Errorf("relay_fingerprint %q, want it upper-case without $", dc.RelayFingerprint)
		}
		if dc.DataDir != testdata(t, "privstats-collector1") || dc.Policy.MinRoundLength != policy.Duration(12*time.Hour) {
			t.Errorf("data_dir %s, policy %+v", dc.DataDir, dc.Policy)
		}
	})
	t.Run("metrics port", func(t *testing.T) {
		dc, err := config.LoadCollector(testdata(t, "collector2.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m := dc.Source.MetricsPort
		if m == nil || m.URL != "http://127.0.0.1:9035/metrics" || time.Duration(m.Interval) != 10*time.Second {
			t.Errorf("metrics_port %+v, want the URL and the default 10s interval", m)
		}
		if dc.IdentityKey != "/etc/privstats/collector2.key" {
			t.Errorf("an absolute identity_key became %q", dc.IdentityKey)
		}
		if dc.DataDir != testdata(t, "privstats-collector") || !reflect.DeepEqual(dc.Policy, policy.Defaults()) || dc.HealthListen != "" {
			t.Errorf("defaults not applied: data_dir %s, policy %+v, health_listen %q", dc.DataDir, dc.Policy, dc.HealthListen)
		}
	})
	t.Run("synthetic", func(t *testing.T) {
		dc, err := config.LoadCollector(testdata(t, "collector-synthetic.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		s := dc.Source.Synthetic
		if s == nil || s.Rate != 2000 || s.Seed == nil || *s.Seed != 42 {
			t.Errorf("synthetic %+v", s)
		}
		// An explicit 0s keeps its meaning (no minimum); keys left out
		// keep their defaults.
		want := policy.Defaults()
		want.MinRoundLength = 0
		want.DelayPeriod = policy.Duration(time.Minute)
		if !reflect.DeepEqual(dc.Policy, want) {
			t.Errorf("policy %+v, want %+v", dc.Policy, want)
		}
	})
	t.Run("trace", func(t *testing.T) {
		dc, err := config.LoadCollector(testdata(t, "collector-trace.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if tr := dc.Source.Trace; tr == nil || tr.Path != testdata(t, "traces/relay.trace") || tr.Speed != config.SpeedFast {
			t.Errorf("trace %+v", tr)
		}
	})
}

func TestPrivacyPlanExample(t *testing.T) {
	plan, err := config.LoadPrivacyPlan(testdata(t, "privacy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if plan.Epsilon != 0.3 || plan.Delta != 1e-6 || len(plan.Statistics) != 5 {
		t.Fatalf("plan %+v", plan)
	}
	var touched []int64
	for _, s := range plan.Statistics {
		touched = append(touched, s.BinsTouched)
	}
	if !slices.Equal(touched, []int64{1, 1, 3, 4, 2}) {
		t.Errorf("bins_touched %v, want the catalogue's", touched)
	}
	if s := plan.Statistics[0]; s.Sensitivity != 64<<20*3*1.1 {
		t.Errorf("%s: sensitivity %v, want the catalogue's action bound", s.Name, s.Sensitivity)
	}
	if s := plan.Statistics[4]; s.Sensitivity != 800 {
		t.Errorf("%s: sensitivity %v, want the 800 given", s.Name, s.Sensitivity)
	}
	honest, floor, _ := plan.Honest()
	if honest.N != 3 || floor != 2*math.Sqrt(3)*(1+1e-9) {
		t.Errorf("5 collectors, β = 0.6: honest set %+v and floor %v, want 3 collectors and 2·√3", honest, floor)
	}
	composed, err := noise.AllocateComposed(plan.Epsilon, plan.Delta, plan.Budgets(), honest, floor)
	if err != nil {
		t.Fatal(err)
	}
	// tally.yaml's statistics are this plan's output, as printed.
	tc, err := config.LoadTally(testdata(t, "tally.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if tc.Accounting != round.AccountingComposed || tc.Epsilon != plan.Epsilon || tc.Delta != plan.Delta {
		t.Errorf("tally.yaml: accounting %q, ε = %v, δ = %v; the plan is composed for %v, %v", tc.Accounting, tc.Epsilon, tc.Delta, plan.Epsilon, plan.Delta)
	}
	for i, a := range composed.Statistics {
		s, p := tc.Statistics[i], plan.Statistics[i]
		if s.Name != a.Name || s.Sigma != a.Sigma || s.Epsilon != 0 || s.Delta != 0 ||
			s.Sensitivity != p.Sensitivity || s.BinsTouched != p.BinsTouched {
			t.Errorf("tally.yaml %+v, the plan says %+v for %+v", s, a, p)
		}
	}
}

func TestPolicyFiles(t *testing.T) {
	load := func(name string) policy.Policy {
		t.Helper()
		p := policy.Defaults()
		if err := config.Load(testdata(t, name), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	strict, lenient := load("policy-strict.yaml"), load("policy-lenient.yaml")
	if strict.SigmaTolerance != 0 || strict.DelayPeriod != policy.Duration(48*time.Hour) {
		t.Errorf("strict %+v", strict)
	}
	if strict.MinSensitivity["relay_bytes_read"] != 442918502.4 || lenient.MinSensitivity["exit_streams"] != 100 {
		t.Errorf("min_sensitivity: strict %v, lenient %v", strict.MinSensitivity, lenient.MinSensitivity)
	}
	if lenient.DelayPeriod != policy.Duration(24*time.Hour) || lenient.SigmaTolerance != 0.01 || lenient.MinRoundLength != policy.Duration(90*time.Second) {
		t.Errorf("lenient %+v: keys left out should keep their defaults", lenient)
	}

	tc, err := config.LoadTally(testdata(t, "tally.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := exampleRound(t, tc, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if err := lenient.Check(cfg, nil, cfg.Start); err != nil {
		t.Errorf("lenient policy: %v", err)
	}
	err = strict.Check(cfg, nil, cfg.Start)
	var r *policy.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("strict policy: got %v, want a refusal", err)
	}
	for _, want := range []string{"max_epsilon 0.1", "max_delta 1e-07", "at least 20", "max_statistics 4", "relay_bytes_read: its noise is calibrated for sensitivity 2.214592512e+08, less than this node's min_sensitivity 4.429185024e+08"} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("strict refusal %q does not mention %q", r.Reason, want)
		}
	}
}

// Every bad file in testdata fails with its file, line, problem and hint.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		load func(string) error
		want []string
	}{
		{"bad-unknown-key.yaml", loadTally, []string{`bad-unknown-key.yaml:9: unknown key "treshold" (did you mean "threshold"?)`}},
		{"bad-policy-key.yaml", loadKeeper, []string{`bad-policy-key.yaml:11: unknown key "min_delta" in policy (did you mean "max_delta"?)`}},
		{"bad-fingerprint.yaml", loadKeeper, []string{
			`bad-fingerprint.yaml:9: keepers[1]: fingerprint "E5A01533A2311F8A2B90441F084C9F7923F526070790FBD7F8F10F4DFB2710EA" is not lower-case hex (a fingerprint is 64 lower-case hex digits`,
			`bad-fingerprint.yaml:10: keepers[2]: fingerprint "2c58fafcc90f148fbbccffc0634278c0914697aeb908f142665fba21a357c80" is not 64 hex digits (`,
		}},
		{"bad-duration.yaml", loadTally, []string{`bad-duration.yaml:4: round_length: invalid duration "1 day" (write a number with a unit: 90s, 1h30m, 24h)`}},
		{"bad-negative-duration.yaml", loadKeeper, []string{`bad-negative-duration.yaml:9: policy.delay_period: duration "-24h" is negative`}},
		{"bad-threshold.yaml", loadTally, []string{`bad-threshold.yaml:9: threshold: 1 is too low: with 3 keepers it must be from 2 to 3 (K > N/2`}},
		{"bad-source.yaml", loadCollector, []string{`bad-source.yaml:8: source: has control and synthetic; give exactly one source`}},
		{"bad-type.yaml", loadPrivacyPlan, []string{`bad-type.yaml:6: statistics[0].sensitivity: cannot use "lots" as a number`}},
		{"bad-values.yaml", loadTally, []string{
			`bad-values.yaml:3: listen: "https://tally.example.org:8443" is a URL; write host:port`,
			`bad-values.yaml:6: period: 30m0s is shorter than round_length 1h0m0s; rounds of a series must not overlap`,
			`bad-values.yaml:12: min_collectors: 2 must be from 1 to the 1 permitted collectors`,
			`bad-values.yaml:13: epsilon: the statistics' epsilon add up to 0.6, more than the round's 0.3`,
			`bad-values.yaml:14: delta: 1.5 must be between 0 and 1, exclusive`,
			`bad-values.yaml:17: statistics[0].sigma: -1 must be a positive number`,
			`bad-values.yaml:21: statistics[1].name: exit_streams_by_port is listed twice (also statistics[0])`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			err := tt.load(filepath.Join("..", "testdata", tt.file))
			if err == nil {
				t.Fatal("loaded")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if i >= len(lines) || !strings.HasPrefix(lines[i], "../testdata/"+want) {
					t.Errorf("problem %d:\n got %q\nwant %q…", i, lines[i], want)
				}
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Line == 0 || ce.File != filepath.Join("..", "testdata", tt.file) {
				t.Errorf("errors.As found %+v, want a *config.Error with file and line", ce)
			}
		})
	}
}

// The loaders as the problem tests call them: a path in, the error out.
func loadTally(p string) error       { _, err := config.LoadTally(p); return err }
func loadKeeper(p string) error      { _, err := config.LoadKeeper(p); return err }
func loadCollector(p string) error   { _, err := config.LoadCollector(p); return err }
func loadPrivacyPlan(p string) error { _, err := config.LoadPrivacyPlan(p); return err }

// problem is a file a loader must refuse, and what its error must say
// after the file's path.
type problem struct{ name, content, want string }

// wantProblems writes each problem's file and wants load to refuse it with
// an error that names the file and then says what the problem wants.
func wantProblems(t *testing.T, load func(path string) error, problems []problem) {
	t.Helper()
	for _, tt := range problems {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.content)
			if err := load(path); err == nil || !strings.Contains(err.Error(), path+tt.want) {
				t.Errorf("got  %v\nwant %s%s", err, path, tt.want)
			}
		})
	}
}

// write puts a config file in a fresh directory and returns its path.
func write(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	fp1 = "3533c5e8b2e9dc59729aa1df7e13fd730326d127413f5c0ff367922b7ca9ad59"
	fp2 = "e5a01533a2311f8a2b90441f084c9f7923f526070790fbd7f8f10f4dfb2710ea"
	fp3 = "2c58fafcc90f148fbbccffc0634278c0914697aeb908f142665fba21a357c80b"
	dc1 = "03364d7839e1ca0996ca708d0b53545483939bd34a6ea65444444bbefcde0f71"
	dc2 = "43b85738c1846d1d35611318ebd2a08646acccd50dc58721c12cfe4857f938bc"
	dc3 = "b9e0b80f9003f4038a3a5b4464efeeeb0ee4c3cbfcb6ead0f978f9b0b1a34308"
	dc4 = "3160a2be041d4df3fd5c618245825c3eccd828372a8a990f49a52364d6cf44d8"
)

// minimalTally is the least a tally.yaml must say.
const minimalTally = `identity_key: tally.key
series: test
round_length: 1h
keepers: [` + fp1 + `]
threshold: 1
collectors:
  - fingerprint: ` + dc1 + `
  - fingerprint: ` + dc2 + `
  - fingerprint: ` + dc3 + `
min_collectors: 3
epsilon: 0.3
delta: 1e-3
statistics:
  - {name: exit_streams, sigma: 30561, epsilon: 0.3, delta: 1e-3, max_per_collector: 1000}
`

func TestTallyDefaults(t *testing.T) {
	path := write(t, minimalTally)
	tc, err := config.LoadTally(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if tc.Listen != "127.0.0.1:8443" || tc.HTTPListen != "127.0.0.1:9464" || tc.DataDir != filepath.Join(dir, "privstats-data") ||
		tc.IdentityKey != filepath.Join(dir, "tally.key") || tc.Rounds != 1 || tc.SetupTime != policy.Duration(30*time.Second) ||
		tc.Period != tc.RoundLength || !reflect.DeepEqual(tc.Policy, policy.Defaults()) || tc.MaxBodyBytes != 8<<20 {
		t.Errorf("defaults not applied: %+v", tc)
	}
	// Given values win over defaults, even zero ones.
	tc, err = config.LoadTally(write(t, minimalTally+"http_listen: \"\"\nrounds: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tc.HTTPListen != "" || tc.Rounds != 0 {
		t.Errorf("http_listen %q, rounds %d; want \"\" (disabled) and 0 (forever)", tc.HTTPListen, tc.Rounds)
	}
}

// TestSyntaxErrorLine: a YAML syntax error is reported at the line it is
// on, not where yaml.v3 says (the start of the enclosing block, counted
// from 0: "line 1" for most of these).
func TestSyntaxErrorLine(t *testing.T) {
	plan := "# A privacy plan.\nepsilon: 0.5\ndelta: 1e-6\nstatistics:\n"
	wantProblems(t, loadPrivacyPlan, []problem{
		{"item out of the list", plan + "  - name: or_connections\n    estimate: 3\n  sensitivity: 1\n",
			`:7: YAML syntax: did not find expected '-' indicator`},
		{"key out of the mapping", plan + "  - name: or_connections\n    estimate: 3\n   sensitivity: 1\n",
			`:7: YAML syntax: did not find expected '-' indicator`},
		{"list at the top", "# A plan.\nepsilon: 0.5\n- delta\n", `:3: YAML syntax: did not find expected key`},
		{"unclosed flow list", plan + "  - name: [or_connections\n    estimate: 3\n", `:5: YAML syntax: did not find expected ',' or ']'`},
		{"unclosed quote", plan + "  - name: \"or_connections\n    estimate: 3\n", `:5: YAML syntax: found unexpected end of stream`},
		{"tab", plan + "\t- name: x\n", `:5: YAML syntax: found character that cannot start any token`},
		{"two values", plan + "  - name: a: b\n", `:5: YAML syntax: mapping values are not allowed in this context`},
		{"key without colon", "epsilon: 0.5\ndelta\nstatistics: []\n", `:2: YAML syntax: could not find expected ':'`},
	})
	// A role config goes through the same path (Load, not only parse).
	wantProblems(t, loadKeeper, []problem{
		{"keeper", "# keeper\nidentity_key: k\npolicy:\n  max_epsilon: 0.3\n max_delta: 1e-3\n", `:5: YAML syntax: did not find expected key`},
	})
}

func TestProblems(t *testing.T) {
	keeper := "identity_key: k\ntally: {address: \"t:8443\", fingerprint: " + fp1 + "}\nkeepers: [" + fp1 + "]\n"
	tests := []problem{
		{"no close key", keeper + "colour: red\n",
			`:4: unknown key "colour" (valid keys here: collectors, collectors_file, data_dir, health_listen, identity_key, keepers, log_format, policy, tally)`},
		{"key without value", keeper + "health_listen:\n",
			`:4: health_listen has no value (give one, or leave the key out for the default; write "" for an empty string)`},
		{"syntax", keeper + "policy:\n  max_epsilon: 0.3\n max_delta: 1e-3\n",
			`:6: YAML syntax: did not find expected key`},
		{"not a mapping", "- a\n- b\n", `:1: want a mapping of settings`},
		{"list for a string", keeper + "data_dir: [a, b]\n", `:4: data_dir: cannot use a list as a single value`},
		{"second document", keeper + "---\nidentity_key: other\n", `:4: a second YAML document`},
		{"empty", "# nothing\n", `: the file is empty`},
		{"missing required", "tally: {address: \"t:8443\"}\n",
			`:1: identity_key: required (the file privstats keygen wrote)`},
		{"missing nested", "identity_key: k\ntally: {address: \"t:8443\"}\nkeepers: [" + fp1 + "]\n",
			`:2: tally.fingerprint: required (the tally server's fingerprint`},
		{"peer URL", "identity_key: k\ntally: {address: \"https://t:8443\", fingerprint: " + fp1 + "}\nkeepers: [" + fp1 + "]\n",
			`:2: tally.address: "https://t:8443" is a URL; write host:port`},
		{"repeated keeper", "identity_key: k\ntally: {address: \"t:8443\", fingerprint: " + fp1 + "}\nkeepers:\n  - " + fp1 + "\n  - " + fp1 + "\n",
			`:5: keepers[1]: ` + fp1 + ` is listed twice (also keepers[0])`},
		{"roster missing", keeper, `:1: collectors: required: every collector this keeper admits`},
		{"roster twice", keeper + "collectors: [{fingerprint: " + fp1 + "}]\ncollectors_file: r.yaml\n",
			`:5: collectors_file: give the roster inline (collectors) or as a file (collectors_file), not both`},
		{"roster fingerprint", keeper + "collectors:\n  - {fingerprint: ABC, name: relay1}\n",
			`:5: collectors[0]: fingerprint "ABC" is not 64 hex digits`},
		{"roster file missing", keeper + "collectors_file: no-such-roster.yaml\n",
			`:4: collectors_file: config: open `},
		{"policy range", keeper + "policy:\n  sigma_tolerance: 1.5\n",
			`:5: policy.sigma_tolerance: 1.5 must be at least 0 and below 1`},
		{"alias and merge", keeper + "base: &b\n  max_epsilon: 0.2\npolicy:\n  <<: *b\n  max_epsilson: 0.1\n",
			`:8: unknown key "max_epsilson" in policy (did you mean "max_epsilon"?)`},
	}
	wantProblems(t, loadKeeper, tests)
}

// A roster file is read with the same strictness as the role files, and
// its problems name the roster file and line.
func TestRosterFile(t *testing.T) {
	roster := write(t, "collectors:\n  - fingerprint: "+fp1+"\n    name: relay1\n  - fingerprint: "+fp1+"\n")
	_, err := config.LoadRoster(roster)
	if err == nil || !strings.Contains(err.Error(), roster+":4: collectors[1]: "+fp1+" is listed twice") {
		t.Fatalf("duplicate roster entry: got %v", err)
	}
	if _, err := config.LoadRoster(write(t, "collectors:\n  - fingerprnt: "+fp1+"\n")); err == nil || !strings.Contains(err.Error(), `did you mean "fingerprint"`) {
		t.Fatalf("misspelt key: got %v", err)
	}
	good, err := config.LoadRoster(testdata(t, "roster.yaml"))
	if err != nil || len(good) != 5 {
		t.Fatalf("testdata/roster.yaml: %d entries, %v", len(good), err)
	}
}

func TestTallyProblems(t *testing.T) {
	tests := []problem{
		{"coverage", strings.Replace(minimalTally, "min_collectors: 3\n", "min_collectors: 1\nnoise_weights: {honest_fraction: 0.6}\n", 1),
			`:10: min_collectors: noise: coverage: with min_collectors = 1 of 3 permitted collectors`},
		{"unknown weight", minimalTally + "noise_weights:\n  explicit:\n    " + dc4 + ": 1\n",
			`:17: noise_weights.explicit.` + dc4 + `: ` + dc4 + ` is not among the permitted collectors`},
		{"both weight modes", minimalTally + "noise_weights: {default: 1, honest_fraction: 0.5}\n",
			`:15: noise_weights: noise: weights: set default or honest_fraction, not both`},
		{"bins", strings.Replace(minimalTally, "max_per_collector: 1000}", "max_per_collector: 1000, bins: [0, 10, 10, 100]}", 1),
			`:14: statistics[0].bins[2]: bin "10" is listed twice`},
		{"overflow", strings.Replace(minimalTally, "max_per_collector: 1000}", "max_per_collector: 4611686018427387904}", 1),
			`:14: statistics[0].max_per_collector: round config: statistic "exit_streams" could overflow`},
		{"threshold above keepers", strings.Replace(minimalTally, "threshold: 1", "threshold: 2", 1),
			`:5: threshold: 2 is more than the 1 keepers (with 1 keepers it must be from 1 to 1)`},
		{"threshold missing", strings.Replace(minimalTally, "threshold: 1\n", "", 1),
			`:1: threshold: required (K, how many keepers must agree to release a result; with 1 keepers it must be from 1 to 1)`},
		{"own policy", minimalTally + "policy:\n  max_epsilon: 0.1\n",
			`:15: policy: this server's own policy would refuse its rounds: round ε = 0.3 is more than this node's max_epsilon 0.1`},
		{"unknown statistic", strings.Replace(minimalTally, "name: exit_streams,", "name: exit_streamz,", 1),
			`:14: statistics[0].name: unknown statistic "exit_streamz"; closest: exit_streams`},
		{"sensitivity below the catalogue's", strings.Replace(minimalTally, "max_per_collector: 1000}", "max_per_collector: 1000, sensitivity: 10}", 1),
			`:1: policy: this server's own policy would refuse its rounds: statistic exit_streams: its noise is calibrated for sensitivity 10, less than the catalogue's action bound 4320`},
		{"sigma short of the budget", strings.Replace(minimalTally, "sigma: 30561,", "sigma: 100,", 1),
			`:1: policy: this server's own policy would refuse its rounds: statistic exit_streams: σ = 100 is less than the 30560.6 that ε = 0.3, δ = 0.001 need for sensitivity 4320 over 1 bins`},
		{"bins_touched beyond the bins", strings.Replace(minimalTally, "max_per_collector: 1000}", "max_per_collector: 1000, bins_touched: 2}", 1),
			`:14: statistics[0].bins_touched: 2, but exit_streams has 1 bins`},
		{"series name", strings.Replace(minimalTally, "series: test", "series: ../etc", 1),
			`:2: series: "../etc" may hold only letters, digits, _, . and -`},
	}
	wantProblems(t, loadTally, tests)
}

// An operator may calibrate for less than the catalogue's action bound
// (a test network), if the policy says so.
func TestTallyMinSensitivityLowersTheFloor(t *testing.T) {
	content := strings.Replace(minimalTally, "sigma: 30561, epsilon: 0.3, delta: 1e-3, max_per_collector: 1000}",
		"sigma: 100, epsilon: 0.3, delta: 1e-3, max_per_collector: 1000, sensitivity: 10}", 1) +
		"policy:\n  min_sensitivity: {exit_streams: 10}\n"
	tc, err := config.LoadTally(write(t, content))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := tc.StatisticSpecs()
	if err != nil {
		t.Fatal(err)
	}
	if specs[0].Sensitivity != 10 || specs[0].BinsTouched != 1 {
		t.Errorf("spec %+v, want sensitivity 10 over 1 bin", specs[0])
	}
	content = strings.Replace(content, "{exit_streams: 10}", "{exit_streamz: 10}", 1)
	if _, err := config.LoadTally(write(t, content)); err == nil || !strings.Contains(err.Error(), `:16: policy.min_sensitivity.exit_streamz: unknown statistic "exit_streamz"`) {
		t.Errorf("unknown statistic in min_sensitivity: %v", err)
	}
}

func TestControlOverUnixSocket(t *testing.T) {
	path := write(t, "identity_key: k\ntally: {address: \"t:8443\", fingerprint: "+fp1+"}\nkeepers: ["+fp1+", "+fp2+", "+fp3+"]\n"+
		"source:\n  control:\n    address: unix:run/control\n    password: secret\n    allowed_auth: [hashedpassword, safecookie]\n")
	dc, err := config.LoadCollector(path)
	if err != nil {
		t.Fatal(err)
	}
	network, addr := dc.Source.Control.Network()
	if network != "unix" || addr != filepath.Join(filepath.Dir(path), "run/control") {
		t.Errorf("control dials %s %s", network, addr)
	}
	if !slices.Equal(dc.Source.Control.AllowedAuth, []string{"HASHEDPASSWORD", "SAFECOOKIE"}) {
		t.Errorf("allowed_auth %v", dc.Source.Control.AllowedAuth)
	}
}

func TestLoadNeedsAStructPointer(t *testing.T) {
	var p policy.Policy
	if err := config.Load(testdata(t, "policy-strict.yaml"), p); err == nil {
		t.Error("Load accepted a non-pointer")
	}
	if err := config.Load(testdata(t, "does-not-exist.yaml"), &p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// The keeper reads its roster file anew at every round, so an operator can
// admit or remove a collector without a restart.
func TestRosterFileIsReadEachRound(t *testing.T) {
	dir := t.TempDir()
	roster := filepath.Join(dir, "roster.yaml")
	if err := os.WriteFile(roster, []byte("collectors:\n  - {fingerprint: "+fp1+", name: a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := config.Keeper{CollectorsFile: roster}
	get := k.RosterFunc()
	first, err := get()
	if err != nil || len(first) != 1 || first[fp1] != "a" {
		t.Fatalf("first read: %v %v", first, err)
	}
	if err := os.WriteFile(roster, []byte("collectors:\n  - {fingerprint: "+fp1+", name: b}\n  - {fingerprint: "+dc4+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := get()
	if err != nil || len(second) != 2 || second[fp1] != "b" {
		t.Fatalf("second read: %v %v", second, err)
	}
	os.Remove(roster)
	if _, err := get(); err == nil {
		t.Fatal("a removed roster file gave no error; the keeper must refuse rather than admit nobody silently")
	}
}

// A composed tally.yaml gives the round's epsilon and delta only; the
// server refuses to load one whose statistics carry their own, or whose
// noise does not reach the round's budget.
func TestComposedTally(t *testing.T) {
	plan, err := noise.AllocateComposed(0.3, 1e-3, []noise.StatisticBudget{{Name: "exit_streams", L0: 1, LInf: 4320, Estimate: 1e6}}, noise.HonestSet{N: 3, Weight: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	composed := func(sigma float64, extra string) string {
		return strings.Replace(minimalTally, "  - {name: exit_streams, sigma: 30561, epsilon: 0.3, delta: 1e-3, max_per_collector: 1000}\n",
			fmt.Sprintf("  - {name: exit_streams, sigma: %v, max_per_collector: 1000%s}\naccounting: composed\n", sigma, extra), 1)
	}
	tc, err := config.LoadTally(write(t, composed(plan.Statistics[0].Sigma, "")))
	if err != nil {
		t.Fatalf("the planner's composed σ: %v", err)
	}
	if tc.Accounting != round.AccountingComposed {
		t.Errorf("accounting %q", tc.Accounting)
	}
	wantProblems(t, loadTally, []problem{
		{"σ 1% short", composed(plan.Statistics[0].Sigma*0.99, ""),
			`:13: statistics: the round claims more privacy than its noise gives: the statistics' noise composed over 3 collectors`},
		{"a statistic's own epsilon", composed(plan.Statistics[0].Sigma, ", epsilon: 0.1"),
			`:14: statistics[0].epsilon: a composed round's statistics have no epsilon or delta of their own`},
		{"unknown accounting", strings.Replace(composed(plan.Statistics[0].Sigma, ""), "accounting: composed", "accounting: gdp", 1),
			`:15: accounting: "gdp": want "composed", or leave it out`},
	})
}

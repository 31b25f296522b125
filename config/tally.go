package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/shamir"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/tally"
)

// Tally is tally.yaml, the tally server's configuration: where it listens,
// the series of rounds it runs and everything each round config holds.
type Tally struct {
	// IdentityKey is the file of the server's Ed25519 identity key.
	IdentityKey string `yaml:"identity_key"`
	// Listen is the HTTPS address keepers and collectors connect to;
	// default 127.0.0.1:8443.
	Listen string `yaml:"listen"`
	// HTTPListen is the plain-HTTP address of /metrics, the JSON results
	// API and the HTML results page; default 127.0.0.1:9464, "" disables it.
	// It serves only what is published anyway.
	HTTPListen string `yaml:"http_listen"`
	// DataDir holds round state, outcomes and the policy ledger; default
	// ./privstats-data.
	DataDir string `yaml:"data_dir"`

	// Series names the sequence of rounds; nodes apply the delay rule per
	// series.
	Series string `yaml:"series"`
	// Rounds is how many rounds to run; 0 means forever. Default 1.
	Rounds      int             `yaml:"rounds"`
	RoundLength policy.Duration `yaml:"round_length"`
	// SetupTime is the time between announcing a round and its start,
	// in which keepers publish round keys and collectors send share
	// bundles; default 30s.
	SetupTime policy.Duration `yaml:"setup_time"`
	// Period is the time between the starts of consecutive rounds; default
	// (and minimum) round_length.
	Period policy.Duration `yaml:"period"`

	// Keepers are the share keepers' fingerprints, in x-coordinate order.
	Keepers []string `yaml:"keepers"`
	// Threshold is K: any K keepers can release a result, N/2 < K ≤ N.
	Threshold int `yaml:"threshold"`
	// Collectors are the collectors permitted to take part.
	Collectors    []PermittedCollector `yaml:"collectors"`
	MinCollectors int                  `yaml:"min_collectors"`
	// NoiseWeights shares each statistic's σ among the collectors.
	NoiseWeights noise.Weights `yaml:"noise_weights"`

	// Epsilon and Delta are each round's whole privacy budget. Without
	// Accounting the statistics' shares (epsilon, delta) must add up to no
	// more; with accounting: composed (what privstats plan --yaml prints)
	// the statistics give none, and their noise together must make the
	// round (Epsilon, Delta)-private (round.AccountingComposed).
	Epsilon    float64     `yaml:"epsilon"`
	Delta      float64     `yaml:"delta"`
	Accounting string      `yaml:"accounting"`
	Statistics []Statistic `yaml:"statistics"`

	// Policy is the server's own local policy, checked before it announces
	// a round; default policy.Defaults().
	Policy policy.Policy `yaml:"policy"`
	// MaxBodyBytes bounds a request body; default 8 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Allow lists further fingerprints admitted to the server (operators'
	// tools); keepers and collectors are admitted anyway.
	Allow []string `yaml:"allow"`
	// LogFormat is "text" (the default: key=value lines) or "json" (one
	// JSON object a line, for journald or a log shipper).
	LogFormat string `yaml:"log_format"`
}

// PermittedCollector is a collector allowed to take part in the series.
type PermittedCollector struct {
	Fingerprint string `yaml:"fingerprint"`
	// Name is for people (logs, the results page); optional.
	Name string `yaml:"name"`
}

// Statistic is one statistic a round measures, picked from the catalogue by
// name, with its noise and privacy budget.
type Statistic struct {
	Name string `yaml:"name"`
	// Sigma is σ, the standard deviation of the noise the total carries;
	// privstats plan computes it from the budget.
	Sigma   float64 `yaml:"sigma"`
	Epsilon float64 `yaml:"epsilon"`
	Delta   float64 `yaml:"delta"`
	// Bins overrides the catalogue's histogram bins: labels, or for a
	// numeric histogram the lower edge of each bin as increasing integers.
	Bins []string `yaml:"bins"`
	// MaxPerCollector bounds what one collector can add to one counter in a
	// round; it sizes the overflow check. 0 takes the catalogue's bound.
	MaxPerCollector uint64 `yaml:"max_per_collector"`
	// Sensitivity (L∞) and BinsTouched (L0) are what sigma was calibrated
	// for; 0 takes the catalogue's action bound and bins touched. Nodes
	// refuse a round whose sigma is less than (epsilon, delta) need for
	// them, or whose sensitivity is below their own floor.
	Sensitivity float64 `yaml:"sensitivity"`
	BinsTouched int64   `yaml:"bins_touched"`
}

// Spec is the statistic as a round config carries it: the catalogue's
// entry, with the bins, bounds and sensitivity the file overrides and the
// file's sigma, epsilon and delta.
func (s Statistic) Spec() (round.StatisticSpec, error) {
	spec, err := stats.Resolve(s.Name, s.Bins)
	if err != nil {
		return spec, err
	}
	spec.Sigma, spec.Epsilon, spec.Delta = s.Sigma, s.Epsilon, s.Delta
	if s.MaxPerCollector != 0 {
		spec.MaxPerCollector = s.MaxPerCollector
	}
	if s.Sensitivity != 0 {
		spec.Sensitivity = s.Sensitivity
	}
	if s.BinsTouched != 0 {
		spec.BinsTouched = s.BinsTouched
	}
	return spec, nil
}

// StatisticSpecs is every statistic as a round config carries it.
func (t *Tally) StatisticSpecs() ([]round.StatisticSpec, error) {
	out := make([]round.StatisticSpec, len(t.Statistics))
	for i, s := range t.Statistics {
		spec, err := s.Spec()
		if err != nil {
			return nil, fmt.Errorf("statistic %s: %w", s.Name, err)
		}
		out[i] = spec
	}
	return out, nil
}

// CollectorFingerprints lists the permitted collectors' fingerprints.
func (t *Tally) CollectorFingerprints() []string {
	out := make([]string, len(t.Collectors))
	for i, c := range t.Collectors {
		out[i] = c.Fingerprint
	}
	return out
}

// LoadTally reads and checks a tally.yaml.
func LoadTally(path string) (*Tally, error) { return loadAs[Tally](path) }

func (t *Tally) setDefaults() {
	*t = Tally{
		Listen:       "127.0.0.1:8443",
		HTTPListen:   "127.0.0.1:9464",
		DataDir:      "./privstats-data",
		Rounds:       1,
		SetupTime:    policy.Duration(tally.DefaultSetupTime),
		Policy:       policy.Defaults(),
		MaxBodyBytes: tally.DefaultMaxBodyBytes,
		LogFormat:    LogText,
	}
}

func (t *Tally) complete(c *checker, dir string) {
	t.IdentityKey = resolve(dir, t.IdentityKey)
	t.DataDir = resolve(dir, t.DataDir)

	c.required("identity_key", t.IdentityKey, "the file privstats keygen wrote")
	c.listenAddress("listen", t.Listen)
	if t.HTTPListen != "" {
		c.listenAddress("http_listen", t.HTTPListen)
	}
	c.required("data_dir", t.DataDir, "a directory for round state and outcomes")
	c.logFormat(t.LogFormat)
	c.name("series", t.Series, "the name of this measurement series, e.g. relays-2026")
	if t.Rounds < 0 {
		c.errorf("rounds", "%d is negative (0 means run rounds forever)", t.Rounds)
	}
	c.positiveDuration("round_length", t.RoundLength, "how long each round counts events, e.g. 24h")
	if !c.given("period") {
		t.Period = t.RoundLength
	} else if t.Period < t.RoundLength {
		// Overlapping rounds of a series count the same events twice;
		// every node's policy refuses them.
		c.errorf("period", "%s is shorter than round_length %s; rounds of a series must not overlap", t.Period, t.RoundLength)
	}

	c.tallyKeepers(t)
	c.tallyCollectors(t)
	c.tallyBudget(t)
	c.policy("policy", t.Policy)
	if t.MaxBodyBytes <= 0 {
		c.errorf("max_body_bytes", "%d must be positive (default %d, %d MiB)", t.MaxBodyBytes, tally.DefaultMaxBodyBytes, tally.DefaultMaxBodyBytes>>20)
	}
	c.fingerprintList("allow", t.Allow)
	if len(c.errs) == 0 {
		c.rounds(t)
	}
}

func (c *checker) tallyKeepers(t *Tally) {
	if len(t.Keepers) == 0 {
		c.errorf("keepers", "required (the share keepers' fingerprints, in x-coordinate order)")
		return
	}
	c.fingerprintList("keepers", t.Keepers)
	n := len(t.Keepers)
	if err := shamir.CheckThreshold(t.Threshold, n); err != nil {
		allowed := fmt.Sprintf("with %d keepers it must be from %d to %d", n, n/2+1, n)
		switch {
		case n > shamir.MaxHolders:
			c.errorf("keepers", "%d keepers, at most %d are supported", n, shamir.MaxHolders)
		case !c.given("threshold"):
			c.errorf("threshold", "required (K, how many keepers must agree to release a result; %s)", allowed)
		case t.Threshold > n:
			c.errorf("threshold", "%d is more than the %d keepers (%s)", t.Threshold, n, allowed)
		default:
			// With K ≤ N/2 two disjoint groups of keepers could each release
			// a different collector set, and their difference is one
			// collector's counts.
			c.errorf("threshold", "%d is too low: %s (K > N/2 is what stops two different results from being released)", t.Threshold, allowed)
		}
	}
}

func (c *checker) tallyCollectors(t *Tally) {
	if len(t.Collectors) == 0 {
		c.errorf("collectors", "required (the fingerprints of the collectors permitted to report)")
		return
	}
	fps := map[string]int{}
	names := map[string]int{}
	for i, dc := range t.Collectors {
		p := fmt.Sprintf("collectors[%d]", i)
		if c.required(p+".fingerprint", dc.Fingerprint, "the collector's identity fingerprint") && c.fingerprint(p+".fingerprint", dc.Fingerprint) {
			if j, ok := fps[dc.Fingerprint]; ok {
				c.errorf(p+".fingerprint", "%s is listed twice (also collectors[%d])", dc.Fingerprint, j)
			}
			fps[dc.Fingerprint] = i
		}
		if dc.Name != "" {
			if j, ok := names[dc.Name]; ok {
				c.errorf(p+".name", "%q is also the name of collectors[%d]", dc.Name, j)
			}
			names[dc.Name] = i
		}
	}
	n := len(t.Collectors)
	if t.MinCollectors < 1 || t.MinCollectors > n {
		c.errorf("min_collectors", "%d must be from 1 to the %d permitted collectors", t.MinCollectors, n)
		return
	}

	for _, fp := range slices.Sorted(maps.Keys(t.NoiseWeights.Explicit)) {
		p := "noise_weights.explicit." + fp
		if c.fingerprint(p, fp) {
			if _, ok := fps[fp]; !ok {
				c.errorf(p, "%s is not among the permitted collectors", fp)
			}
		}
	}
	if err := t.NoiseWeights.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			c.errorf("noise_weights", "%v", e)
		}
		return
	}
	// Whichever min_collectors collectors report, their noise together must
	// reach σ; say so now rather than when the first round is refused.
	if err := noise.CheckCoverage(t.NoiseWeights.Resolve(t.CollectorFingerprints()), t.MinCollectors); err != nil {
		c.errorf("min_collectors", "%v", err)
	}
}

// budgetSlack absorbs floating-point rounding when the statistics' budgets
// are summed (0.1 + 0.1 + 0.1 > 0.3).
const budgetSlack = 1e-9

func (c *checker) tallyBudget(t *Tally) {
	c.positiveNumber("epsilon", t.Epsilon, "the privacy budget of each round, e.g. 0.3")
	c.probability("delta", t.Delta)
	if len(t.Statistics) == 0 {
		c.errorf("statistics", "required (the statistics each round measures; privstats plan suggests their sigma, epsilon and delta)")
		return
	}
	if t.Accounting != round.AccountingSplit && t.Accounting != round.AccountingComposed {
		c.errorf("accounting", "%q: want %q, or leave it out for each statistic's own epsilon and delta", t.Accounting, round.AccountingComposed)
	}
	var sumEps, sumDelta float64
	seen := map[string]int{}
	for i, s := range t.Statistics {
		p := fmt.Sprintf("statistics[%d]", i)
		if c.name(p+".name", s.Name, "a statistic of the catalogue, e.g. exit_streams") {
			if j, ok := seen[s.Name]; ok {
				c.errorf(p+".name", "%s is listed twice (also statistics[%d])", s.Name, j)
			}
			seen[s.Name] = i
		}
		if !(s.Sigma == 0 && t.Policy.AllowZeroNoise) {
			c.positiveNumber(p+".sigma", s.Sigma, "σ of the noise on the total; privstats plan computes it")
		}
		if t.Accounting == round.AccountingComposed {
			if s.Epsilon != 0 || s.Delta != 0 {
				c.errorf(p+".epsilon", "a composed round's statistics have no epsilon or delta of their own (the round's budget covers them together); leave them out")
			}
		} else {
			c.positiveNumber(p+".epsilon", s.Epsilon, "this statistic's share of the round's epsilon")
			c.probability(p+".delta", s.Delta)
		}
		c.bins(p+".bins", s.Bins)
		if s.Sensitivity != 0 {
			c.positiveNumber(p+".sensitivity", s.Sensitivity, "the most one user's activity in a round can add to one counter; leave it out for the catalogue's")
		}
		if s.BinsTouched < 0 {
			c.errorf(p+".bins_touched", "%d must be at least 1 (leave it out for the catalogue's)", s.BinsTouched)
		}
		if spec, err := s.Spec(); err != nil {
			if _, known := stats.Lookup(s.Name); !known {
				c.errorf(p+".name", "%v", err)
			} else {
				c.errorf(p+".bins", "%v", err)
			}
		} else if s.BinsTouched > int64(spec.Counters()) {
			c.errorf(p+".bins_touched", "%d, but %s has %d bins", s.BinsTouched, s.Name, spec.Counters())
		}
		sumEps += s.Epsilon
		sumDelta += s.Delta
	}
	if t.Epsilon > 0 && sumEps > t.Epsilon*(1+budgetSlack) {
		c.errorf("epsilon", "the statistics' epsilon add up to %.10g, more than the round's %v", sumEps, t.Epsilon)
	}
	if t.Delta > 0 && sumDelta > t.Delta*(1+budgetSlack) {
		c.errorf("delta", "the statistics' delta add up to %.10g, more than the round's %v", sumDelta, t.Delta)
	}
}

// rounds checks the round configs the file makes as the server will when
// it announces them: each statistic against the overflow bound, and the
// whole round against the server's own policy. It runs only on an
// otherwise valid file.
func (c *checker) rounds(t *Tally) {
	keepers := make([]round.KeeperSpec, len(t.Keepers))
	for i, fp := range t.Keepers {
		keepers[i] = round.KeeperSpec{Fingerprint: fp, X: i + 1}
	}
	weights := t.NoiseWeights.Resolve(t.CollectorFingerprints())
	collectors := make([]round.CollectorSpec, len(t.Collectors))
	for i, fp := range t.CollectorFingerprints() {
		collectors[i] = round.CollectorSpec{Fingerprint: fp, NoiseWeight: weights[fp]}
	}
	start := time.Unix(0, 0).UTC()
	makeRound := func(stats []round.StatisticSpec) *round.Config {
		return &round.Config{
			Version: round.ConfigVersion, Series: t.Series, Round: 1,
			Start: start, End: start.Add(time.Duration(t.RoundLength)),
			Epsilon: t.Epsilon, Delta: t.Delta, Accounting: t.Accounting, Statistics: stats,
			Keepers: keepers, Threshold: t.Threshold, Collectors: collectors, MinCollectors: t.MinCollectors,
		}
	}
	specs, err := t.StatisticSpecs()
	if err != nil {
		c.errorf("statistics", "%v", err)
		return
	}
	for i, s := range specs {
		if err := makeRound([]round.StatisticSpec{s}).Validate(); err != nil {
			c.errorf(fmt.Sprintf("statistics[%d].max_per_collector", i), "%v", err)
		}
	}
	// Every keeper and collector refuses a round whose noise gives less
	// privacy than it claims; say so now, not at the first announcement.
	if err := noise.CheckClaim(makeRound(specs)); err != nil {
		c.errorf("statistics", "%v", err)
	}
	err = t.Policy.Check(makeRound(specs), nil, start)
	var r *policy.Refusal
	switch {
	case errors.As(err, &r):
		c.errorf("policy", "this server's own policy would refuse its rounds: %s", r.Reason)
	case err != nil:
		c.errorf("policy", "%v", err)
	}
}

// bins checks a histogram's bins: distinct, non-empty labels, and if all
// are integers, increasing lower edges.
func (c *checker) bins(path string, bins []string) {
	seen := map[string]bool{}
	numeric := true
	var edges []int64
	for i, b := range bins {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case b == "":
			c.errorf(p, "empty bin label")
		case seen[b]:
			c.errorf(p, "bin %q is listed twice", b)
		}
		seen[b] = true
		v, err := strconv.ParseInt(b, 10, 64)
		numeric = numeric && err == nil
		edges = append(edges, v)
	}
	if !numeric {
		return
	}
	for i := 1; i < len(edges); i++ {
		if edges[i] < edges[i-1] { // equal edges are reported as repeated bins
			c.errorf(fmt.Sprintf("%s[%d]", path, i), "bin edge %d does not increase on %d (numeric bins are lower edges, in increasing order)", edges[i], edges[i-1])
		}
	}
}

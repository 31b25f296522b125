// Package round defines what a privstats round is: its configuration
// (statistics and bins, σ per counter, keepers, permitted collectors and
// their noise weights, the window), the one canonical encoding that is
// hashed to name the round, its validation, and the phases a round passes
// through. It holds no arithmetic, no cryptography beyond the hash, and no
// networking; see docs/protocol.md.
package round

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/shamir"
)

// ConfigVersion is the version of the round-config encoding this code writes
// and accepts. It is part of the hashed encoding, so a change of meaning
// changes every hash.
const ConfigVersion = 1

// The values of Config.Accounting.
const (
	// AccountingSplit: each statistic has its own (ε_i, δ_i); Σε_i ≤ ε and
	// Σδ_i ≤ δ (basic composition).
	AccountingSplit = ""
	// AccountingComposed: the round's (ε, δ) holds for all its statistics'
	// noise composed exactly (μ-GDP, with the discrete noise's correction).
	AccountingComposed = "composed"
)

// Composed reports whether the round is accounted as one composed
// mechanism.
func (c *Config) Composed() bool { return c.Accounting == AccountingComposed }

// Config is everything a round is: what is counted, how much noise each
// counter gets, who holds the shares, and when. Its Hash names the round in
// every signature and HPKE AAD.
type Config struct {
	Version int `json:"version"`
	// Series names a sequence of rounds measuring the same thing; the delay
	// rule of the local privacy policy is applied per series.
	Series string    `json:"series"`
	Round  uint64    `json:"round"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Epsilon and Delta are the round's whole privacy budget. How its
	// statistics spend it is Accounting's to say.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// Accounting is how the statistics' noise is held to (Epsilon, Delta).
	// Empty (AccountingSplit, PrivCount's way) means each statistic carries
	// its own (ε_i, δ_i), calibrated alone, and they add up to at most the
	// round's. AccountingComposed means the statistics carry no budget of
	// their own: their noise, released together, must make the whole round
	// (Epsilon, Delta)-private as one composed mechanism
	// (docs/noise.md, "Why composition beats the linear split").
	Accounting    string          `json:"accounting,omitempty"`
	Statistics    []StatisticSpec `json:"statistics"`
	Keepers       []KeeperSpec    `json:"keepers"`
	Threshold     int             `json:"threshold"`
	Collectors    []CollectorSpec `json:"collectors"`
	MinCollectors int             `json:"min_collectors"`
}

// StatisticSpec is one statistic of a round: a single counter, or one counter
// per histogram bin.
type StatisticSpec struct {
	Name string `json:"name"`
	// Bins labels the histogram's counters in order; empty means one counter.
	Bins []string `json:"bins,omitempty"`
	// Sigma is the standard deviation of the total noise every counter of
	// this statistic must carry (before collector weights are applied).
	Sigma float64 `json:"sigma"`
	// Epsilon and Delta are the statistic's own budget in a split round;
	// a composed round leaves them 0 (and out of the encoding).
	Epsilon float64 `json:"epsilon,omitempty"`
	Delta   float64 `json:"delta,omitempty"`
	// Sensitivity (L∞) and BinsTouched (L0) are what σ was calibrated
	// for: the most the protected activity can add to one counter, and how
	// many counters it can change. Every node recomputes the privacy σ
	// gives from them (with (Epsilon, Delta), or the round's composition),
	// and checks them against its own floor, so a round cannot claim more
	// privacy than its noise gives. Zero means not declared, which nodes
	// refuse for a noisy statistic.
	Sensitivity float64 `json:"sensitivity,omitempty"`
	BinsTouched int64   `json:"bins_touched,omitempty"`
	// MaxPerCollector bounds what one collector can add to one counter in a
	// round; it sizes the overflow check.
	MaxPerCollector uint64 `json:"max_per_collector"`
}

// Counters is how many counters the statistic has.
func (s StatisticSpec) Counters() int { return max(1, len(s.Bins)) }

// BinLabel is the label of counter i of the statistic ("total" for a scalar).
func (s StatisticSpec) BinLabel(i int) string {
	if len(s.Bins) == 0 {
		return "total"
	}
	return s.Bins[i]
}

// KeeperSpec is a share keeper as the round knows it: its identity
// fingerprint and its Shamir x-coordinate (1..N in list order).
type KeeperSpec struct {
	Fingerprint string `json:"fingerprint"`
	X           int    `json:"x"`
}

// CollectorSpec is a collector permitted in the round, with the weight w of
// its noise share: it adds N(0, (w·σ)²) to every counter.
type CollectorSpec struct {
	Fingerprint string  `json:"fingerprint"`
	NoiseWeight float64 `json:"noise_weight"`
}

// Canonical returns the one encoding of the config that is hashed: JSON with
// fields in declaration order and times in UTC.
func (c *Config) Canonical() ([]byte, error) {
	cc := *c
	cc.Start = c.Start.UTC()
	cc.End = c.End.UTC()
	return json.Marshal(&cc)
}

// Hash is the SHA-256 of the canonical encoding.
func (c *Config) Hash() ([32]byte, error) {
	b, err := c.Canonical()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// HashHex is Hash in lower-case hex, as logs and file names show it.
func (c *Config) HashHex() (string, error) {
	h, err := c.Hash()
	return hex.EncodeToString(h[:]), err
}

// Decode parses a canonical encoding and checks that it is one:
// re-encoding must give the same bytes, so the hash a node computes is the
// hash of exactly what it was sent.
func Decode(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("round config: %w", err)
	}
	again, err := c.Canonical()
	if err != nil {
		return nil, err
	}
	if string(again) != string(b) {
		return nil, errors.New("round config: encoding is not canonical")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// NumCounters is the total number of counters across all statistics.
func (c *Config) NumCounters() int {
	n := 0
	for _, s := range c.Statistics {
		n += s.Counters()
	}
	return n
}

// Offsets returns, for each statistic, the index of its first counter.
func (c *Config) Offsets() []int {
	off := make([]int, len(c.Statistics))
	n := 0
	for i, s := range c.Statistics {
		off[i] = n
		n += s.Counters()
	}
	return off
}

// CounterSigmas returns σ for every counter, in counter order.
func (c *Config) CounterSigmas() []float64 {
	out := make([]float64, 0, c.NumCounters())
	for _, s := range c.Statistics {
		for range s.Counters() {
			out = append(out, s.Sigma)
		}
	}
	return out
}

// Keeper returns the keeper with the given fingerprint.
func (c *Config) Keeper(fingerprint string) (KeeperSpec, bool) {
	for _, k := range c.Keepers {
		if k.Fingerprint == fingerprint {
			return k, true
		}
	}
	return KeeperSpec{}, false
}

// Collector returns the permitted collector with the given fingerprint.
func (c *Config) Collector(fingerprint string) (CollectorSpec, bool) {
	for _, k := range c.Collectors {
		if k.Fingerprint == fingerprint {
			return k, true
		}
	}
	return CollectorSpec{}, false
}

// MaxCounters bounds a round's counters (statistics × bins), which sizes
// every bundle, report and share.
const MaxCounters = 100000

// MaxCollectors bounds a round's permitted collectors, so that the exact
// integer sum of their masked reports, each value below p·2^40 < 2^104,
// stays below 2^128 (commit.MaxSummands = 2^24; arithmetic.md,
// "Commitments"). Tor has about 7,000 relays.
const MaxCollectors = 1 << 20

// noiseTailSigmas is how many standard deviations of total noise the
// overflow check allows for: the chance of exceeding it is below 1e-30.
const noiseTailSigmas = 12

// Validate checks that the config is internally consistent and that no total
// can leave ±2^62 (docs/arithmetic.md).
func (c *Config) Validate() error {
	if c.Version != ConfigVersion {
		return fmt.Errorf("round config: version %d, this privstats speaks %d", c.Version, ConfigVersion)
	}
	if c.Series == "" {
		return errors.New("round config: series is empty")
	}
	if !c.End.After(c.Start) {
		return fmt.Errorf("round config: end %s is not after start %s", c.End.UTC().Format(time.RFC3339), c.Start.UTC().Format(time.RFC3339))
	}
	if c.Accounting != AccountingSplit && c.Accounting != AccountingComposed {
		return fmt.Errorf("round config: accounting %q, want %q or none (each statistic's own ε and δ)", c.Accounting, AccountingComposed)
	}
	if len(c.Statistics) == 0 {
		return errors.New("round config: no statistics")
	}
	seen := map[string]bool{}
	for i, s := range c.Statistics {
		switch {
		case s.Name == "":
			return fmt.Errorf("round config: statistic %d has no name", i)
		case seen[s.Name]:
			return fmt.Errorf("round config: statistic %q listed twice", s.Name)
		case math.IsNaN(s.Sigma) || math.IsInf(s.Sigma, 0) || s.Sigma < 0:
			return fmt.Errorf("round config: statistic %q: sigma %v must be a finite number ≥ 0", s.Name, s.Sigma)
		case math.IsNaN(s.Sensitivity) || math.IsInf(s.Sensitivity, 0) || s.Sensitivity < 0:
			return fmt.Errorf("round config: statistic %q: sensitivity %v must be a finite number ≥ 0", s.Name, s.Sensitivity)
		case s.BinsTouched < 0 || s.BinsTouched > int64(s.Counters()):
			return fmt.Errorf("round config: statistic %q: bins_touched %d must be between 0 and its %d counters", s.Name, s.BinsTouched, s.Counters())
		case c.Composed() && (s.Epsilon != 0 || s.Delta != 0):
			return fmt.Errorf("round config: statistic %q: has its own ε = %v, δ = %v in a composed round, whose (ε, δ) is the round's alone", s.Name, s.Epsilon, s.Delta)
		}
		seen[s.Name] = true
		bins := map[string]bool{}
		for _, b := range s.Bins {
			if b == "" || bins[b] {
				return fmt.Errorf("round config: statistic %q: bin label %q empty or repeated", s.Name, b)
			}
			bins[b] = true
		}
	}
	if n := c.NumCounters(); n > MaxCounters {
		return fmt.Errorf("round config: %d counters, at most %d (each collector sends each keeper 8 bytes a counter)", n, MaxCounters)
	}
	if err := shamir.CheckThreshold(c.Threshold, len(c.Keepers)); err != nil {
		return fmt.Errorf("round config: keepers: %w", err)
	}
	keepers := map[string]bool{}
	for i, k := range c.Keepers {
		if err := CheckFingerprint(k.Fingerprint); err != nil {
			return fmt.Errorf("round config: keeper %d: %w", i+1, err)
		}
		if keepers[k.Fingerprint] {
			return fmt.Errorf("round config: keeper %s listed twice", k.Fingerprint)
		}
		keepers[k.Fingerprint] = true
		if k.X != i+1 {
			return fmt.Errorf("round config: keeper %s has x = %d, want %d (x-coordinates are 1..N in list order)", k.Fingerprint, k.X, i+1)
		}
	}
	if len(c.Collectors) == 0 {
		return errors.New("round config: no collectors permitted")
	}
	if len(c.Collectors) > MaxCollectors {
		return fmt.Errorf("round config: %d collectors permitted, at most %d", len(c.Collectors), MaxCollectors)
	}
	collectors := map[string]bool{}
	for _, dc := range c.Collectors {
		if err := CheckFingerprint(dc.Fingerprint); err != nil {
			return fmt.Errorf("round config: collector: %w", err)
		}
		if collectors[dc.Fingerprint] {
			return fmt.Errorf("round config: collector %s listed twice", dc.Fingerprint)
		}
		collectors[dc.Fingerprint] = true
		if math.IsNaN(dc.NoiseWeight) || math.IsInf(dc.NoiseWeight, 0) || dc.NoiseWeight < 0 {
			return fmt.Errorf("round config: collector %s: noise weight %v must be a finite number ≥ 0", dc.Fingerprint, dc.NoiseWeight)
		}
	}
	if c.MinCollectors < 1 || c.MinCollectors > len(c.Collectors) {
		return fmt.Errorf("round config: min_collectors %d must be between 1 and the %d permitted collectors", c.MinCollectors, len(c.Collectors))
	}
	return c.checkOverflow()
}

// checkOverflow refuses a round in which collectors × max_per_collector plus a
// 12σ noise tail could reach 2^62 in some counter.
func (c *Config) checkOverflow() error {
	var w2 float64
	for _, dc := range c.Collectors {
		w2 += dc.NoiseWeight * dc.NoiseWeight
	}
	limit := float64(field.MaxMagnitude)
	for _, s := range c.Statistics {
		counts := float64(s.MaxPerCollector) * float64(len(c.Collectors))
		tail := noiseTailSigmas * s.Sigma * math.Sqrt(w2)
		if counts+tail >= limit {
			return fmt.Errorf("round config: statistic %q could overflow: %d collectors × max_per_collector %d + %d σ of noise (%.3g) reaches 2^62; lower max_per_collector or sigma",
				s.Name, len(c.Collectors), s.MaxPerCollector, noiseTailSigmas, tail)
		}
	}
	return nil
}

// CheckFingerprint checks the form of an identity fingerprint: the SHA-256
// of an Ed25519 public key in lower-case hex.
func CheckFingerprint(fp string) error {
	if len(fp) != 2*sha256.Size {
		return fmt.Errorf("fingerprint %q is not 64 hex digits", fp)
	}
	for _, r := range fp {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return fmt.Errorf("fingerprint %q is not lower-case hex", fp)
		}
	}
	return nil
}

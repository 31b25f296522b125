package config

import (
	"fmt"
	"math"

	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/stats"
)

// PrivacyPlan is privacy.yaml, the input of `privstats plan`: a round's
// privacy budget and what the researcher knows of each statistic, from
// which the planner chooses each statistic's ε, δ and σ.
type PrivacyPlan struct {
	Epsilon    float64       `yaml:"epsilon"`
	Delta      float64       `yaml:"delta"`
	Statistics []PlannedStat `yaml:"statistics"`
	// Collectors and HonestFraction (β), both optional, let the planner say
	// what min_collectors β-mode noise weights need: any set S the tally
	// server may release must hold at least β·n collectors.
	Collectors     int     `yaml:"collectors,omitempty"`
	HonestFraction float64 `yaml:"honest_fraction,omitempty"`
}

// PlannedStat is one statistic to plan for.
type PlannedStat struct {
	Name string `yaml:"name"`
	// Sensitivity is the L∞ action bound: the most that the activity being
	// protected (one user's, in one round) can change one counter. It
	// defaults to the catalogue's (privstats stats), which is also the
	// least that nodes with the default policy accept.
	Sensitivity float64 `yaml:"sensitivity"`
	// BinsTouched is the L0 bound: how many of a histogram's bins that
	// activity can change; default the catalogue's, or 1 for a statistic
	// the catalogue does not know.
	BinsTouched int64 `yaml:"bins_touched"`
	// Estimate is the expected network-wide value, which the planner uses
	// to give every statistic the same relative error.
	Estimate float64 `yaml:"estimate"`
}

// LoadPrivacyPlan reads and checks a privacy.yaml.
func LoadPrivacyPlan(path string) (*PrivacyPlan, error) { return loadAs[PrivacyPlan](path) }

// Budgets is the plan's statistics as the noise planner takes them.
func (p *PrivacyPlan) Budgets() []noise.StatisticBudget {
	out := make([]noise.StatisticBudget, len(p.Statistics))
	for i, s := range p.Statistics {
		out[i] = noise.StatisticBudget{Name: s.Name, L0: s.BinsTouched, LInf: s.Sensitivity, Estimate: s.Estimate}
	}
	return out
}

// Honest is what the planner needs of the plan's collectors, given
// collectors and honest_fraction (β), or zeros: β-mode weights give each
// of the n collectors w² = 1/(βn) of σ²; every node checks a round's claim
// on the min_collectors collectors of least weight, the honest set; and
// each collector's share w·σ must reach noise.MinCollectorSigma, so σ must
// be at least floor = 2·√(βn).
func (p *PrivacyPlan) Honest() (set noise.HonestSet, floor float64, minCollectors int) {
	if p.Collectors <= 0 || !(p.HonestFraction > 0) {
		return noise.HonestSet{}, 0, 0
	}
	fps := make([]string, p.Collectors)
	for i := range fps {
		fps[i] = fmt.Sprint(i)
	}
	weights := noise.Weights{HonestFraction: p.HonestFraction}.Resolve(fps)
	m, err := noise.MinCollectors(weights)
	if err != nil {
		return noise.HonestSet{}, 0, 0
	}
	floor = noise.MinCollectorSigma * math.Sqrt(p.HonestFraction*float64(p.Collectors)) * (1 + 1e-9)
	return noise.HonestSet{N: m, Weight: weights[fps[0]]}, floor, m
}

func (p *PrivacyPlan) complete(c *checker, _ string) {
	c.positiveNumber("epsilon", p.Epsilon, "the privacy budget of a round, e.g. 0.3")
	c.probability("delta", p.Delta)
	if len(p.Statistics) == 0 {
		c.errorf("statistics", "required (the statistics to plan for)")
	}
	if p.Collectors < 0 {
		c.errorf("collectors", "%d must not be negative (the number of permitted collectors)", p.Collectors)
	}
	if c.given("honest_fraction") && !(p.HonestFraction > 0 && p.HonestFraction <= 1) {
		c.errorf("honest_fraction", "%v must be in (0, 1] (the fraction of collectors assumed honest)", p.HonestFraction)
	}
	seen := map[string]int{}
	for i := range p.Statistics {
		s := &p.Statistics[i]
		path := fmt.Sprintf("statistics[%d]", i)
		if c.name(path+".name", s.Name, "a statistic of the catalogue, e.g. exit_streams") {
			if j, ok := seen[s.Name]; ok {
				c.errorf(path+".name", "%s is listed twice (also statistics[%d])", s.Name, j)
			}
			seen[s.Name] = i
		}
		st, known := stats.Lookup(s.Name)
		switch {
		case !c.given(path+".sensitivity") && known:
			s.Sensitivity = st.Sensitivity
		case !c.given(path + ".sensitivity"):
			c.errorf(path+".sensitivity", "required: %s is not in the catalogue, so there is no action bound to default to", s.Name)
		default:
			c.positiveNumber(path+".sensitivity", s.Sensitivity, "the most one user's activity in a round can add to one counter")
		}
		if !c.given(path + ".bins_touched") {
			s.BinsTouched = 1
			if known {
				s.BinsTouched = st.BinsTouched
			}
		} else if s.BinsTouched < 1 {
			c.errorf(path+".bins_touched", "%d must be at least 1 (how many bins one user's activity can change)", s.BinsTouched)
		}
		c.positiveNumber(path+".estimate", s.Estimate, "the expected network-wide total, to balance relative errors")
	}
}

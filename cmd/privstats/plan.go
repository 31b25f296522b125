package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/noise"
	"github.com/privstats/privstats/stats"
)

func init() { addCommand(newPlanCmd) }

// planOptions are privstats plan's flags and argument.
type planOptions struct {
	file           string
	asJSON, asYAML bool
}

func newPlanCmd() *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan [--json|--yaml] privacy.yaml",
		Short: "plan a privacy budget: σ and μ per statistic, composed",
		Long: `Plan reads a privacy plan (the round's ε and δ, and per statistic its sensitivity and
expected total) and calibrates the round as one composed Gaussian mechanism: μ for
(ε, δ) on the exact GDP curve, shared among the statistics so that every one has the
same expected relative error, corrected for the collectors' discrete noise. It prints
σ, μ_i, the relative error and 95% half-width per statistic beside the linear split
(Σε_i = ε) and PrivCount's rule, and applies the per-collector noise floor. --yaml
prints the budget and statistics block for tally.yaml (accounting: composed).`,
		Example: `  privstats plan testdata/privacy.yaml
  privstats plan testdata/privacy.yaml --json`,
		GroupID: groupResults,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return runPlan(o, cmd.OutOrStdout())
		},
		ValidArgsFunction: completeFiles("yaml", "yml"),
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&o.asYAML, "yaml", false, "print the budget and statistics block to paste into tally.yaml")
	cmd.MarkFlagsMutuallyExclusive("json", "yaml")
	return cmd
}

func runPlan(o planOptions, stdout io.Writer) error {
	plan, err := config.LoadPrivacyPlan(o.file)
	if err != nil {
		return err
	}
	p, err := makePlan(plan)
	if err != nil {
		return err
	}
	switch {
	case o.asJSON:
		return writeIndented(stdout, p.json())
	case o.asYAML:
		return writePlanYAML(stdout, p)
	}
	printPlan(stdout, p, o.file)
	return nil
}

// planned is a plan's composed calibration and, for comparison, today's
// linear split, PrivCount's rule and an even split.
type planned struct {
	plan     *config.PrivacyPlan
	composed *noise.ComposedPlan
	linear   []noise.Allocation // Σε_i = ε, analytic Gaussian each
	classic  []noise.Allocation // PrivCount's rule
	even     []noise.Allocation
	// floor is the σ below which a collector would add less than
	// noise.MinCollectorSigma (0: not known); minCollectors what β-mode
	// weights need.
	floor         float64
	minCollectors int
}

func makePlan(plan *config.PrivacyPlan) (*planned, error) {
	p := &planned{plan: plan}
	budgets := plan.Budgets()
	honest, floor, m := plan.Honest()
	p.floor, p.minCollectors = floor, m
	var err error
	if p.composed, err = noise.AllocateComposed(plan.Epsilon, plan.Delta, budgets, honest, p.floor); err != nil {
		return nil, err
	}
	if p.linear, err = noise.Allocate(plan.Epsilon, plan.Delta, budgets); err != nil {
		return nil, err
	}
	if p.classic, err = noise.AllocateClassic(plan.Epsilon, plan.Delta, budgets); err != nil {
		return nil, err
	}
	if p.even, err = noise.AllocateEven(plan.Epsilon, plan.Delta, budgets); err != nil {
		return nil, err
	}
	for _, a := range [][]noise.Allocation{p.linear, p.classic, p.even} {
		noise.RaiseToFloor(a, p.floor)
	}
	return p, nil
}

// planJSON is plan --json: the round's budget once, and per statistic the
// composed σ with its share μ_i beside the linear split's and PrivCount's.
type planJSON struct {
	Epsilon              float64    `json:"epsilon"`
	Delta                float64    `json:"delta"`
	Accounting           string     `json:"accounting"`
	Mu                   float64    `json:"mu"`
	OptimumRelativeError float64    `json:"optimum_relative_error"`
	Statistics           []statJSON `json:"statistics"`
}

type statJSON struct {
	noise.ComposedAllocation
	LinearSigma           float64 `json:"linear_sigma"`
	LinearRelativeError   float64 `json:"linear_relative_error"`
	ClassicSigma          float64 `json:"classic_sigma"`
	ClassicRelativeError  float64 `json:"classic_relative_error"`
	LinearEpsilon         float64 `json:"linear_epsilon"`
	LinearDelta           float64 `json:"linear_delta"`
	RaisedToNoiseFloorBy  float64 `json:"raised_to_noise_floor,omitempty"`
	GainOverLinearSplit   float64 `json:"gain_over_linear_split"`
	GainOverPrivCountRule float64 `json:"gain_over_privcount_rule"`
}

func (p *planned) json() planJSON {
	c := p.composed
	out := planJSON{Epsilon: c.Epsilon, Delta: c.Delta, Accounting: round.AccountingComposed, Mu: c.Mu, OptimumRelativeError: c.OptimumRelativeError}
	for i, a := range c.Statistics {
		s := statJSON{ComposedAllocation: a,
			LinearSigma: p.linear[i].Sigma, LinearRelativeError: p.linear[i].ExpectedRelativeError,
			ClassicSigma: p.classic[i].Sigma, ClassicRelativeError: p.classic[i].ExpectedRelativeError,
			LinearEpsilon: p.linear[i].Epsilon, LinearDelta: p.linear[i].Delta,
			GainOverLinearSplit: p.linear[i].Sigma / a.Sigma, GainOverPrivCountRule: p.classic[i].Sigma / a.Sigma}
		out.Statistics = append(out.Statistics, s)
	}
	return out
}

func worst(alloc []noise.Allocation) float64 {
	w := 0.0
	for _, a := range alloc {
		w = math.Max(w, a.ExpectedRelativeError)
	}
	return w
}

// printPlan is plan's table: the composed calibration beside the linear
// split and PrivCount's rule.
func printPlan(w io.Writer, p *planned, path string) {
	c := p.composed
	fmt.Fprintf(w, "Privacy plan for ε = %g, δ = %g over %d statistics, composed: the round's noise is one Gaussian mechanism, μ = %.4g on the exact (ε, δ) curve, shared for equal expected relative error\n\n",
		c.Epsilon, c.Delta, len(c.Statistics), c.Mu)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tσ\tμ_i\tREL. ERROR\t95% ±\t|\tLINEAR σ\tREL. ERROR\t×\t|\tPRIVCOUNT σ\tREL. ERROR\t×\t")
	var worstComposed float64
	for i, a := range c.Statistics {
		worstComposed = math.Max(worstComposed, a.ExpectedRelativeError)
		lin, cl := p.linear[i], p.classic[i]
		fmt.Fprintf(tw, "%s\t%.4g\t%.3g\t%.3g%%\t%.4g\t|\t%.4g\t%.3g%%\t%.2f\t|\t%.4g\t%.3g%%\t%.2f\t\n", a.Name, a.Sigma, a.Mu,
			100*a.ExpectedRelativeError, a.CI95HalfWidth, lin.Sigma, 100*lin.ExpectedRelativeError, lin.Sigma/a.Sigma,
			cl.Sigma, 100*cl.ExpectedRelativeError, cl.Sigma/a.Sigma)
	}
	tw.Flush()
	wl, wc, we := worst(p.linear), worst(p.classic), worst(p.even)
	fmt.Fprintf(w, "\nWorst expected relative error: %.3g%% composed; %.3g%% with the linear split (Σε_i = ε, %.2f×), %.3g%% by PrivCount's rule (%.2f×), %.3g%% with an even ε split.\n",
		100*worstComposed, 100*wl, wl/worstComposed, 100*wc, wc/worstComposed, 100*we)
	fmt.Fprintf(w, "The continuous Gaussian's optimum is %.4g%%; the proof for the collectors' summed discrete Gaussian noise costs %.2g%% more.\n",
		100*c.OptimumRelativeError, 100*(worstComposedUnraised(c)/c.OptimumRelativeError-1))
	fmt.Fprintln(w, "σ is the noise on each total, μ_i its share (Σμ_i² ≤ μ²). LINEAR σ is the analytic Gaussian for ε_i with Σε_i = ε and δ_i = δ/k;")
	fmt.Fprintln(w, "PRIVCOUNT σ is PrivCount's rule, (s/ε_i)·√(2 ln(1.25/δ_i)) with the same equal-error split; × is that σ over the composed σ.")
	if p.minCollectors > 0 {
		fmt.Fprintf(w, "Noise weights: with honest_fraction β = %g and %d collectors, each adds w² = 1/(βn) of σ²; set min_collectors ≥ %d so every released set carries σ in full.\n",
			p.plan.HonestFraction, p.plan.Collectors, p.minCollectors)
	}
	switch {
	case len(c.Raised) > 0:
		fmt.Fprintf(w, "Noise floor: each collector must add σ ≥ %d, so σ ≥ %.4g with these weights; raised to it: %s.\n",
			noise.MinCollectorSigma, p.floor, strings.Join(c.Raised, ", "))
	case p.floor == 0:
		fmt.Fprintf(w, "Noise floor: each collector must add w·σ ≥ %d; give collectors and honest_fraction to have the plan apply it.\n", noise.MinCollectorSigma)
	}
	for _, st := range p.plan.Statistics {
		if s, ok := stats.Lookup(st.Name); ok && (st.Sensitivity < s.Sensitivity || st.BinsTouched < s.BinsTouched) {
			fmt.Fprintf(w, "Note: %s is planned for sensitivity %g over %d bins, less than the catalogue's %g over %d: keepers and collectors with the default policy will refuse it unless their min_sensitivity allows it.\n",
				st.Name, st.Sensitivity, st.BinsTouched, s.Sensitivity, s.BinsTouched)
		}
	}
	fmt.Fprintln(w, "Paste the tally.yaml form with: privstats plan --yaml", path)
}

// worstComposedUnraised is the composed plan's common relative error: that
// of the statistics the floor did not raise (the worst overall if it
// raised them all).
func worstComposedUnraised(c *noise.ComposedPlan) float64 {
	raised := map[string]bool{}
	for _, n := range c.Raised {
		raised[n] = true
	}
	var w, all float64
	for _, a := range c.Statistics {
		all = math.Max(all, a.ExpectedRelativeError)
		if !raised[a.Name] {
			w = math.Max(w, a.ExpectedRelativeError)
		}
	}
	if w == 0 {
		return all
	}
	return w
}

// writePlanYAML prints the budget and statistics block of tally.yaml for
// the composed plan.
func writePlanYAML(w io.Writer, p *planned) error {
	type stat struct {
		Name        string  `yaml:"name"`
		Sigma       float64 `yaml:"sigma"`
		Sensitivity float64 `yaml:"sensitivity"`
		BinsTouched int64   `yaml:"bins_touched"`
	}
	c := p.composed
	out := struct {
		Epsilon    float64 `yaml:"epsilon"`
		Delta      float64 `yaml:"delta"`
		Accounting string  `yaml:"accounting"`
		Statistics []stat  `yaml:"statistics"`
	}{Epsilon: c.Epsilon, Delta: c.Delta, Accounting: round.AccountingComposed}
	for _, a := range c.Statistics {
		out.Statistics = append(out.Statistics, stat{a.Name, a.Sigma, a.Sensitivity, a.BinsTouched})
	}
	fmt.Fprintf(w, "# From privstats plan: ε = %g, δ = %g for the round's statistics composed. Paste into tally.yaml.\n", c.Epsilon, c.Delta)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	defer enc.Close()
	return enc.Encode(out)
}

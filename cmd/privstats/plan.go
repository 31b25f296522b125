package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

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
		Short: "plan a privacy budget: σ, ε and δ per statistic",
		Long: `Plan reads a privacy plan (the round's ε and δ, and per statistic its sensitivity and
expected total) and splits the budget so that every statistic has the same expected
relative error, as PrivCount does; it prints σ, ε_i and δ_i per statistic, compared
with an even split, and applies the per-collector noise floor. --yaml prints the
statistics block for tally.yaml.`,
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
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the allocation as JSON")
	cmd.Flags().BoolVar(&o.asYAML, "yaml", false, "print the statistics block to paste into tally.yaml")
	cmd.MarkFlagsMutuallyExclusive("json", "yaml")
	return cmd
}

func runPlan(o planOptions, stdout io.Writer) error {
	plan, err := config.LoadPrivacyPlan(o.file)
	if err != nil {
		return err
	}
	budgets := plan.Budgets()
	alloc, err := noise.Allocate(plan.Epsilon, plan.Delta, budgets)
	if err != nil {
		return err
	}
	// Each collector's share of σ must be at least noise.MinCollectorSigma;
	// with β-weights over n collectors the smallest share is σ/√(βn).
	var floor float64
	var raised []string
	if plan.Collectors > 0 && plan.HonestFraction > 0 {
		floor = noise.MinCollectorSigma * math.Sqrt(plan.HonestFraction*float64(plan.Collectors)) * (1 + 1e-9)
		raised = noise.RaiseToFloor(alloc, floor)
	}
	switch {
	case o.asJSON:
		return writeIndented(stdout, alloc)
	case o.asYAML:
		return writePlanYAML(stdout, plan, alloc)
	}
	even, err := noise.AllocateEven(plan.Epsilon, plan.Delta, budgets)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Privacy plan for ε = %g, δ = %g over %d statistics (PrivCount's rule: equal expected relative error, δ split evenly)\n\n",
		plan.Epsilon, plan.Delta, len(alloc))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tε_i\tδ_i\tσ\tREL. ERROR\t95% ±\t|\tEVEN-SPLIT σ\tREL. ERROR\t|\tCLASSIC σ\t")
	for i, a := range alloc {
		fmt.Fprintf(tw, "%s\t%.4g\t%.3g\t%.4g\t%.3g%%\t%.4g\t|\t%.4g\t%.3g%%\t|\t%.4g\t\n", a.Name, a.Epsilon, a.Delta, a.Sigma,
			100*a.ExpectedRelativeError, a.CI95HalfWidth, even[i].Sigma, 100*even[i].ExpectedRelativeError, a.ClassicSigma)
	}
	tw.Flush()
	worst, worstEven := 0.0, 0.0
	for i := range alloc {
		worst = math.Max(worst, alloc[i].ExpectedRelativeError)
		worstEven = math.Max(worstEven, even[i].ExpectedRelativeError)
	}
	fmt.Fprintf(stdout, "\nWorst expected relative error: %.3g%% with this plan, %.3g%% with an even ε split.\n", 100*worst, 100*worstEven)
	fmt.Fprintln(stdout, "σ is the analytic Gaussian mechanism (Balle & Wang); CLASSIC σ is PrivCount's (s/ε)·√(2 ln(1.25/δ)) for the same ε_i, δ_i.")
	if plan.Collectors > 0 && plan.HonestFraction > 0 {
		fps := make([]string, plan.Collectors)
		for i := range fps {
			fps[i] = fmt.Sprint(i)
		}
		w := noise.Weights{HonestFraction: plan.HonestFraction}
		if m, err := noise.MinCollectors(w.Resolve(fps)); err == nil {
			fmt.Fprintf(stdout, "Noise weights: with honest_fraction β = %g and %d collectors, each adds w² = 1/(βn) of σ²; set min_collectors ≥ %d so every released set carries σ in full.\n",
				plan.HonestFraction, plan.Collectors, m)
		}
	}
	switch {
	case len(raised) > 0:
		fmt.Fprintf(stdout, "Noise floor: each collector must add σ ≥ %d, so σ ≥ %.4g with these weights; raised to it: %s.\n",
			noise.MinCollectorSigma, floor, strings.Join(raised, ", "))
	case floor == 0:
		fmt.Fprintf(stdout, "Noise floor: each collector must add w·σ ≥ %d; give collectors and honest_fraction to have the plan apply it.\n", noise.MinCollectorSigma)
	}
	for _, st := range plan.Statistics {
		if c, ok := stats.Lookup(st.Name); ok && (st.Sensitivity < c.Sensitivity || st.BinsTouched < c.BinsTouched) {
			fmt.Fprintf(stdout, "Note: %s is planned for sensitivity %g over %d bins, less than the catalogue's %g over %d: keepers and collectors with the default policy will refuse it unless their min_sensitivity allows it.\n",
				st.Name, st.Sensitivity, st.BinsTouched, c.Sensitivity, c.BinsTouched)
		}
	}
	fmt.Fprintln(stdout, "Paste the tally.yaml form with: privstats plan --yaml", o.file)
	return nil
}

// writePlanYAML prints the statistics block of tally.yaml.
func writePlanYAML(w io.Writer, plan *config.PrivacyPlan, alloc []noise.Allocation) error {
	type stat struct {
		Name        string  `yaml:"name"`
		Sigma       float64 `yaml:"sigma"`
		Epsilon     float64 `yaml:"epsilon"`
		Delta       float64 `yaml:"delta"`
		Sensitivity float64 `yaml:"sensitivity"`
		BinsTouched int64   `yaml:"bins_touched"`
	}
	out := struct {
		Epsilon    float64 `yaml:"epsilon"`
		Delta      float64 `yaml:"delta"`
		Statistics []stat  `yaml:"statistics"`
	}{Epsilon: plan.Epsilon, Delta: plan.Delta}
	for i, a := range alloc {
		st := plan.Statistics[i]
		out.Statistics = append(out.Statistics, stat{a.Name, a.Sigma, a.Epsilon, a.Delta, st.Sensitivity, st.BinsTouched})
	}
	fmt.Fprintf(w, "# From privstats plan: ε = %g, δ = %g. Paste into tally.yaml.\n", plan.Epsilon, plan.Delta)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	defer enc.Close()
	return enc.Encode(out)
}

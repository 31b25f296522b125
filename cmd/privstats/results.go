package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/tally"
)

func init() {
	addCommand(newVerifyCmd)
	addCommand(newResultsCmd)
}

// verifyOptions are privstats verify's flags and argument.
type verifyOptions struct {
	file, tally, keepers string
}

func newVerifyCmd() *cobra.Command {
	var vo verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [--tally FP] [--keepers FP,FP,…] OUTCOME.json",
		Short: "re-check every signature and the interpolation of an outcome file",
		Long: `Verify re-checks an outcome file on its own: every node's signature, that the keepers'
shares interpolate to the published totals, and whether each statistic carries the
noise its (ε, δ) needs. --tally and --keepers pin the fingerprints you trust.

Exit status: 0 valid and private, 1 not valid, 3 valid but NOT PRIVATE (for
instance a zero-noise test round), 2 usage error.`,
		GroupID: groupResults,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vo.file = args[0]
			return runVerify(vo, cmd.OutOrStdout())
		},
		ValidArgsFunction: completeFiles("json"),
	}
	cmd.Flags().StringVar(&vo.tally, "tally", "", "require the tally server with fingerprint `FP` to have signed the round")
	cmd.Flags().StringVar(&vo.keepers, "keepers", "", "require exactly these keeper fingerprints, in order (comma-separated)")
	return cmd
}

func runVerify(vo verifyOptions, stdout io.Writer) error {
	o, err := outcome.Read(vo.file)
	if err != nil {
		return err
	}
	if err := outcome.Verify(o); err != nil {
		return fmt.Errorf("%s: NOT VALID: %w", vo.file, err)
	}
	// The signatures check out against the keys the file names; whether
	// those are the right keys only pins can say.
	if vo.tally != "" && o.Tally != vo.tally {
		return fmt.Errorf("%s: NOT VALID: signed by tally server %s, not the expected %s", vo.file, o.Tally, vo.tally)
	}
	var keepers []string
	for _, k := range o.Config.Keepers {
		keepers = append(keepers, k.Fingerprint)
	}
	if vo.keepers != "" && strings.Join(keepers, ",") != vo.keepers {
		return fmt.Errorf("%s: NOT VALID: keepers %s, not the expected %s", vo.file, strings.Join(keepers, ","), vo.keepers)
	}
	fmt.Fprintf(stdout, "%s: valid: round %s/%d, %d collectors, %d keeper shares, %d statistics; signatures and interpolation check out\n",
		vo.file, o.Series, o.Round, o.Collectors.Count, len(o.Shares), len(o.Statistics))
	priv := outcome.CheckPrivacy(o)
	fmt.Fprintf(stdout, "tally server: %s\n", o.Tally)
	for i, k := range keepers {
		fmt.Fprintf(stdout, "keeper %d:     %s\n", i+1, k)
	}
	if vo.tally == "" || vo.keepers == "" {
		fmt.Fprintln(stdout, "(check these fingerprints against the ones you trust, or pass -tally and -keepers)")
	}
	printPrivacy(stdout, priv)
	if !priv.Private {
		return exitStatus{code: exitNotPrivate, err: fmt.Errorf("%s: NOT PRIVATE: %s", vo.file, strings.Join(priv.Why, "; "))}
	}
	return nil
}

// exitNotPrivate is verify's status for an outcome that is valid (every
// signature and the interpolation check out) but whose totals do not carry
// the privacy the round claims, such as a zero-noise test round.
const exitNotPrivate = 3

// printPrivacy shows, per statistic, the σ the claim needs (recomputed
// from ε, δ and the declared sensitivity) against the σ the released
// collector set carried.
func printPrivacy(w io.Writer, p outcome.Privacy) {
	fmt.Fprintf(w, "privacy: the statistics spend ε = %.6g of %.6g and δ = %.6g of %.6g\n", p.SpentEpsilon, p.Epsilon, p.SpentDelta, p.Delta)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tε\tδ\tSENSITIVITY\tBINS TOUCHED\tσ NEEDED\tσ CARRIED\tPRIVATE\t")
	for _, s := range p.Statistics {
		verdict := "yes"
		if !s.Private {
			verdict = "NO"
		}
		fmt.Fprintf(tw, "%s\t%.6g\t%.3g\t%.6g\t%d\t%.6g\t%.6g\t%s\t\n", s.Name, s.Epsilon, s.Delta, s.Sensitivity, s.BinsTouched, s.Needed, s.Carried, verdict)
	}
	tw.Flush()
	for _, s := range p.Statistics {
		if s.Note != "" {
			fmt.Fprintf(w, "NOTE: %s\n", s.Note)
		}
	}
	if p.Private {
		fmt.Fprintln(w, "private: every statistic carries the noise its (ε, δ) needs")
		return
	}
	for _, why := range p.Why {
		fmt.Fprintf(w, "NOT PRIVATE: %s\n", why)
	}
}

// resultsOptions are privstats results' flags and argument.
type resultsOptions struct {
	dir           string
	round         string
	asJSON, asCSV bool
}

// defaultDataDir is where results looks when given no directory.
const defaultDataDir = "./privstats-data"

func newResultsCmd() *cobra.Command {
	var o resultsOptions
	cmd := &cobra.Command{
		Use:   "results [--round NAME] [--json|--csv] [DIR]",
		Short: "list published rounds, or show one round's totals",
		Long: `Results lists the rounds a tally server published in DIR (its data_dir, or the
outcomes directory in it; default ` + defaultDataDir + `), or with --round shows one round's
noisy totals and 95% intervals as a table, JSON or CSV.`,
		Example: `  privstats results privstats-data
  privstats results privstats-data --round latest --csv`,
		GroupID: groupResults,
		Args:    rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = defaultDataDir
			if len(args) == 1 {
				o.dir = args[0]
			}
			return runResults(o, cmd.OutOrStdout())
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.round, "round", "", "show the totals of round `NAME` (as listed, e.g. demo-000001), or \"latest\"")
	fs.BoolVar(&o.asJSON, "json", false, "print JSON")
	fs.BoolVar(&o.asCSV, "csv", false, "print CSV (with --round)")
	cmd.MarkFlagsMutuallyExclusive("json", "csv")
	cmd.RegisterFlagCompletionFunc("round", func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		dir := defaultDataDir
		if len(args) == 1 {
			dir = args[0]
		}
		names := []cobra.Completion{cobra.CompletionWithDesc("latest", "the last published round")}
		if list, err := tally.ListOutcomes(outcomesDir(dir)); err == nil {
			for _, r := range list {
				names = append(names, r.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// outcomesDir is where results finds outcome files: DIR/outcomes, or DIR
// itself.
func outcomesDir(dir string) string {
	outcomes := filepath.Join(dir, "outcomes")
	if st, err := os.Stat(outcomes); err != nil || !st.IsDir() {
		return dir
	}
	return outcomes
}

func runResults(o resultsOptions, stdout io.Writer) error {
	dir := o.dir
	outcomes := outcomesDir(dir)
	list, err := tally.ListOutcomes(outcomes)
	if err != nil {
		return err
	}
	if o.round == "" {
		if o.asJSON {
			return writeIndented(stdout, list)
		}
		if len(list) == 0 {
			fmt.Fprintf(stdout, "no published rounds in %s\n", outcomes)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUND\tSTART\tEND\tCOLLECTORS\tSTATISTICS")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", r.Name, r.Start, r.End, r.Collectors, r.Statistics)
		}
		return tw.Flush()
	}
	name := o.round
	if name == "latest" {
		if len(list) == 0 {
			return fmt.Errorf("no published rounds in %s", outcomes)
		}
		name = list[len(list)-1].Name
	}
	out, err := outcome.Read(filepath.Join(outcomes, strings.TrimSuffix(name, ".json")+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no round %q in %s (run 'privstats results %s' to list them)", name, outcomes, dir)
	}
	if err != nil {
		return err
	}
	switch {
	case o.asJSON:
		return writeIndented(stdout, out.Statistics)
	case o.asCSV:
		return writeCSV(stdout, out)
	}
	return writeTotals(stdout, out)
}

// writeTotals prints a round's totals as a table.
func writeTotals(stdout io.Writer, o *outcome.Outcome) error {
	fmt.Fprintf(stdout, "round %s/%d  window %s – %s  collectors %d\n\n", o.Series, o.Round,
		o.Window.Start.Format("2006-01-02 15:04:05Z"), o.Window.End.Format("2006-01-02 15:04:05Z"), o.Collectors.Count)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tBIN\tNOISY TOTAL\tσ\t95% CI LOW\t95% CI HIGH\tε\t")
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.4g\t%.0f\t%.0f\t%.4g\t\n", s.Name, b.Label, b.NoisyTotal, s.TotalSigma, b.CI95Low, b.CI95High, s.Epsilon)
		}
	}
	return tw.Flush()
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeCSV(w io.Writer, o *outcome.Outcome) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"statistic", "bin", "noisy_total", "sigma", "ci95_low", "ci95_high", "epsilon", "delta"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			cw.Write([]string{s.Name, b.Label, strconv.FormatInt(b.NoisyTotal, 10), f(s.TotalSigma), f(b.CI95Low), f(b.CI95High), f(s.Epsilon), f(s.Delta)})
		}
	}
	cw.Flush()
	return cw.Error()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/outcome/export"
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
		Use:   "verify [--tally FP] [--keepers FP,FP,…] OUTCOME.json|URL",
		Short: "re-check every signature and the interpolation of an outcome file",
		Long: `Verify re-checks an outcome file on its own: every node's signature, that the keepers'
shares interpolate to the published totals, and whether each statistic carries the
noise its (ε, δ) needs. --tally and --keepers pin the fingerprints you trust. The
outcome may be a file or a tally server's URL of one
(http://HOST:PORT/api/v1/rounds/NAME, …/latest, or the server's own URL
for its latest).

Exit status: 0 valid and private, 1 not valid, 3 valid but NOT PRIVATE (for
instance a zero-noise test round), 2 usage error.`,
		GroupID: groupResults,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vo.file = args[0]
			return runVerify(cmd.Context(), vo, cmd.OutOrStdout())
		},
		ValidArgsFunction: completeFiles("json"),
	}
	cmd.Flags().StringVar(&vo.tally, "tally", "", "require the tally server with fingerprint `FP` to have signed the round")
	cmd.Flags().StringVar(&vo.keepers, "keepers", "", "require exactly these keeper fingerprints, in order (comma-separated)")
	return cmd
}

func runVerify(ctx context.Context, vo verifyOptions, stdout io.Writer) error {
	o, err := readOutcome(ctx, vo.file)
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

// readOutcome reads an outcome file, or fetches one from a tally server:
// an outcome's URL, or the server's own (its latest outcome).
func readOutcome(ctx context.Context, src string) (*outcome.Outcome, error) {
	if !export.IsURL(src) {
		return outcome.Read(src)
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	if u, err := url.Parse(src); err == nil && strings.Trim(u.Path, "/") == "" {
		r, err := export.Client{Base: src}.Round(ctx, "latest")
		return r.Outcome, err
	}
	return export.Client{}.Outcome(ctx, src)
}

// exitNotPrivate is verify's status for an outcome that is valid (every
// signature and the interpolation check out) but whose totals do not carry
// the privacy the round claims, such as a zero-noise test round.
const exitNotPrivate = 3

// printPrivacy shows, per statistic, the σ the claim needs (recomputed
// from ε, δ and the declared sensitivity) against the σ the released
// collector set carried.
func printPrivacy(w io.Writer, p outcome.Privacy) {
	if p.Composed {
		printComposedPrivacy(w, p)
		return
	}
	fmt.Fprintf(w, "privacy: the statistics spend ε = %.6g of %.6g and δ = %.6g of %.6g\n", p.SpentEpsilon, p.Epsilon, p.SpentDelta, p.Delta)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tε\tδ\tSENSITIVITY\tBINS TOUCHED\tσ NEEDED\tσ CARRIED\tPRIVATE\t")
	for _, s := range p.Statistics {
		fmt.Fprintf(tw, "%s\t%.6g\t%.3g\t%.6g\t%d\t%.6g\t%.6g\t%s\t\n", s.Name, s.Epsilon, s.Delta, s.Sensitivity, s.BinsTouched, s.Needed, s.Carried, yesNo(s.Private))
	}
	tw.Flush()
	printVerdict(w, p, "private: every statistic carries the noise its (ε, δ) needs")
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// printVerdict prints the statistics' notes, then the verdict: private,
// or every reason the round is not.
func printVerdict(w io.Writer, p outcome.Privacy, private string) {
	for _, s := range p.Statistics {
		if s.Note != "" {
			fmt.Fprintf(w, "NOTE: %s\n", s.Note)
		}
	}
	if p.Private {
		fmt.Fprintln(w, private)
		return
	}
	for _, why := range p.Why {
		fmt.Fprintf(w, "NOT PRIVATE: %s\n", why)
	}
}

// printComposedPrivacy shows a composed round: each statistic's share μ_i
// of the round's μ over the released set, and the ε all of them together
// give at the round's δ.
func printComposedPrivacy(w io.Writer, p outcome.Privacy) {
	fmt.Fprintf(w, "privacy: composed, the released set's noise gives μ = %.6g: (%.6g, %g)-private, the round claims ε = %.6g\n", p.Mu, p.Achieved, p.Delta, p.Epsilon)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tSENSITIVITY\tBINS TOUCHED\tσ CARRIED\tμ_i\tPRIVATE\t")
	for _, s := range p.Statistics {
		fmt.Fprintf(tw, "%s\t%.6g\t%d\t%.6g\t%.4g\t%s\t\n", s.Name, s.Sensitivity, s.BinsTouched, s.Carried, s.Mu, yesNo(s.Private))
	}
	tw.Flush()
	printVerdict(w, p, "private: the statistics' noise, composed, carries the round's (ε, δ)")
}

// resultsOptions are what `privstats results` is asked for.
type resultsOptions struct {
	// Source is a tally server's data directory (or its outcomes
	// directory) or the URL of its http_listen.
	Source string
	// Round names one round (as listed) or "latest"; "" means every round.
	Round string
	// At most one output form: JSON, CSV, OpenMetrics or Format
	// ("privcount"); none prints tables.
	JSON, CSV, OpenMetrics bool
	Format                 string
	// Out is the directory PrivCount tallies files are written to when
	// more than one round is exported.
	Out string
	// HTML, when set, is where the results site is written.
	HTML string
}

// defaultDataDir is where results looks when given no directory.
const defaultDataDir = "./privstats-data"

func newResultsCmd() *cobra.Command {
	var o resultsOptions
	cmd := &cobra.Command{
		Use:   "results [--round NAME|latest] [--json|--csv|--openmetrics|--format privcount [-o DIR]|--html OUTDIR] [DIR|URL]",
		Short: "list published rounds, show one round's totals, or export every round",
		Long: `Results reads the rounds a tally server published, from DIR (its data_dir, or the
outcomes directory in it; default ` + defaultDataDir + `) or from a running tally
server's http_listen URL. With no flag it lists them, and with --round shows one
round's noisy totals and 95% intervals. --csv exports every round (or the one
--round names) in long form, one row per round × statistic × bin; --json with each
round's metadata (window, ε, δ, collectors); --openmetrics stamped at each window end,
for 'promtool tsdb create-blocks-from openmetrics'; --format privcount as PrivCount's
tallies JSON. --html writes the results site (every round's page with its plots,
and the CSV behind each plot) as static files that open from disk. A missing
directory or an unreachable server is an error (status 1).`,
		Example: `  privstats results privstats-data
  privstats results privstats-data --csv > rounds.csv
  privstats results http://127.0.0.1:9464 --round latest --json
  privstats results privstats-data --openmetrics > history.om
  privstats results privstats-data --format privcount -o tallies/
  privstats results privstats-data --html site/`,
		GroupID: groupResults,
		Args:    rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Source = defaultDataDir
			if len(args) == 1 {
				o.Source = args[0]
			}
			if o.HTML != "" {
				if export.IsURL(o.Source) {
					return usagef("--html writes the site from a data directory, not from %s", o.Source)
				}
				dir, err := export.OutcomesDir(o.Source)
				if err != nil {
					return err
				}
				return exportSite(dir, o.HTML, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return results(ctx, o, cmd.OutOrStdout())
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Round, "round", "", "only round `NAME` (as listed, e.g. demo-000001), or \"latest\"")
	fs.BoolVar(&o.JSON, "json", false, "print JSON: each round's metadata (window, ε, δ, collectors) and totals with units")
	fs.BoolVar(&o.CSV, "csv", false, "print CSV in long form: one row per round × statistic × bin")
	fs.BoolVar(&o.OpenMetrics, "openmetrics", false, "print every round's totals as OpenMetrics stamped at the window end, for 'promtool tsdb create-blocks-from openmetrics'")
	fs.StringVar(&o.Format, "format", "", "write `privcount` tallies JSON (PrivCount's privcount.tallies.BEGIN-END.json)")
	fs.StringVarP(&o.Out, "out", "o", "", "with --format privcount and several rounds: write one tallies file per round into `DIR`")
	fs.StringVar(&o.HTML, "html", "", "write the results site (plots, every round, CSVs) as static files into `OUTDIR`")
	cmd.MarkFlagsMutuallyExclusive("json", "csv", "openmetrics", "format", "html")
	cmd.MarkFlagsMutuallyExclusive("round", "html")
	cmd.MarkFlagDirname("html")
	cmd.RegisterFlagCompletionFunc("round", func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		src := defaultDataDir
		if len(args) == 1 {
			src = args[0]
		}
		names := []cobra.Completion{cobra.CompletionWithDesc("latest", "the last published round")}
		if dir, err := export.OutcomesDir(src); err == nil {
			rounds, _ := export.ReadDir(dir, func(error) {})
			for _, r := range rounds {
				names = append(names, r.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// results loads the rounds asked for and prints them in the form asked for.
func results(ctx context.Context, opts resultsOptions, stdout io.Writer) error {
	forms := 0
	for _, on := range []bool{opts.JSON, opts.CSV, opts.OpenMetrics, opts.Format != ""} {
		if on {
			forms++
		}
	}
	if forms > 1 {
		return errors.New("choose one of --json, --csv, --openmetrics and --format")
	}
	if opts.Format != "" && opts.Format != "privcount" {
		return fmt.Errorf("--format %q: the one format is privcount (use --json or --csv for privstats' own)", opts.Format)
	}
	rounds, where, err := loadRounds(ctx, opts.Source, opts.Round)
	if err != nil {
		return err
	}
	switch {
	case opts.CSV:
		return export.WriteCSV(stdout, rounds)
	case opts.JSON:
		return export.WriteJSON(stdout, rounds, opts.Round != "")
	case opts.OpenMetrics:
		return export.WriteOpenMetrics(stdout, rounds)
	case opts.Format != "":
		return writePrivCount(rounds, opts, stdout)
	case opts.Round != "":
		printRound(stdout, rounds[0].Outcome)
		return nil
	}
	if len(rounds) == 0 {
		fmt.Fprintf(stdout, "no published rounds in %s\n", where)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUND\tSTART\tEND\tCOLLECTORS\tSTATISTICS")
	for _, r := range rounds {
		o := r.Outcome
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", r.Name, o.Window.Start.Format(time.RFC3339), o.Window.End.Format(time.RFC3339), o.Collectors.Count, len(o.Statistics))
	}
	return tw.Flush()
}

// loadRounds reads the published rounds from a data directory or a tally
// server's URL: every round, or the one named ("latest" for the newest).
// It also says where it looked.
func loadRounds(ctx context.Context, src, name string) ([]export.Round, string, error) {
	if export.IsURL(src) {
		c := export.Client{Base: src}
		if name != "" {
			r, err := c.Round(ctx, strings.TrimSuffix(name, ".json"))
			if err != nil {
				return nil, src, err
			}
			return []export.Round{r}, src, nil
		}
		rounds, err := c.Rounds(ctx)
		return rounds, src, err
	}
	dir, err := export.OutcomesDir(src)
	if err != nil {
		return nil, src, err
	}
	rounds, err := export.ReadDir(dir, nil)
	if err != nil {
		return nil, dir, err
	}
	if name == "" {
		return rounds, dir, nil
	}
	if name == "latest" {
		if len(rounds) == 0 {
			return nil, dir, fmt.Errorf("no published rounds in %s", dir)
		}
		return rounds[len(rounds)-1:], dir, nil
	}
	for _, r := range rounds {
		if r.Name == strings.TrimSuffix(name, ".json") {
			return []export.Round{r}, dir, nil
		}
	}
	return nil, dir, fmt.Errorf("no round %q in %s (run 'privstats results %s' to list them)", name, dir, src)
}

// printRound prints one round's totals as a table.
func printRound(w io.Writer, o *outcome.Outcome) {
	eps, delta := 0.0, 0.0
	if o.Config != nil {
		eps, delta = o.Config.Epsilon, o.Config.Delta
	}
	fmt.Fprintf(w, "round %s/%d  window %s – %s  collectors %d  ε %.4g  δ %.3g\n\n", o.Series, o.Round,
		o.Window.Start.Format("2006-01-02 15:04:05Z"), o.Window.End.Format("2006-01-02 15:04:05Z"), o.Collectors.Count, eps, delta)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tBIN\tNOISY TOTAL\tUNIT\tσ\t95% CI LOW\t95% CI HIGH\tε\t")
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.4g\t%.0f\t%.0f\t%.4g\t\n", s.Name, b.Label, b.NoisyTotal, export.Unit(s.Name), s.TotalSigma, b.CI95Low, b.CI95High, s.Epsilon)
		}
	}
	tw.Flush()
}

// writePrivCount writes PrivCount tallies: one round to stdout, several
// as files in opts.Out, named as PrivCount names them.
func writePrivCount(rounds []export.Round, opts resultsOptions, stdout io.Writer) error {
	if opts.Out == "" {
		if len(rounds) != 1 {
			return fmt.Errorf("--format privcount writes one round to standard output: give -round NAME|latest, or -o DIR for one file per round (%d rounds)", len(rounds))
		}
		return export.WritePrivCount(stdout, rounds[0].Outcome)
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return err
	}
	for _, r := range rounds {
		var buf bytes.Buffer
		if err := export.WritePrivCount(&buf, r.Outcome); err != nil {
			return err
		}
		path := filepath.Join(opts.Out, export.TalliesFileName(r.Outcome))
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

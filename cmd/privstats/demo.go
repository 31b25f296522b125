package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/demo"
)

func init() { addCommand(newDemoCmd) }

// demoOptions are privstats demo's flags; demo.Options takes most of them
// directly.
type demoOptions struct {
	demo.Options
	stats   string
	asJSON  bool
	verbose bool
}

func newDemoCmd() *cobra.Command {
	var do demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run a whole deployment in one process over loopback HTTPS and show the results",
		Long: `Demo runs a tally server, share keepers and collectors (one synthetic relay each) in
one process, talking HTTPS over loopback, for one round (or --rounds N back to back),
and shows each statistic's noisy total beside the true one; --serve keeps the tally
server's results page up. --attack makes the tally server misbehave and shows
which nodes refuse the round (exit status 1: no outcome was published).`,
		Example: `  privstats demo
  privstats demo --duration 5s --collectors 4 --json
  privstats demo --rounds 3 --serve
  privstats demo --attack list
  privstats demo --attack forge-sum --duration 2s`,
		GroupID: groupTry,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), do, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o := &do.Options
	fs := cmd.Flags()
	fs.IntVar(&o.Collectors, "collectors", 10, "number of collectors (one synthetic relay each)")
	fs.IntVar(&o.Keepers, "keepers", 3, "number of share keepers N")
	fs.IntVar(&o.Threshold, "threshold", 0, "keepers needed to recover totals K (default N/2+1)")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "length of each round's counting window")
	fs.IntVar(&o.Rounds, "rounds", 1, "rounds to run back to back, so the results page has a history")
	fs.IntVar(&o.FailKeepers, "fail-keepers", 0, "keepers that die before releasing their shares (at most N−K)")
	fs.IntVar(&o.FailCollectors, "fail-collectors", 0, "collectors that count but never report")
	fs.Float64Var(&o.Epsilon, "epsilon", 1, "the round's privacy budget ε")
	fs.Float64Var(&o.Delta, "delta", 1e-6, "the round's privacy budget δ")
	fs.Float64Var(&o.Rate, "rate", 200, "synthetic events per second per collector")
	fs.StringVar(&do.stats, "stats", "", "comma-separated statistics to measure (default: a representative set; see privstats stats)")
	fs.StringVar(&o.Dir, "dir", "", "keep the demo's data (keys, state, outcome) in `DIR` instead of a temporary directory")
	fs.BoolVar(&do.asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&o.Serve, "serve", false, "keep the tally server's results page, API and /metrics up after the rounds (Ctrl-C to stop)")
	fs.BoolVar(&do.verbose, "verbose", false, "show every component's log on stderr")
	fs.StringVar(&o.Attack, "attack", "", "make the tally server misbehave as `NAME` and show who refuses (\"list\" names them)")
	cmd.MarkFlagDirname("dir")
	cmd.MarkFlagsMutuallyExclusive("attack", "serve")
	cmd.MarkFlagsMutuallyExclusive("attack", "rounds")
	cmd.RegisterFlagCompletionFunc("stats", completeStatistics)
	cmd.RegisterFlagCompletionFunc("attack", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		names := []cobra.Completion{cobra.CompletionWithDesc("list", "name every attack")}
		for _, a := range demo.Attacks {
			names = append(names, cobra.CompletionWithDesc(a.Name, a.What))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func runDemo(ctx context.Context, do demoOptions, stdout, stderr io.Writer) error {
	o := do.Options
	if o.Attack == "list" {
		for _, a := range demo.Attacks {
			fmt.Fprintf(stdout, "%-11s %s\n            stopped by %s\n", a.Name, a.What, a.Stoppers)
		}
		return nil
	}
	if o.Attack != "" {
		if _, err := demo.LookupAttack(o.Attack); err != nil {
			return usageError{err: err}
		}
	}
	if do.stats != "" {
		o.Statistics = strings.Split(do.stats, ",")
	}
	if do.verbose {
		o.Log = stderr
	}
	o.Served = func(addr string) {
		fmt.Fprintf(stderr, "results: http://%s/   metrics: http://%s/metrics   API: http://%s/api/v1/rounds\n", addr, addr, addr)
	}
	if !do.asJSON {
		o.Progress = func(format string, args ...any) {
			fmt.Fprintf(stderr, "demo: "+format+"\n", args...)
		}
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	if o.Serve {
		// The rounds run first; Ctrl-C then stops the server.
		fmt.Fprintln(stderr, "demo: --serve: the tally server stays up after the rounds until you press Ctrl-C")
	}
	show := func(rep *demo.Report) {
		if do.asJSON {
			writeIndented(stdout, rep)
			return
		}
		printDemo(stdout, rep)
	}
	if o.Serve {
		o.OnReport = show
	}
	rep, err := demo.Run(ctx, o)
	if err != nil {
		return err
	}
	if a := rep.Attack; a != nil {
		if do.asJSON {
			writeIndented(stdout, rep)
		} else {
			printAttack(stdout, a)
		}
		if a.Published {
			return fmt.Errorf("ATTACK NOT STOPPED: the attacked round published an outcome")
		}
		return exitStatus{code: 1, err: fmt.Errorf("attack %s was refused; no outcome was published for the attacked round", a.Attack)}
	}
	if !o.Serve {
		show(rep)
	}
	return nil
}

func printAttack(stdout io.Writer, a *demo.AttackReport) {
	fmt.Fprintf(stdout, "\nAttack %s: %s.\nExpected to be stopped by %s.\n\n", a.Attack, a.What, a.Stoppers)
	if len(a.Refusals) == 0 {
		fmt.Fprintln(stdout, "No node refused the round.")
	} else {
		fmt.Fprintln(stdout, "Refused by:")
		for _, r := range a.Refusals {
			fmt.Fprintf(stdout, "  %-12s %s\n", r.Node, r.Reason)
		}
	}
	if a.Failure != "" {
		fmt.Fprintf(stdout, "\nThe tally server gave the round up: %s\n", a.Failure)
	}
	fmt.Fprintf(stdout, "/metrics counts refusals by role: keeper %g, collector %g (privstats_round_refusals_total)\n", a.Counted["keeper"], a.Counted["collector"])
	if a.Published {
		fmt.Fprintln(stdout, "\nATTACK NOT STOPPED: the attacked round published an outcome.")
		return
	}
	fmt.Fprintln(stdout, "\nNo outcome was published for the attacked round: the attack was stopped.")
}

func printDemo(stdout io.Writer, rep *demo.Report) {
	if len(rep.History) > 1 || rep.Failed > 0 {
		fmt.Fprintf(stdout, "\n%d privstats rounds published (%d failed, took %s):\n\n", len(rep.History), rep.Failed, rep.Elapsed)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUND\tCOLLECTORS\tINTERVALS COVERING THE TRUE TOTAL\tOUTCOME")
		for _, h := range rep.History {
			fmt.Fprintf(tw, "%d\t%d\t%d of %d\t%s\n", h.Round, h.Collectors, h.Covered, h.Bins, h.OutcomePath)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "\nRound %d: %d collectors reported, %d keepers released shares, ε = %g, δ = %g\n\n",
			rep.Round, rep.Collectors, rep.Keepers, rep.Epsilon, rep.Delta)
	} else {
		fmt.Fprintf(stdout, "\nOne privstats round: %d collectors reported, %d keepers released shares, ε = %g, δ = %g (took %s)\n\n",
			rep.Collectors, rep.Keepers, rep.Epsilon, rep.Delta, rep.Elapsed)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tBIN\tTRUE TOTAL\tNOISY TOTAL\tσ\t95% INTERVAL\tCOVERS\t")
	for _, r := range rep.Results {
		covers := "yes"
		if !r.Covered() {
			covers = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.4g\t[%.0f, %.0f]\t%s\t\n", r.Statistic, r.Bin, r.TrueTotal, r.NoisyTotal, r.Sigma, r.CI95Low, r.CI95High, covers)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nThe true totals are known only because the demo also counted its synthetic traffic in the clear;\n"+
		"a real tally server learns only the noisy totals. About 1 in 20 intervals misses its true total by design.\n"+
		"Outcome file: %s\nCheck it:     privstats verify %s\nPlot it:      privstats results --html privstats-site %s\n",
		rep.OutcomePath, rep.OutcomePath, filepath.Dir(rep.OutcomePath))
}

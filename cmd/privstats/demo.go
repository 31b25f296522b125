package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/privstats/privstats/demo"
)

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flags("demo", "[flags]", stderr)
	var o demo.Options
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
	statsList := fs.String("stats", "", "comma-separated statistics to measure (default: a representative set; see privstats stats)")
	fs.StringVar(&o.Dir, "dir", "", "keep the demo's data (keys, state, outcome) in `DIR` instead of a temporary directory")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	serve := fs.Bool("serve", false, "keep the tally server's results page, API and /metrics up after the rounds (Ctrl-C to stop)")
	verbose := fs.Bool("verbose", false, "show every component's log on stderr")
	fs.StringVar(&o.Attack, "attack", "", "make the tally server misbehave as `NAME` and show who refuses (\"list\" names them)")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if o.Attack == "list" {
		for _, a := range demo.Attacks {
			fmt.Fprintf(stdout, "%-11s %s\n            stopped by %s\n", a.Name, a.What, a.Stoppers)
		}
		return nil
	}
	if o.Attack != "" {
		if _, err := demo.LookupAttack(o.Attack); err != nil {
			return err
		}
		if o.Serve {
			return errors.New("--attack and --serve cannot be combined")
		}
	}
	if *statsList != "" {
		o.Statistics = strings.Split(*statsList, ",")
	}
	if *verbose {
		o.Log = stderr
	}
	o.Serve = *serve
	o.Served = func(addr string) {
		fmt.Fprintf(stderr, "results: http://%s/   metrics: http://%s/metrics   API: http://%s/api/v1/rounds\n", addr, addr, addr)
	}
	if !*asJSON {
		o.Progress = func(format string, args ...any) {
			fmt.Fprintf(stderr, "demo: "+format+"\n", args...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Serve {
		// The rounds run first; Ctrl-C then stops the server.
		fmt.Fprintln(stderr, "demo: --serve: the tally server stays up after the rounds until you press Ctrl-C")
	}
	show := func(rep *demo.Report) {
		if *asJSON {
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
		if *asJSON {
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

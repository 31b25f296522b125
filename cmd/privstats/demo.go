package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "length of the round's counting window")
	fs.IntVar(&o.FailKeepers, "fail-keepers", 0, "keepers that die before releasing their shares (at most N−K)")
	fs.IntVar(&o.FailCollectors, "fail-collectors", 0, "collectors that count but never report")
	fs.Float64Var(&o.Epsilon, "epsilon", 1, "the round's privacy budget ε")
	fs.Float64Var(&o.Delta, "delta", 1e-6, "the round's privacy budget δ")
	fs.Float64Var(&o.Rate, "rate", 200, "synthetic events per second per collector")
	statsList := fs.String("stats", "", "comma-separated statistics to measure (default: a representative set; see privstats stats)")
	fs.StringVar(&o.Dir, "dir", "", "keep the demo's data (keys, state, outcome) in `DIR` instead of a temporary directory")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	serve := fs.Bool("serve", false, "keep the tally server's /metrics and results API up after the round (Ctrl-C to stop)")
	verbose := fs.Bool("verbose", false, "show every component's log on stderr")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *statsList != "" {
		o.Statistics = strings.Split(*statsList, ",")
	}
	if *verbose {
		o.Log = stderr
	}
	o.Serve = *serve
	o.Served = func(addr string) {
		fmt.Fprintf(stderr, "metrics: http://%s/metrics   results: http://%s/api/v1/rounds\n", addr, addr)
	}
	if !*asJSON {
		o.Progress = func(format string, args ...any) {
			fmt.Fprintf(stderr, "demo: "+format+"\n", args...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Serve {
		// The round runs first; Ctrl-C then stops the server.
		fmt.Fprintln(stderr, "demo: --serve: the tally server stays up after the round until you press Ctrl-C")
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
	if !o.Serve {
		show(rep)
	}
	return nil
}

func printDemo(stdout io.Writer, rep *demo.Report) {
	fmt.Fprintf(stdout, "\nOne privstats round: %d collectors reported, %d keepers released shares, ε = %g, δ = %g (took %s)\n\n",
		rep.Collectors, rep.Keepers, rep.Epsilon, rep.Delta, rep.Elapsed)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATISTIC\tBIN\tTRUE TOTAL\tNOISY TOTAL\tσ\t95% INTERVAL\tCOVERS\t")
	for _, r := range rep.Results {
		covers := "yes"
		if float64(r.TrueTotal) < r.CI95Low || float64(r.TrueTotal) > r.CI95High {
			covers = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.4g\t[%.0f, %.0f]\t%s\t\n", r.Statistic, r.Bin, r.TrueTotal, r.NoisyTotal, r.Sigma, r.CI95Low, r.CI95High, covers)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nThe true totals are known only because the demo also counted its synthetic traffic in the clear;\n"+
		"a real tally server learns only the noisy totals. About 1 in 20 intervals misses its true total by design.\n"+
		"Outcome file: %s\nCheck it:     privstats verify %s\n", rep.OutcomePath, rep.OutcomePath)
}

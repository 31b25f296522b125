package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/loadtest"
)

// loadtestOptions are privstats loadtest's flags.
type loadtestOptions struct {
	loadtest.Options
	JSON bool
	// CPUProfile, when set, is where the load generator's CPU profile
	// goes (the simulated collectors' cost, for finding what to speed up).
	CPUProfile string
}

func init() { addCommand(newLoadtestCmd) }

func newLoadtestCmd() *cobra.Command {
	var o loadtestOptions
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "measure a deployment at scale: tally server and keepers as processes, many simulated collectors",
		Long: `Loadtest starts a tally server and share keepers as separate processes of this binary,
with YAML configs and keys in a temporary directory, and simulates many collectors in its
own process, each a real collector with its own identity, noise, HPKE bundles and
signatures, counting streams whose counts the load test chose. It prints each phase's
wall time, each process's CPU, peak RSS and disk writes, the bytes through the tally
server and on disk, and checks the published totals against the truth (exactly with
--exact, otherwise within 5σ). Exit status 1 if a round did not complete, S missed a
collector, or a total is off.`,
		Example: `  privstats loadtest --collectors 20 --counters 10 --exact
  privstats loadtest --collectors 1000 --counters 1000 --keepers 3 --json`,
		GroupID: groupTry,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runLoadtest(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Collectors, "collectors", 1000, "simulated collectors (in this process)")
	fs.IntVar(&o.Counters, "counters", 1000, "counters per round (bins of one histogram)")
	fs.IntVar(&o.Keepers, "keepers", 3, "share keepers N (separate processes)")
	fs.IntVar(&o.Threshold, "threshold", 0, "keepers needed to release K (default N/2+1)")
	fs.IntVar(&o.Rounds, "rounds", 1, "rounds to run")
	fs.BoolVar(&o.Exact, "exact", false, "no noise (a zero-noise test policy): check every total exactly")
	fs.DurationVar(&o.Window, "window", 0, "each round's counting window (default 10s + 2µs × collectors × counters)")
	fs.DurationVar(&o.SetupTime, "setup", 0, "time from announcement to the window (default 10s + 40µs × collectors × counters)")
	fs.DurationVar(&o.ReportGrace, "report-grace", 0, "how long after the window collectors may report (default 15s + 3 × collectors × one report's commitment time, measured)")
	fs.IntVar(&o.MinCollectors, "min-collectors", 0, "the round's min_collectors (default 90% of the collectors)")
	fs.StringVar(&o.Dir, "dir", "", "keep keys, configs, data and logs in `DIR` (default: a temporary directory, removed)")
	fs.BoolVar(&o.JSON, "json", false, "print the result as one JSON object")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write the load generator's CPU profile to `FILE`")
	cmd.MarkFlagDirname("dir")
	return cmd
}

// runLoadtest runs the load test with this binary as the tally server and
// keepers, and prints the result. It fails (exit 1) if a round did not
// complete, S missed a collector or a total is off the truth.
func runLoadtest(ctx context.Context, o loadtestOptions, stdout, stderr io.Writer) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the privstats binary to start the tally server and keepers: %w", err)
	}
	o.Binary = bin
	o.Progress = func(format string, args ...any) {
		fmt.Fprintf(stderr, "loadtest: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := loadtest.Run(ctx, o.Options)
	if err != nil {
		return err
	}
	if o.JSON {
		if err := writeIndented(stdout, res); err != nil {
			return err
		}
	} else {
		printLoadtest(stdout, res)
	}
	if res.Failure != "" {
		return errors.New(res.Failure)
	}
	return nil
}

func printLoadtest(w io.Writer, r *loadtest.Result) {
	noise := "5σ"
	if r.Exact {
		noise = "exact"
	}
	fmt.Fprintf(w, "Load test: %d collectors × %d counters, %d keepers (K = %d), setup %gs, window %gs, report grace %gs, %d round(s); took %.1fs\n\n",
		r.Collectors, r.Counters, r.Keepers, r.Threshold, r.SetupSeconds, r.WindowSeconds, r.ReportGraceSeconds, len(r.Rounds), r.WallSeconds)
	for _, rr := range r.Rounds {
		fmt.Fprintf(w, "Round %d: completed %t, %d of %d collectors in S, totals vs truth (%s) ok %t",
			rr.Round, rr.Completed, rr.CollectorsInS, r.Collectors, noise, rr.TotalsOK)
		if !r.Exact {
			fmt.Fprintf(w, " (largest error %.2fσ)", rr.MaxErrorSigmas)
		}
		if rr.Uncounted > 0 {
			fmt.Fprintf(w, "; %d collectors in S were sent no streams", rr.Uncounted)
		}
		fmt.Fprintf(w, "\n  window end → outcome %.1fs; collector setup %.1f ms CPU each\n  phases:", rr.WindowEndToOutcomeSeconds, rr.CollectorSetupMS)
		for _, p := range loadtest.Phases {
			if s, ok := rr.Phases[p]; ok {
				fmt.Fprintf(w, " %s %.2fs", p, s)
			} else {
				fmt.Fprintf(w, " %s -", p)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PROCESS\tROLE\tCPU s\tPEAK RSS MiB\tDISK WRITES MiB\t")
	procs := append([]loadtest.Process(nil), r.Processes...)
	sort.SliceStable(procs, func(i, j int) bool { return roleOrder(procs[i].Role) < roleOrder(procs[j].Role) })
	for _, p := range procs {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.1f\t\n", p.Name, p.Role, p.CPUSeconds, mib(p.PeakRSSBytes), mib(p.DiskWriteBytes))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nThrough the tally server (TLS on the wire): collectors → %.1f MiB, → collectors %.1f MiB; keepers → %.1f MiB, → keepers %.1f MiB\n",
		mib(r.CollectorBytesIn), mib(r.CollectorBytesOut), mib(r.KeeperBytesIn), mib(r.KeeperBytesOut))
	fmt.Fprintf(w, "On disk: journal %.1f MiB, all state %.1f MiB; ciphertext carried (bundles + reports of S) %.1f MiB\n",
		mib(r.JournalBytes), mib(r.StateBytes), mib(r.CiphertextBytes))
	if r.Dir != "" {
		fmt.Fprintf(w, "Keys, configs, data and logs: %s\n", r.Dir)
	}
	if r.Failure != "" {
		fmt.Fprintf(w, "\nFAILED: %s\n", r.Failure)
	}
}

func roleOrder(role string) int {
	switch role {
	case "tally":
		return 0
	case "keeper":
		return 1
	}
	return 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

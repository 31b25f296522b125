// Command privstats runs the roles of a privstats deployment (tally server,
// share keeper, collector) and the tools researchers and operators use
// around them. It parses flags and wires packages together; the protocol
// lives in the packages it calls.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"demo":        {"run a whole deployment in one process over loopback HTTPS and show the results", runDemo},
		"tally":       {"run the tally server (-c tally.yaml)", runTally},
		"keeper":      {"run a share keeper (-c keeper.yaml)", runKeeper},
		"collect":     {"run a collector beside a tor relay (-c collector.yaml)", runCollect},
		"plan":        {"plan a privacy budget: σ, ε and δ per statistic (privacy.yaml)", runPlan},
		"results":     {"list published rounds, or show one round's totals", runResults},
		"verify":      {"re-check every signature and the interpolation of an outcome file", runVerify},
		"keygen":      {"create an identity key and print its fingerprint", runKeygen},
		"init":        {"write a commented config for a role (collector, keeper, tally) with this node's key", runInitCommand},
		"fingerprint": {"print the fingerprint of an identity key", runFingerprint},
		"stats":       {"list the statistics privstats can count", runStats},
		"replay":      {"preview what this relay's collector would count from a trace (local only)", runReplay},
		"version":     {"print the version", runVersion},
	}
}

// errUsage marks an error that was already explained with usage text.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "privstats: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "privstats %s: %v\n", args[0], err)
		}
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		var es exitStatus
		if errors.As(err, &es) {
			return es.code
		}
		return 1
	}
	return 0
}

// exitCode lets a command choose its exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitStatus is an error with the exit status it calls for.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }

func usage(w io.Writer) {
	fmt.Fprintln(w, "privstats measures how Tor is used without exposing any relay or user (PrivCount design).")
	fmt.Fprintln(w, "\nUsage: privstats COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'privstats COMMAND -h' for a command's flags. Start with: privstats demo")
}

// flags makes a subcommand's flag set. Each command has its own set: the DP
// library's dependencies register flags on the default one.
func flags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("privstats "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: privstats %s %s\n\n%s\n", name, synopsis, commands[name].summary)
		if hasFlags(fs) {
			fmt.Fprintln(stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parse parses flags and checks the number of positional arguments.
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if n := fs.NArg(); n < minArgs || (maxArgs >= 0 && n > maxArgs) {
		fs.Usage()
		return errUsage
	}
	return nil
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flags("version", "", stderr)
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintln(stdout, "privstats", v)
	return nil
}

// Command privstats runs the roles of a privstats deployment (tally server,
// share keeper, collector) and the tools researchers and operators use
// around them. It parses flags and wires packages together; the protocol
// lives in the packages it calls.
//
// The command line is built with github.com/spf13/cobra. Each command lives
// in its own file: a constructor returning a *cobra.Command whose flags are
// bound to an options struct and whose RunE calls a plain function, added to
// the root by an init function calling addCommand (see cli.go for the
// conventions every command shares: exit statuses, single-dash long flags,
// argument checks).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Command groups, in the order the general help lists them. A command sets
// GroupID to one of these; help, completion, man and version are listed
// after them.
const (
	groupTry     = "try"
	groupRun     = "run"
	groupSetup   = "setup"
	groupResults = "results"
)

// newRoot builds the whole command tree: the root, every command added with
// addCommand, and cobra's help and completion commands.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "privstats COMMAND [flags] [ARGS]",
		Short: "measure how Tor is used without exposing any relay or user",
		Long: `privstats measures how Tor is used without exposing any relay or user (PrivCount design).
Collectors beside tor relays count events into blinded, noised counters; share keepers
hold the blinding; a tally server publishes only the noisy network-wide totals.

Flags may come before or after arguments, and long flags may be written with one dash
(-round) or two (--round). Exit status: 0 success, 1 failure, 2 usage error (unknown
command or flag, wrong arguments); verify exits 3 for a valid outcome that is NOT PRIVATE.

Start with: privstats demo`,
		Example: `  privstats demo                         # a whole deployment in one process
  privstats help collect                 # one command's flags
  privstats plan privacy.yaml --json     # flags may follow arguments`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return runVersion(cmd.OutOrStdout())
			}
			return usageError{err: fmt.Errorf("no command given")}
		},
		SuggestionsMinimumDistance: 2,
		SilenceErrors:              true,
		SilenceUsage:               true,
		DisableAutoGenTag:          true, // keeps generated man pages reproducible
	}
	root.Flags().BoolVarP(&showVersion, "version", "v", false, "print the version and build (same as privstats version)")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err: err} })
	root.AddGroup(
		&cobra.Group{ID: groupTry, Title: "Try it:"},
		&cobra.Group{ID: groupRun, Title: "Run a node:"},
		&cobra.Group{ID: groupSetup, Title: "Set up and check a node:"},
		&cobra.Group{ID: groupResults, Title: "Plan a budget and read results:"},
	)
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	root.SetHelpCommand(newHelpCmd())
	finish(root)
	return root
}

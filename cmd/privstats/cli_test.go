package main

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestNormalizeArgs(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	for _, tc := range []struct{ in, want string }{
		// Single-dash long flags become double-dash, wherever they are.
		{"results DIR -round latest", "results DIR --round latest"},
		{"results -round=latest -json DIR", "results --round=latest --json DIR"},
		{"plan privacy.yaml -json", "plan privacy.yaml --json"},
		{"tally -c t.yaml -exit-when-done", "tally -c t.yaml --exit-when-done"},
		{"verify -tally FP -keepers A,B o.json", "verify --tally FP --keepers A,B o.json"},
		{"demo -help", "demo --help"},
		{"-version", "--version"},
		// A flag's value is never rewritten, even when it looks like a flag.
		{"replay --trace -json", "replay --trace -json"},
		{"replay -trace -json -json", "replay --trace -json --json"},
		{"keygen -o -round", "keygen -o -round"},
		{"collect -vc -record", "collect -vc -record"},
		{"collect -vc=x -record y", "collect -vc=x --record y"},
		// Shorthands, unknown flags, "--" and unknown commands are left alone.
		{"keeper -v -c k.yaml", "keeper -v -c k.yaml"},
		{"plan -nosuch x", "plan -nosuch x"},
		{"plan x -- -json", "plan x -- -json"},
		{"frobnicate -json", "frobnicate -json"},
		{"help results -round", "help results -round"},
		{"completion bash -help", "completion bash --help"},
	} {
		got := strings.Join(normalizeArgs(root, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNoLongFlagIsAShorthandCluster keeps normalizeArgs from changing what
// a command line means: no command may have a long flag whose name could
// also be read as a cluster of its shorthands (-vc would otherwise stop
// meaning -v -c if a --vc were added).
func TestNoLongFlagIsAShorthandCluster(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		all := pflag.NewFlagSet("", pflag.ContinueOnError)
		all.AddFlagSet(c.Flags())
		all.AddFlagSet(c.InheritedFlags())
		all.VisitAll(func(f *pflag.Flag) {
			if len(f.Name) < 2 {
				t.Errorf("%s: flag --%s: long names need two letters or more (use a shorthand)", c.CommandPath(), f.Name)
				return
			}
			cluster := true
			for _, r := range f.Name {
				if all.ShorthandLookup(string(r)) == nil {
					cluster = false
				}
			}
			if cluster {
				t.Errorf("%s: long flag --%s is also a cluster of its shorthands", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}

// TestEveryCommandChecksItsArguments: a command without an Args check would
// take any positional argument silently.
func TestEveryCommandChecksItsArguments(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	var names []string
	for _, c := range root.Commands() {
		names = append(names, c.Name())
		if c.Args == nil && !c.HasSubCommands() {
			t.Errorf("%s has no Args check", c.CommandPath())
		}
	}
	for _, want := range []string{"demo", "tally", "keeper", "collect", "plan", "results", "verify", "keygen", "fingerprint", "stats", "replay", "version", "help", "completion"} {
		if !slices.Contains(names, want) {
			t.Errorf("no command %q (have %v)", want, names)
		}
	}
}

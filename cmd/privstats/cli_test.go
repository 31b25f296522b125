package main

import (
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
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

// wantCommands are commands privstats must have (with a page each).
var wantCommands = []string{"demo", "tally", "keeper", "collect", "plan", "results", "verify", "keygen", "fingerprint", "stats", "replay", "version", "completion", "man"}

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
	for _, want := range append(wantCommands, "help") {
		if !slices.Contains(names, want) {
			t.Errorf("no command %q (have %v)", want, names)
		}
	}
}

// TestManPagesNameEveryCommand: privstats(1) names every command, and each
// has its own page listing its flags, all generated from the definitions.
func TestManPagesNameEveryCommand(t *testing.T) {
	dir := t.TempDir()
	var stderr strings.Builder
	if code := run([]string{"man", "-o", dir}, io.Discard, &stderr); code != 0 {
		t.Fatalf("privstats man -o: exit %d: %s", code, stderr.String())
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	top := read("privstats.1")
	root := newRoot(io.Discard, io.Discard)
	var paged []string
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		paged = append(paged, c.Name())
		page := "privstats-" + c.Name() + ".1"
		if !strings.Contains(top, `\fBprivstats `+c.Name()) || !strings.Contains(top, `privstats-`+c.Name()+`(1)`) {
			t.Errorf("privstats.1 does not name %s and its page", c.Name())
		}
		text := read(page)
		if !strings.Contains(text, c.Short) {
			t.Errorf("%s does not give the command's summary %q", page, c.Short)
		}
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(text, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s does not list --%s", page, f.Name)
			}
		})
	}
	for _, want := range wantCommands {
		if !slices.Contains(paged, want) {
			t.Errorf("no page for %s (pages for %v)", want, paged)
		}
	}
}

func TestVersionText(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "1e3c6cb0a1b2c3d4e5f60718293a4b5c6d7e8f90"},
		{Key: "vcs.time", Value: "2026-11-28T08:30:00Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name, linked string
		bi           *debug.BuildInfo
		want         string
	}{
		{"go install of a release", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}},
			"privstats v1.2.0\nbuilt with go1.26.8\n"},
		{"go build in a checkout", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261128083000-1e3c6cb0a1b2+dirty"}, Settings: vcs},
			"privstats v0.0.0-20261128083000-1e3c6cb0a1b2+dirty\nrevision 1e3c6cb0a1b2c3d4e5f60718293a4b5c6d7e8f90, committed 2026-11-28T08:30:00Z, with uncommitted changes\nbuilt with go1.26.8\n"},
		{"revision without a module version", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs[:3]},
			"privstats devel-1e3c6cb0a1b2\nrevision 1e3c6cb0a1b2c3d4e5f60718293a4b5c6d7e8f90, committed 2026-11-28T08:30:00Z\nbuilt with go1.26.8\n"},
		{"set at link time", "1.2.0-1", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			"privstats 1.2.0-1\nrevision 1e3c6cb0a1b2c3d4e5f60718293a4b5c6d7e8f90, committed 2026-11-28T08:30:00Z, with uncommitted changes\nbuilt with go1.26.8\n"},
		{"nothing known", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "privstats (devel)\n"},
		{"no build info", "", nil, "privstats (devel)\n"},
	} {
		if got := versionText(tc.linked, tc.bi); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

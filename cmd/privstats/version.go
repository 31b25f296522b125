package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func init() { addCommand(newVersionCmd) }

// version, when set at link time (go build -ldflags "-X main.version=1.2.3",
// as a package build may), is printed instead of the module version.
var version string

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version and the commit it was built from",
		Long: `Version prints privstats' version: the one set at link time, else the module version
go build or go install recorded, then the VCS revision, commit time and whether the tree
had uncommitted changes, and the Go toolchain. "(devel)" means none of these is known,
as in a binary built by go run or go test.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVersion(cmd.OutOrStdout()) },
	}
}

func runVersion(stdout io.Writer) error {
	bi, _ := debug.ReadBuildInfo()
	_, err := io.WriteString(stdout, versionText(version, bi))
	return err
}

// buildVCS is what the build recorded about the source tree.
type buildVCS struct {
	revision, time string
	modified       bool
}

func vcsOf(bi *debug.BuildInfo) buildVCS {
	var v buildVCS
	if bi == nil {
		return v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.revision = s.Value
		case "vcs.time":
			v.time = s.Value
		case "vcs.modified":
			v.modified = s.Value == "true"
		}
	}
	return v
}

// moduleVersion is the version to print on the first line: the link-time
// one, the module's, or, for a build from a checkout that recorded only the
// VCS state, the short revision.
func moduleVersion(linked string, bi *debug.BuildInfo) string {
	if linked != "" {
		return linked
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if v := vcsOf(bi); v.revision != "" {
		r := "devel-" + v.revision[:min(12, len(v.revision))]
		if v.modified {
			r += "+dirty"
		}
		return r
	}
	return "(devel)"
}

// versionText is what privstats version and privstats --version print.
func versionText(linked string, bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "privstats %s\n", moduleVersion(linked, bi))
	if v := vcsOf(bi); v.revision != "" {
		fmt.Fprintf(&b, "revision %s", v.revision)
		if v.time != "" {
			fmt.Fprintf(&b, ", committed %s", v.time)
		}
		if v.modified {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString("\n")
	}
	if bi != nil && bi.GoVersion != "" {
		fmt.Fprintf(&b, "built with %s\n", bi.GoVersion)
	}
	return b.String()
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { addCommand(newManCmd) }

// manOptions are privstats man's flags.
type manOptions struct {
	dir string
}

func newManCmd() *cobra.Command {
	var o manOptions
	cmd := &cobra.Command{
		Use:   "man [-o DIR]",
		Short: "write the manual pages, made from the same definitions as the help",
		Long: `Man writes privstats' manual pages in roff, generated from the command definitions
that also give the help and shell completion, so they cannot drift apart. Without -o it
prints privstats(1), which lists every command, to standard output; with -o it writes
privstats.1 and one page per command (privstats-collect.1, ...) into DIR.`,
		Example: `  privstats man | man -l -
  privstats man -o /usr/local/share/man/man1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMan(cmd.Root(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&o.dir, "output", "o", "", "write every page into `DIR` (created if missing)")
	cmd.MarkFlagDirname("output")
	return cmd
}

func runMan(root *cobra.Command, o manOptions, stdout, stderr io.Writer) error {
	bi, _ := debug.ReadBuildInfo()
	header := &doc.GenManHeader{
		Title:   "PRIVSTATS",
		Section: "1",
		Source:  "privstats " + moduleVersion(version, bi),
		Manual:  "privstats manual",
	}
	// The commit's time makes the pages reproducible; without it cobra uses
	// SOURCE_DATE_EPOCH, else the current time.
	if t, err := time.Parse(time.RFC3339, vcsOf(bi).time); err == nil {
		header.Date = &t
	}
	root.Long += manCommands(root)
	if o.dir == "" {
		return doc.GenMan(root, header, stdout)
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	if err := doc.GenManTree(root, header, o.dir); err != nil {
		return err
	}
	pages, err := filepath.Glob(filepath.Join(o.dir, "privstats*.1"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %d pages to %s\n", len(pages), o.dir)
	return nil
}

// manCommands is the COMMANDS and EXIT STATUS sections of privstats(1), in
// the markdown cobra's generator turns into roff.
func manCommands(root *cobra.Command) string {
	var b strings.Builder
	b.WriteString("\n\n# COMMANDS\n")
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() { // help has no page of its own
			continue
		}
		fmt.Fprintf(&b, "**%s**\n: %s; see **privstats-%s(1)**.\n\n", c.UseLine(), c.Short, c.Name())
	}
	b.WriteString(`# EXIT STATUS
**0** success; **1** failure; **2** usage error (unknown command or flag, wrong arguments);
**3** from **privstats verify**: the outcome is valid but NOT PRIVATE.`)
	return b.String()
}

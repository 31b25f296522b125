package main

// The conventions every privstats command shares.
//
// Adding a command: in its own file, write a constructor that returns a
// *cobra.Command with Use, Short, GroupID, Args (one of noArgs, exactArgs,
// rangeArgs) and a RunE that calls a plain function taking an options
// struct, the flags bound to that struct's fields; register it with
// addCommand in the file's init function. Nothing else needs to change:
// help, completion and the man page come from the definition.
//
// Exit status: 0 success, 1 failure, 2 usage error (unknown command, bad or
// missing flag, wrong number of arguments: anything refused before the
// command's RunE starts, or a usageError it returns), or the status of an
// exitStatus error (verify's NOT PRIVATE is 3).
//
// Single-dash long flags: privstats used Go's flag package, which accepts
// -round as well as --round, and scripts and the README use that form
// (-c, -round, -json, -exit-when-done). pflag would read -round as the
// shorthand cluster -r -o -u -n -d, so before cobra parses, normalizeArgs
// rewrites -name and -name=value to --name when name is a long flag of the
// command being run. A long name therefore wins over a shorthand cluster of
// the same letters; TestNoLongFlagIsAShorthandCluster keeps that from ever
// changing the meaning of a valid cluster.

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commands are the constructors of every command, added by each command's
// file in its init function.
var commands []func() *cobra.Command

// addCommand registers a command's constructor.
func addCommand(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	started := false
	finishRun(root, &started)
	root.SetArgs(normalizeArgs(root, args))
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if cmd == nil {
		cmd = root
	}
	var ue usageError
	if errors.As(err, &ue) || !started {
		if ue.err != nil {
			err = ue.err
		}
		fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
		if cmd == root {
			fmt.Fprintln(stderr)
			root.SetOut(stderr)
			root.Usage()
		} else {
			fmt.Fprintf(stderr, "Usage: %s\nRun '%s --help' for details.\n", cmd.UseLine(), cmd.CommandPath())
		}
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	var es exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	return 1
}

// usageError is a command line privstats cannot run: exit status 2, with
// the command's usage line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// exitStatus is an error with the exit status it calls for.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageError{err: errors.New(msg)}
}

// noArgs, exactArgs and rangeArgs check a command's positional arguments;
// they also check its required flags and flag groups here, before cobra
// would, so that every such mistake is a usage error.
func noArgs(cmd *cobra.Command, args []string) error { return rangeArgs(0, 0)(cmd, args) }

func exactArgs(n int) cobra.PositionalArgs { return rangeArgs(n, n) }

func rangeArgs(minArgs, maxArgs int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cmd.ValidateRequiredFlags(); err != nil {
			return usageError{err: err}
		}
		if err := cmd.ValidateFlagGroups(); err != nil {
			return usageError{err: err}
		}
		switch n := len(args); {
		case n < minArgs:
			return usagef("needs %s, got %d", plural(minArgs, "argument"), n)
		case n > maxArgs && maxArgs == 0:
			return usagef("takes no arguments, got %q", args)
		case n > maxArgs:
			return usagef("takes at most %s, got %d: %q", plural(maxArgs, "argument"), n, args)
		}
		return nil
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// newHelpCmd is `privstats help [COMMAND]`: cobra's, except that an unknown
// topic is a usage error.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "show help for privstats or one command",
		Long:  "Help shows a command's description, flags and examples; 'privstats COMMAND --help' does the same.",
		Args: func(cmd *cobra.Command, args []string) error {
			if c, _, err := cmd.Root().Find(args); err != nil || c == cmd.Root() && len(args) > 0 {
				return unknownCommand(cmd.Root(), strings.Join(args, " "))
			}
			return nil
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			if len(args) == 0 {
				for _, c := range cmd.Root().Commands() {
					if c.IsAvailableCommand() {
						names = append(names, cobra.CompletionWithDesc(c.Name(), c.Short))
					}
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, _ := cmd.Root().Find(args)
			c.InitDefaultHelpFlag()
			return c.Help()
		},
	}
}

// finishRun sets started when any command's RunE starts, so that run can
// tell a usage error (refused before) from a failure.
func finishRun(c *cobra.Command, started *bool) {
	if f := c.RunE; f != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			*started = true
			return f(cmd, args)
		}
	} else if f := c.Run; f != nil {
		c.Run = func(cmd *cobra.Command, args []string) {
			*started = true
			f(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		finishRun(sub, started)
	}
}

// finish adds cobra's help command and completion commands to the tree, so
// that the man page and help list them, and the help flag to every command,
// so that normalizeArgs knows -help.
func finish(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		if c != root && c.HasSubCommands() && !c.Runnable() {
			// cobra prints help for a group of commands (completion) even
			// when given an unknown one; runnable, its Args check refuses that.
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}

// normalizeArgs rewrites single-dash long flags (-round, -json=false) to
// the double-dash form pflag expects, for the command args select; see the
// comment at the top of this file. Values of flags that take one are left
// alone, as is everything after "--" and every argument of a command it
// cannot find.
func normalizeArgs(root *cobra.Command, args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	cmd := root
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch {
		case a == "--":
			return out
		case a == "-" || !strings.HasPrefix(a, "-"):
			// A positional argument: the first may name a subcommand.
			if cmd.HasSubCommands() {
				next := findSub(cmd, a)
				if next == nil {
					return out
				}
				cmd = next
			}
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		double := strings.HasPrefix(a, "--")
		if !double && len(name) > 1 {
			if f := lookupFlag(cmd, name); f != nil {
				out[i] = "-" + a
				double = true
			}
		}
		if double {
			if f := lookupFlag(cmd, name); f != nil && f.NoOptDefVal == "" && !hasValue {
				i++ // the next argument is this flag's value
			}
			continue
		}
		// A shorthand cluster (-v, -vc FILE, -cFILE): the first shorthand
		// that takes a value takes the rest of the cluster or the next
		// argument.
		for j, r := range a[1:] {
			f := lookupShorthand(cmd, string(r))
			if f == nil {
				break
			}
			if f.NoOptDefVal == "" {
				if j+len(string(r)) == len(a)-1 {
					i++
				}
				break
			}
		}
	}
	return out
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

func lookupShorthand(cmd *cobra.Command, s string) *pflag.Flag {
	if f := cmd.Flags().ShorthandLookup(s); f != nil {
		return f
	}
	return cmd.InheritedFlags().ShorthandLookup(s)
}

// completeFiles completes file names with one of these extensions.
func completeFiles(ext ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return ext, cobra.ShellCompDirectiveFilterFileExt
	}
}

// usageTemplate is cobra's, except that the root names its form
// (privstats COMMAND [flags]) rather than the runnable root itself, and the
// last line names both ways of getting a command's help.
const usageTemplate = `Usage:{{if not .HasParent}}
  {{.CommandPath}} COMMAND [flags] [ARGS]
  {{.CommandPath}} --version{{else}}{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Available Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if not .AllChildCommandsHaveGroup}}

Additional Commands:{{range $cmds}}{{if (and (eq .GroupID "") (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{if .HasParent}}{{.CommandPath}} COMMAND --help{{else}}{{.CommandPath}} help COMMAND' or '{{.CommandPath}} COMMAND --help{{end}}' for a command's flags.{{end}}
`

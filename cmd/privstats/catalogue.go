package main

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/replay"
	"github.com/privstats/privstats/stats"
)

func init() {
	addCommand(newStatsCmd)
	addCommand(newReplayCmd)
}

func newStatsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "stats",
		Short:   "list the statistics privstats can count",
		GroupID: groupSetup,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stats.WriteCatalogue(cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the catalogue as JSON")
	return cmd
}

// replayOptions are privstats replay's flags.
type replayOptions struct {
	trace  string
	stats  string
	asJSON bool
}

func newReplayCmd() *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay --trace FILE",
		Short: "preview what this relay's collector would count from a trace (local only)",
		Long: `Replay runs the catalogue's statistics over a trace of tor events (as written by
privstats collect --record) and prints the raw counts this relay's collector would
add to a round. It is a local preview for the relay's operator: the counts are
unblinded and unnoised, so keep them private.`,
		Example: "  privstats replay --trace relay.trace --stats relay_bytes_read,or_connections",
		GroupID: groupSetup,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.trace, "trace", "", "trace `FILE` recorded with privstats collect --record (required)")
	fs.StringVar(&o.stats, "stats", "", "comma-separated statistics (default: all)")
	fs.BoolVar(&o.asJSON, "json", false, "print JSON")
	cmd.MarkFlagRequired("trace")
	cmd.MarkFlagFilename("trace")
	cmd.RegisterFlagCompletionFunc("stats", completeStatistics)
	return cmd
}

func runReplay(ctx context.Context, o replayOptions, stdout io.Writer) error {
	var list []string
	if o.stats != "" {
		list = strings.Split(o.stats, ",")
	}
	format := "table"
	if o.asJSON {
		format = "json"
	}
	return replay.Preview(ctx, o.trace, list, stdout, format)
}

// completeStatistics completes the last name of a comma-separated list of
// statistics from the catalogue.
func completeStatistics(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	done := toComplete[:strings.LastIndex(toComplete, ",")+1]
	var out []cobra.Completion
	for _, c := range stats.Catalogue() {
		out = append(out, cobra.CompletionWithDesc(done+c.Name, c.Description))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

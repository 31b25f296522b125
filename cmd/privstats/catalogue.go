package main

import (
	"context"
	"io"
	"strings"

	"github.com/privstats/privstats/replay"
	"github.com/privstats/privstats/stats"
)

func runStats(args []string, stdout, stderr io.Writer) error {
	fs := flags("stats", "[--json]", stderr)
	asJSON := fs.Bool("json", false, "print the catalogue as JSON")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	return stats.WriteCatalogue(stdout, *asJSON)
}

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := flags("replay", "--trace FILE [--stats NAMES] [--json]", stderr)
	trace := fs.String("trace", "", "trace `FILE` recorded with privstats collect --record")
	names := fs.String("stats", "", "comma-separated statistics (default: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *trace == "" {
		fs.Usage()
		return errUsage
	}
	var list []string
	if *names != "" {
		list = strings.Split(*names, ",")
	}
	format := "table"
	if *asJSON {
		format = "json"
	}
	return replay.Preview(context.Background(), *trace, list, stdout, format)
}

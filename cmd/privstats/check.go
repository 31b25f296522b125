package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/torctl"
)

// checkOptions are the flags of `privstats collect --check`.
type checkOptions struct {
	// Config is the collector.yaml; only its source part is read.
	Config string
}

// errCheckFailed is the exit of a check that found the collector cannot
// work with this tor; what to do has been printed.
var errCheckFailed = errors.New("this collector cannot read tor")

// runCollectCheck connects to the tor a collector.yaml names, as the
// collector would, and says which statistics it can feed. It needs no
// tally server or keepers: only the file's source is read.
func runCollectCheck(ctx context.Context, opts checkOptions, stdout, stderr io.Writer) error {
	cfg, err := config.LoadCollectorSource(opts.Config)
	if err != nil {
		return err
	}
	s := cfg.Source
	if s.Control == nil && s.MetricsPort == nil {
		return fmt.Errorf("%s: --check checks a live tor, and this collector reads a %s", opts.Config, sourceName(cfg))
	}
	var co source.CheckOptions
	if c := s.Control; c != nil {
		co.Control = &source.ControlOptions{Address: c.Address, Password: c.Password, CookieFile: c.CookieFile, AllowedAuth: authMethods(c.AllowedAuth)}
	}
	if s.MetricsPort != nil {
		co.MetricsURL = s.MetricsPort.URL
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err := source.Check(ctx, co)
	var ce *source.CheckError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "FAIL %s\n  %v\n", ce.Part, ce.Err)
		if ce.Fix != "" {
			fmt.Fprintf(stderr, "fix: %s\n", ce.Fix)
		}
		return errCheckFailed
	}
	if err != nil {
		return err
	}
	writeCheckReport(stdout, r)
	if len(r.Fed()) == 0 {
		fmt.Fprintln(stderr, "FAIL this tor feeds none of the statistics: see why above")
		return errCheckFailed
	}
	fmt.Fprintf(stdout, "\nOK: privstats collect can read this tor (%s).\n", opts.Config)
	return nil
}

func authMethods(names []string) []torctl.AuthMethod {
	var out []torctl.AuthMethod
	for _, m := range names {
		out = append(out, torctl.AuthMethod(m))
	}
	return out
}

// writeCheckReport prints what the check found: tor, then the statistics
// fed, then the others grouped by why not.
func writeCheckReport(w io.Writer, r *source.CheckReport) {
	if c := r.Control; c != nil {
		fmt.Fprintf(w, "tor %s on control port %s: authenticated with %s", c.TorVersion, c.Address, c.AuthMethod)
		if c.CookieFile != "" {
			fmt.Fprintf(w, " (cookie %s)", c.CookieFile)
		}
		fmt.Fprintln(w)
		if c.RelayFingerprint != "" {
			fmt.Fprintf(w, "relay fingerprint %s (relay_fingerprint in collector.yaml)\n", c.RelayFingerprint)
		} else {
			fmt.Fprintln(w, "this tor is not a relay (GETINFO fingerprint): a collector belongs beside a relay")
		}
		var kinds []string
		if c.TestingTorNetwork {
			kinds = append(kinds, "TestingTorNetwork 1")
		}
		if c.PrivCount() {
			kinds = append(kinds, "PrivCount-patched")
		}
		if len(kinds) == 0 {
			kinds = append(kinds, "stock tor")
		}
		fmt.Fprintf(w, "kind: %s; %d of the catalogue's events known\n", strings.Join(kinds, ", "), len(c.Events))
	}
	if m := r.MetricsPort; m != nil {
		fmt.Fprintf(w, "MetricsPort %s: %d metric families\n", m.URL, len(m.Families))
	}

	fed := r.Fed()
	fmt.Fprintf(w, "\nThis tor can feed %d of %d statistics:\n", len(fed), len(r.Statistics))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range r.Statistics {
		if s.Fed {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.Source)
		}
	}
	tw.Flush()

	why := map[string][]string{}
	var reasons []string
	for _, s := range r.Statistics {
		if s.Fed {
			continue
		}
		if _, ok := why[s.Why]; !ok {
			reasons = append(reasons, s.Why)
		}
		why[s.Why] = append(why[s.Why], s.Name)
	}
	slices.Sort(reasons)
	if len(reasons) > 0 {
		fmt.Fprintln(w, "\nNot the others:")
	}
	for _, reason := range reasons {
		fmt.Fprintf(w, "  %s:\n    %s\n", reason, strings.Join(why[reason], ", "))
	}
}

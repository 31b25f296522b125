package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/identity"
)

func init() {
	addCommand(newKeygenCmd)
	addCommand(newFingerprintCmd)
}

// keygenOptions are privstats keygen's flags.
type keygenOptions struct {
	output string
}

func newKeygenCmd() *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen -o FILE",
		Short: "create an identity key and print its fingerprint",
		Long: `Keygen creates a node's Ed25519 identity key in FILE, readable by its owner only, and
prints its fingerprint (the SHA-256 of the public key), which peers pin in their
configs. It never overwrites a key.`,
		Example: "  privstats keygen -o tally.key",
		GroupID: groupSetup,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeygen(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "write the new key to `FILE` (mode 0600; never overwrites) (required)")
	cmd.MarkFlagRequired("output")
	cmd.MarkFlagFilename("output", "key")
	return cmd
}

func runKeygen(o keygenOptions, stdout, stderr io.Writer) error {
	id, err := identity.New()
	if err != nil {
		return err
	}
	if err := id.Save(o.output); err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Fingerprint)
	fmt.Fprintf(stderr, "wrote %s; give peers the fingerprint above to pin this node\n", o.output)
	return nil
}

func newFingerprintCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "fingerprint KEY",
		Short:   "print the fingerprint of an identity key",
		GroupID: groupSetup,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFingerprint(args[0], cmd.OutOrStdout())
		},
	}
}

func runFingerprint(keyFile string, stdout io.Writer) error {
	id, err := identity.Load(keyFile)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Fingerprint)
	return nil
}

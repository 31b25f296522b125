package main

import (
	"fmt"
	"io"

	"github.com/privstats/privstats/identity"
)

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flags("keygen", "-o FILE", stderr)
	out := fs.String("o", "", "write the new key to `FILE` (mode 0600; never overwrites)")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errUsage
	}
	id, err := identity.New()
	if err != nil {
		return err
	}
	if err := id.Save(*out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Fingerprint)
	fmt.Fprintf(stderr, "wrote %s; give peers the fingerprint above to pin this node\n", *out)
	return nil
}

func runFingerprint(args []string, stdout, stderr io.Writer) error {
	fs := flags("fingerprint", "KEY", stderr)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	id, err := identity.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Fingerprint)
	return nil
}

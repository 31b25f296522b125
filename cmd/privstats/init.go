package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/identity"
)

// initOptions are the flags of `privstats init ROLE`.
type initOptions struct {
	// Role is collector, keeper or tally.
	Role string
	// Out is the config file to write; "" writes to stdout.
	Out string
	// Key is the identity key file: loaded if it exists, created (as
	// keygen does) if not. "" means ROLE.key beside Out, or in the
	// current directory when Out is "".
	Key string
	// DataDir is the role's state directory; "" means
	// /var/lib/privstats/ROLE, the systemd units' StateDirectory.
	DataDir string
}

func init() { addCommand(newInitCmd) }

func newInitCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init collector|keeper|tally [-o FILE]",
		Short: "write a commented config for a role, with this node's key",
		Long: `Init writes a role's config with every key explained: this node's identity key and
fingerprint in place (the key is created, as keygen would, if it does not exist), the
defaults of Debian's tor for a collector's source (the control socket unix:/run/tor/control,
SAFECOOKIE with the cookie tor names, group debian-tor), and the values only the other
operators can give left empty and marked FILL IN. It never overwrites a config.

A collector's file can be checked at once, before anything is filled in:
privstats collect --check -c FILE.`,
		Example: `  sudo -u privstats privstats init collector -o /etc/privstats/collector.yaml
  privstats init keeper -o keeper.yaml --key keeper1.key --data-dir ./keeper-state`,
		GroupID:   groupSetup,
		ValidArgs: config.Roles,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := exactArgs(1)(cmd, args); err != nil {
				return err
			}
			if !slices.Contains(config.Roles, args[0]) {
				return usagef("%q is not a role: one of %s", args[0], strings.Join(config.Roles, ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Role = args[0]
			return runInit(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.Out, "output", "o", "", "write the config to `FILE` (never overwrites; default: standard output)")
	fs.StringVar(&o.Key, "key", "", "the identity key `FILE`, created if missing (default: ROLE.key beside the config)")
	fs.StringVar(&o.DataDir, "data-dir", "", "the role's state `DIR` (default: /var/lib/privstats/ROLE, the systemd units' StateDirectory)")
	cmd.MarkFlagFilename("output", "yaml", "yml")
	cmd.MarkFlagFilename("key", "key")
	cmd.MarkFlagDirname("data-dir")
	return cmd
}

// runInit writes a commented config for a role with this node's key in
// place, creating the key if it is missing. It never overwrites a config.
func runInit(opts initOptions, stdout, stderr io.Writer) error {
	if opts.Out != "" {
		if _, err := os.Stat(opts.Out); err == nil {
			return fmt.Errorf("%s already exists; not overwriting (remove it, or write elsewhere with -o)", opts.Out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	dir := "."
	if opts.Out != "" {
		dir = filepath.Dir(opts.Out)
	}
	key := opts.Key
	if key == "" {
		key = filepath.Join(dir, opts.Role+".key")
	}
	// /etc/privstats may not exist yet on a fresh machine.
	for _, d := range []string{dir, filepath.Dir(key)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	id, created, err := loadOrCreateKey(key)
	if err != nil {
		return err
	}
	// The config names the key relative to its own directory when it sits
	// there, so the pair can be moved together.
	keyRef, err := filepath.Abs(key)
	if err != nil {
		return err
	}
	if absDir, err := filepath.Abs(dir); err == nil && filepath.Dir(keyRef) == absDir {
		keyRef = filepath.Base(keyRef)
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = "/var/lib/privstats/" + opts.Role
	}
	path := opts.Out
	if path == "" {
		path = opts.Role + ".yaml"
	}
	text, err := config.Template(opts.Role, config.TemplateValues{Path: path, IdentityKey: keyRef, Fingerprint: id.Fingerprint, DataDir: dataDir})
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "wrote identity key %s (fingerprint %s)\n", key, id.Fingerprint)
	} else {
		fmt.Fprintf(stderr, "using identity key %s (fingerprint %s)\n", key, id.Fingerprint)
	}
	if opts.Out == "" {
		_, err := stdout.Write(text)
		return err
	}
	// O_EXCL: a file that appeared since the check above is not clobbered.
	f, err := os.OpenFile(opts.Out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s; fill in what it marks FILL IN", opts.Out)
	if opts.Role == "collector" {
		fmt.Fprintf(stderr, ", and check tor access now: privstats collect --check -c %s", opts.Out)
	}
	fmt.Fprintln(stderr)
	return nil
}

// loadOrCreateKey loads the identity key at path, or creates it there.
func loadOrCreateKey(path string) (id *identity.Identity, created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		id, err := identity.Load(path)
		return id, false, err
	}
	if id, err = identity.New(); err != nil {
		return nil, false, err
	}
	if err := id.Save(path); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

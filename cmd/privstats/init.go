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

func runInitCommand(args []string, stdout, stderr io.Writer) error {
	fs := flags("init", "collector|keeper|tally [-o FILE] [--key FILE] [--data-dir DIR]", stderr)
	var opts initOptions
	fs.StringVar(&opts.Out, "o", "", "write the config to `FILE` (never overwrites; default: standard output)")
	fs.StringVar(&opts.Key, "key", "", "the identity key `FILE`, created if missing (default: ROLE.key beside the config)")
	fs.StringVar(&opts.DataDir, "data-dir", "", "the role's state `DIR` (default: /var/lib/privstats/ROLE)")
	// The role may come first, as the README writes it: parse what follows.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		opts.Role, args = args[0], args[1:]
	}
	if err := parse(fs, args, 0, 1); err != nil {
		return err
	}
	if opts.Role == "" && fs.NArg() == 1 {
		opts.Role = fs.Arg(0)
	} else if opts.Role == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if !slices.Contains(config.Roles, opts.Role) {
		return fmt.Errorf("%q is not a role: one of %s", opts.Role, strings.Join(config.Roles, ", "))
	}
	return runInit(opts, stdout, stderr)
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

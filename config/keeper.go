package config

import "github.com/privstats/privstats/policy"

// Keeper is keeper.yaml, a share keeper's configuration.
type Keeper struct {
	// IdentityKey is the file of the keeper's Ed25519 identity key.
	IdentityKey string `yaml:"identity_key"`
	// Tally is the tally server to connect to, pinned by fingerprint.
	Tally Peer `yaml:"tally"`
	// Keepers is the full keeper list, in x-coordinate order, that this
	// keeper expects every round to name; a round with other keepers is
	// refused, so the tally server cannot swap keepers in.
	Keepers []string `yaml:"keepers"`
	// Collectors is the roster of collectors this keeper admits, inline;
	// CollectorsFile names a roster file instead, read anew every round.
	// Exactly one is required. A round that lists any other collector is
	// refused, so the tally server cannot add collectors of its own.
	Collectors     []RosterEntry `yaml:"collectors"`
	CollectorsFile string        `yaml:"collectors_file"`
	// DataDir holds the policy ledger; default ./privstats-keeper.
	DataDir string `yaml:"data_dir"`
	// Policy is the keeper's local privacy policy; default
	// policy.Defaults().
	Policy policy.Policy `yaml:"policy"`
	// HealthListen is the plain-HTTP address of the keeper's health
	// /metrics; "" (the default) serves none.
	HealthListen string `yaml:"health_listen"`
	// LogFormat is "text" (the default: key=value lines) or "json" (one
	// JSON object a line, for journald or a log shipper).
	LogFormat string `yaml:"log_format"`
}

// LoadKeeper reads and checks a keeper.yaml.
func LoadKeeper(path string) (*Keeper, error) { return loadAs[Keeper](path) }

func (k *Keeper) setDefaults() {
	*k = Keeper{DataDir: "./privstats-keeper", Policy: policy.Defaults(), LogFormat: LogText}
}

func (k *Keeper) complete(c *checker, dir string) {
	k.IdentityKey = resolve(dir, k.IdentityKey)
	k.DataDir = resolve(dir, k.DataDir)

	c.pins(k.IdentityKey, k.Tally, k.Keepers, "every share keeper's fingerprint, in x-coordinate order, this one included")
	switch {
	case len(k.Collectors) > 0 && k.CollectorsFile != "":
		c.errorf("collectors_file", "give the roster inline (collectors) or as a file (collectors_file), not both")
	case k.CollectorsFile != "":
		k.CollectorsFile = resolve(dir, k.CollectorsFile)
		if _, err := LoadRoster(k.CollectorsFile); err != nil {
			c.errorf("collectors_file", "%v", err)
		}
	default:
		c.roster("collectors", k.Collectors)
	}
	c.local(k.DataDir, k.Policy, k.HealthListen)
	c.logFormat(k.LogFormat)
}

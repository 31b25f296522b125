package config

import (
	"fmt"
	"os"
)

// RosterEntry is one collector a keeper admits: its identity fingerprint
// and, for logs and refusals, an optional name.
type RosterEntry struct {
	Fingerprint string `yaml:"fingerprint"`
	Name        string `yaml:"name"`
}

// Roster is a roster file (collectors_file in keeper.yaml): the collectors
// a keeper operator admitted. Keepers, not the tally server, decide who is
// a collector (docs/threat-model.md), so a tally server cannot add
// collectors whose keys it holds and thin the noise with them.
type Roster struct {
	Collectors []RosterEntry `yaml:"collectors"`
}

func (r *Roster) complete(c *checker, _ string) { c.roster("collectors", r.Collectors) }

// roster checks a list of roster entries: well-formed fingerprints, none twice.
func (c *checker) roster(path string, entries []RosterEntry) {
	if len(entries) == 0 {
		c.errorf(path, "required: every collector this keeper admits (fingerprint and optional name), here or in a roster file named by collectors_file")
		return
	}
	fps := make([]string, len(entries))
	for i, e := range entries {
		fps[i] = e.Fingerprint
	}
	c.fingerprintList(path, fps)
}

// LoadRoster reads and checks a roster file.
func LoadRoster(path string) (map[string]string, error) {
	var r Roster
	if err := Load(path, &r); err != nil {
		return nil, err
	}
	return rosterMap(r.Collectors), nil
}

func rosterMap(entries []RosterEntry) map[string]string {
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		out[e.Fingerprint] = e.Name
	}
	return out
}

// RosterFunc returns the keeper's roster as a function the keeper calls at
// every round: the inline list, or the roster file read anew, so an
// operator can admit or remove a collector without a restart.
func (k *Keeper) RosterFunc() func() (map[string]string, error) {
	if k.CollectorsFile == "" {
		m := rosterMap(k.Collectors)
		return func() (map[string]string, error) { return m, nil }
	}
	path := k.CollectorsFile
	return func() (map[string]string, error) {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("collector roster: %w", err)
		}
		return LoadRoster(path)
	}
}

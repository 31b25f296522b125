package site

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/privstats/privstats/internal/vectortest"
	"github.com/privstats/privstats/outcome"
)

// FuzzArchiveRounds reads an arbitrary outcome file as the site's archive
// lists it. The file is listed as a round exactly when outcome.Parse
// accepts it with its config and every value plottable, and otherwise as
// unreadable, never dropped; what is listed is the file's outcome.
//
//	go test ./site -run '^$' -fuzz '^FuzzArchiveRounds$'
func FuzzArchiveRounds(f *testing.F) {
	for _, b := range vectortest.Sections(f, "outcome", "outcome.json") {
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"statistics":[{"name":"x","bins":[{"noisy_total":1,"ci95_low":-1e308,"ci95_high":1e308}]}]}`))
	// One directory for every exec: a fresh one per exec would cost more
	// than the decoding fuzzed.
	dir := f.TempDir()
	path := filepath.Join(dir, "s-000001.json")
	f.Fuzz(func(t *testing.T, file []byte) {
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		rounds, unreadable, err := Open(dir).Rounds()
		if err != nil {
			t.Fatal(err)
		}
		o, perr := outcome.Parse(file)
		readable := perr == nil && o.Config != nil && plottable(o) == nil
		switch {
		case readable && (len(rounds) != 1 || len(unreadable) != 0):
			t.Fatalf("a readable outcome listed as %d rounds, %d unreadable", len(rounds), len(unreadable))
		case !readable && (len(rounds) != 0 || len(unreadable) != 1):
			t.Fatalf("an unreadable file (%v) listed as %d rounds, %d unreadable", perr, len(rounds), len(unreadable))
		case readable && (rounds[0].Name != "s-000001" || rounds[0].ConfigHash != o.ConfigHash || len(rounds[0].Statistics) != len(o.Statistics)):
			t.Fatalf("round %q is not the file's outcome", rounds[0].Name)
		}
	})
}

// Package vectortest is the machinery of privstats's golden test vectors
// (testdata/vectors, described in its README.md): the fixed, test-only
// identities and round config every vector is made from, and the reading,
// comparing, rewriting and mutation of vector files. Each package's
// vectors_test.go generates its own files from these inputs and checks
// them; this package holds no protocol logic and is for tests only.
//
// A vector file is a txtar archive: a comment for the reader, then one
// section per pinned field. Every section's value is followed by exactly
// one newline, which is not part of the value.
package vectortest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/identity"
)

// Regenerate is the one command that rewrites every vector file from the
// generators.
const Regenerate = "go test ./aggregator/round ./aggregator/wire ./outcome -run Vectors -update"

// UpdateUsage is the usage of each vector test package's -update flag.
const UpdateUsage = "rewrite testdata/vectors from the deterministic generators (see testdata/vectors/README.md)"

// Seed is the fixed Ed25519 seed (or other 32-byte key) of the named
// test participant: SHA-256 of "privstats test vector seed " + name. The
// vectors publish it, so it must never be a real node's key.
func Seed(name string) []byte {
	sum := sha256.Sum256([]byte("privstats test vector seed " + name))
	return sum[:]
}

// Identity is the named participant's identity, from Seed.
func Identity(name string) *identity.Identity {
	id, err := identity.FromSeed(Seed(name))
	if err != nil {
		panic(err) // Seed is always 32 bytes
	}
	return id
}

// The participants of the vector round, by name.
var (
	Tally      = "tally"
	Keepers    = []string{"keeper-1", "keeper-2", "keeper-3"}
	Collectors = []string{"collector-1", "collector-2", "collector-3"}
	// Refuser is a node whose refusal of the round is on record.
	Refuser = "refuser"
)

// Config is the round every vector belongs to, from explicit values: three
// keepers with threshold 2 and three collectors with noise weight 0.75 (so
// any two of them carry the round's whole σ²: 2 × 0.75² ≥ 1), counting a
// scalar and a 4-bin histogram. Its σ are calibrated: each statistic's σ is at least what its ε, δ and
// sensitivity need from the weakest set of min_collectors collectors
// (noise.CheckClaim), so every node accepts the round.
func Config() *round.Config {
	cfg := &round.Config{
		Version: round.ConfigVersion,
		Series:  "vectors",
		Round:   7,
		Start:   time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
		End:     time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Epsilon: 0.3,
		Delta:   1e-6,
		Statistics: []round.StatisticSpec{
			{Name: "exit_streams", Sigma: 800, Epsilon: 0.1, Delta: 3e-7, Sensitivity: 20, BinsTouched: 1, MaxPerCollector: 1 << 32},
			{Name: "exit_streams_by_port", Bins: []string{"web", "interactive", "p2p", "other"}, Sigma: 600,
				Epsilon: 0.2, Delta: 7e-7, Sensitivity: 20, BinsTouched: 2, MaxPerCollector: 1 << 32},
		},
		Threshold:     2,
		MinCollectors: 2,
	}
	for j, name := range Keepers {
		cfg.Keepers = append(cfg.Keepers, round.KeeperSpec{Fingerprint: Identity(name).Fingerprint, X: j + 1})
	}
	for _, name := range Collectors {
		cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: Identity(name).Fingerprint, NoiseWeight: 0.75})
	}
	return cfg
}

// ComposedConfig is Config accounted as one composed mechanism
// (round.AccountingComposed): the same σ, sensitivities and collectors,
// no per-statistic ε or δ, and the round's (ε, δ) for all of it, which
// its noise reaches on the weakest set (noise.CheckClaim).
func ComposedConfig() *round.Config {
	cfg := Config()
	cfg.Accounting = round.AccountingComposed
	for i := range cfg.Statistics {
		cfg.Statistics[i].Epsilon, cfg.Statistics[i].Delta = 0, 0
	}
	return cfg
}

// ConfigHash is Config's hash in hex.
func ConfigHash() string {
	h, err := Config().HashHex()
	if err != nil {
		panic(err)
	}
	return h
}

// Section is one pinned field of a vector file.
type Section struct {
	Name  string
	Value []byte
}

// Text is a section holding s.
func Text(name, s string) Section { return Section{name, []byte(s)} }

// Hex is a section holding b in lower-case hex.
func Hex(name string, b []byte) Section { return Text(name, hex.EncodeToString(b)) }

// New makes a vector file from a comment and its sections.
func New(comment string, sections ...Section) *txtar.Archive {
	a := &txtar.Archive{Comment: []byte(strings.TrimSuffix(comment, "\n") + "\n")}
	for _, s := range sections {
		a.Files = append(a.Files, txtar.File{Name: s.Name, Data: append(slices.Clip(s.Value), '\n')})
	}
	return a
}

// Get returns the value of the named section.
func Get(a *txtar.Archive, name string) ([]byte, error) {
	for _, f := range a.Files {
		if f.Name == name {
			v, ok := bytes.CutSuffix(f.Data, []byte("\n"))
			if !ok {
				return nil, fmt.Errorf("section %s does not end with a newline", name)
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("no section %s", name)
}

// GetHex returns the value of the named section decoded from hex.
func GetHex(a *txtar.Archive, name string) ([]byte, error) {
	v, err := Get(a, name)
	if err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(string(v))
	if err != nil {
		return nil, fmt.Errorf("section %s: %w", name, err)
	}
	return b, nil
}

// Sections returns the named section of every vector in Dir(sub) that has
// one (e.g. to seed a fuzz target); no vector at all fails tb.
func Sections(tb testing.TB, sub, name string) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(Dir(sub), "*.txtar"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no %s vectors: %v", sub, err)
	}
	var out [][]byte
	for _, n := range names {
		a, err := txtar.ParseFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		if b, err := Get(a, name); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// Dir is testdata/vectors/sub at the root of the module, found from the
// directory a test runs in (its package's).
func Dir(sub string) string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "vectors", sub)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("vectortest: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Suite is one package's vector files, in testdata/vectors/Dir.
type Suite struct {
	Dir string
	// Want is every file the package's generator makes, by file name.
	Want map[string]*txtar.Archive
	// Check runs the package's own checks on a file's content, whatever
	// the generator says: signatures verify, bundles open, outcomes are
	// accepted or refused as the file says.
	Check func(name string, a *txtar.Archive) error
}

// Verify is everything Run checks of one file: it must be, section by
// section, what the generator makes, and pass Check.
func (s *Suite) Verify(name string, a *txtar.Archive) error {
	want, ok := s.Want[name]
	if !ok {
		return fmt.Errorf("testdata/vectors/%s/%s is not made by the generator; remove it, or regenerate deliberately with\n\t%s", s.Dir, name, Regenerate)
	}
	if err := Compare(want, a); err != nil {
		return fmt.Errorf("testdata/vectors/%s/%s: %w\n"+
			"If the change is deliberate, regenerate every vector with\n\t%s\n"+
			"and, if the bytes now mean something else, bump wire.ProtocolVersion (and round.ConfigVersion if the round config encoding changed)",
			s.Dir, name, err, Regenerate)
	}
	if err := s.Check(name, a); err != nil {
		return fmt.Errorf("testdata/vectors/%s/%s: %w", s.Dir, name, err)
	}
	return nil
}

// Compare says where got first differs from want: its comment, a missing,
// extra or reordered section, or the first differing byte of a section.
func Compare(want, got *txtar.Archive) error {
	if err := compareBytes("the comment", want.Comment, got.Comment); err != nil {
		return err
	}
	for i, w := range want.Files {
		if i >= len(got.Files) {
			return fmt.Errorf("section %s is missing", w.Name)
		}
		g := got.Files[i]
		if g.Name != w.Name {
			return fmt.Errorf("section %d is %s, the generator makes %s", i+1, g.Name, w.Name)
		}
		if err := compareBytes("section "+w.Name, w.Data, g.Data); err != nil {
			return err
		}
	}
	if len(got.Files) > len(want.Files) {
		return fmt.Errorf("section %s is not made by the generator", got.Files[len(want.Files)].Name)
	}
	return nil
}

func compareBytes(what string, want, got []byte) error {
	if bytes.Equal(want, got) {
		return nil
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	excerpt := func(b []byte) string { return fmt.Sprintf("%q", b[i:min(len(b), i+40)]) }
	return fmt.Errorf("%s differs from what the generator makes at byte %d: file has %s, generator %s", what, i, excerpt(got), excerpt(want))
}

// Run checks every file in the suite's directory, one parallel subtest per
// file, and that every file the generator makes exists. With update it
// first rewrites the directory from Want, removing vector files the
// generator no longer makes.
func (s *Suite) Run(t *testing.T, update bool) {
	dir := Dir(s.Dir)
	if update {
		s.write(t, dir)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, path := range names {
		name := filepath.Base(path)
		onDisk[name] = true
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(name, a); err != nil {
				t.Error(err)
			}
		})
	}
	for name := range s.Want {
		if !onDisk[name] {
			t.Errorf("testdata/vectors/%s/%s is missing; regenerate deliberately with\n\t%s", s.Dir, name, Regenerate)
		}
	}
}

func (s *Suite) write(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.txtar"))
	for _, path := range old {
		if _, keep := s.Want[filepath.Base(path)]; !keep {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			t.Logf("removed %s", path)
		}
	}
	for name, a := range s.Want {
		path := filepath.Join(dir, name)
		b := txtar.Format(a)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// Bite proves that the checks catch a change to any pinned field: in
// every file the generator makes, flipping a bit of the first, middle and
// last byte of the comment and of every section's value must make Verify
// fail. For the sections named in guarded, Check alone (without the
// comparison with the generator) must fail too.
func (s *Suite) Bite(t *testing.T, guarded ...string) {
	for name, want := range s.Want {
		if err := s.Verify(name, want); err != nil {
			t.Fatalf("the generated file itself fails: %v", err)
		}
		flips := 0
		try := func(what string, field func(a *txtar.Archive) []byte, n int, alone bool) {
			for _, i := range []int{0, n / 2, n - 1} {
				a := clone(want)
				field(a)[i] ^= 1
				flips++
				if s.Verify(name, a) == nil {
					t.Errorf("%s: flipping byte %d of %s went unnoticed", name, i, what)
				}
				if alone && s.Check(name, a) == nil {
					t.Errorf("%s: flipping byte %d of %s passes the file's own checks", name, i, what)
				}
			}
		}
		try("the comment", func(a *txtar.Archive) []byte { return a.Comment }, len(want.Comment)-1, false)
		for k, f := range want.Files {
			if len(f.Data) < 2 {
				t.Fatalf("%s: section %s is empty: nothing is pinned", name, f.Name)
			}
			try("section "+f.Name, func(a *txtar.Archive) []byte { return a.Files[k].Data }, len(f.Data)-1, slices.Contains(guarded, f.Name))
		}
		t.Logf("%s: %d flipped bytes, each caught", name, flips)
	}
}

func clone(a *txtar.Archive) *txtar.Archive {
	c := &txtar.Archive{Comment: slices.Clone(a.Comment)}
	for _, f := range a.Files {
		c.Files = append(c.Files, txtar.File{Name: f.Name, Data: slices.Clone(f.Data)})
	}
	return c
}

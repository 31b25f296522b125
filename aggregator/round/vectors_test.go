package round_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
)

var update = flag.Bool("update", false, vectortest.UpdateUsage)

// roundVectors pins the canonical encoding and hash of the vector round's
// config, which names the round in every signed body and sealed bundle.
func roundVectors(t *testing.T) *vectortest.Suite {
	comment := fmt.Sprintf(`The round config every vector belongs to, in its canonical encoding
(round.Config.Canonical: JSON, fields in declaration order, times in UTC),
and its SHA-256, which names the round in every signed body and bundle AAD.
participants lists every test identity of the vectors: name, Ed25519 seed
(RFC 8032; SHA-256 of "privstats test vector seed " and the name) and
fingerprint (SHA-256 of the public key). The config's keepers and
collectors are keeper-1..3 and collector-1..3, in that order.
round config version: %d`, round.ConfigVersion)
	var participants []string
	for _, name := range vectorParticipants() {
		participants = append(participants, fmt.Sprintf("%s %x %s", name, vectortest.Seed(name), vectortest.Identity(name).Fingerprint))
	}
	composed := `The vector round accounted as one composed mechanism (accounting "composed"):
its statistics carry no epsilon or delta of their own, and their noise together
must make the round (epsilon, delta)-private (docs/noise.md). Otherwise as
config.txtar.
round config version: %d`
	archive := func(comment string, cfg *round.Config) *txtar.Archive {
		enc, err := cfg.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		hash, err := cfg.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return vectortest.New(comment,
			vectortest.Text("config.json", string(enc)),
			vectortest.Hex("sha256", hash[:]),
			vectortest.Text("participants", strings.Join(participants, "\n")),
		)
	}
	return &vectortest.Suite{
		Dir: "round",
		Want: map[string]*txtar.Archive{
			"config.txtar":          archive(comment, vectortest.Config()),
			"config-composed.txtar": archive(fmt.Sprintf(composed, round.ConfigVersion), vectortest.ComposedConfig()),
		},
		Check: checkConfigVector,
	}
}

func vectorParticipants() []string {
	names := []string{vectortest.Tally}
	names = append(names, vectortest.Keepers...)
	names = append(names, vectortest.Collectors...)
	return append(names, vectortest.Refuser)
}

// checkConfigVector checks a config file on its own: the hash is the
// SHA-256 of the encoding, the encoding decodes as a canonical, valid
// config with that hash, each participant's seed gives its fingerprint,
// each seed is derived from the name as documented, and the config's
// keepers and collectors are the participants so named.
func checkConfigVector(_ string, a *txtar.Archive) error {
	enc, err := vectortest.Get(a, "config.json")
	if err != nil {
		return err
	}
	hash, err := vectortest.GetHex(a, "sha256")
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(enc); !bytes.Equal(sum[:], hash) {
		return fmt.Errorf("sha256 is %x, the config encoding hashes to %x", hash, sum)
	}
	cfg, err := round.Decode(enc)
	if err != nil {
		return err
	}
	if h, err := cfg.HashHex(); err != nil || h != hex.EncodeToString(hash) {
		return errors.Join(err, fmt.Errorf("decoded config hashes to %s, want %x", h, hash))
	}
	list, err := vectortest.Get(a, "participants")
	if err != nil {
		return err
	}
	fps := map[string]string{}
	for line := range strings.Lines(string(list)) {
		var name, seed, fp string
		if _, err := fmt.Sscan(line, &name, &seed, &fp); err != nil {
			return fmt.Errorf("participants: %q: %w", line, err)
		}
		b, err := hex.DecodeString(seed)
		if err != nil {
			return fmt.Errorf("participant %s: seed: %w", name, err)
		}
		if !bytes.Equal(b, vectortest.Seed(name)) {
			return fmt.Errorf("participant %s: seed %s is not the SHA-256 of %q", name, seed, "privstats test vector seed "+name)
		}
		id, err := identity.FromSeed(b)
		if err != nil {
			return fmt.Errorf("participant %s: %w", name, err)
		}
		if id.Fingerprint != fp {
			return fmt.Errorf("participant %s: the seed gives fingerprint %s, the file says %s", name, id.Fingerprint, fp)
		}
		fps[name] = fp
	}
	for j, k := range cfg.Keepers {
		if name := vectortest.Keepers[j]; fps[name] != k.Fingerprint {
			return fmt.Errorf("keeper %d is %s, participant %s is %s", j+1, k.Fingerprint, name, fps[name])
		}
	}
	for i, c := range cfg.Collectors {
		if name := vectortest.Collectors[i]; fps[name] != c.Fingerprint {
			return fmt.Errorf("collector %d is %s, participant %s is %s", i+1, c.Fingerprint, name, fps[name])
		}
	}
	return nil
}

func TestVectors(t *testing.T) {
	roundVectors(t).Run(t, *update)
}

func TestVectorsBite(t *testing.T) {
	roundVectors(t).Bite(t, "config.json", "sha256", "participants")
}

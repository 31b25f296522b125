package wire

import (
	"slices"
	"strings"
	"testing"

	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/identity"
)

func TestSealedSharesOpenOnlyForTheirRoundAndParties(t *testing.T) {
	priv, pub, err := NewRoundKey()
	if err != nil {
		t.Fatal(err)
	}
	shares := []field.Element{1, 2, field.P - 1}
	sealed, err := SealShares(pub, "hash1", "dc", "sk", shares)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenShares(priv, sealed, "hash1", "dc", "sk", 3)
	if err != nil || !slices.Equal(got, shares) {
		t.Fatalf("OpenShares = %v, %v", got, err)
	}
	for name, try := range map[string]func() error{
		"other round":     func() error { _, err := OpenShares(priv, sealed, "hash2", "dc", "sk", 3); return err },
		"other collector": func() error { _, err := OpenShares(priv, sealed, "hash1", "dc2", "sk", 3); return err },
		"other keeper":    func() error { _, err := OpenShares(priv, sealed, "hash1", "dc", "sk2", 3); return err },
		"wrong length":    func() error { _, err := OpenShares(priv, sealed, "hash1", "dc", "sk", 4); return err },
		"truncated":       func() error { _, err := OpenShares(priv, sealed[:10], "hash1", "dc", "sk", 3); return err },
		"tampered": func() error {
			bad := slices.Clone(sealed)
			bad[len(bad)-1] ^= 1
			_, err := OpenShares(priv, bad, "hash1", "dc", "sk", 3)
			return err
		},
		"another key": func() error {
			other, _, _ := NewRoundKey()
			_, err := OpenShares(other, sealed, "hash1", "dc", "sk", 3)
			return err
		},
	} {
		if try() == nil {
			t.Errorf("%s: sealed bundle opened", name)
		}
	}
}

func TestSignedBodiesAreStrict(t *testing.T) {
	id, _ := identity.New()
	s, err := SignBody(id, KindCommit, Commit{ConfigHash: "h", Keeper: id.Fingerprint, Agreement: "d"})
	if err != nil {
		t.Fatal(err)
	}
	var c Commit
	if fp, err := OpenBody(s, KindCommit, id.Fingerprint, &c); err != nil || fp != id.Fingerprint || c.Agreement != "d" {
		t.Fatalf("OpenBody = %q, %v, %+v", fp, err, c)
	}
	if _, err := OpenBody(s, KindReport, "", &c); err == nil {
		t.Fatal("commit opened as a report")
	}
	extra := id.Sign(KindCommit, []byte(`{"config_hash":"h","surprise":1}`))
	if _, err := OpenBody(extra, KindCommit, "", &c); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestSealedLenMatchesSealShares(t *testing.T) {
	_, pub, _ := NewRoundKey()
	for _, n := range []int{0, 1, 1000} {
		sealed, err := SealShares(pub, "h", "dc", "sk", make([]field.Element, n))
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != SealedLen(n) {
			t.Fatalf("%d shares seal to %d bytes, SealedLen says %d", n, len(sealed), SealedLen(n))
		}
	}
}

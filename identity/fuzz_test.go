package identity_test

import (
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/strictjson"
	"github.com/privstats/privstats/internal/vectortest"
)

// wireVectors returns the signed.json of every wire vector: real signed
// messages of every kind, by several signers.
func wireVectors(f *testing.F) [][]byte {
	names, err := filepath.Glob(filepath.Join(vectortest.Dir("wire"), "*.txtar"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no wire vectors: %v", err)
	}
	var out [][]byte
	for _, name := range names {
		a, err := txtar.ParseFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if b, err := vectortest.Get(a, "signed.json"); err == nil {
			out = append(out, b)
		}
	}
	if len(out) < 5 {
		f.Fatalf("only %d signed wire vectors", len(out))
	}
	return out
}

// FuzzVerifyAny decodes a signed message as the tally server does
// (strictly) and verifies it. Nothing can forge a signature, so whatever
// verifies must be one of the seed messages exactly: same kind, body,
// signature and key, with the fingerprint of that key.
//
//	go test ./identity -run '^$' -fuzz '^FuzzVerifyAny$'
func FuzzVerifyAny(f *testing.F) {
	type signed struct{ kind, body, sig, pub string }
	genuine := map[signed]bool{}
	for _, b := range wireVectors(f) {
		f.Add(b)
		var s identity.Signed
		if err := strictjson.Unmarshal(b, &s); err != nil {
			f.Fatal(err)
		}
		if _, err := s.VerifyAny(s.Kind); err != nil {
			f.Fatalf("seed %s does not verify: %v", s.Kind, err)
		}
		pub, _ := hex.DecodeString(s.Signer)
		genuine[signed{s.Kind, string(s.Body), string(s.Signature), string(pub)}] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s identity.Signed
		if strictjson.Unmarshal(data, &s) != nil {
			return
		}
		fp, err := s.VerifyAny(s.Kind)
		if err != nil {
			if s.Verify(s.Kind, fp) == nil {
				t.Fatal("Verify accepts what VerifyAny refuses")
			}
			return
		}
		pub, _ := hex.DecodeString(s.Signer)
		if !genuine[signed{s.Kind, string(s.Body), string(s.Signature), string(pub)}] {
			t.Fatalf("a message that was never signed verifies: kind %q body %q", s.Kind, s.Body)
		}
		if fp != identity.Fingerprint(pub) || s.Verify(s.Kind, fp) != nil {
			t.Fatalf("fingerprint %s is not the signer's", fp)
		}
		// The kind is bound: the same message under any other kind fails.
		other := s
		other.Kind = s.Kind + "x"
		if _, err := other.VerifyAny(other.Kind); err == nil {
			t.Fatal("a signature verifies under another kind")
		}
		if _, err := s.VerifyAny(other.Kind); err == nil {
			t.Fatal("VerifyAny accepts a message as another kind")
		}
	})
}

package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	id, err := New()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Fingerprint != id.Fingerprint || len(id.Fingerprint) != 64 {
		t.Fatalf("fingerprint %s after reload, want %s", back.Fingerprint, id.Fingerprint)
	}
	if err := id.Save(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwriting a key: %v", err)
	}
}

func TestLoadRefusesReadableKeysAndGarbage(t *testing.T) {
	dir := t.TempDir()
	id, _ := New()
	open := filepath.Join(dir, "open.key")
	if err := id.Save(open); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	if _, err := Load(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	junk := filepath.Join(dir, "junk.key")
	os.WriteFile(junk, []byte("not a key"), 0o600)
	if _, err := Load(junk); err == nil {
		t.Fatal("garbage key file accepted")
	}
	if _, err := Load(filepath.Join(dir, "missing.key")); err == nil || !strings.Contains(err.Error(), "privstats keygen") {
		t.Fatalf("missing key: %v", err)
	}
}

func TestCertificateCarriesTheIdentity(t *testing.T) {
	id, _ := New()
	cert, err := id.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	fp, err := CertificateFingerprint(x)
	if err != nil || fp != id.Fingerprint {
		t.Fatalf("certificate fingerprint %s (%v), want %s", fp, err, id.Fingerprint)
	}
}

func TestSignaturesBindKindAndSigner(t *testing.T) {
	a, _ := New()
	b, _ := New()
	s := a.Sign("report", []byte(`{"x":1}`))
	if err := s.Verify("report", a.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify("report", b.Fingerprint); err == nil {
		t.Fatal("signature accepted for the wrong signer")
	}
	if err := s.Verify("commit", a.Fingerprint); err == nil {
		t.Fatal("report accepted as a commit")
	}
	relabelled := s
	relabelled.Kind = "commit"
	if err := relabelled.Verify("commit", a.Fingerprint); err == nil {
		t.Fatal("relabelled message verified")
	}
	tampered := s
	tampered.Body = []byte(`{"x":2}`)
	if err := tampered.Verify("report", a.Fingerprint); err == nil {
		t.Fatal("tampered body verified")
	}
	swapped := s
	swapped.Signer = b.Sign("report", nil).Signer
	if _, err := swapped.VerifyAny("report"); err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("signature under another key: %v, want a bad signature, not a malformed message", err)
	}
	if err := tampered.Verify("report", a.Fingerprint); errors.Is(err, ErrMalformed) {
		t.Fatalf("tampered body: %v, want a bad signature, not a malformed message", err)
	}
	if err := relabelled.Verify("report", a.Fingerprint); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a commit verified as a report: %v, want ErrMalformed", err)
	}
	for _, signer := range []string{"zz" + s.Signer[2:], s.Signer[:62], s.Signer + "00", ""} {
		bad := s
		bad.Signer = signer
		if _, err := bad.VerifyAny("report"); !errors.Is(err, ErrMalformed) {
			t.Errorf("signer %q: %v, want ErrMalformed", signer, err)
		}
	}
}

// FromSeed must read the seed as RFC 8032 does, so that test vectors made
// from a published seed can be checked by any Ed25519 implementation.
func TestFromSeedFollowsRFC8032(t *testing.T) {
	// RFC 8032, section 7.1, TEST 1.
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	wantPub := "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	wantSig := "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
	id, err := FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(id.Public()); got != wantPub {
		t.Fatalf("public key %s, RFC 8032 says %s", got, wantPub)
	}
	if got := hex.EncodeToString(ed25519.Sign(id.Key, nil)); got != wantSig {
		t.Fatalf("signature of the empty message %s, RFC 8032 says %s", got, wantSig)
	}
	again, _ := FromSeed(seed)
	if again.Fingerprint != id.Fingerprint || id.Fingerprint != Fingerprint(id.Public()) {
		t.Fatalf("fingerprints %s and %s from one seed", id.Fingerprint, again.Fingerprint)
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := FromSeed(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("%d-byte seed: %v", n, err)
		}
	}
}

package identity

import (
	"crypto/x509"
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
	if _, err := swapped.VerifyAny("report"); err == nil {
		t.Fatal("signature verified under another key")
	}
}

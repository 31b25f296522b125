// Package identity manages a privstats node's long-term Ed25519 identity:
// the key file, its fingerprint (how configs name a node), the self-signed
// TLS certificate made from it, and the one way privstats signs and verifies
// protocol messages.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"
)

// Identity is a node's private key and the fingerprint others pin it by.
type Identity struct {
	Key         ed25519.PrivateKey
	Fingerprint string
}

// New generates a fresh identity.
func New() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return fromKey(priv), nil
}

// FromSeed derives an identity deterministically from a 32-byte Ed25519
// seed (RFC 8032): the same seed always gives the same key, fingerprint and
// signatures. It exists for test vectors and tests, whose signed bytes must
// not change from run to run; a node's real identity comes from New.
func FromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return fromKey(ed25519.NewKeyFromSeed(seed)), nil
}

func fromKey(priv ed25519.PrivateKey) *Identity {
	return &Identity{Key: priv, Fingerprint: Fingerprint(priv.Public().(ed25519.PublicKey))}
}

// Public returns the identity's public key.
func (id *Identity) Public() ed25519.PublicKey { return id.Key.Public().(ed25519.PublicKey) }

// Fingerprint is the lower-case hex SHA-256 of an Ed25519 public key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

const pemType = "PRIVATE KEY"

// Save writes the identity to path as a PKCS #8 PEM file readable only by its
// owner (0600). It refuses to overwrite an existing file: losing a key means
// every peer must re-pin the node.
func (id *Identity) Save(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("identity key %s already exists; not overwriting it (remove it first if you mean to replace this node's identity)", path)
		}
		return fmt.Errorf("writing identity key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: pemType, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("writing identity key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing identity key %s: %w", path, err)
	}
	return f.Close()
}

// Load reads an identity key written by Save. A key file that group or
// others can read is refused, as ssh refuses one: anyone who reads it can
// impersonate the node.
func Load(path string) (*Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w (create one with: privstats keygen -o %s)", err, path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s has mode %04o; it must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("identity key %s: no %q PEM block", path, pemType)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity key %s: a %T, want Ed25519", path, key)
	}
	return fromKey(priv), nil
}

// Certificate returns a self-signed TLS certificate for the identity key.
// Peers do not check names or chains: they pin the key's fingerprint.
func (id *Identity) Certificate() (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "privstats " + id.Fingerprint[:16]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"privstats"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public(), id.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Key}, nil
}

// CertificateFingerprint returns the identity fingerprint of a peer's
// certificate, which must carry an Ed25519 key.
func CertificateFingerprint(cert *x509.Certificate) (string, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("peer certificate has a %T key, want Ed25519", cert.PublicKey)
	}
	return Fingerprint(pub), nil
}

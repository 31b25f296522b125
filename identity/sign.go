package identity

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
)

// signingContext separates privstats signatures from any other use of the
// same key, and Kind separates one privstats message type from another, so a
// signed commit can never be replayed as a signed report.
const signingContext = "privstats/v1 signature\x00"

func signedBytes(kind string, body []byte) []byte {
	msg := make([]byte, 0, len(signingContext)+len(kind)+1+len(body))
	msg = append(msg, signingContext...)
	msg = append(msg, kind...)
	msg = append(msg, 0)
	return append(msg, body...)
}

// Signed is a protocol message body signed by one node. Body is the exact
// bytes that were signed; receivers decode it only after Verify.
type Signed struct {
	Kind      string `json:"kind"`
	Signer    string `json:"signer"` // Ed25519 public key, hex
	Body      []byte `json:"body"`
	Signature []byte `json:"signature"`
}

// Sign signs body as a message of the given kind.
func (id *Identity) Sign(kind string, body []byte) Signed {
	return Signed{
		Kind:      kind,
		Signer:    hex.EncodeToString(id.Public()),
		Body:      body,
		Signature: ed25519.Sign(id.Key, signedBytes(kind, body)),
	}
}

// Verify checks that s is a message of the given kind signed by the node
// with the given fingerprint. It returns the signer's fingerprint.
func (s Signed) Verify(kind, fingerprint string) error {
	got, err := s.VerifyAny(kind)
	if err != nil {
		return err
	}
	if got != fingerprint {
		return fmt.Errorf("%s signed by %s, want %s", kind, got, fingerprint)
	}
	return nil
}

// ErrMalformed is wrapped by the errors of Verify and VerifyAny for a
// message that could not have been signed as asked whatever the key: of
// another kind, or whose signer is not a hex Ed25519 public key. Receivers
// tell these apart from a signature that does not verify (a forgery, or
// the right message signed by the wrong key).
var ErrMalformed = errors.New("malformed signed message")

// VerifyAny checks the signature against the embedded key and returns the
// signer's fingerprint; callers must still decide whether they trust it.
func (s Signed) VerifyAny(kind string) (string, error) {
	if s.Kind != kind {
		return "", fmt.Errorf("%w: message is a %q, want %q", ErrMalformed, s.Kind, kind)
	}
	pub, err := hex.DecodeString(s.Signer)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: signer is not a hex Ed25519 public key", ErrMalformed)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), signedBytes(kind, s.Body), s.Signature) {
		return "", fmt.Errorf("%s: bad signature", kind)
	}
	return Fingerprint(pub), nil
}

// Package wire is what privstats nodes say to each other: the signed message
// kinds and their bodies, the HPKE sealing of share bundles, the tally
// server's HTTP paths and round view, and a typed client for them. It does
// no protocol arithmetic (package aggregator) and defines no round
// (package round); see docs/protocol.md.
package wire

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/strictjson"
)

// Message kinds. The kind is bound into every signature, so a message of one
// kind can never be accepted as another.
const (
	KindAnnounce       = "announce"
	KindRoundKey       = "round_key"
	KindShareBundle    = "share_bundle"
	KindAck            = "ack"
	KindReport         = "report"
	KindCommitment     = "report_commitment"
	KindAgreement      = "agreement"
	KindCommit         = "commit"
	KindAggregateShare = "aggregate_share"
	KindRefusal        = "refusal"
	KindPublication    = "publication"
)

// Every body below carries the config hash of its round: a signed message
// replayed into another round fails the hash check before anything else.

// RoundKey is a keeper's fresh X25519 HPKE key for one round, signed with its
// long-term identity so the tally server cannot substitute its own.
type RoundKey struct {
	ConfigHash string `json:"config_hash"`
	Keeper     string `json:"keeper"`
	PublicKey  []byte `json:"public_key"`
}

// SealedBundle is a collector's ShareBundle for one keeper, HPKE-sealed to
// that keeper's round key. The tally server relays it and cannot open it.
type SealedBundle struct {
	ConfigHash string `json:"config_hash"`
	Collector  string `json:"collector"`
	Keeper     string `json:"keeper"`
	Ciphertext []byte `json:"ciphertext"` // HPKE encapsulated key ‖ ciphertext
}

// Ack lists the collectors whose bundles a keeper has opened and holds.
type Ack struct {
	ConfigHash string   `json:"config_hash"`
	Keeper     string   `json:"keeper"`
	Collectors []string `json:"collectors"`
}

// Report is a collector's blinded counters at the end of the window, with
// the gaps in its event feed (what it says about itself, never counts). It
// goes to the tally server only. Masks (one per counter, each below
// commit.MaskBound) and Blinding open Commitment, the collector's
// separately signed ReportCommitment to the masked values
// Values[k] + p·Masks[k], which the tally server shows the keepers and
// publishes: they check that ΣV, the integer sum of the masked values, is
// the sum of what the collectors committed to without seeing any report.
// The masks hide from keepers how many reports wrapped around p, which the
// sum of the bare values would tell (package commit).
type Report struct {
	ConfigHash string          `json:"config_hash"`
	Collector  string          `json:"collector"`
	Values     []field.Element `json:"values"`
	Masks      []uint64        `json:"masks"`
	Blinding   commit.Scalar   `json:"blinding"`
	Commitment identity.Signed `json:"commitment"`
	Gaps       []Gap           `json:"gaps,omitempty"`
}

// ReportCommitment is a collector's Pedersen commitment to its report's
// masked values (package commit), signed on its own so it can be shown to keepers
// and published while the report itself is not.
type ReportCommitment struct {
	ConfigHash string            `json:"config_hash"`
	Collector  string            `json:"collector"`
	Commitment commit.Commitment `json:"commitment"`
}

// Gap is a stretch of the window in which a collector's event source was
// disconnected.
type Gap struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// AgreementMsg is the tally server's proposal (S, ΣV). ΣV is the exact
// integer sum of S's masked reports (commit.IntSum; its residues mod p are
// the sum of the values), opened against the collectors' signed
// commitments (one per member of S, in S's order) by SumBlinding: keepers
// and verify check it, so the tally server cannot commit keepers to a sum
// other than what S reported. It also signs what the outcome will say
// about the round besides its totals: the gaps S's collectors reported, by
// digest, and the refusals recorded so far, so that neither can be altered
// after publication without failing verify.
type AgreementMsg struct {
	ConfigHash string `json:"config_hash"`
	// Members is S, a bitmap over the config's permitted collectors
	// (Members; base64 in JSON): 875 bytes for 7,000 collectors.
	Members Members `json:"collectors"`
	// Collectors is S as fingerprints, in the config's order: set with
	// SetCollectors before signing, or from Members with Resolve after
	// opening. It is not encoded.
	Collectors  []string          `json:"-"`
	SumV        commit.IntSum     `json:"sum_v"`
	SumBlinding commit.Scalar     `json:"sum_blinding"`
	Commitments []identity.Signed `json:"commitments"`
	// GapsDigest is GapsDigest of the gaps S's collectors reported; empty
	// when they reported none.
	GapsDigest string `json:"gaps_digest,omitempty"`
	// Refusals are the nodes that sat the round out, with their reasons.
	Refusals map[string]string `json:"refusals,omitempty"`
}

// SetCollectors makes S the given collectors of the round whose permitted
// collectors are permitted (round.Config.CollectorFingerprints): it sets
// Members and Collectors, the latter in the config's order, which is the
// order the commitments must follow.
func (ag *AgreementMsg) SetCollectors(permitted []string, S []string) error {
	index := make(map[string]int, len(permitted))
	for i, fp := range permitted {
		index[fp] = i
	}
	m, err := NewMembers(index, len(permitted), S)
	if err != nil {
		return fmt.Errorf("agreement: %w", err)
	}
	ag.Members = m
	ag.Collectors, err = m.Fingerprints(permitted)
	return err
}

// Resolve sets Collectors from Members for the round whose permitted
// collectors are permitted; it fails unless Members is a set of them.
func (ag *AgreementMsg) Resolve(permitted []string) error {
	S, err := ag.Members.Fingerprints(permitted)
	if err != nil {
		return fmt.Errorf("agreement: %w", err)
	}
	ag.Collectors = S
	return nil
}

// Members is a set of a round's permitted collectors, as the agreement
// names S: bit i (byte i/8, bit i%8 from the least significant) is set
// when the config's i-th collector is a member. It is ⌈n/8⌉ bytes for n
// permitted collectors, where their fingerprints would take 67 bytes each.
type Members []byte

// NewMembers is the set of the given collectors; index maps each permitted
// collector to its place in the config and n is how many there are.
func NewMembers(index map[string]int, n int, collectors []string) (Members, error) {
	m := make(Members, (n+7)/8)
	for _, fp := range collectors {
		i, ok := index[fp]
		if !ok {
			return nil, fmt.Errorf("collector %s is not permitted in the round", fp)
		}
		if m[i/8]&(1<<(i%8)) != 0 {
			return nil, fmt.Errorf("collector %s is in S twice", fp)
		}
		m[i/8] |= 1 << (i % 8)
	}
	return m, nil
}

// Fingerprints lists the members among permitted, in permitted's order.
// The set must be exactly ⌈len(permitted)/8⌉ bytes with no bit set past
// the last collector, so that a set has one encoding.
func (m Members) Fingerprints(permitted []string) ([]string, error) {
	if len(m) != (len(permitted)+7)/8 {
		return nil, fmt.Errorf("collector set of %d bytes, the round's %d permitted collectors take %d", len(m), len(permitted), (len(permitted)+7)/8)
	}
	var out []string
	for i, b := range m {
		for bit := range 8 {
			if b&(1<<bit) == 0 {
				continue
			}
			j := 8*i + bit
			if j >= len(permitted) {
				return nil, fmt.Errorf("collector set names collector %d, the round permits %d", j+1, len(permitted))
			}
			out = append(out, permitted[j])
		}
	}
	return out, nil
}

// GapsDigest is the SHA-256 of the canonical JSON encoding of collectors'
// gaps (a map, so its keys are sorted; times in UTC), or "" when there are
// none.
func GapsDigest(gaps map[string][]Gap) (string, error) {
	canonical := map[string][]Gap{}
	for fp, gs := range gaps {
		for _, g := range gs {
			canonical[fp] = append(canonical[fp], Gap{Start: g.Start.UTC(), End: g.End.UTC()})
		}
	}
	if len(canonical) == 0 {
		return "", nil
	}
	b, err := json.Marshal(canonical)
	if err != nil {
		return "", fmt.Errorf("gaps: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// OpenCommitments checks an agreement's commitments: one per member of S,
// in S's order, each signed by that collector for this round (so none can
// be replayed from another round or moved to another collector). It
// returns the commitments in S's order.
func OpenCommitments(ag *AgreementMsg) ([]commit.Commitment, error) {
	if len(ag.Commitments) != len(ag.Collectors) {
		return nil, fmt.Errorf("agreement carries %d commitments for %d collectors", len(ag.Commitments), len(ag.Collectors))
	}
	out := make([]commit.Commitment, len(ag.Commitments))
	for i, m := range ag.Commitments {
		var rc ReportCommitment
		if _, err := OpenBody(m, KindCommitment, ag.Collectors[i], &rc); err != nil {
			return nil, fmt.Errorf("commitment of collector %s: %w", ag.Collectors[i], err)
		}
		if rc.ConfigHash != ag.ConfigHash || rc.Collector != ag.Collectors[i] {
			return nil, fmt.Errorf("commitment of collector %s was made for another round or collector", ag.Collectors[i])
		}
		out[i] = rc.Commitment
	}
	return out, nil
}

// Digest names an agreement in commits: SHA-256 of its signed body.
func AgreementDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Commit is a keeper's one-time promise to release its share for the
// agreement with the given digest.
type Commit struct {
	ConfigHash string `json:"config_hash"`
	Keeper     string `json:"keeper"`
	Agreement  string `json:"agreement"`
}

// AggregateShareMsg is a keeper's released share for a committed agreement.
type AggregateShareMsg struct {
	ConfigHash string          `json:"config_hash"`
	Keeper     string          `json:"keeper"`
	X          int             `json:"x"`
	Agreement  string          `json:"agreement"`
	Values     []field.Element `json:"values"`
}

// Refusal is a node's statement that it will not take part in a round, and why.
type Refusal struct {
	ConfigHash string `json:"config_hash"`
	Node       string `json:"node"`
	Reason     string `json:"reason"`
}

// Publication is the tally server's signature on when it published a
// round's outcome, so that no field of an outcome file is left unsigned
// and unchecked.
type Publication struct {
	ConfigHash  string    `json:"config_hash"`
	Agreement   string    `json:"agreement"`
	PublishedAt time.Time `json:"published_at"`
}

// SignBody encodes body and signs it as a message of the given kind: the
// bodies that grow with the counters (SealedBundle, Report) in their
// binary form (binary.go), every other one as JSON.
func SignBody(id *identity.Identity, kind string, body any) (identity.Signed, error) {
	b, err := EncodeBody(body)
	if err != nil {
		return identity.Signed{}, err
	}
	return id.Sign(kind, b), nil
}

// EncodeBody is the signed encoding of a message body: binary for the
// bodies that grow with the counters (SealedBundle, Report), JSON for
// every other one.
func EncodeBody(body any) ([]byte, error) {
	if bb, ok := body.(binaryBody); ok {
		return bb.appendBinary(nil)
	}
	return json.Marshal(body)
}

// OpenBody verifies s as a message of the given kind and decodes its body
// strictly: a binary body (SealedBundle, Report) must fill its fields
// exactly, a JSON one is decoded by package strictjson (unknown fields,
// duplicate or case-variant keys and trailing data refused). When signer
// is not empty the message must be signed by that fingerprint. It returns
// the signer's fingerprint.
func OpenBody(s identity.Signed, kind, signer string, into any) (string, error) {
	fp, err := s.VerifyAny(kind)
	if err != nil {
		return "", err
	}
	if signer != "" && fp != signer {
		return "", fmt.Errorf("%s signed by %s, want %s", kind, fp, signer)
	}
	if err := DecodeBody(s.Body, into); err != nil {
		return "", fmt.Errorf("%s body: %w", kind, err)
	}
	return fp, nil
}

// DecodeBody decodes a signed body strictly, binary or JSON as its type
// is signed (SignBody).
func DecodeBody(body []byte, into any) error {
	if bd, ok := into.(binaryDecoder); ok {
		return bd.decodeBinary(body)
	}
	return strictjson.Unmarshal(body, into)
}

// The HPKE suite of docs/protocol.md ("Sealed bundles").
var (
	bundleKEM  = hpke.DHKEM(ecdh.X25519())
	bundleKDF  = hpke.HKDFSHA256()
	bundleAEAD = hpke.ChaCha20Poly1305()
)

const (
	bundleInfo   = "privstats/v1 share bundle"
	x25519KeyLen = 32
	aeadTagLen   = 16
)

// bundleAAD binds a sealed bundle to its round and to both parties, so the
// tally server cannot replay it into another round or to another keeper, or
// claim it came from another collector.
func bundleAAD(configHash, collector, keeper string) []byte {
	return []byte(bundleInfo + "\x00" + configHash + "\x00" + collector + "\x00" + keeper)
}

// SealedLen is the size of a sealed bundle of n shares: the encapsulated
// key, 8 bytes a share and the AEAD tag.
func SealedLen(n int) int { return x25519KeyLen + 8*n + aeadTagLen }

// NewRoundKey makes a keeper's fresh HPKE key pair for one round. The
// private key lives only in the keeper's memory.
func NewRoundKey() (hpke.PrivateKey, []byte, error) {
	priv, err := bundleKEM.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	return priv, priv.PublicKey().Bytes(), nil
}

// SealShares seals a share vector to a keeper's round public key.
func SealShares(keeperPub []byte, configHash, collector, keeper string, shares []field.Element) ([]byte, error) {
	pk, err := bundleKEM.NewPublicKey(keeperPub)
	if err != nil {
		return nil, fmt.Errorf("keeper %s round key: %w", keeper, err)
	}
	enc, sender, err := hpke.NewSender(pk, bundleKDF, bundleAEAD, []byte(bundleInfo))
	if err != nil {
		return nil, err
	}
	pt := make([]byte, 8*len(shares))
	for i, s := range shares {
		binary.LittleEndian.PutUint64(pt[8*i:], s)
	}
	ct, err := sender.Seal(bundleAAD(configHash, collector, keeper), pt)
	clear(pt)
	if err != nil {
		return nil, err
	}
	return append(enc, ct...), nil
}

// OpenShares opens a sealed share vector with the keeper's round key and
// checks it holds n canonical elements.
func OpenShares(priv hpke.PrivateKey, sealed []byte, configHash, collector, keeper string, n int) ([]field.Element, error) {
	if len(sealed) < x25519KeyLen {
		return nil, fmt.Errorf("bundle from collector %s is too short", collector)
	}
	r, err := hpke.NewRecipient(sealed[:x25519KeyLen], priv, bundleKDF, bundleAEAD, []byte(bundleInfo))
	if err != nil {
		return nil, fmt.Errorf("bundle from collector %s: %w", collector, err)
	}
	pt, err := r.Open(bundleAAD(configHash, collector, keeper), sealed[x25519KeyLen:])
	if err != nil {
		return nil, fmt.Errorf("bundle from collector %s does not open: %w", collector, err)
	}
	if len(pt) != 8*n {
		return nil, fmt.Errorf("bundle from collector %s holds %d bytes, want %d shares", collector, len(pt), n)
	}
	out := make([]field.Element, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(pt[8*i:])
	}
	clear(pt)
	return out, field.CheckCounters("bundle from collector "+collector, out, n)
}

package wire

import "github.com/privstats/privstats/identity"

// The tally server's HTTPS API. Keepers and collectors long-poll PathRound,
// fetch the round's config (and keepers its agreement) once by hash, and
// post signed messages: bundles and reports in the binary envelope
// (ContentBinary; binary.go), the others as JSON identity.Signed.
const (
	PathRound     = "/v1/round"         // GET ?since=VERSION: RoundView, waiting for a change
	PathConfig    = "/v1/config/"       // GET PathConfig+HASH: the signed announcement (JSON identity.Signed)
	PathAgreement = "/v1/agreement/"    // GET PathAgreement+DIGEST: the signed agreement (JSON identity.Signed)
	PathBundles   = "/v1/bundles"       // POST (collector) binary list of SealedBundle; GET ?from=I (keeper) binary list
	PathRoundKey  = "/v1/round-key"     // POST (keeper) Signed RoundKey
	PathAck       = "/v1/ack"           // POST (keeper) Signed Ack
	PathReport    = "/v1/report"        // POST (collector) binary Signed Report
	PathCommit    = "/v1/commit"        // POST (keeper) Signed Commit
	PathShare     = "/v1/share"         // POST (keeper) Signed AggregateShareMsg
	PathRefusal   = "/v1/refusal"       // POST (any node) Signed Refusal
	MaxLongPollS  = 25                  // seconds a GET PathRound may wait
	HeaderVersion = "Privstats-Version" // ProtocolVersion, in decimal, on every Client request
)

// ProtocolVersion is the version of what privstats nodes say to each other:
// the message kinds, the exact bytes of every signed body, the signing
// context, the HPKE suite and AAD of sealed bundles, and the round config
// that the announcement carries. testdata/vectors pins all of those bytes.
//
// Bump it whenever a vector changes meaning. Every Client request carries
// it in HeaderVersion, and the tally server refuses a request that names
// another version (one without the header is taken as this version), so
// nodes of different versions refuse each other instead of misreading.
// Regenerating vectors whose meaning is unchanged (new test values, say)
// does not bump it. round.ConfigVersion versions the round
// config alone and is hashed into every config: a new ConfigVersion is a
// new protocol too, so bump both; a message change bumps only this one.
//
// Version 4: round views name the config and the agreement by hash and
// digest (fetched once from PathConfig and PathAgreement); the agreement
// names S as a bitmap over the config's collectors; acks list only the
// collectors newly acknowledged; bundles and reports are binary.
//
// Version 2: reports carry a signed Pedersen commitment and its blinding,
// agreements carry ΣV as exact integers with S's commitments, and outcomes
// carry a signed publication time (docs/threat-model.md). Version 3:
// reports carry masks, and commitments and ΣV are over the masked values
// V + p·m (package commit).
const ProtocolVersion = 4

// RoundView is what the tally server tells a polling node about the current
// round. It holds only public or signed data, and nothing that grows with
// the number of collectors: the config is fetched once by ConfigHash.
type RoundView struct {
	// Version increases with every change; pollers pass it back as since.
	Version    uint64 `json:"version"`
	ConfigHash string `json:"config_hash,omitempty"`
	Phase      string `json:"phase,omitempty"`
	// RoundKeys are the keepers' signed round keys.
	RoundKeys []identity.Signed `json:"round_keys,omitempty"`
	// Agreement is the digest of the signed agreement, once there is one
	// (keepers fetch it from PathAgreement; collectors are not shown it).
	Agreement string `json:"agreement,omitempty"`
	// Commits are the keepers' signed commits, from the release on
	// (keepers only).
	Commits []identity.Signed `json:"commits,omitempty"`
	// Bundles is how many sealed bundles wait for the asking keeper.
	Bundles int `json:"bundles,omitempty"`
	// Joined says whether the asking collector's bundles were accepted, so
	// a collector that restarted knows it has lost its blinding.
	Joined bool `json:"joined,omitempty"`
	// Reported says whether the asking collector's report was accepted.
	Reported bool `json:"reported,omitempty"`
	// Shared says whether the asking keeper's aggregate share was accepted.
	Shared bool `json:"shared,omitempty"`
	// Failure is why the round failed.
	Failure string `json:"failure,omitempty"`
	// Finished is true when the tally server will run no more rounds.
	Finished bool `json:"finished,omitempty"`
}

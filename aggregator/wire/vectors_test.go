package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
)

var update = flag.Bool("update", false, vectortest.UpdateUsage)

const sealedFile = "sealed-bundle.txtar"

// wantSigningContext is restated here rather than taken from package
// identity, so that the vectors pin it: a signature made under any other
// context fails to verify below.
const wantSigningContext = "privstats/v1 signature\x00"

// vectorShares are what the sealed-bundle vector holds: the field's edges
// and two arbitrary elements.
var vectorShares = []field.Element{0, 1, field.P - 1, 0x0123456789abcdef, 0xfedcba9876543210}

// vectorRoundKey is keeper-1's fixed round key.
func vectorRoundKey() (hpke.PrivateKey, error) {
	return bundleKEM.NewPrivateKey(vectortest.Seed("keeper-1 round key"))
}

// wireVectors is one signed message of every kind, and a sealed bundle.
// The sealed bytes are an input: HPKE sealing is randomised, so they come
// from the file on disk, or with update from SealShares run on a fixed
// random stream (so that regenerating unchanged inputs changes nothing).
func wireVectors(t *testing.T, update bool) *vectortest.Suite {
	var sealed []byte
	if update {
		sealed = sealVectorShares(t)
	} else {
		a, err := txtar.ParseFile(filepath.Join(vectortest.Dir("wire"), sealedFile))
		if err == nil {
			sealed, err = vectortest.GetHex(a, "sealed")
		}
		if err != nil {
			t.Fatalf("reading the sealed bytes: %v; regenerate deliberately with\n\t%s", err, vectortest.Regenerate)
		}
	}
	want := map[string]*txtar.Archive{sealedFile: sealedVector(t, sealed)}
	for _, m := range vectorMessages(t, sealed) {
		want[m.kind+".txtar"] = m.archive(t)
	}
	return &vectortest.Suite{Dir: "wire", Want: want, Check: checkWireVector}
}

func sealVectorShares(t *testing.T) []byte {
	cryptotest.SetGlobalRandom(t, 1)
	priv, err := vectorRoundKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealShares(priv.PublicKey().Bytes(), vectortest.ConfigHash(), vectortest.Identity("collector-1").Fingerprint,
		vectortest.Identity("keeper-1").Fingerprint, vectorShares)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func suiteIDs() string {
	return fmt.Sprintf("kem 0x%04x, kdf 0x%04x, aead 0x%04x", bundleKEM.ID(), bundleKDF.ID(), bundleAEAD.ID())
}

func sealedVector(t *testing.T, sealed []byte) *txtar.Archive {
	priv, err := vectorRoundKey()
	if err != nil {
		t.Fatal(err)
	}
	privBytes, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	hash := vectortest.ConfigHash()
	collector, keeper := vectortest.Identity("collector-1").Fingerprint, vectortest.Identity("keeper-1").Fingerprint
	var shares []string
	for _, s := range vectorShares {
		shares = append(shares, strconv.FormatUint(s, 10))
	}
	comment := fmt.Sprintf(`A share bundle collector-1 sealed to keeper-1's round key (RFC 9180 HPKE,
base mode; suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305).
sealed is the encapsulated key (32 bytes) followed by the ciphertext of the
shares as 8-byte little-endian field elements, with aad as associated data
(info, config hash, collector and keeper joined by 0x00 bytes).
Sealing is randomised, so this vector pins the opening side: the round
private key opens sealed to shares, and no altered byte opens.
protocol version: %d`, ProtocolVersion)
	return vectortest.New(comment,
		vectortest.Hex("round-private-key", privBytes),
		vectortest.Hex("round-public-key", priv.PublicKey().Bytes()),
		vectortest.Text("suite", suiteIDs()),
		vectortest.Text("info", bundleInfo),
		vectortest.Text("config-hash", hash),
		vectortest.Text("collector", collector),
		vectortest.Text("keeper", keeper),
		vectortest.Hex("aad", bundleAAD(hash, collector, keeper)),
		vectortest.Text("shares", strings.Join(shares, "\n")),
		vectortest.Hex("sealed", sealed),
	)
}

// message is the input of one signed-message vector.
type message struct {
	kind   string
	signer string // a participant of vectortest
	about  string
	body   any // encoded with json.Marshal; the announcement's is the config's canonical encoding
}

func vectorMessages(t *testing.T, sealed []byte) []message {
	cfg := vectortest.Config()
	hash := vectortest.ConfigHash()
	fp := func(name string) string { return vectortest.Identity(name).Fingerprint }
	k1, c1 := fp("keeper-1"), fp("collector-1")
	var S []string
	for _, name := range vectortest.Collectors {
		S = append(S, fp(name))
	}
	// S in the config's order, which the agreement's bitmap gives it.
	S = slices.DeleteFunc(cfg.CollectorFingerprints(), func(fp string) bool { return !slices.Contains(S, fp) })
	priv, err := vectorRoundKey()
	if err != nil {
		t.Fatal(err)
	}
	gaps := []Gap{{Start: cfg.Start.Add(2 * time.Hour), End: cfg.Start.Add(2*time.Hour + 15*time.Minute)}}
	gapsDigest, err := GapsDigest(map[string][]Gap{c1: gaps})
	if err != nil {
		t.Fatal(err)
	}
	reason := "policy: round ε = 0.3 is more than this node's max_epsilon 0.2"
	// Each collector's report: values, masks and a blinding drawn from
	// seeded streams, and its signed commitment; the agreement sums them.
	type report struct {
		values, masks []field.Element
		blinding      commit.Scalar
		commitment    identity.Signed
	}
	reports := map[string]report{}
	sum := commit.NewIntSum(len(collector1Values))
	var commitments []identity.Signed
	var blindings []commit.Scalar
	for i, name := range vectortest.Collectors {
		values := slices.Clone(collector1Values)
		for c := range values {
			values[c] = field.Add(values[c], field.Element(i*1000+c))
		}
		maskSeed := sha512.Sum512([]byte("privstats test vector masks " + name))
		masks, err := commit.NewMasks(bytes.NewReader(maskSeed[:]), len(values))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// collector-1's p − 1 gets the largest mask: the largest
			// masked value, p·2^40 − 1.
			masks[2] = commit.MaskBound - 1
		}
		seed := sha512.Sum512([]byte("privstats test vector blinding " + name))
		rho, err := commit.NewBlinding(bytes.NewReader(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		cm, err := commit.Commit(values, masks, rho)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := SignBody(vectortest.Identity(name), KindCommitment, ReportCommitment{ConfigHash: hash, Collector: fp(name), Commitment: cm})
		if err != nil {
			t.Fatal(err)
		}
		reports[fp(name)] = report{values, masks, rho, signed}
		if err := sum.AddMasked(values, masks); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range S {
		commitments = append(commitments, reports[c].commitment)
		blindings = append(blindings, reports[c].blinding)
	}
	sumRho, err := commit.SumScalars(blindings)
	if err != nil {
		t.Fatal(err)
	}
	agreement := AgreementMsg{ConfigHash: hash, Collectors: S, SumV: sum, SumBlinding: sumRho, Commitments: commitments,
		GapsDigest: gapsDigest, Refusals: map[string]string{fp(vectortest.Refuser): reason}}
	if err := agreement.SetCollectors(cfg.CollectorFingerprints(), S); err != nil {
		t.Fatal(err)
	}
	agreementBody, err := json.Marshal(agreement)
	if err != nil {
		t.Fatal(err)
	}
	digest := AgreementDigest(agreementBody)
	return []message{
		{KindAnnounce, vectortest.Tally, "The tally server announces the vector round; the body is the round config's\ncanonical encoding (testdata/vectors/round/config.txtar).", cfg},
		{KindRoundKey, "keeper-1", "keeper-1 publishes its round key (the one sealed-bundle.txtar opens with).", RoundKey{ConfigHash: hash, Keeper: k1, PublicKey: priv.PublicKey().Bytes()}},
		{KindShareBundle, "collector-1", "collector-1 sends keeper-1 the sealed bundle of sealed-bundle.txtar.", SealedBundle{ConfigHash: hash, Collector: c1, Keeper: k1, Ciphertext: sealed}},
		{KindAck, "keeper-1", "keeper-1 holds bundles from all three collectors.", Ack{ConfigHash: hash, Keeper: k1, Collectors: S}},
		{KindReport, "collector-1", "collector-1 reports its blinded counters, the masks and blinding that open its\ncommitment, and a 15-minute gap in its event feed.",
			Report{ConfigHash: hash, Collector: c1, Values: reports[c1].values, Masks: reports[c1].masks, Blinding: reports[c1].blinding, Commitment: reports[c1].commitment, Gaps: gaps}},
		{KindCommitment, "collector-1", "collector-1's Pedersen commitment to its report's masked values (package commit),\nsigned on its own so keepers and readers of the outcome can check ΣV against it.",
			ReportCommitment{ConfigHash: hash, Collector: c1, Commitment: mustCommitment(t, reports[c1].commitment)}},
		{KindAgreement, vectortest.Tally, "The tally server proposes S (all three collectors) and ΣV, with collector-1's\ngaps by digest and the refuser's refusal.", agreement},
		{KindCommit, "keeper-1", "keeper-1 commits to the agreement of agreement.txtar (by the SHA-256 of its body).", Commit{ConfigHash: hash, Keeper: k1, Agreement: digest}},
		{KindAggregateShare, "keeper-1", "keeper-1 releases its aggregate share for that agreement.",
			AggregateShareMsg{ConfigHash: hash, Keeper: k1, X: 1, Agreement: digest,
				Values: []field.Element{0x1111111111111111, 0x2222222222222222, 0x0000000000000003, field.P - 2, 0x4444444444444444}}},
		{KindPublication, vectortest.Tally, "The tally server signs when it published the outcome of that agreement.",
			Publication{ConfigHash: hash, Agreement: digest, PublishedAt: cfg.End.Add(3 * time.Minute)}},
		{KindRefusal, vectortest.Refuser, "A node refuses the round under its local policy.", Refusal{ConfigHash: hash, Node: fp(vectortest.Refuser), Reason: reason}},
	}
}

// collector1Values are collector-1's blinded counters: edge values of the
// field among them.
var collector1Values = []field.Element{0x0123456789abcdef, 0, field.P - 1, 0x00000000deadbeef, 0x7fffffffffffffff}

func mustCommitment(t *testing.T, m identity.Signed) commit.Commitment {
	t.Helper()
	var rc ReportCommitment
	if _, err := OpenBody(m, KindCommitment, "", &rc); err != nil {
		t.Fatal(err)
	}
	return rc.Commitment
}

func (m message) archive(t *testing.T) *txtar.Archive {
	id := vectortest.Identity(m.signer)
	var body []byte
	var err error
	if cfg, ok := m.body.(*round.Config); ok {
		body, err = cfg.Canonical()
	} else {
		body, err = EncodeBody(m.body)
	}
	if err != nil {
		t.Fatal(err)
	}
	signed := id.Sign(m.kind, body)
	enc, err := json.Marshal(signed)
	if err != nil {
		t.Fatal(err)
	}
	comment := fmt.Sprintf(`A signed %s message.
%s
signature is Ed25519 (RFC 8032) by the key of signer-seed over
"privstats/v1 signature" 0x00 kind 0x00 body; signed.json is the
identity.Signed as JSON (state, outcome, control messages).
protocol version: %d`, m.kind, m.about, ProtocolVersion)
	bodySection := vectortest.Text("body", string(body))
	sections := []vectortest.Section{}
	if binaryKinds[m.kind] {
		comment += `
The body is binary (hex here), and signed.bin (hex) is the binary envelope
the message travels in (docs/protocol.md, "Binary messages").`
		bodySection = vectortest.Hex("body", body)
		bin, err := AppendSigned(nil, signed)
		if err != nil {
			t.Fatal(err)
		}
		sections = append(sections, vectortest.Hex("signed.bin", bin))
	}
	return vectortest.New(comment, append([]vectortest.Section{
		vectortest.Text("kind", m.kind),
		vectortest.Text("signer", m.signer),
		vectortest.Hex("signer-seed", vectortest.Seed(m.signer)),
		vectortest.Hex("signer-public-key", id.Public()),
		vectortest.Text("signer-fingerprint", id.Fingerprint),
		bodySection,
		vectortest.Hex("signature", signed.Signature),
		vectortest.Text("signed.json", string(enc)),
	}, sections...)...)
}

// binaryKinds are the kinds whose bodies are binary (binary.go).
var binaryKinds = map[string]bool{KindShareBundle: true, KindReport: true}

func checkWireVector(name string, a *txtar.Archive) error {
	if name == sealedFile {
		return checkSealedVector(a)
	}
	return checkMessageVector(a)
}

// checkSealedVector opens the sealed bytes twice: with OpenShares, and
// with crypto/hpke directly from the file's info and aad, whose plaintext
// must be the shares in 8-byte little-endian.
func checkSealedVector(a *txtar.Archive) error {
	get := func(name string) string { v, _ := vectortest.Get(a, name); return string(v) }
	privBytes, err := vectortest.GetHex(a, "round-private-key")
	if err != nil {
		return err
	}
	priv, err := bundleKEM.NewPrivateKey(privBytes)
	if err != nil {
		return fmt.Errorf("round-private-key: %w", err)
	}
	if pub := hex.EncodeToString(priv.PublicKey().Bytes()); pub != get("round-public-key") {
		return fmt.Errorf("round-private-key has public key %s, the file says %s", pub, get("round-public-key"))
	}
	if get("suite") != suiteIDs() {
		return fmt.Errorf("suite is %q, bundles are sealed with %q", get("suite"), suiteIDs())
	}
	if get("info") != bundleInfo {
		return fmt.Errorf("info is %q, bundles are sealed with %q", get("info"), bundleInfo)
	}
	hash, collector, keeper := get("config-hash"), get("collector"), get("keeper")
	aad, err := vectortest.GetHex(a, "aad")
	if err != nil {
		return err
	}
	if want := bundleAAD(hash, collector, keeper); !bytes.Equal(aad, want) {
		return fmt.Errorf("aad is %x, the config hash, collector and keeper give %x", aad, want)
	}
	var shares []field.Element
	for line := range strings.Lines(get("shares")) {
		s, err := strconv.ParseUint(strings.TrimSpace(line), 10, 64)
		if err != nil {
			return fmt.Errorf("shares: %w", err)
		}
		shares = append(shares, s)
	}
	sealed, err := vectortest.GetHex(a, "sealed")
	if err != nil {
		return err
	}
	got, err := OpenShares(priv, sealed, hash, collector, keeper, len(shares))
	if err != nil {
		return err
	}
	if !slices.Equal(got, shares) {
		return fmt.Errorf("sealed opens to %v, the file says %v", got, shares)
	}
	r, err := hpke.NewRecipient(sealed[:32], priv, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(get("info")))
	if err != nil {
		return err
	}
	pt, err := r.Open(aad, sealed[32:])
	if err != nil {
		return fmt.Errorf("sealed does not open with the file's info and aad: %w", err)
	}
	want := make([]byte, 0, 8*len(shares))
	for _, s := range shares {
		want = binary.LittleEndian.AppendUint64(want, s)
	}
	if !bytes.Equal(pt, want) {
		return fmt.Errorf("plaintext is %x, want the shares little-endian: %x", pt, want)
	}
	return nil
}

// bodyOf is a fresh value of each kind's body type.
var bodyOf = map[string]func() any{
	KindRoundKey:       func() any { return new(RoundKey) },
	KindShareBundle:    func() any { return new(SealedBundle) },
	KindAck:            func() any { return new(Ack) },
	KindReport:         func() any { return new(Report) },
	KindAgreement:      func() any { return new(AgreementMsg) },
	KindCommit:         func() any { return new(Commit) },
	KindAggregateShare: func() any { return new(AggregateShareMsg) },
	KindRefusal:        func() any { return new(Refusal) },
	KindCommitment:     func() any { return new(ReportCommitment) },
	KindPublication:    func() any { return new(Publication) },
}

// checkMessageVector checks a signed message on its own: the seed gives
// the signer's key, the signature verifies under the restated signing
// context and through identity.Signed, the wire encoding holds exactly the
// file's kind, body and signature, and the body opens as its kind and
// re-encodes to the same bytes.
func checkMessageVector(a *txtar.Archive) error {
	get := func(name string) []byte { v, _ := vectortest.Get(a, name); return v }
	kind, signer, body := string(get("kind")), string(get("signer")), get("body")
	if binaryKinds[kind] {
		var err error
		if body, err = vectortest.GetHex(a, "body"); err != nil {
			return err
		}
		bin, err := vectortest.GetHex(a, "signed.bin")
		if err != nil {
			return err
		}
		m, err := ParseSigned(bin)
		if err != nil {
			return fmt.Errorf("signed.bin: %w", err)
		}
		if m.Kind != kind || m.Signer != string(get("signer-public-key")) || !bytes.Equal(m.Body, body) {
			return errors.New("signed.bin does not hold the file's kind, signer and body")
		}
	}
	seed, err := vectortest.GetHex(a, "signer-seed")
	if err != nil {
		return err
	}
	if !bytes.Equal(seed, vectortest.Seed(signer)) {
		return fmt.Errorf("signer-seed is not the test seed of %q", signer)
	}
	id, err := identity.FromSeed(seed)
	if err != nil {
		return err
	}
	if pub := hex.EncodeToString(id.Public()); pub != string(get("signer-public-key")) {
		return fmt.Errorf("the seed gives public key %s, the file says %s", pub, get("signer-public-key"))
	}
	if id.Fingerprint != string(get("signer-fingerprint")) {
		return fmt.Errorf("the seed gives fingerprint %s, the file says %s", id.Fingerprint, get("signer-fingerprint"))
	}
	sig, err := vectortest.GetHex(a, "signature")
	if err != nil {
		return err
	}
	if !ed25519.Verify(id.Public(), slices.Concat([]byte(wantSigningContext+kind+"\x00"), body), sig) {
		return errors.New("signature does not verify over the signing context, kind and body")
	}
	var s identity.Signed
	dec := json.NewDecoder(bytes.NewReader(get("signed.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("signed.json: %w", err)
	}
	if s.Kind != kind || s.Signer != string(get("signer-public-key")) || !bytes.Equal(s.Body, body) || !bytes.Equal(s.Signature, sig) {
		return errors.New("signed.json does not hold the file's kind, signer, body and signature")
	}
	if fp, err := s.VerifyAny(kind); err != nil || fp != id.Fingerprint {
		return errors.Join(err, fmt.Errorf("VerifyAny gives signer %q, want %s", fp, id.Fingerprint))
	}
	if kind == KindAnnounce {
		_, err := round.Decode(body)
		return err
	}
	newBody, ok := bodyOf[kind]
	if !ok {
		return fmt.Errorf("kind %q is not a message kind", kind)
	}
	v := newBody()
	if _, err := OpenBody(s, kind, id.Fingerprint, v); err != nil {
		return err
	}
	if again, err := EncodeBody(v); err != nil || !bytes.Equal(again, body) {
		return errors.Join(err, fmt.Errorf("body re-encodes as %s", again))
	}
	if sb, ok := v.(*SealedBundle); ok {
		priv, err := vectorRoundKey()
		if err != nil {
			return err
		}
		got, err := OpenShares(priv, sb.Ciphertext, sb.ConfigHash, sb.Collector, sb.Keeper, len(vectorShares))
		if err != nil || !slices.Equal(got, vectorShares) {
			return errors.Join(err, fmt.Errorf("the bundle opens to %v, want %v", got, vectorShares))
		}
	}
	return nil
}

func TestVectors(t *testing.T) {
	wireVectors(t, *update).Run(t, *update)
}

func TestVectorsBite(t *testing.T) {
	wireVectors(t, false).Bite(t,
		"kind", "signer", "signer-seed", "signer-public-key", "signer-fingerprint", "body", "signature", "signed.json",
		"round-private-key", "round-public-key", "suite", "info", "config-hash", "collector", "keeper", "aad", "shares", "sealed")
}

// Every byte of the sealed bundle is covered by the AEAD or is the
// encapsulated key: changing any one must stop it opening.
func TestVectorsSealedBundleFailsToOpenWhenAnyByteChanges(t *testing.T) {
	s := wireVectors(t, false)
	a := s.Want[sealedFile]
	sealed, err := vectortest.GetHex(a, "sealed")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := vectorRoundKey()
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { v, _ := vectortest.Get(a, name); return string(v) }
	for i := range sealed {
		bad := slices.Clone(sealed)
		bad[i] ^= 0x80
		if got, err := OpenShares(priv, bad, get("config-hash"), get("collector"), get("keeper"), len(vectorShares)); err == nil {
			t.Errorf("sealed bundle with byte %d changed opens to %v", i, got)
		}
	}
}

// Every message kind this package declares has a vector: a new kind
// without one fails here.
func TestVectorsCoverEveryKind(t *testing.T) {
	s := wireVectors(t, false)
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				for i, n := range spec.(*ast.ValueSpec).Names {
					if !strings.HasPrefix(n.Name, "Kind") {
						continue
					}
					lit, ok := spec.(*ast.ValueSpec).Values[i].(*ast.BasicLit)
					if !ok {
						t.Fatalf("%s is not a string literal", n.Name)
					}
					kind, _ := strconv.Unquote(lit.Value)
					kinds = append(kinds, kind)
				}
			}
		}
	}
	if len(kinds) < 9 {
		t.Fatalf("found only the kinds %v", kinds)
	}
	for _, kind := range kinds {
		if _, ok := s.Want[kind+".txtar"]; !ok {
			t.Errorf("message kind %q has no vector", kind)
		}
		if _, ok := bodyOf[kind]; !ok && kind != KindAnnounce {
			t.Errorf("message kind %q has no body type in bodyOf", kind)
		}
	}
}

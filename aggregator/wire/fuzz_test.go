package wire

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/strictjson"
	"github.com/privstats/privstats/internal/vectortest"
)

// Fuzz targets for what a node decodes from others. To fuzz one:
//
//	go test ./aggregator/wire -run '^$' -fuzz '^FuzzOpenBody$'

// bodyKinds maps every kind OpenBody opens to a fresh value of its body.
var bodyKinds = []struct {
	kind string
	new  func() any
}{
	{KindRoundKey, func() any { return new(RoundKey) }},
	{KindShareBundle, func() any { return new(SealedBundle) }},
	{KindAck, func() any { return new(Ack) }},
	{KindReport, func() any { return new(Report) }},
	{KindCommitment, func() any { return new(ReportCommitment) }},
	{KindAgreement, func() any { return new(AgreementMsg) }},
	{KindCommit, func() any { return new(Commit) }},
	{KindAggregateShare, func() any { return new(AggregateShareMsg) }},
	{KindRefusal, func() any { return new(Refusal) }},
	{KindPublication, func() any { return new(Publication) }},
}

// vectorArchives reads every wire vector.
func vectorArchives(f *testing.F) []*txtar.Archive {
	names, err := filepath.Glob(filepath.Join(vectortest.Dir("wire"), "*.txtar"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no wire vectors: %v", err)
	}
	var out []*txtar.Archive
	for _, name := range names {
		a, err := txtar.ParseFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// FuzzOpenBody signs arbitrary bodies as each kind and opens them. What
// OpenBody accepts must re-encode to a body it accepts again with the same
// encoding (so every reader sees one value), and must not open as any other
// kind or for any other signer.
func FuzzOpenBody(f *testing.F) {
	for _, a := range vectorArchives(f) {
		kind, err1 := vectortest.Get(a, "kind")
		body, err2 := vectortest.Get(a, "body")
		if err1 != nil || err2 != nil {
			continue
		}
		// A binary body (bundles, reports) is stored as hex.
		if fresh, ok := bodyOf[string(kind)]; !ok {
			continue
		} else if _, isBinary := fresh().(binaryDecoder); isBinary {
			if body, err2 = vectortest.GetHex(a, "body"); err2 != nil {
				f.Fatal(err2)
			}
		}
		for i, k := range bodyKinds {
			if k.kind == string(kind) {
				f.Add(uint8(i), body)
			}
		}
	}
	id := vectortest.Identity("keeper-1")
	other := vectortest.Identity("keeper-2")
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		k := bodyKinds[int(which)%len(bodyKinds)]
		s := id.Sign(k.kind, body)
		v := k.new()
		fp, err := OpenBody(s, k.kind, id.Fingerprint, v)
		if err != nil {
			return
		}
		if fp != id.Fingerprint {
			t.Fatalf("OpenBody returned signer %s, want %s", fp, id.Fingerprint)
		}
		if _, err := OpenBody(s, k.kind, other.Fingerprint, k.new()); err == nil {
			t.Fatal("opened for a signer that did not sign it")
		}
		for _, o := range bodyKinds {
			if o.kind != k.kind {
				if _, err := OpenBody(s, o.kind, "", o.new()); err == nil {
					t.Fatalf("a %s opened as a %s", k.kind, o.kind)
				}
			}
		}
		enc, err := EncodeBody(v)
		if err != nil {
			t.Fatalf("accepted %s body does not encode: %v", k.kind, err)
		}
		again := k.new()
		if _, err := OpenBody(id.Sign(k.kind, enc), k.kind, id.Fingerprint, again); err != nil {
			t.Fatalf("re-encoded %s body %s does not open: %v", k.kind, enc, err)
		}
		if enc2, _ := EncodeBody(again); !bytes.Equal(enc, enc2) {
			t.Fatalf("%s body changes on a round trip:\n%q\n%q", k.kind, enc, enc2)
		}
	})
}

// FuzzRoundView decodes a round view as wire.Client does (package
// transport: encoding/json). What decodes must re-encode to a view the
// strict decoder accepts and that encodes the same again, and its signed
// parts must be safe to hand to the openers nodes run on them.
func FuzzRoundView(f *testing.F) {
	var agreement, roundKey, commitMsg identity.Signed
	for _, a := range vectorArchives(f) {
		b, err := vectortest.Get(a, "signed.json")
		if err != nil {
			continue
		}
		var s identity.Signed
		if err := json.Unmarshal(b, &s); err != nil {
			f.Fatal(err)
		}
		switch s.Kind {
		case KindAgreement:
			agreement = s
		case KindRoundKey:
			roundKey = s
		case KindCommit:
			commitMsg = s
		}
	}
	full := RoundView{Version: 7, ConfigHash: vectortest.ConfigHash(), Phase: round.PhaseAnnounced,
		RoundKeys: []identity.Signed{roundKey}, Agreement: AgreementDigest(agreement.Body), Commits: []identity.Signed{commitMsg},
		Bundles: 2, Joined: true, Failure: "x"}
	enc, _ := json.Marshal(full)
	f.Add(enc)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"finished":true,"failure":"too few collectors"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v RoundView
		if json.Unmarshal(data, &v) != nil {
			return
		}
		enc, err := json.Marshal(&v)
		if err != nil {
			t.Fatalf("decoded view does not encode: %v", err)
		}
		var again RoundView
		if err := strictjson.Unmarshal(enc, &again); err != nil {
			t.Fatalf("re-encoded view %s is refused: %v", enc, err)
		}
		if enc2, _ := json.Marshal(&again); !bytes.Equal(enc, enc2) {
			t.Fatalf("view changes on a round trip:\n%s\n%s", enc, enc2)
		}
		for _, m := range v.RoundKeys {
			_, _ = OpenBody(m, KindRoundKey, "", new(RoundKey))
		}
		for _, m := range v.Commits {
			_, _ = OpenBody(m, KindCommit, "", new(Commit))
		}
	})
}

// FuzzOpenShares opens arbitrary bytes with keeper-1's vector round key,
// for the vector's round and parties. Only the vector's sealed bundle, for
// the number of shares it holds, may open, and to exactly its shares: HPKE
// authenticates every byte.
func FuzzOpenShares(f *testing.F) {
	priv, err := vectorRoundKey()
	if err != nil {
		f.Fatal(err)
	}
	a, err := txtar.ParseFile(filepath.Join(vectortest.Dir("wire"), sealedFile))
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := vectortest.GetHex(a, "sealed")
	if err != nil {
		f.Fatal(err)
	}
	hash := vectortest.ConfigHash()
	collector, keeper := vectortest.Identity("collector-1").Fingerprint, vectortest.Identity("keeper-1").Fingerprint
	n := len(vectorShares)
	f.Add(sealed, uint8(n))
	f.Add(sealed[:len(sealed)-1], uint8(n))
	f.Add(sealed[:x25519KeyLen], uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, m uint8) {
		got, err := OpenShares(priv, data, hash, collector, keeper, int(m))
		if err != nil {
			return
		}
		if !bytes.Equal(data, sealed) || int(m) != n || !slices.Equal(got, vectorShares) {
			t.Fatalf("bytes that were never sealed opened to %d shares %v", len(got), got)
		}
		if field.CheckCounters("fuzz", got, n) != nil {
			t.Fatal("opened shares are not canonical field elements")
		}
	})
}

package wire

import (
	"bytes"
	"io"
	"testing"

	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
)

// FuzzReadSignedList reads arbitrary bytes as the tally server reads a
// posted body: a list of binary envelopes (ReadSignedList, bundles) and one
// envelope (ReadSigned, reports), streaming under a limit, and ParseSigned
// as the report's commitment and the journal are read. What reads must be
// the whole of what was consumed, re-encode to exactly those bytes (one
// encoding per message), and read the same from memory as from the stream;
// a limit below the input's size must refuse it, never read past it.
//
//	go test ./aggregator/wire -run '^$' -fuzz '^FuzzReadSignedList$'
func FuzzReadSignedList(f *testing.F) {
	id := vectortest.Identity("collector-1")
	one := id.Sign(KindShareBundle, []byte("sealed"))
	two := id.Sign(KindReport, nil)
	list, err := AppendSignedList(nil, []identity.Signed{one, two})
	if err != nil {
		f.Fatal(err)
	}
	env, _ := AppendSigned(nil, one)
	f.Add(list, uint16(0))
	// The envelopes of the wire vectors (signed.bin, hex).
	for _, a := range vectorArchives(f) {
		if bin, err := vectortest.GetHex(a, "signed.bin"); err == nil {
			f.Add(bin, uint16(0))
		}
	}
	f.Add(env, uint16(0))
	f.Add(list[:len(list)-3], uint16(0)) // cut short
	f.Add(list, uint16(len(list)-1))     // over the limit by one
	f.Add([]byte{0, 0, 0, 0}, uint16(0)) // an empty list
	f.Add([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		// cut, if set, is the limit: at most the input's size.
		limit := int64(len(in))
		if cut > 0 && int64(cut) < limit {
			limit = int64(cut)
		}
		r := bytes.NewReader(in)
		got, err := ReadSignedList(io.LimitReader(r, limit), limit, 255)
		if err == nil {
			used := in[:len(in)-r.Len()]
			enc, err := AppendSignedList(nil, got)
			if err != nil {
				t.Fatalf("a list that reads does not encode: %v", err)
			}
			if !bytes.Equal(enc, used) {
				t.Fatalf("list %x re-encodes as %x", used, enc)
			}
			if len(got) > 255 {
				t.Fatalf("read a list of %d, more than its max", len(got))
			}
		}
		r = bytes.NewReader(in)
		m, err := ReadSigned(io.LimitReader(r, limit), limit)
		if _, perr := ParseSigned(in); perr == nil && limit == int64(len(in)) && (err != nil || r.Len() != 0) {
			t.Fatalf("ParseSigned reads %x as one envelope, ReadSigned within its size does not: %v", in, err)
		}
		if err != nil {
			return
		}
		used := in[:len(in)-r.Len()]
		enc, err := AppendSigned(nil, m)
		if err != nil {
			t.Fatalf("an envelope that reads does not encode: %v", err)
		}
		if !bytes.Equal(enc, used) {
			t.Fatalf("envelope %x re-encodes as %x", used, enc)
		}
		parsed, err := ParseSigned(used)
		if err != nil {
			t.Fatalf("envelope %x reads from a stream, but ParseSigned refuses it: %v", used, err)
		}
		if parsed.Kind != m.Kind || parsed.Signer != m.Signer || !bytes.Equal(parsed.Signature, m.Signature) || !bytes.Equal(parsed.Body, m.Body) {
			t.Fatalf("envelope %x reads as %+v from a stream, %+v from memory", used, m, parsed)
		}
	})
}

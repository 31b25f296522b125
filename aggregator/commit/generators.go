package commit

import (
	"encoding/binary"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/gtank/ristretto255"
)

// Changing any of these strings changes every commitment: it is a new
// protocol version (the generator test pins their output).
const (
	// generatorDST is the RFC 9380 domain separation tag: application,
	// version and suite ID, as §3.1 recommends.
	generatorDST = "privstats/v1 pedersen ristretto255_XMD:SHA-512_R255MAP_RO_"
	msgG         = "privstats/v1 pedersen G" // ‖ uint32be(k)
	msgH         = "privstats/v1 pedersen H"
)

// gens caches the generators: deriving one costs two hash-to-group maps and
// a decode (~22 µs), so all 100,000 take about 2 s, once per process.
// Elements are never modified once derived, so callers read them unlocked.
var gens struct {
	mu sync.Mutex
	g  []*ristretto255.Element
	h  *ristretto255.Element
}

// generators returns G_0 … G_{n−1} and H, deriving the ones not yet cached.
func generators(n int) ([]*ristretto255.Element, *ristretto255.Element) {
	gens.mu.Lock()
	defer gens.mu.Unlock()
	if gens.h == nil {
		gens.h = hashToElement([]byte(msgH))
	}
	for k := len(gens.g); k < n; k++ {
		gens.g = append(gens.g, hashToElement(binary.BigEndian.AppendUint32([]byte(msgG), uint32(k))))
	}
	return gens.g[:n:n], gens.h
}

func hashToElement(msg []byte) *ristretto255.Element {
	enc, err := group.Ristretto255.HashToElement(msg, []byte(generatorDST)).MarshalBinary()
	if err != nil {
		panic("commit: internal error: encoding a hashed ristretto255 element: " + err.Error())
	}
	e, err := ristretto255.NewIdentityElement().SetCanonicalBytes(enc)
	if err != nil {
		panic("commit: internal error: circl's ristretto255 encoding does not decode: " + err.Error())
	}
	return e
}

package commit

import (
	"encoding/binary"
	"sync"

	"github.com/cloudflare/circl/group"
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

// gens caches the generators: deriving one costs two hash-to-group maps
// (~9 µs), so all 100,000 take about 1 s, once per process.
// Elements are never modified once derived, so callers read them unlocked.
var gens struct {
	mu sync.Mutex
	g  []group.Element
	h  group.Element
}

// generators returns G_0 … G_{n−1} and H, deriving the ones not yet cached.
func generators(n int) ([]group.Element, group.Element) {
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

func hashToElement(msg []byte) group.Element {
	return ristretto.HashToElement(msg, []byte(generatorDST))
}

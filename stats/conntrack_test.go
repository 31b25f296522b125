package stats

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/privstats/privstats/aggregator/round"
)

// The connection table behaves like a map while it has room.
func TestConnTableIsAMap(t *testing.T) {
	tab := newConnTable(64)
	ref := map[string]connEntry{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		id := fmt.Sprint(rng.IntN(100))
		switch rng.IntN(3) {
		case 0:
			if _, ok := ref[id]; !ok && len(ref) >= 64 {
				continue
			}
			e := connEntry{opened: int64(i), inbound: i%2 == 0}
			tab.open([]byte(id), e)
			ref[id] = e
		case 1:
			got, ok := tab.get([]byte(id))
			want, wok := ref[id]
			if ok != wok || got != want {
				t.Fatalf("step %d: get(%s) = %v, %v; want %v, %v", i, id, got, ok, want, wok)
			}
		case 2:
			got, ok := tab.close([]byte(id))
			want, wok := ref[id]
			if ok != wok || got != want {
				t.Fatalf("step %d: close(%s) = %v, %v; want %v, %v", i, id, got, ok, want, wok)
			}
			delete(ref, id)
		}
		if tab.n != len(ref) {
			t.Fatalf("step %d: table holds %d, want %d", i, tab.n, len(ref))
		}
	}
	if tab.evictions != 0 {
		t.Errorf("evictions = %d", tab.evictions)
	}
}

// A full table forgets old connections, counts that, and stays bounded.
func TestConnTableEvictsOldest(t *testing.T) {
	tab := newConnTable(8)
	for i := range 100 {
		tab.open([]byte(fmt.Sprint(i)), connEntry{opened: int64(i)})
	}
	if tab.n != 8 || tab.evictions != 92 {
		t.Fatalf("n = %d, evictions = %d; want 8 and 92", tab.n, tab.evictions)
	}
	// The newest connection is always still known.
	if _, ok := tab.get([]byte("99")); !ok {
		t.Error("the newest connection was evicted")
	}
}

func TestProgramCountsEvictions(t *testing.T) {
	spec, _ := Resolve("or_connection_lifetime", nil)
	p, err := Compile([]round.StatisticSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	c := make(testCounts, p.NumCounters())
	for i := range MaxTrackedConnections + 10 {
		p.Count(fmt.Appendf(nil, "650 ORCONN 192.0.2.1:1 NEW ID=%d", i+1), c)
	}
	if p.Evictions() != 10 {
		t.Errorf("Evictions() = %d, want 10", p.Evictions())
	}
}

type testCounts []uint64

func (c testCounts) Add(i int, n uint64) { c[i] += n }

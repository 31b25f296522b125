package stats

import "hash/maphash"

// MaxTrackedConnections bounds the table of open OR connections a Program
// keeps to learn each connection's direction and lifetime. The busiest
// relays hold a few tens of thousands of OR connections at once.
const MaxTrackedConnections = 1 << 17

// evictionSample is how many entries a full table looks at to pick the
// oldest one to forget.
const evictionSample = 8

// connTable maps an ORCONN ID to when and how the connection was opened.
// It is a fixed-size open-addressing hash table (linear probing, deletion
// by backward shift) so that the hot path never allocates; when it is full
// it forgets the oldest of a few entries, which are most likely
// connections whose CLOSED event was missed.
type connTable struct {
	keys      []uint64 // 0: empty slot
	vals      []connEntry
	mask      uint64
	n, limit  int
	cursor    uint64
	evictions uint64
	seed      maphash.Seed
}

type connEntry struct {
	opened  int64 // Unix nanoseconds
	inbound bool
}

func newConnTable(limit int) *connTable {
	size := 1
	for size < 2*limit {
		size <<= 1
	}
	return &connTable{
		keys:  make([]uint64, size),
		vals:  make([]connEntry, size),
		mask:  uint64(size - 1),
		limit: limit,
		seed:  maphash.MakeSeed(),
	}
}

func (t *connTable) key(id []byte) uint64 {
	k := maphash.Bytes(t.seed, id)
	if k == 0 {
		k = 1
	}
	return k
}

// slot returns where key is, or the empty slot where it would go.
func (t *connTable) slot(k uint64) uint64 {
	i := k & t.mask
	for t.keys[i] != 0 && t.keys[i] != k {
		i = (i + 1) & t.mask
	}
	return i
}

// open records a connection; a repeated ID replaces the old entry.
func (t *connTable) open(id []byte, e connEntry) {
	k := t.key(id)
	i := t.slot(k)
	if t.keys[i] == k {
		t.vals[i] = e
		return
	}
	if t.n >= t.limit {
		t.evictOldest()
		i = t.slot(k)
	}
	t.keys[i], t.vals[i] = k, e
	t.n++
}

// get returns the entry of an open connection.
func (t *connTable) get(id []byte) (connEntry, bool) {
	i := t.slot(t.key(id))
	if t.keys[i] == 0 {
		return connEntry{}, false
	}
	return t.vals[i], true
}

// close removes a connection and returns its entry.
func (t *connTable) close(id []byte) (connEntry, bool) {
	i := t.slot(t.key(id))
	if t.keys[i] == 0 {
		return connEntry{}, false
	}
	e := t.vals[i]
	t.remove(i)
	return e, true
}

// remove empties slot i and shifts later entries of its probe run back, so
// that lookups never need tombstones.
func (t *connTable) remove(i uint64) {
	t.n--
	for {
		t.keys[i] = 0
		j := i
		for {
			j = (j + 1) & t.mask
			if t.keys[j] == 0 {
				return
			}
			home := t.keys[j] & t.mask
			// Entry j may move to i unless its home lies cyclically in (i, j].
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				break
			}
		}
		t.keys[i], t.vals[i] = t.keys[j], t.vals[j]
		i = j
	}
}

// evictOldest forgets the oldest of the next few entries after the cursor.
func (t *connTable) evictOldest() {
	var victim uint64
	found, seen := false, 0
	for step := uint64(0); step <= t.mask && seen < evictionSample; step++ {
		i := (t.cursor + step) & t.mask
		if t.keys[i] == 0 {
			continue
		}
		if !found || t.vals[i].opened < t.vals[victim].opened {
			victim, found = i, true
		}
		seen++
	}
	if !found {
		return
	}
	t.cursor = (victim + 1) & t.mask
	t.remove(victim)
	t.evictions++
}

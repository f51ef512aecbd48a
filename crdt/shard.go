package crdt

import (
	"math"
	"sync"
	"sync/atomic"
)

// A shard holds the keys whose hash falls on it.
//
// Layout, chosen to stay under 250 bytes per key with 5 replicas (see BenchmarkStoreMemory):
//   - entries (128 bytes, two cache lines each; entry.go) live in fixed-size pages, so growing
//     never moves an entry and the slack is at most one page;
//   - an entry holds the counts of up to inlineSlots replicas itself, as 24-byte {replica
//     index, p, n} structs, and any more in one exactly sized []slot, replica IDs being
//     interned store-wide (replicas.go);
//   - an open-addressing index (linear probing, at most 3/4 full) maps a key to its entry:
//     8 bytes a slot instead of a Go map's ~40 bytes an entry. Keys are never deleted (a
//     counter only grows), so the index needs no tombstones;
//   - the recency-list links and versions (16 bytes a key) live in pages of their own.
//
// Concurrency: two levels of locking, so that a write to a key that already has a count of
// the writing replica writes no cache line of shared shard state, and one line of the key's.
//   - The page directory and the index are published together, as one immutable shardTables
//     value, through an atomic pointer, and index slots are atomic words, so a lookup needs
//     no lock. An entry is fully written before the index slot that leads to it is
//     published, and entries never move.
//   - Each entry has a small lock guarding its counts and flags. The common write
//     (Store.Apply to an existing key and replica) finds the key without a lock and takes
//     only the entry's lock (lockEntry).
//   - mu serializes every change to the shard's structure: adding keys, growing the index and
//     the directory, the pending list, the versions and the recency list (changes.go). It is
//     taken before an entry lock, never after.
type shard struct {
	// Read on every lookup, written only when the shard grows: on its own cache line.
	tables atomic.Pointer[shardTables]
	_      [56]byte

	mu sync.Mutex
	// mu guards the fields below, the hash of every entry, and the links.
	version uint64      // bumped for each entry a flush finds changed; see changes.go
	count   uint32      // entries in use: entries 0..count-1
	head    uint32      // least recently changed entry on the recency list, or noEntry
	tail    uint32      // most recently changed entry on the recency list, or noEntry
	merges  uint32      // Merge calls that touched the shard, mod 2^30: see entry.flags
	pending []uint32    // entries changed since the last flush, each once (flag entryPending)
	links   []*linkPage // links[i>>pageBits][i&(pageSize-1)] is entry i's link

	_ [256 - 64 - 8 - 8 - 4*4 - 24 - 24]byte
}

// shardTables is a shard's page directory and index. A published value is never changed,
// except that free index slots get filled in place; adding a page or growing the index
// publishes a new value. A lookup uses one value throughout, so a ref it reads from an index
// always means an entry of that value's directory, or one added after it (which it skips).
type shardTables struct {
	dir []*page
	// index maps keys to entries. Each slot is tag<<32 | ref, where ref is the entry index
	// plus one (0 marks an empty slot) and tag is the high 32 bits of the key hash, whose low
	// bits give the slot's home position, so the index grows without rehashing keys, and
	// comparing it first skips most key comparisons.
	index []atomic.Uint64
}

// page holds pageSize entries. At 128 bytes an entry it is exactly four runtime pages, so it
// is allocated page-aligned and with no slack.
type page [pageSize]entry

// linkPage holds the recency-list links and versions of pageSize entries, apart from the
// entries: they are touched only under mu, by flush and DeltasSince, and would otherwise take
// room from the entries' cache lines.
type linkPage [pageSize]link

// link holds an entry's neighbours on the recency list, or noEntry, and the shard version at
// the flush that last found the entry changed. Guarded by mu.
type link struct {
	prev, next uint32
	version    uint64
}

const (
	noEntry  = math.MaxUint32
	pageBits = 8
	pageSize = 1 << pageBits
	// maxShardEntries keeps entry indices and refs inside uint32.
	maxShardEntries = math.MaxUint32 - 1
)

func keyTag(kh uint64) uint32 { return uint32(kh >> 32) }

// at returns entry i, which must exist. mu is held.
func (sh *shard) at(i uint32) *entry { return sh.tables.Load().entry(i) }

// link returns entry i's recency-list link. mu is held.
func (sh *shard) link(i uint32) *link { return &sh.links[i>>pageBits][i&(pageSize-1)] }

func (t *shardTables) entry(i uint32) *entry { return &t.dir[i>>pageBits][i&(pageSize-1)] }

// lookup finds key without locking. It may miss a key added concurrently, and may return an
// entry that Restore has since marked dead; a caller that needs certainty locks mu and calls
// find.
func (sh *shard) lookup(key string, kh uint64) (uint32, *entry) {
	t := sh.tables.Load()
	if t == nil {
		return 0, nil
	}
	mask := uint32(len(t.index) - 1)
	tag := keyTag(kh)
	for pos := tag & mask; ; pos = (pos + 1) & mask {
		v := t.index[pos].Load()
		if v == 0 {
			return 0, nil
		}
		if uint32(v>>32) != tag {
			continue
		}
		i := uint32(v) - 1
		if int(i>>pageBits) >= len(t.dir) {
			return 0, nil // added after t was published: let the caller look under mu
		}
		if e := t.entry(i); e.key == key {
			return i, e
		}
	}
}

// find is lookup for a caller holding mu: it finds every key the shard holds.
func (sh *shard) find(key string, kh uint64) (uint32, *entry) { return sh.lookup(key, kh) }

// lockEntry is lookup that returns the entry locked. It locks each entry whose index tag
// matches before it compares the key, so that the entry's first cache line, which the
// caller is about to write, is fetched once and for writing (see entry). A tag matches a
// wrong entry about once in 2^32 probes; that entry is then locked and unlocked for nothing.
// The caller must hold no entry lock, and must check entryDead.
func (sh *shard) lockEntry(key string, kh uint64) (uint32, *entry) {
	t := sh.tables.Load()
	if t == nil {
		return 0, nil
	}
	mask := uint32(len(t.index) - 1)
	tag := keyTag(kh)
	for pos := tag & mask; ; pos = (pos + 1) & mask {
		v := t.index[pos].Load()
		if v == 0 {
			return 0, nil
		}
		if uint32(v>>32) != tag {
			continue
		}
		i := uint32(v) - 1
		if int(i>>pageBits) >= len(t.dir) {
			return 0, nil // added after t was published: let the caller look under mu
		}
		e := t.entry(i)
		e.lock.lock()
		if e.key == key {
			return i, e
		}
		e.lock.unlock()
	}
}

// add appends an entry for key, which must not be present, with a copy of the given counts
// (at least one), marks it pending and publishes it. mu is held. It reports false if the
// shard is full.
func (sh *shard) add(key string, kh uint64, slots []slot) (uint32, bool) {
	if sh.count >= maxShardEntries {
		return 0, false
	}
	t := sh.tables.Load()
	if (int(sh.count)+1)*4 > len(t.index)*3 {
		t = sh.publish(t.dir, grownIndex(t.index, 2*len(t.index)))
	}
	i := sh.count
	if int(i>>pageBits) == len(t.dir) {
		dir := append(make([]*page, 0, len(t.dir)+1), t.dir...)
		t = sh.publish(append(dir, new(page)), t.index)
		sh.links = append(sh.links, new(linkPage))
	}
	e := t.entry(i)
	e.key, e.flags = key, entryPending
	e.setSlots(slots)
	*sh.link(i) = link{prev: noEntry, next: noEntry}
	sh.count++
	sh.pending = append(sh.pending, i)
	insertIndex(t.index, keyTag(kh), i+1) // publishes e
	return i, true
}

func (sh *shard) publish(dir []*page, index []atomic.Uint64) *shardTables {
	t := &shardTables{dir: dir, index: index}
	sh.tables.Store(t)
	return t
}

func insertIndex(index []atomic.Uint64, tag, ref uint32) {
	mask := uint32(len(index) - 1)
	pos := tag & mask
	for index[pos].Load() != 0 {
		pos = (pos + 1) & mask
	}
	index[pos].Store(uint64(tag)<<32 | uint64(ref))
}

// grownIndex returns a copy of index with n slots (a power of two, at least 16).
func grownIndex(old []atomic.Uint64, n int) []atomic.Uint64 {
	index := make([]atomic.Uint64, max(n, 16))
	for i := range old {
		if v := old[i].Load(); v != 0 {
			insertIndex(index, uint32(v>>32), uint32(v))
		}
	}
	return index
}

// reset empties the shard, sized for n keys, keeping its version so cursors stay ordered.
// Writers that looked an old entry up find it dead and look again. mu is held.
func (sh *shard) reset(n int) {
	for i := range sh.count {
		e := sh.at(i)
		e.lock.lock()
		e.flags |= entryDead
		e.lock.unlock()
	}
	size := 16
	for size*3 < n*4 {
		size *= 2
	}
	sh.publish(nil, make([]atomic.Uint64, size))
	sh.links = nil
	sh.count = 0
	sh.head, sh.tail = noEntry, noEntry
	sh.pending = nil
}

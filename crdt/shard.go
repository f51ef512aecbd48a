package crdt

import (
	"math"
	"sync"
)

// A shard holds the keys whose hash falls on it, under its own mutex, so writes to different
// shards do not wait for each other.
//
// Layout, chosen to stay under 250 bytes per key with 5 replicas (see BenchmarkStoreMemory):
//   - entries live in fixed-size pages ([][]entry), so growing never copies the entries and
//     the slack is at most one page;
//   - an open-addressing index ([]indexSlot, linear probing, at most 3/4 full) maps a key to
//     its entry: 8 bytes a slot instead of a Go map's ~40 bytes an entry. Keys are never
//     deleted (a counter only grows), so the index needs no tombstones;
//   - each entry keeps its replicas' counts in one exactly sized []slot of 24-byte
//     {replica index, p, n} structs, replica IDs being interned store-wide (replicas.go);
//   - a write touches only the shard header, the entry and its slots; the recency list and
//     the digest are brought up to date later, from the pending list (changes.go).
type shard struct {
	mu sync.Mutex
	// mu guards every field below and every entry in pages. The fields a write changes (mu,
	// version, sometimes pending) or reads (pages, index) come first; the struct is 256 bytes,
	// so in the shards array each shard's hot fields start a cache line and no two shards
	// share one.
	version uint64 // bumped on every change; an entry records the version of its last change
	flushed uint64 // version when pending was last flushed
	count   uint32 // entries in use: pages hold entries 0..count-1
	head    uint32 // least recently changed entry on the recency list, or noEntry
	tail    uint32 // most recently changed entry on the recency list, or noEntry
	pages   [][]entry
	index   []indexSlot
	pending []uint32 // entries changed since flushed, each once, in order of first change

	_ [256 - 8*3 - 4*3 - 4 - 24*3]byte
}

// entry is one key's counter state.
type entry struct {
	key     string
	slots   []slot // one per replica with a non-zero count; never empty
	version uint64 // shard version of the last change
	hash    uint64 // stateHash of key and slots as of the last flush: its part of its digest leaf
	prev    uint32 // recency list neighbours, or noEntry
	next    uint32
}

// slot is one replica's counts in one key.
type slot struct {
	replica uint32 // index in the store's replica table
	p, n    uint64
}

// indexSlot maps a key to its entry. ref is the entry index plus one; 0 marks an empty slot.
// tag is the high 32 bits of the key hash: its low bits give the slot's home position, so the
// index grows without rehashing keys, and comparing it first skips most key comparisons.
type indexSlot struct {
	tag, ref uint32
}

const (
	noEntry  = math.MaxUint32
	pageBits = 8
	pageSize = 1 << pageBits
	// maxShardEntries keeps entry indices and refs inside uint32.
	maxShardEntries = math.MaxUint32 - 1
)

func keyTag(kh uint64) uint32 { return uint32(kh >> 32) }

func (sh *shard) at(i uint32) *entry { return &sh.pages[i>>pageBits][i&(pageSize-1)] }

// find returns the index of key's entry.
func (sh *shard) find(key string, kh uint64) (uint32, bool) {
	if len(sh.index) == 0 {
		return 0, false
	}
	mask := uint32(len(sh.index) - 1)
	tag := keyTag(kh)
	for pos := tag & mask; ; pos = (pos + 1) & mask {
		s := sh.index[pos]
		if s.ref == 0 {
			return 0, false
		}
		if s.tag == tag && sh.at(s.ref-1).key == key {
			return s.ref - 1, true
		}
	}
}

// add appends an entry for key, which must not be present, and indexes it. The caller fills
// in its slots and then calls noteChange. It reports false if the shard is full.
func (sh *shard) add(key string, kh uint64) (uint32, bool) {
	if sh.count >= maxShardEntries {
		return 0, false
	}
	if (int(sh.count)+1)*4 > len(sh.index)*3 {
		sh.growIndex(2 * len(sh.index))
	}
	i := sh.count
	if int(i>>pageBits) == len(sh.pages) {
		sh.pages = append(sh.pages, make([]entry, pageSize))
	}
	sh.count++
	*sh.at(i) = entry{key: key, prev: noEntry, next: noEntry}
	sh.insertIndex(keyTag(kh), i+1)
	return i, true
}

func (sh *shard) insertIndex(tag, ref uint32) {
	mask := uint32(len(sh.index) - 1)
	pos := tag & mask
	for sh.index[pos].ref != 0 {
		pos = (pos + 1) & mask
	}
	sh.index[pos] = indexSlot{tag: tag, ref: ref}
}

// growIndex rebuilds the index with n slots (at least 16, a power of two).
func (sh *shard) growIndex(n int) {
	n = max(n, 16)
	old := sh.index
	sh.index = make([]indexSlot, n)
	for _, s := range old {
		if s.ref != 0 {
			sh.insertIndex(s.tag, s.ref)
		}
	}
}

// reset empties the shard, keeping its version so that cursors stay ordered, and sizes the
// index for n keys.
func (sh *shard) reset(n int) {
	size := 16
	for size*3 < n*4 {
		size *= 2
	}
	sh.index = make([]indexSlot, size)
	sh.pages = nil
	sh.count = 0
	sh.head, sh.tail = noEntry, noEntry
	sh.pending = nil
	sh.flushed = sh.version
}

package crdt

import "slices"

// Change tracking: why a recency list, and why it is updated lazily.
//
// Each shard keeps its entries on an intrusive doubly linked list ordered by their last change
// (version), most recent at the tail, and has its own version, bumped on every change. A
// Cursor is the vector of shard versions a caller has seen; DeltasSince returns each key
// changed since then, once, with its current state, oldest change first. Compared with a
// bounded log of individual deltas that compacts to "send the full state" when it overflows:
//
//   - memory is bounded by the keys (16 bytes each, plus 4 while pending), not by the write
//     rate, and a write allocates nothing;
//   - a hot key written a million times since the cursor is sent once, as its current state,
//     which in a delta-state CRDT is the join of all those deltas;
//   - there is no overflow cliff: a cursor that is very old, from before a Restore, or from
//     another Store instance simply yields every key changed since (up to the whole store,
//     which is what the change log's compaction would send), in pages of maxKeys;
//   - per-shard versions keep writers on different shards off one shared counter.
//
// The price: a delta carries a key's whole state (all its replicas' counts), not just the
// changed replica's. With a handful of replicas a key, that is a few dozen bytes.
//
// A write does not relink the list or update the digest: both would write cache lines of
// other entries and of the digest that another core last wrote, which is what kept two
// goroutines from scaling. It only bumps the versions and, on an entry's first change since
// the last flush, appends the entry to the shard's pending list. flush, run by DeltasSince and
// the digest functions, rehashes the pending entries into the digest leaves and moves them to
// the tail of the list in version order.

// noteChange records a change of entry i of sh, which is locked.
func (sh *shard) noteChange(i uint32) {
	e := sh.at(i)
	if e.version <= sh.flushed { // first change since the last flush
		sh.pending = append(sh.pending, i)
	}
	sh.version++
	e.version = sh.version
}

// flush brings sh's digest leaves and recency list up to date with its pending changes.
// sh is locked.
func (s *Store) flush(sh *shard) {
	if len(sh.pending) == 0 {
		return
	}
	hashes := s.replicas.load().hashes // loaded under the shard lock: it has every replica in sh
	for _, i := range sh.pending {
		e := sh.at(i)
		kh := hashKey(e.key)
		var sum uint64
		for _, sl := range e.slots {
			sum += slotHash(hashes[sl.replica], sl.p, sl.n)
		}
		h := stateHash(kh, sum)
		s.leaves[leafOf(kh)].Add(h - e.hash)
		e.hash = h
	}
	// Pending entries all changed after every entry on the list; in version order they go
	// to its tail.
	byVersion := func(a, b uint32) int {
		va, vb := sh.at(a).version, sh.at(b).version
		if va < vb {
			return -1
		}
		if va > vb {
			return 1
		}
		return 0
	}
	if !slices.IsSortedFunc(sh.pending, byVersion) {
		slices.SortFunc(sh.pending, byVersion)
	}
	for _, i := range sh.pending {
		sh.moveToTail(i)
	}
	sh.flushed = sh.version
	if cap(sh.pending) > 1024 && len(sh.pending) < cap(sh.pending)/4 {
		sh.pending = nil // do not keep a burst's worth of memory
	} else {
		sh.pending = sh.pending[:0]
	}
}

// moveToTail unlinks entry i from the recency list, if it is on it, and appends it.
func (sh *shard) moveToTail(i uint32) {
	e := sh.at(i)
	if sh.tail == i {
		return
	}
	if e.prev != noEntry || sh.head == i { // on the list: unlink
		if e.prev != noEntry {
			sh.at(e.prev).next = e.next
		} else {
			sh.head = e.next
		}
		sh.at(e.next).prev = e.prev // e is not the tail, so e.next exists
	}
	e.prev, e.next = sh.tail, noEntry
	if sh.tail != noEntry {
		sh.at(sh.tail).next = i
	} else {
		sh.head = i
	}
	sh.tail = i
}

// firstAfter returns the oldest entry on the recency list changed after version from, or
// noEntry. It walks in from both ends at once, so it costs the smaller of the number of keys
// changed after from and the number changed before. sh is locked and flushed.
func (sh *shard) firstAfter(from uint64) uint32 {
	if sh.tail == noEntry || sh.at(sh.tail).version <= from {
		return noEntry
	}
	if sh.at(sh.head).version > from {
		return sh.head
	}
	// Invariant: f changed at or before from, b after it; so f is not the tail, nor b the head.
	f, b := sh.head, sh.tail
	for {
		nf := sh.at(f).next
		if sh.at(nf).version > from {
			return nf
		}
		f = nf
		pb := sh.at(b).prev
		if sh.at(pb).version <= from {
			return b
		}
		b = pb
	}
}

// flushAll flushes every shard.
func (s *Store) flushAll() {
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		s.flush(sh)
		sh.mu.Unlock()
	}
}

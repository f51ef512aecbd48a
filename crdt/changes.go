package crdt

// Change tracking: why a recency list, and why it is updated lazily.
//
// Each shard keeps its entries on an intrusive doubly linked list ordered by version, most
// recently changed at the tail; the shard's version counts the changes it has recorded. A
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
//   - versions are per shard and assigned by flush (below), so writers share no counter.
//
// The price: a delta carries a key's whole state (all its replicas' counts), not just the
// changed replica's. With a handful of replicas a key, that is a few dozen bytes.
//
// A write does not relink the list, bump a version or update the digest: each would write
// cache lines of shared shard state or of other entries that another core last wrote, and
// that traffic, not the work, is what kept two goroutines from going faster than one. A write
// only updates its entry's counts under the entry's lock and, on the entry's first change
// since the last flush, flags it and appends it to the shard's pending list. flush, run by
// DeltasSince and the digest functions under the shard's mu, rehashes each pending entry into
// its digest leaf, gives it the next shard version and moves it to the tail of the recency
// list. So versions, and the order DeltasSince returns keys in, follow when a flush first saw
// a key changed: oldest flush first, and within one flush, first change first.

// flush brings sh's digest leaves, versions and recency list up to date with its pending
// changes. mu is held.
func (s *Store) flush(sh *shard) {
	if len(sh.pending) == 0 {
		return
	}
	for _, i := range sh.pending {
		e := sh.at(i)
		e.lock.lock()
		e.flags &^= entryPending
		hashes := s.replicas.load().hashes // under the entry lock: it has every replica in e
		var sum uint64
		for j := range e.numSlots() {
			sl := e.slotAt(j)
			sum += slotHash(hashes[sl.replica], sl.p, sl.n)
		}
		e.lock.unlock()
		kh := hashKey(e.key)
		h := stateHash(kh, sum)
		s.leaves[leafOf(kh)].Add(h - e.hash)
		e.hash = h
		sh.version++
		sh.link(i).version = sh.version
		sh.moveToTail(i)
	}
	if cap(sh.pending) > 1024 && len(sh.pending) < cap(sh.pending)/4 {
		sh.pending = nil // do not keep a burst's worth of memory
	} else {
		sh.pending = sh.pending[:0]
	}
}

// moveToTail unlinks entry i from the recency list, if it is on it, and appends it.
func (sh *shard) moveToTail(i uint32) {
	l := sh.link(i)
	if sh.tail == i {
		return
	}
	if l.prev != noEntry || sh.head == i { // on the list: unlink
		if l.prev != noEntry {
			sh.link(l.prev).next = l.next
		} else {
			sh.head = l.next
		}
		sh.link(l.next).prev = l.prev // e is not the tail, so l.next exists
	}
	l.prev, l.next = sh.tail, noEntry
	if sh.tail != noEntry {
		sh.link(sh.tail).next = i
	} else {
		sh.head = i
	}
	sh.tail = i
}

// firstAfter returns the oldest entry on the recency list changed after version from, or
// noEntry. It walks in from both ends at once, so it costs the smaller of the number of keys
// changed after from and the number changed before. sh is locked and flushed.
func (sh *shard) firstAfter(from uint64) uint32 {
	if sh.tail == noEntry || sh.link(sh.tail).version <= from {
		return noEntry
	}
	if sh.link(sh.head).version > from {
		return sh.head
	}
	// Invariant: f changed at or before from, b after it; so f is not the tail, nor b the head.
	f, b := sh.head, sh.tail
	for {
		nf := sh.link(f).next
		if sh.link(nf).version > from {
			return nf
		}
		f = nf
		pb := sh.link(b).prev
		if sh.link(pb).version <= from {
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

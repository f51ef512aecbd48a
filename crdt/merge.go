package crdt

import "fmt"

// Merge joins st into the store: for every key and replica, the store keeps the larger of
// its own and st's P and N counts. It returns the keys whose state changed, each once, which
// is what majority writes and re-gossip need. Merge is commutative, associative and
// idempotent, so states and deltas may arrive duplicated, reordered or late.
//
// A merge may leave a key's value outside the int64 range (each side stayed in range on its
// own); the counts are kept exactly and Value reports ErrValueOverflow. Merge returns
// ErrTooManyReplicas, having merged nothing, if st would take the store past MaxReplicas, and
// ErrStoreFull, with the keys merged so far, if a new key finds its shard full.
func (s *Store) Merge(st State) ([]string, error) {
	if len(st.keys) == 0 {
		return nil, nil
	}
	idx, err := s.replicas.internAll(st.replicas)
	if err != nil {
		return nil, err
	}
	khs, order, starts := s.groupByShard(st.keys)
	var changed []string
	for si := range s.shards {
		if starts[si] == starts[si+1] {
			continue
		}
		sh := &s.shards[si]
		sh.mu.Lock()
		sh.nextMerge()
		for _, k := range order[starts[si]:starts[si+1]] {
			report, err := s.mergeKey(sh, st.keys[k], khs[k], st.countsOf(int(k)), idx)
			if err != nil {
				sh.mu.Unlock()
				return changed, err
			}
			if report {
				changed = append(changed, st.keys[k])
			}
		}
		sh.mu.Unlock()
	}
	return changed, nil
}

// nextMerge starts a new Merge in sh, whose mu is held, by advancing its merges count. When
// the count wraps, it clears the counts the entries hold, so none is mistaken for the new one.
func (sh *shard) nextMerge() {
	sh.merges = (sh.merges + 1) & (1<<(32-mergeShift) - 1)
	if sh.merges != 0 {
		return
	}
	sh.merges = 1
	for i := range sh.count {
		e := sh.at(i)
		e.lock.lock()
		e.flags &= flagBits
		e.lock.unlock()
	}
}

// groupByShard hashes keys and orders their indices by shard: the keys of shard i are
// order[starts[i]:starts[i+1]], so each shard is locked once.
func (s *Store) groupByShard(keys []string) (khs []uint64, order []int32, starts []int32) {
	khs = make([]uint64, len(keys))
	starts = make([]int32, len(s.shards)+1)
	for k, key := range keys {
		khs[k] = hashKey(key)
		starts[(khs[k]&s.mask)+1]++
	}
	for i := 1; i < len(starts); i++ {
		starts[i] += starts[i-1]
	}
	next := make([]int32, len(s.shards))
	copy(next, starts)
	order = make([]int32, len(keys))
	for k, kh := range khs {
		si := kh & s.mask
		order[next[si]] = int32(k)
		next[si]++
	}
	return khs, order, starts
}

// mergeKey joins counts (replica indices in the State, mapped to the store's by idx) into
// key's entry in sh, whose mu is held, and reports whether the entry changed and this Merge
// has not reported it yet.
func (s *Store) mergeKey(sh *shard, key string, kh uint64, counts []slot, idx []uint32) (bool, error) {
	i, e := sh.find(key, kh)
	if e == nil {
		var buf [8]slot // add copies the counts: most keys need no heap copy here
		slots := buf[:0]
		for _, c := range counts {
			slots = raiseSlot(slots, idx[c.replica], c.p, c.n)
		}
		if len(slots) == 0 {
			return false, nil
		}
		i, ok := sh.add(key, kh, slots)
		if !ok {
			return false, fmt.Errorf("%w: a shard holds %d keys; use more shards", ErrStoreFull, maxShardEntries)
		}
		e := sh.at(i)
		e.lock.lock() // published: a writer may have found it already
		e.flags |= sh.merges << mergeShift
		e.lock.unlock()
		return true, nil
	}
	e.lock.lock()
	defer e.lock.unlock()
	changed, extra := false, 0
	reported := e.flags>>mergeShift == sh.merges
	for _, c := range counts {
		j := e.findSlot(idx[c.replica])
		switch {
		case j >= 0:
			sl := e.slotAt(j)
			if c.p > sl.p {
				sl.p, changed = c.p, true
			}
			if c.n > sl.n {
				sl.n, changed = c.n, true
			}
		case c.p != 0 || c.n != 0:
			extra++
		}
	}
	if extra > 0 {
		var buf [8]slot
		slots := e.appendSlots(buf[:0])
		for _, c := range counts {
			slots = raiseSlot(slots, idx[c.replica], c.p, c.n)
		}
		e.setSlots(slots)
		changed = true
	}
	if !changed {
		return false, nil
	}
	if e.flags&entryPending == 0 {
		e.flags |= entryPending
		sh.pending = append(sh.pending, i)
	}
	e.flags = e.flags&flagBits | sh.merges<<mergeShift
	return !reported, nil
}

func findSlot(slots []slot, r uint32) int {
	for j := range slots {
		if slots[j].replica == r {
			return j
		}
	}
	return -1
}

// raiseSlot joins (r, p, n) into slots, appending a slot for r if it has none and the counts
// are not zero.
func raiseSlot(slots []slot, r uint32, p, n uint64) []slot {
	if j := findSlot(slots, r); j >= 0 {
		slots[j].p = max(slots[j].p, p)
		slots[j].n = max(slots[j].n, n)
		return slots
	}
	if p == 0 && n == 0 {
		return slots
	}
	return append(slots, slot{replica: r, p: p, n: n})
}

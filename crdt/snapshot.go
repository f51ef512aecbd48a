package crdt

// Snapshot returns the state of every key. It copies one shard at a time, so writes that run
// meanwhile may be in it or not; each key's state is one the key really had, so the snapshot
// is a valid state that later merges or anti-entropy bring up to date.
func (s *Store) Snapshot() State {
	b := newStateBuilder(s.replicas)
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		for i := range sh.count {
			b.add(sh.at(i))
		}
		sh.mu.Unlock()
	}
	return b.st
}

// States returns the state of each of keys the store holds; it skips keys it does not hold
// and invalid keys. Anti-entropy ships the States of the keys CompareDigest found.
func (s *Store) States(keys []string) State {
	b := newStateBuilder(s.replicas)
	for _, key := range keys {
		if checkKey(key) != nil {
			continue
		}
		kh := hashKey(key)
		sh := s.shardFor(kh)
		sh.mu.Lock()
		if _, e := sh.find(key, kh); e != nil {
			b.add(e)
		}
		sh.mu.Unlock()
	}
	return b.st
}

// Restore replaces the store's content with st. It is meant for startup, before the store
// is shared, but is safe to call at any time: it holds every shard's lock while it works, and
// a write that races with it lands either before it (and is replaced) or after it.
// Cursors issued before stay valid: every restored key counts as changed after them. The
// replica table keeps what it had and gains st's replicas. Restore returns
// ErrTooManyReplicas, having changed nothing, if st would take the store past MaxReplicas,
// and ErrStoreFull, having restored part of st, if a shard cannot hold its keys.
func (s *Store) Restore(st State) error {
	idx, err := s.replicas.internAll(st.replicas)
	if err != nil {
		return err
	}
	khs, order, starts := s.groupByShard(st.keys)
	for si := range s.shards {
		s.shards[si].mu.Lock()
	}
	defer func() {
		for si := range s.shards {
			s.shards[si].mu.Unlock()
		}
	}()
	for i := range s.leaves {
		s.leaves[i].Store(0)
	}
	for si := range s.shards {
		sh := &s.shards[si]
		sh.reset(int(starts[si+1] - starts[si]))
		for _, k := range order[starts[si]:starts[si+1]] {
			if _, err := s.mergeKey(sh, st.keys[k], khs[k], st.countsOf(int(k)), idx); err != nil {
				return err
			}
		}
	}
	return nil
}

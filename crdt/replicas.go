package crdt

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
)

// MaxReplicas is the most distinct replica IDs one Store tracks. Entries refer to replicas by
// a small index into a store-wide table instead of repeating the ID in every key.
const MaxReplicas = 1 << 20

// replicaTable interns replica IDs to small indices, store-wide. It is read on every write and
// changed only when a replica is seen for the first time, so readers load an immutable
// replicaSet without locking, and a writer copies the set and swaps it in (copy-on-write).
type replicaTable struct {
	mu  sync.Mutex // serializes writers of cur; readers only load it
	cur atomic.Pointer[replicaSet]
	// last is the replica interned most recently through intern: a peer writes under its own
	// ID all the time, and comparing with it is cheaper than hashing it into byID.
	last atomic.Pointer[internedReplica]
}

type internedReplica struct {
	id  ReplicaID
	idx uint32
}

// replicaSet is an immutable snapshot of the table. Indices are stable: a later set extends
// an earlier one.
type replicaSet struct {
	ids    []ReplicaID
	hashes []uint64 // hashReplica of ids[i]
	byID   map[ReplicaID]uint32
}

func newReplicaTable() *replicaTable {
	t := &replicaTable{}
	t.cur.Store(&replicaSet{byID: make(map[ReplicaID]uint32)})
	return t
}

func (t *replicaTable) load() *replicaSet { return t.cur.Load() }

// intern returns r's index, adding r if it is new.
func (t *replicaTable) intern(r ReplicaID) (uint32, error) {
	if last := t.last.Load(); last != nil && last.id == r {
		return last.idx, nil
	}
	return t.internSlow(r)
}

func (t *replicaTable) internSlow(r ReplicaID) (uint32, error) {
	i, ok := t.load().byID[r]
	if !ok {
		idx, err := t.internAll([]ReplicaID{r})
		if err != nil {
			return 0, err
		}
		i = idx[0]
	}
	t.last.Store(&internedReplica{id: r, idx: i})
	return i, nil
}

// internAll returns the index of each of rs, adding the new ones in one copy of the table.
func (t *replicaTable) internAll(rs []ReplicaID) ([]uint32, error) {
	idx := make([]uint32, len(rs))
	cur := t.load()
	missing := false
	for i, r := range rs {
		j, ok := cur.byID[r]
		idx[i] = j
		missing = missing || !ok
	}
	if !missing {
		return idx, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur = t.load()
	next := &replicaSet{ids: cur.ids, hashes: cur.hashes, byID: maps.Clone(cur.byID)}
	for i, r := range rs {
		if j, ok := next.byID[r]; ok {
			idx[i] = j
			continue
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if len(next.ids) >= MaxReplicas {
			return nil, fmt.Errorf("%w: the store already tracks %d replica ids", ErrTooManyReplicas, MaxReplicas)
		}
		j := uint32(len(next.ids))
		// Appending may write past cur's length into a shared array; readers of cur never
		// look past their own length, and writers are serialized by mu.
		next.ids = append(next.ids, r)
		next.hashes = append(next.hashes, hashReplica(r))
		next.byID[r] = j
		idx[i] = j
	}
	t.cur.Store(next)
	return idx, nil
}

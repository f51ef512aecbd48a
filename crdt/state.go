package crdt

import (
	"iter"
	"slices"
)

// State is a set of keys' counter states. It is what Merge takes and what Snapshot,
// DeltasSince and States give: in a delta-state CRDT a delta, a batch of deltas and a full
// state are all states, and merge the same way. Send one over the network or to disk with
// AppendBinary and decode it with UnmarshalBinary or AppendEncoded.
//
// A State may hold a key more than once (for example after AppendEncoded of overlapping
// records); merging joins the copies. The zero State is empty. A State is not safe for
// concurrent change, and a copy shares its arrays with the original: keep appending to one
// copy only.
type State struct {
	replicas []ReplicaID
	byID     map[ReplicaID]uint32 // index of replicas, built by AppendEncoded
	keys     []string
	ends     []uint32 // key i's counts are counts[ends[i-1]:ends[i]] (from 0 for i == 0)
	counts   []slot   // replica is an index into replicas; never p == n == 0
}

// Len returns the number of keys in st (counting a repeated key each time).
func (st State) Len() int { return len(st.keys) }

// Keys returns st's keys in order.
func (st State) Keys() []string { return slices.Clone(st.keys) }

// All yields each key of st with a copy of its counter.
func (st State) All() iter.Seq2[string, PNCounter] {
	return func(yield func(string, PNCounter) bool) {
		for i, key := range st.keys {
			var c PNCounter
			for _, sl := range st.countsOf(i) {
				c.p.raise(st.replicas[sl.replica], sl.p)
				c.n.raise(st.replicas[sl.replica], sl.n)
			}
			if !yield(key, c) {
				return
			}
		}
	}
}

func (st *State) countsOf(i int) []slot {
	start := uint32(0)
	if i > 0 {
		start = st.ends[i-1]
	}
	return st.counts[start:st.ends[i]]
}

// stateBuilder builds a State from a store's entries, numbering in the State only the
// replicas that the chosen entries use.
type stateBuilder struct {
	st       State
	replicas *replicaTable
	ids      []ReplicaID // the store's replica table, as last loaded
	remap    []uint32    // store replica index -> State replica index, or noEntry
}

func newStateBuilder(replicas *replicaTable) *stateBuilder {
	return &stateBuilder{replicas: replicas}
}

// add appends a copy of e's state.
func (b *stateBuilder) add(e *entry) {
	e.lock.lock()
	defer e.lock.unlock()
	// Loaded under the entry lock, the table has every replica in e.
	if ids := b.replicas.load().ids; len(ids) > len(b.ids) {
		for len(b.remap) < len(ids) {
			b.remap = append(b.remap, noEntry)
		}
		b.ids = ids
	}
	b.st.keys = append(b.st.keys, e.key)
	for k := range e.numSlots() {
		sl := e.slotAt(k)
		j := b.remap[sl.replica]
		if j == noEntry {
			j = uint32(len(b.st.replicas))
			b.st.replicas = append(b.st.replicas, b.ids[sl.replica])
			b.remap[sl.replica] = j
		}
		b.st.counts = append(b.st.counts, slot{replica: j, p: sl.p, n: sl.n})
	}
	b.st.ends = append(b.st.ends, uint32(len(b.st.counts)))
}

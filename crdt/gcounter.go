package crdt

import (
	"fmt"
	"maps"
	"slices"
)

// GCounter is a grow-only counter: one uint64 count per replica, value = sum of the counts,
// merge = pointwise max. It is a delta-state CRDT: Increment returns a delta that is itself a
// GCounter holding only the changed count, so deltas merge like states and can be batched,
// duplicated and reordered.
//
// The zero GCounter is an empty counter ready to use. A GCounter is not safe for concurrent
// use; copy it with Clone, since plain assignment shares its counts.
type GCounter struct {
	counts map[ReplicaID]uint64 // never holds a zero count
}

// Increment adds n to replica r's count and returns the delta to send to other replicas.
// It returns ErrBadReplica for an invalid r, ErrBadAmount for n == 0, and ErrOverflow,
// changing nothing, if r's count or the counter's value would pass math.MaxUint64.
func (g *GCounter) Increment(r ReplicaID, n uint64) (GCounter, error) {
	if err := r.Validate(); err != nil {
		return GCounter{}, err
	}
	if n == 0 {
		return GCounter{}, fmt.Errorf("%w: increment must be positive", ErrBadAmount)
	}
	if _, ok := g.sum().addUint(n).uint64(); !ok {
		return GCounter{}, fmt.Errorf("%w: adding %d would take the value past the uint64 range", ErrOverflow, n)
	}
	return g.increment(r, n)
}

// increment adds n to r's count, refusing only a count that would pass the uint64 range.
// Increment and PNCounter.Add check the value range first.
func (g *GCounter) increment(r ReplicaID, n uint64) (GCounter, error) {
	c := g.counts[r]
	if c+n < c {
		return GCounter{}, fmt.Errorf("%w: replica %s count %d plus %d would pass the uint64 range; use a new incarnation", ErrOverflow, r, c, n)
	}
	if g.counts == nil {
		g.counts = make(map[ReplicaID]uint64)
	}
	g.counts[r] = c + n
	return GCounter{counts: map[ReplicaID]uint64{r: c + n}}, nil
}

// Value returns the sum of the counts, or ErrValueOverflow if it passes math.MaxUint64 (which
// only a merge of replicas that each stayed in range can cause).
func (g GCounter) Value() (uint64, error) {
	v, ok := g.sum().uint64()
	if !ok {
		return 0, fmt.Errorf("%w: the merged counts sum past the uint64 range", ErrValueOverflow)
	}
	return v, nil
}

func (g GCounter) sum() wide {
	var w wide
	for _, c := range g.counts {
		w = w.addUint(c)
	}
	return w
}

// Count returns replica r's count (zero if r never incremented).
func (g GCounter) Count(r ReplicaID) uint64 { return g.counts[r] }

// Replicas returns the replicas with a non-zero count, sorted.
func (g GCounter) Replicas() []ReplicaID {
	return slices.SortedFunc(maps.Keys(g.counts), ReplicaID.Compare)
}

// Merge sets g to the join of g and o: each replica's count becomes the larger of the two.
// Merge is commutative, associative and idempotent.
func (g *GCounter) Merge(o GCounter) {
	for r, c := range o.counts {
		g.raise(r, c)
	}
}

// raise sets r's count to c if c is larger.
func (g *GCounter) raise(r ReplicaID, c uint64) {
	if c == 0 || g.counts[r] >= c {
		return
	}
	if g.counts == nil {
		g.counts = make(map[ReplicaID]uint64)
	}
	g.counts[r] = c
}

// Clone returns an independent copy of g.
func (g GCounter) Clone() GCounter {
	if len(g.counts) == 0 {
		return GCounter{}
	}
	return GCounter{counts: maps.Clone(g.counts)}
}

// Equal reports whether g and o hold the same count for every replica.
func (g GCounter) Equal(o GCounter) bool { return maps.Equal(g.counts, o.counts) }

package crdt

import (
	"fmt"
	"slices"
)

// PNCounter is a counter that can go up and down: two G-Counters, P for additions and N for
// subtractions, value = sum(P) - sum(N). Like GCounter it is a delta-state CRDT: Add returns a
// delta that is itself a PNCounter and merges like one.
//
// The value is an int64. Add refuses (ErrOverflow) a write that would take the value out of
// the int64 range as this replica sees it. Two replicas that each stay in range can still
// merge to a value outside it; Value then returns ErrValueOverflow, never a wrapped number.
//
// The zero PNCounter is an empty counter ready to use. A PNCounter is not safe for concurrent
// use; copy it with Clone.
type PNCounter struct {
	p, n GCounter
}

// Add adds amount (negative to subtract) under replica r and returns the delta to send to
// other replicas. It returns ErrBadReplica for an invalid r, ErrBadAmount for amount == 0, and
// ErrOverflow, changing nothing, if r's own P or N count would pass math.MaxUint64 or the
// value would leave the int64 range.
func (c *PNCounter) Add(r ReplicaID, amount int64) (PNCounter, error) {
	if err := r.Validate(); err != nil {
		return PNCounter{}, err
	}
	if amount == 0 {
		return PNCounter{}, fmt.Errorf("%w: amount must be non-zero", ErrBadAmount)
	}
	if _, ok := c.sum().addInt(amount).int64(); !ok {
		return PNCounter{}, fmt.Errorf("%w: adding %d would take the value out of the int64 range", ErrOverflow, amount)
	}
	side := &c.p
	if amount < 0 {
		side = &c.n
	}
	d, err := side.increment(r, magnitude(amount))
	if err != nil {
		return PNCounter{}, err
	}
	if amount < 0 {
		return PNCounter{n: d}, nil
	}
	return PNCounter{p: d}, nil
}

// Value returns sum(P) - sum(N), or ErrValueOverflow if the merged value is outside the int64
// range.
func (c PNCounter) Value() (int64, error) {
	v, ok := c.sum().int64()
	if !ok {
		return 0, fmt.Errorf("%w: the merged value is outside the int64 range; add to bring it back", ErrValueOverflow)
	}
	return v, nil
}

func (c PNCounter) sum() wide {
	w := c.p.sum()
	for _, x := range c.n.counts {
		w = w.subUint(x)
	}
	return w
}

// Counts returns replica r's P (total added) and N (total subtracted) counts.
func (c PNCounter) Counts(r ReplicaID) (p, n uint64) { return c.p.Count(r), c.n.Count(r) }

// Replicas returns the replicas with a non-zero P or N count, sorted.
func (c PNCounter) Replicas() []ReplicaID {
	rs := append(c.p.Replicas(), c.n.Replicas()...)
	slices.SortFunc(rs, ReplicaID.Compare)
	return slices.Compact(rs)
}

// Merge sets c to the join of c and o (pointwise max of P and of N). Merge is commutative,
// associative and idempotent.
func (c *PNCounter) Merge(o PNCounter) {
	c.p.Merge(o.p)
	c.n.Merge(o.n)
}

// Clone returns an independent copy of c.
func (c PNCounter) Clone() PNCounter { return PNCounter{p: c.p.Clone(), n: c.n.Clone()} }

// Equal reports whether c and o hold the same P and N counts for every replica.
func (c PNCounter) Equal(o PNCounter) bool { return c.p.Equal(o.p) && c.n.Equal(o.n) }

package crdt

import (
	"fmt"
	"slices"
	"strings"
)

// ReplicaCounts is what one store holds for one replica: the replica's P and N counts in
// every key where it has any, sorted by key. A peer that starts up compares its own
// ReplicaCounts with what its peers hold for its replica ID to learn whether it is behind
// (see the package documentation for the rule).
type ReplicaCounts struct {
	replica ReplicaID
	keys    []string
	counts  []slot // counts[i] is for keys[i]; replica is unused
}

// Replica returns the replica the counts are for.
func (rc ReplicaCounts) Replica() ReplicaID { return rc.replica }

// Len returns the number of keys with a count for the replica.
func (rc ReplicaCounts) Len() int { return len(rc.keys) }

// Counts returns the replica's P and N counts in key (zero if it has none there).
func (rc ReplicaCounts) Counts(key string) (p, n uint64) {
	if i, ok := slices.BinarySearch(rc.keys, key); ok {
		return rc.counts[i].p, rc.counts[i].n
	}
	return 0, 0
}

// Behind returns the keys, sorted, where theirs holds a higher P or N count than rc. If it
// is not empty, the store rc came from has lost writes of the replica: the replica must not
// write again with this ID (see the package documentation). Counts for different replicas
// are not comparable; Behind returns an error wrapping ErrBadReplica then.
func (rc ReplicaCounts) Behind(theirs ReplicaCounts) ([]string, error) {
	if rc.replica != theirs.replica {
		return nil, fmt.Errorf("%w: comparing counts of %s with counts of %s", ErrBadReplica, rc.replica, theirs.replica)
	}
	var behind []string
	for i, key := range theirs.keys {
		p, n := rc.Counts(key)
		if theirs.counts[i].p > p || theirs.counts[i].n > n {
			behind = append(behind, key)
		}
	}
	return behind, nil
}

// ReplicaCounts returns what the store holds for replica r. It scans every key.
func (s *Store) ReplicaCounts(r ReplicaID) ReplicaCounts {
	rc := ReplicaCounts{replica: r}
	ri, ok := s.replicas.load().byID[r]
	if !ok {
		return rc
	}
	type kc struct {
		key string
		c   slot
	}
	var found []kc
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		for i := range sh.count {
			e := sh.at(i)
			e.lock.lock()
			if j := e.findSlot(ri); j >= 0 {
				found = append(found, kc{e.key, *e.slotAt(j)})
			}
			e.lock.unlock()
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(found, func(a, b kc) int { return strings.Compare(a.key, b.key) })
	rc.keys = make([]string, len(found))
	rc.counts = make([]slot, len(found))
	for i, f := range found {
		rc.keys[i], rc.counts[i] = f.key, f.c
	}
	return rc
}

// MaxIncarnation returns the highest incarnation of node that the store has ever seen (in a
// write, merge or restore), and false if it has seen none. A peer taking a new incarnation
// picks one above what it and its peers report.
func (s *Store) MaxIncarnation(node string) (uint64, bool) {
	var highest uint64
	found := false
	for _, r := range s.replicas.load().ids {
		if r.Node == node && (!found || r.Incarnation > highest) {
			highest, found = r.Incarnation, true
		}
	}
	return highest, found
}

// Encoding of ReplicaCounts: formatVersion, [kind, [node, incarnation], [[key, p, n], ...]].

// MarshalBinary encodes rc. It implements encoding.BinaryMarshaler.
func (rc ReplicaCounts) MarshalBinary() ([]byte, error) { return rc.AppendBinary(nil) }

// AppendBinary appends the encoding of rc to b. It implements encoding.BinaryAppender.
func (rc ReplicaCounts) AppendBinary(b []byte) ([]byte, error) {
	enc := newEncoder(b, kindReplicaCounts, 2)
	enc.replica(rc.replica)
	enc.arrayLen(len(rc.keys))
	for i, key := range rc.keys {
		enc.arrayLen(3)
		enc.str(key)
		enc.uint(rc.counts[i].p)
		enc.uint(rc.counts[i].n)
	}
	return enc.finish()
}

// UnmarshalBinary replaces rc with the counts encoded in b, or returns ErrBadEncoding and
// leaves rc unchanged. Keys must be valid and strictly increasing. It implements
// encoding.BinaryUnmarshaler.
func (rc *ReplicaCounts) UnmarshalBinary(b []byte) error {
	dec, err := newDecoder(b, kindReplicaCounts, 2)
	if err != nil {
		return err
	}
	defer dec.release()
	out := ReplicaCounts{}
	if out.replica, err = dec.replica(); err != nil {
		return err
	}
	// An entry takes at least 5 bytes: array, key header and byte, p, n.
	n, err := dec.arrayLen(5)
	if err != nil {
		return err
	}
	for range n {
		if f, err := dec.arrayLen(1); err != nil {
			return err
		} else if f != 3 {
			return fmt.Errorf("%w: replica count has %d fields, want 3", ErrBadEncoding, f)
		}
		key, err := dec.str(1, MaxKeyLen)
		if err != nil {
			return err
		}
		if len(out.keys) > 0 && key <= out.keys[len(out.keys)-1] {
			return fmt.Errorf("%w: replica count keys not strictly increasing at %q", ErrBadEncoding, key)
		}
		var c slot
		if c.p, err = dec.uint(); err != nil {
			return err
		}
		if c.n, err = dec.uint(); err != nil {
			return err
		}
		out.keys = append(out.keys, key)
		out.counts = append(out.counts, c)
	}
	if err := dec.end(); err != nil {
		return err
	}
	*rc = out
	return nil
}

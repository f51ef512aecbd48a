package crdt

import (
	"fmt"
	"math"
	"slices"
)

// Encoding of a State:
//
//	formatVersion, [kind, replicas, keys]
//	replicas: [[node, incarnation], ...]
//	keys:     [[key, [replica index, p, n, replica index, p, n, ...]], ...]
//
// Replica IDs are written once and referred to by index, so a key with five replicas costs
// its name plus about fifteen small integers. A per-key record for disk (Store.AppendKeyRecord)
// is a State holding one key.

// MarshalBinary encodes st. It implements encoding.BinaryMarshaler.
func (st State) MarshalBinary() ([]byte, error) { return st.AppendBinary(nil) }

// AppendBinary appends the encoding of st to b. It implements encoding.BinaryAppender.
func (st State) AppendBinary(b []byte) ([]byte, error) {
	enc := newEncoder(b, kindState, 2)
	enc.arrayLen(len(st.replicas))
	for _, r := range st.replicas {
		enc.replica(r)
	}
	enc.arrayLen(len(st.keys))
	for i, key := range st.keys {
		enc.arrayLen(2)
		enc.str(key)
		counts := st.countsOf(i)
		enc.arrayLen(3 * len(counts))
		for _, c := range counts {
			enc.uint(uint64(c.replica))
			enc.uint(c.p)
			enc.uint(c.n)
		}
	}
	return enc.finish()
}

// UnmarshalBinary replaces st with the State encoded in b, or returns ErrBadEncoding and
// leaves st unchanged. It implements encoding.BinaryUnmarshaler.
func (st *State) UnmarshalBinary(b []byte) error {
	var out State
	if err := out.AppendEncoded(b); err != nil {
		return err
	}
	*st = out
	return nil
}

// AppendEncoded decodes b, an encoded State (such as a record from Store.AppendKeyRecord),
// and appends its keys to st. It is how a store is rebuilt from many per-key records: append
// each record, then Restore the result. Counts of zero are skipped, and a key left with none
// is dropped. On error (ErrBadEncoding) st is unchanged.
func (st *State) AppendEncoded(b []byte) error {
	dec, err := newDecoder(b, kindState, 2)
	if err != nil {
		return err
	}
	defer dec.release()
	// A replica takes at least 4 bytes: array, node header and byte, incarnation.
	nrep, err := dec.arrayLen(4)
	if err != nil {
		return err
	}
	remap := make([]uint32, nrep) // index in b -> index in st
	// Build the replica index if st has none yet, or if st is a copy whose index another copy
	// extended.
	if st.byID == nil || len(st.byID) != len(st.replicas) {
		st.byID = make(map[ReplicaID]uint32, len(st.replicas))
		for i, r := range st.replicas {
			st.byID[r] = uint32(i)
		}
	}
	// Appended replicas are kept only if everything decodes; undo them otherwise.
	nrepBefore, nkeysBefore, ncountsBefore := len(st.replicas), len(st.keys), len(st.counts)
	undo := func() {
		for _, r := range st.replicas[nrepBefore:] {
			delete(st.byID, r)
		}
		st.replicas = st.replicas[:nrepBefore]
		st.keys, st.ends, st.counts = st.keys[:nkeysBefore], st.ends[:nkeysBefore], st.counts[:ncountsBefore]
	}
	if err := st.decodeInto(dec, remap); err != nil {
		undo()
		return err
	}
	return nil
}

func (st *State) decodeInto(dec *decoder, remap []uint32) error {
	for i := range remap {
		r, err := dec.replica()
		if err != nil {
			return err
		}
		j, ok := st.byID[r]
		if !ok {
			if len(st.replicas) >= MaxReplicas {
				return fmt.Errorf("%w: more than %d replica ids", ErrBadEncoding, MaxReplicas)
			}
			j = uint32(len(st.replicas))
			st.replicas = append(st.replicas, r)
			st.byID[r] = j
		}
		remap[i] = j
	}
	// A key takes at least 7 bytes: array, key header and byte, counts array, one count.
	nkeys, err := dec.arrayLen(7)
	if err != nil {
		return err
	}
	st.keys = slices.Grow(st.keys, nkeys) // bounded by the input size, checked above
	st.ends = slices.Grow(st.ends, nkeys)
	for k := range nkeys {
		if n, err := dec.arrayLen(1); err != nil {
			return err
		} else if n != 2 {
			return fmt.Errorf("%w: key state has %d fields, want 2", ErrBadEncoding, n)
		}
		key, err := dec.str(1, MaxKeyLen)
		if err != nil {
			return err
		}
		n, err := dec.arrayLen(1)
		if err != nil {
			return err
		}
		if n%3 != 0 {
			return fmt.Errorf("%w: key %q has %d count fields, not a multiple of 3", ErrBadEncoding, key, n)
		}
		if k == 0 {
			// Guess that every key has as many counts as the first, within what the input
			// can hold (3 bytes a count), to spare the copies of growing by appends.
			st.counts = slices.Grow(st.counts, min(nkeys*(n/3), dec.r.Len()/3))
		}
		start := len(st.counts)
		for range n / 3 {
			ri, err := dec.uint()
			if err != nil {
				return err
			}
			if ri >= uint64(len(remap)) {
				return fmt.Errorf("%w: key %q refers to replica %d of %d", ErrBadEncoding, key, ri, len(remap))
			}
			p, err := dec.uint()
			if err != nil {
				return err
			}
			n, err := dec.uint()
			if err != nil {
				return err
			}
			if p != 0 || n != 0 {
				st.counts = append(st.counts, slot{replica: remap[ri], p: p, n: n})
			}
		}
		if len(st.counts) == start {
			continue // no counts: the key is not there
		}
		if len(st.counts) > math.MaxUint32 {
			return fmt.Errorf("%w: state too large", ErrBadEncoding)
		}
		st.keys = append(st.keys, key)
		st.ends = append(st.ends, uint32(len(st.counts)))
	}
	return dec.end()
}

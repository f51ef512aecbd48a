package crdt

import "fmt"

// Encodings of the standalone counters:
//
//	GCounter:  formatVersion, [kind, [[replica, count], ...]]
//	PNCounter: formatVersion, [kind, [[replica, p, n], ...]]
//	replica:   [node, incarnation]
//
// Entries are written sorted by replica. A decoder accepts any order, merges duplicate
// replicas (largest count wins) and skips zero counts, so decoding is itself a merge.

// MarshalBinary encodes g. It implements encoding.BinaryMarshaler.
func (g GCounter) MarshalBinary() ([]byte, error) { return g.AppendBinary(nil) }

// AppendBinary appends the encoding of g to b. It implements encoding.BinaryAppender.
func (g GCounter) AppendBinary(b []byte) ([]byte, error) {
	enc := newEncoder(b, kindGCounter, 1)
	rs := g.Replicas()
	enc.arrayLen(len(rs))
	for _, r := range rs {
		enc.arrayLen(2)
		enc.replica(r)
		enc.uint(g.counts[r])
	}
	return enc.finish()
}

// UnmarshalBinary replaces g with the counter encoded in b, or returns ErrBadEncoding and
// leaves g unchanged. It implements encoding.BinaryUnmarshaler.
func (g *GCounter) UnmarshalBinary(b []byte) error {
	var out GCounter
	err := decodeCounts(b, kindGCounter, 2, func(r ReplicaID, p, _ uint64) { out.raise(r, p) })
	if err != nil {
		return err
	}
	*g = out
	return nil
}

// MarshalBinary encodes c. It implements encoding.BinaryMarshaler.
func (c PNCounter) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// AppendBinary appends the encoding of c to b. It implements encoding.BinaryAppender.
func (c PNCounter) AppendBinary(b []byte) ([]byte, error) {
	enc := newEncoder(b, kindPNCounter, 1)
	rs := c.Replicas()
	enc.arrayLen(len(rs))
	for _, r := range rs {
		p, n := c.Counts(r)
		enc.arrayLen(3)
		enc.replica(r)
		enc.uint(p)
		enc.uint(n)
	}
	return enc.finish()
}

// UnmarshalBinary replaces c with the counter encoded in b, or returns ErrBadEncoding and
// leaves c unchanged. It implements encoding.BinaryUnmarshaler.
func (c *PNCounter) UnmarshalBinary(b []byte) error {
	var out PNCounter
	err := decodeCounts(b, kindPNCounter, 3, func(r ReplicaID, p, n uint64) {
		out.p.raise(r, p)
		out.n.raise(r, n)
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// decodeCounts decodes a counter encoding whose entries have the given number of fields
// (2: replica, count; 3: replica, p, n) and calls add for each entry.
func decodeCounts(b []byte, kind uint64, fields int, add func(r ReplicaID, p, n uint64)) error {
	dec, err := newDecoder(b, kind, 1)
	if err != nil {
		return err
	}
	defer dec.release()
	// An entry takes at least 1 (array) + 1 (replica array) + 2 (node) + 1 (incarnation)
	// + 1 byte per count (fields - 1 of them).
	entries, err := dec.arrayLen(4 + fields)
	if err != nil {
		return err
	}
	for range entries {
		if n, err := dec.arrayLen(1); err != nil {
			return err
		} else if n != fields {
			return fmt.Errorf("%w: counter entry has %d fields, want %d", ErrBadEncoding, n, fields)
		}
		r, err := dec.replica()
		if err != nil {
			return err
		}
		p, err := dec.uint()
		if err != nil {
			return err
		}
		var n uint64
		if fields == 3 {
			if n, err = dec.uint(); err != nil {
				return err
			}
		}
		add(r, p, n)
	}
	return dec.end()
}

package crdt

import (
	"fmt"
	"math"
)

// Cursor marks how far a reader of DeltasSince has got. It is opaque; the zero Cursor means
// "from the beginning". Keep one per destination (per peer, or one for the local spreader)
// and encode it with AppendBinary if it has to outlive the call. A Cursor belongs to the Store
// that issued it: given to a Store of another Config.Instance or shard count, it reads as the
// zero Cursor.
type Cursor struct {
	instance uint64
	versions []uint64 // one per shard
}

// Cursor returns a cursor at the store's current position: DeltasSince from it returns only
// changes made later. Take it, for example, just before sending a peer a full Snapshot.
func (s *Store) Cursor() Cursor {
	c := Cursor{instance: s.cfg.Instance, versions: make([]uint64, len(s.shards))}
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		s.flush(sh) // changes made before this call get versions inside the cursor
		c.versions[si] = sh.version
		sh.mu.Unlock()
	}
	return c
}

// DeltasSince returns the state of every key changed after cursor c, each key once, oldest
// change first (as of when a DeltasSince or digest call first saw it), at most maxKeys keys (no limit if maxKeys <= 0); the cursor to pass next
// time; and whether more changes remain after that cursor. The states include changes merged
// in from other replicas, not only local writes, so gossiping them spreads changes
// epidemically. The returned State is independent of the store.
func (s *Store) DeltasSince(c Cursor, maxKeys int) (State, Cursor, bool) {
	next := Cursor{instance: s.cfg.Instance, versions: make([]uint64, len(s.shards))}
	if c.instance == s.cfg.Instance && len(c.versions) == len(s.shards) {
		copy(next.versions, c.versions)
	}
	budget := maxKeys
	if budget <= 0 {
		budget = math.MaxInt
	}
	b := newStateBuilder(s.replicas)
	more := false
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		s.flush(sh)
		from := next.versions[si]
		if from > sh.version {
			from = 0 // a version this shard never issued: not our cursor
		}
		if sh.version == from {
			next.versions[si] = from
			sh.mu.Unlock()
			continue
		}
		if budget == 0 {
			more = true
			next.versions[si] = from
			sh.mu.Unlock()
			continue
		}
		i := sh.firstAfter(from)
		for ; i != noEntry && budget > 0; i = sh.link(i).next {
			b.add(sh.at(i))
			budget--
		}
		if i == noEntry {
			next.versions[si] = sh.version
		} else {
			next.versions[si] = sh.link(i).version - 1 // i is the oldest change not sent
			more = true
		}
		sh.mu.Unlock()
	}
	return b.st, next, more
}

// Encoding of a Cursor: formatVersion, [kind, instance, [version per shard, ...]].

// MarshalBinary encodes c. It implements encoding.BinaryMarshaler.
func (c Cursor) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// AppendBinary appends the encoding of c to b. It implements encoding.BinaryAppender.
func (c Cursor) AppendBinary(b []byte) ([]byte, error) {
	enc := newEncoder(b, kindCursor, 2)
	enc.uint(c.instance)
	enc.arrayLen(len(c.versions))
	for _, v := range c.versions {
		enc.uint(v)
	}
	return enc.finish()
}

// UnmarshalBinary replaces c with the cursor encoded in b, or returns ErrBadEncoding and
// leaves c unchanged. It implements encoding.BinaryUnmarshaler.
func (c *Cursor) UnmarshalBinary(b []byte) error {
	dec, err := newDecoder(b, kindCursor, 2)
	if err != nil {
		return err
	}
	defer dec.release()
	instance, err := dec.uint()
	if err != nil {
		return err
	}
	n, err := dec.arrayLen(1)
	if err != nil {
		return err
	}
	if n > 4096 {
		return fmt.Errorf("%w: cursor has %d shards, at most 4096", ErrBadEncoding, n)
	}
	out := Cursor{instance: instance}
	if n > 0 {
		out.versions = make([]uint64, n)
	}
	for i := range out.versions {
		if out.versions[i], err = dec.uint(); err != nil {
			return err
		}
	}
	if err := dec.end(); err != nil {
		return err
	}
	*c = out
	return nil
}

package crdt

import (
	"fmt"
	"slices"
)

// Anti-entropy by digest (Merkle-style, three levels; the protocol is on type Digest).
//
// Every key state has a 64-bit hash (stateHash of the key and its counts, independent of how
// a store numbers its replicas). Keys fall into digestLeaves leaves by the top bits of their
// key hash, and leaves into digestTops top buckets. A leaf's hash is the sum of its keys'
// hashes, brought up to date from the shards' pending changes before each digest (flush, in
// changes.go); a top bucket's hash is the sum of its leaves. Sums make the hashes independent
// of key order and of shard count, so stores with different configs compare fine.

const (
	digestTopBits  = 6
	digestLeafBits = 12
	digestTops     = 1 << digestTopBits  // buckets in a level-0 digest
	digestLeaves   = 1 << digestLeafBits // leaves; each top bucket has leavesPerTop of them
	leavesPerTop   = digestLeaves / digestTops
)

// leafOf returns the digest leaf of a key hash: its top bits.
func leafOf(kh uint64) uint32 { return uint32(kh >> (64 - digestLeafBits)) }

// Digest is one message of an anti-entropy comparison. It is immutable once made. The zero
// Digest means there is nothing more to compare.
//
// Two stores A and B compare like this, each step one message:
//
//  1. A sends a.Digest(): the hashes of 64 top buckets of keys (level 0, about 520 bytes).
//  2. B calls b.CompareDigest(it) and sends the reply: for each top bucket that differs, the
//     hashes of its 64 leaves (level 1).
//  3. A calls a.CompareDigest(that) and sends the reply: for each leaf that differs, its keys
//     and their hashes (level 2).
//  4. B calls b.CompareDigest(that), which returns no reply but the exact keys whose states
//     differ (on either side, or held by one side only). B sends b.States(keys) and the keys;
//     A merges them and answers with a.States(keys), which B merges.
//
// A zero reply (IsZero) at any step means no differences were found. The comparison is
// stateless: each step needs only the message in hand, so either side may start it, and a
// lost message only ends that round. For two 100k-key stores that differ in 100 keys the four
// steps exchange about 2% of the encoded full state (TestDigestLargeStoresFewDifferences).
type Digest struct {
	level  uint8    // 0: top buckets; 1: leaves under nodes; 2: keys in leaves nodes
	nodes  []uint16 // level 1: top buckets; level 2: leaves
	hashes []uint64 // level 0: one per top bucket; level 1: leavesPerTop per node; level 2: one per key
	keys   []string // level 2: every key the sender holds in the leaves
}

// IsZero reports whether d is the zero Digest: the comparison is over.
func (d Digest) IsZero() bool { return d.level == 0 && len(d.hashes) == 0 }

// Level returns d's level: 0 (top buckets), 1 (leaves) or 2 (keys).
func (d Digest) Level() int { return int(d.level) }

// Digest returns the store's top-level digest, the first message of a comparison.
func (s *Store) Digest() Digest {
	s.flushAll()
	return s.topDigest()
}

func (s *Store) topDigest() Digest {
	d := Digest{hashes: make([]uint64, digestTops)}
	for leaf := range s.leaves {
		d.hashes[leaf/leavesPerTop] += s.leaves[leaf].Load()
	}
	return d
}

// CompareDigest compares a digest received from a peer with this store. It returns this
// store's reply to send back (the next level, for the parts that differ), or, when theirs is
// at the last level, the zero Digest and the keys whose states differ, sorted. Both results
// are empty when nothing differs.
//
// Writes that run meanwhile can make a bucket look different, which costs a few extra keys
// shipped, never a missed difference once the stores are quiet.
func (s *Store) CompareDigest(theirs Digest) (reply Digest, diff []string) {
	s.flushAll()
	switch theirs.level {
	case 0:
		if len(theirs.hashes) != digestTops {
			return Digest{}, nil
		}
		mine := s.topDigest()
		var nodes []uint16
		for b := range digestTops {
			if mine.hashes[b] != theirs.hashes[b] {
				nodes = append(nodes, uint16(b))
			}
		}
		if len(nodes) == 0 {
			return Digest{}, nil
		}
		return s.leafDigest(nodes), nil
	case 1:
		var leaves []uint16
		for i, b := range theirs.nodes {
			for j := range leavesPerTop {
				leaf := int(b)*leavesPerTop + j
				if s.leaves[leaf].Load() != theirs.hashes[i*leavesPerTop+j] {
					leaves = append(leaves, uint16(leaf))
				}
			}
		}
		if len(leaves) == 0 {
			return Digest{}, nil
		}
		return s.keyDigest(leaves), nil
	case 2:
		mine := s.keyDigest(theirs.nodes)
		theirHash := make(map[string]uint64, len(theirs.keys))
		for i, k := range theirs.keys {
			theirHash[k] = theirs.hashes[i]
		}
		for i, k := range mine.keys {
			if h, ok := theirHash[k]; !ok || h != mine.hashes[i] {
				diff = append(diff, k)
			}
			delete(theirHash, k)
		}
		for k := range theirHash {
			diff = append(diff, k)
		}
		slices.Sort(diff)
		return Digest{}, slices.Compact(diff)
	}
	return Digest{}, nil
}

// leafDigest returns the level-1 digest of the given top buckets.
func (s *Store) leafDigest(nodes []uint16) Digest {
	d := Digest{level: 1, nodes: nodes, hashes: make([]uint64, 0, len(nodes)*leavesPerTop)}
	for _, b := range nodes {
		for j := range leavesPerTop {
			d.hashes = append(d.hashes, s.leaves[int(b)*leavesPerTop+j].Load())
		}
	}
	return d
}

// keyDigest returns the level-2 digest of the given leaves: every key in them with its hash.
// It scans the shards' indexes, whose tags hold each key's leaf.
func (s *Store) keyDigest(leaves []uint16) Digest {
	var want [digestLeaves / 64]uint64
	for _, l := range leaves {
		want[l/64] |= 1 << (l % 64)
	}
	d := Digest{level: 2, nodes: leaves}
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		s.flush(sh) // so every entry's hash is current
		t := sh.tables.Load()
		for j := range t.index {
			v := t.index[j].Load()
			if v == 0 {
				continue
			}
			leaf := uint32(v>>32) >> (32 - digestLeafBits)
			if want[leaf/64]&(1<<(leaf%64)) == 0 {
				continue
			}
			e := t.entry(uint32(v) - 1)
			d.keys = append(d.keys, e.key)
			d.hashes = append(d.hashes, e.hash)
		}
		sh.mu.Unlock()
	}
	return d
}

// Encoding of a Digest: formatVersion, [kind, level, [node, ...], hashes, [key, ...]], where
// hashes is one msgpack bin of little-endian uint64s.

// MarshalBinary encodes d. It implements encoding.BinaryMarshaler.
func (d Digest) MarshalBinary() ([]byte, error) { return d.AppendBinary(nil) }

// AppendBinary appends the encoding of d to b. It implements encoding.BinaryAppender.
func (d Digest) AppendBinary(b []byte) ([]byte, error) {
	enc := newEncoder(b, kindDigest, 4)
	enc.uint(uint64(d.level))
	enc.arrayLen(len(d.nodes))
	for _, n := range d.nodes {
		enc.uint(uint64(n))
	}
	enc.words(d.hashes)
	enc.arrayLen(len(d.keys))
	for _, k := range d.keys {
		enc.str(k)
	}
	return enc.finish()
}

// UnmarshalBinary replaces d with the digest encoded in b, or returns ErrBadEncoding and
// leaves d unchanged. It checks that the digest is well formed for its level. It implements
// encoding.BinaryUnmarshaler.
func (d *Digest) UnmarshalBinary(b []byte) error {
	dec, err := newDecoder(b, kindDigest, 4)
	if err != nil {
		return err
	}
	defer dec.release()
	var out Digest
	level, err := dec.uint()
	if err != nil {
		return err
	}
	if level > 2 {
		return fmt.Errorf("%w: digest level %d, want 0 to 2", ErrBadEncoding, level)
	}
	out.level = uint8(level)
	nnodes, err := dec.arrayLen(1)
	if err != nil {
		return err
	}
	limit := uint64(digestTops)
	if level == 2 {
		limit = digestLeaves
	}
	var seen [digestLeaves / 64]uint64
	for range nnodes {
		n, err := dec.uint()
		if err != nil {
			return err
		}
		if n >= limit || seen[n/64]&(1<<(n%64)) != 0 {
			return fmt.Errorf("%w: digest node %d repeated or out of range", ErrBadEncoding, n)
		}
		seen[n/64] |= 1 << (n % 64)
		out.nodes = append(out.nodes, uint16(n))
	}
	if out.hashes, err = dec.words(nil); err != nil {
		return err
	}
	nkeys, err := dec.arrayLen(2)
	if err != nil {
		return err
	}
	for range nkeys {
		k, err := dec.str(1, MaxKeyLen)
		if err != nil {
			return err
		}
		if leaf := leafOf(hashKey(k)); level != 2 || seen[leaf/64]&(1<<(leaf%64)) == 0 {
			return fmt.Errorf("%w: digest lists key %q outside its leaves", ErrBadEncoding, k)
		}
		out.keys = append(out.keys, k)
	}
	if err := dec.end(); err != nil {
		return err
	}
	want := map[uint8]int{0: digestTops, 1: leavesPerTop * len(out.nodes), 2: len(out.keys)}[out.level]
	if out.level == 0 && len(out.hashes) == 0 {
		want = 0 // the zero Digest
	}
	if len(out.hashes) != want || out.level == 0 && len(out.nodes) != 0 {
		return fmt.Errorf("%w: level %d digest with %d nodes has %d hashes, want %d", ErrBadEncoding, out.level, len(out.nodes), len(out.hashes), want)
	}
	*d = out
	return nil
}

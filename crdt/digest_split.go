package crdt

import "slices"

// Split cuts a level-2 digest into digests of about maxBytes encoded bytes at most (each
// key counts its length plus 10: its hash and headers), by whole leaves (a leaf bigger
// than maxBytes goes alone), so that comparing a large store with an empty or very
// different one can be done in messages of bounded size: CompareDigest of each part finds
// the differing keys of its leaves. A digest of another level, or one that already fits,
// is returned as the only part.
func (d Digest) Split(maxBytes int) []Digest {
	total := 0
	for _, k := range d.keys {
		total += len(k) + splitKeyOverhead
	}
	if d.level != 2 || total <= maxBytes || maxBytes < 1 {
		return []Digest{d}
	}
	byLeaf := make(map[uint16][]int, len(d.nodes))
	for i, k := range d.keys {
		leaf := uint16(leafOf(hashKey(k)))
		byLeaf[leaf] = append(byLeaf[leaf], i)
	}
	leaves := slices.Clone(d.nodes)
	slices.Sort(leaves)
	var parts []Digest
	cur := Digest{level: 2}
	size := 0
	for _, leaf := range leaves {
		idx := byLeaf[leaf]
		leafSize := 0
		for _, i := range idx {
			leafSize += len(d.keys[i]) + splitKeyOverhead
		}
		if len(cur.nodes) > 0 && size+leafSize > maxBytes {
			parts = append(parts, cur)
			cur = Digest{level: 2}
			size = 0
		}
		size += leafSize
		cur.nodes = append(cur.nodes, leaf)
		for _, i := range idx {
			cur.keys = append(cur.keys, d.keys[i])
			cur.hashes = append(cur.hashes, d.hashes[i])
		}
	}
	if len(cur.nodes) > 0 {
		parts = append(parts, cur)
	}
	return parts
}

// splitKeyOverhead is what Split counts for a key besides its bytes: its 8-byte hash and
// the msgpack header of its string.
const splitKeyOverhead = 10

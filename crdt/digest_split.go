package crdt

import "slices"

// Split cuts a level-2 digest into digests of at most maxKeys keys each, by whole leaves
// (a leaf with more keys than maxKeys goes alone), so that comparing a large store with an
// empty or very different one can be done in messages of bounded size: CompareDigest of
// each part finds the differing keys of its leaves. A digest of another level, or one that
// already fits, is returned as the only part.
func (d Digest) Split(maxKeys int) []Digest {
	if d.level != 2 || len(d.keys) <= maxKeys || maxKeys < 1 {
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
	for _, leaf := range leaves {
		idx := byLeaf[leaf]
		if len(cur.nodes) > 0 && len(cur.keys)+len(idx) > maxKeys {
			parts = append(parts, cur)
			cur = Digest{level: 2}
		}
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

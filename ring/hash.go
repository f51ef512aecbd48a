package ring

import (
	"encoding/binary"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Version numbers the placement: the key hash, the virtual node positions, the nearest-point
// rule and its tie-breaks. Every peer of a cluster must place keys with the same version.
// Checksum covers it. A change that could move the owner of any key must bump it, and the
// golden vectors in hash_test.go exist to catch one that does not.
const Version = 1

// KeyHash returns the position of key on the ring: XXH64 of the key's bytes, seed 0. It is
// the same on every architecture. Owner(key) is OwnerAt(KeyHash(key)), and DiffResult and
// Arcs describe the key space in these positions.
func KeyHash(key string) uint64 {
	return xxhash.Sum64String(key)
}

// vnodePosition returns the position of virtual node i of the member called name:
// XXH64(name + "#" + decimal i), seed 0. The decimal index after the last '#' makes the
// string unique per (name, i), whatever the name holds. buf is scratch space, returned for
// reuse.
func vnodePosition(buf []byte, name string, i int) (uint64, []byte) {
	buf = append(buf[:0], name...)
	buf = append(buf, '#')
	buf = strconv.AppendInt(buf, int64(i), 10)
	return xxhash.Sum64(buf), buf
}

// checksumTag starts the bytes that Checksum hashes, so a checksum cannot collide with a
// hash of something else by construction.
const checksumTag = "ringleader/ring"

// checksum fingerprints everything that decides the ring: the placement version, VNodes and
// each member's name and weight, in name order. members must be sorted by name.
func checksum(members []Member, vnodes int) uint64 {
	d := xxhash.New()
	var buf [2 * binary.MaxVarintLen64]byte
	put := func(v uint64) {
		_, _ = d.Write(binary.AppendUvarint(buf[:0], v)) // a xxhash.Digest never fails to write
	}
	_, _ = d.WriteString(checksumTag)
	put(Version)
	put(uint64(vnodes))
	put(uint64(len(members)))
	for _, m := range members {
		put(uint64(len(m.Name)))
		_, _ = d.WriteString(m.Name)
		put(uint64(m.Weight))
	}
	return d.Sum64()
}

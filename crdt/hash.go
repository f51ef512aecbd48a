package crdt

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Hashing used by the Store (shard and index position) and the digest. The digest of a set
// of keys is the sum (mod 2^64) of the hashes of the keys' states, so it can be updated in
// place on every write, adds up across shards in any order, and does not depend on how a
// store numbers its replicas internally.

// hashKey hashes a key. Its low bits choose the shard; its high 32 bits are the index tag,
// whose low bits choose the index position and whose top bits choose the digest leaf.
func hashKey(key string) uint64 { return xxhash.Sum64String(key) }

// hashReplica hashes a replica ID, once, when a store interns it.
func hashReplica(r ReplicaID) uint64 {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], r.Incarnation)
	d := xxhash.New()
	_, _ = d.WriteString(r.Node) // a xxhash.Digest never fails to write
	_, _ = d.Write(buf[:])
	return d.Sum64()
}

// mix64 is the murmur3 finalizer: a bijection that spreads every input bit over the output.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// slotHash hashes one replica's counts (p, n) in a key, given the replica's hash.
func slotHash(replicaHash, p, n uint64) uint64 {
	return mix64(mix64(replicaHash^p)+n) ^ 0x9e3779b97f4a7c15
}

// stateHash combines a key's hash with the sum of its slot hashes. It is never zero for a
// key with counts except by a 2^-64 chance, and zero is reserved for "no key".
func stateHash(keyHash, slotSum uint64) uint64 {
	return mix64(keyHash ^ mix64(slotSum))
}

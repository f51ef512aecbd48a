// Package ring is a deterministic, weighted consistent-hash ring: it decides which member
// owns each key, and in which order members follow it (preference lists), the same way on
// every peer that sees the same members.
//
// The package is pure: no I/O, no goroutines, no state outside the values it returns. A
// Ring is immutable; lookups on it need no lock and never block. When membership changes,
// build a new Ring with New (or NewFrom, which reuses the virtual nodes of an earlier ring
// for the members it shares) and swap it in (for example with atomic.Pointer[Ring]); Diff
// says which arcs of the key space changed hands, for handing over what lives there.
//
// # Placement
//
// The ring is the circle of 2^64 positions. Everything below is fixed; Version numbers it,
// Checksum covers it, and golden vectors in the tests pin it.
//
//   - A key sits at KeyHash(key) = XXH64(key), seed 0.
//   - A member of weight w has w × Config.VNodes virtual nodes; virtual node i sits at
//     XXH64(name + "#" + decimal(i)), seed 0, for i from 0 to w × VNodes - 1.
//   - A key belongs to the member with the virtual node nearest to it, going either way
//     round the circle. Of two at the same distance (virtual nodes sharing a position, or a
//     key exactly between two) the one whose name sorts first wins.
//   - Preference(key, n) lists members by the distance of their nearest virtual node, with
//     the same tie-break, and keeps the first n: the owner first.
//
// The ring depends only on the set of members, their weights and VNodes, never on the order
// members were given in, so peers that learn of members in different orders agree.
//
// # Moving only the keys that must move
//
// Every member's claim on a key, the distance from the key to the member's nearest virtual
// node, depends on that member's name and weight alone. A key's owner is the best claim
// among the members present. So when a member joins, a key changes owner only if the
// newcomer's claim is best: keys move only to it. When a member leaves, only its own keys
// move. Raising a member's weight adds virtual nodes and only moves keys to it. Preference
// lists follow the same ranking: a join inserts the newcomer into lists, a leave removes
// the leaver, and nobody else changes places. The property tests check all of this, and
// Diff measures it exactly.
//
// # Why the nearest virtual node, not the next one clockwise
//
// The classic ring gives a key to the next virtual node clockwise, so a virtual node owns
// the whole gap before it. Here it owns half the gap on each side. A member's share is then
// an average over twice as many independent gaps: its relative standard deviation is
// 1/√(2V) instead of 1/√V for V virtual nodes. At 100 members and 128 virtual nodes the
// most loaded member carries about 1.16 times the mean load, where the classic ring with an
// ideal hash gives about 1.23 (see the quality table in README.md). The cost is nothing: a lookup reads the points on both sides
// of the key, which lie next to each other in memory. The guarantees above hold unchanged,
// because each member's claim still depends on nothing but its own virtual nodes.
//
// # Why XXH64
//
// The hash decides every placement, so it must be the same everywhere, forever, and it must
// spread similar inputs well, since virtual node names differ only in their last digits.
//
//   - XXH64 is specified byte by byte (little-endian reads, fixed constants), with
//     published test vectors; its output is the same on every architecture, and any
//     language can reproduce a placement. github.com/cespare/xxhash/v2 (pure Go, with
//     assembly for amd64 and arm64 checked against the same vectors) is already a
//     dependency of this module. The tests check the published vectors.
//   - It mixes well: it passes SMHasher, and the load across members matches the theory for
//     a random hash (README.md). FNV-1a does not: in a measurement made while choosing,
//     with virtual node names "peer-0#0" … "peer-99#127" its positions clustered, and the
//     relative standard deviation of load came out at 0.32 against 0.065 with XXH64.
//   - It is fast: a few nanoseconds for a short key, a small part of a lookup.
//   - SipHash's strength is a secret key against hash flooding. A ring cannot use one: every
//     peer must compute the same positions, and anyone who knows the member names can
//     compute them too. With a fixed public key SipHash is only a slower hash, and it is not
//     a dependency of this module.
//
// The ring is not a defence against a client that picks keys to load one member: with any
// public placement, a client can search for keys that land on a chosen owner.
//
// # Errors
//
// New reports bad input (ErrBadConfig, ErrEmptyName, ErrZeroWeight, ErrDuplicateMember,
// ErrTooManyVNodes) wrapped with the member at fault; lookups report ErrEmptyKey,
// ErrBadCount and ErrEmptyRing. No input makes the package panic.
package ring

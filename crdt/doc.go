// Package crdt provides counters that stay writable on every side of a network partition and
// converge to the exact total when it heals: G-Counters, PN-Counters, and a keyed Store of
// PN-Counters built for gossip, anti-entropy and persistence.
//
// The package is pure: no I/O, no goroutines, no clocks, no global mutable state. The agent
// drives it.
//
// # Counters
//
// GCounter keeps one uint64 count per replica; its value is their sum and merge takes the
// larger count per replica. PNCounter is two G-Counters (additions and subtractions) with an
// int64 value. Both are delta-state CRDTs (Almeida, Shoker, Baquero): each write returns a
// delta that is itself a counter state, so deltas merge like states and can be batched,
// duplicated, reordered or lost (and later repaired by a full-state merge).
//
// A write that would take a count past uint64, or a value out of its type's range, is refused
// with ErrOverflow and changes nothing. Two replicas can each stay in range and still merge to
// a value out of range; reads then return ErrValueOverflow, never a wrapped number, while the
// counts stay exact.
//
// # Store
//
// A Store holds PN-Counters by key (1 to MaxKeyLen bytes) and is safe for concurrent use. What
// the agent calls, job by job:
//
//   - local write: Apply(key, self, amount) returns the new value, or ErrBadKey, ErrBadAmount
//     (amount 0), ErrBadReplica or ErrOverflow with nothing changed;
//   - persistence: AppendKeyRecord(dst, key) encodes one key's state for a durable per-key
//     record, and ReplicaCounts(self) this replica's own counts; at startup, State.AppendEncoded
//     of every record, then Restore. Snapshot and Restore do the same for the whole store;
//   - gossip: DeltasSince(cursor, max) returns what changed since cursor (each key once, with
//     its current state) and the next cursor; peers Merge it, which returns the keys that
//     changed (what a majority write waits for);
//   - anti-entropy: Digest, then CompareDigest on each message received, then States of the
//     keys found; the protocol is on type Digest. It finds exactly the keys that differ and
//     ships a small fraction of the full state;
//   - identity at startup: ReplicaCounts and MaxIncarnation, below;
//   - reads: Value, Counter (per-replica counts), Keys (by prefix, paginated), Len.
//
// Records written by AppendKeyRecord are states, and a state only ever grows: if an older
// record of a key overwrites a newer one on disk, the writes in between are lost at the next
// restart. Write a key's records in the order they were taken (or merge the stored record
// with the new one before writing).
//
// Keys are never deleted: a counter's state only grows. A key exists once some replica has a
// non-zero count for it.
//
// # Layout and concurrency
//
// A Store is split by key hash into Config.Shards shards, each with an open-addressing index
// and paged entries of 128 bytes (two cache lines), one a key. An entry holds the counts of
// up to three replicas itself and any more in one exactly sized slice of {replica index, P,
// N}, with replica IDs interned store-wide. That is about 216 bytes a key with five replicas
// (BenchmarkStoreMemory). A write to a key that already holds a count of the writing replica
// finds the key without a lock, locks only that key's entry, and allocates nothing; the
// entry's first cache line holds its lock, the key and the counts of the replica that wrote
// it last (normally this peer's own), so such a write changes one cache line of the store
// (see entry.go for why that matters to parallel writers). New keys and new replicas in a
// key take the shard's mutex. The change list that serves DeltasSince and the digest hashes
// are brought up to date lazily, under the shard's mutex, when they are read (the reasons are
// in changes.go). Every method is safe for concurrent use.
//
// Every value that crosses a process boundary (State, Cursor, Digest, ReplicaCounts, GCounter,
// PNCounter) has AppendBinary/MarshalBinary and UnmarshalBinary: msgpack after a leading
// format-version byte. Decoders return ErrBadEncoding for any bad input, never panic, and
// allocate no more than a small multiple of the input's size whatever lengths it declares.
//
// # Replica identity
//
// A ReplicaID is (node name, incarnation). Merge keeps, per replica, the largest count ever
// seen, so a replica that writes again from a lower count than it reached before has its next
// increments swallowed by the higher count its peers already hold. Hence the rule:
//
// A replica ID may only write while no store anywhere holds a higher count for it than its
// writer does. A peer whose data dir is gone or rolled back (restored from an older backup, a
// disk that lost synced writes) breaks that, so the agent checks at every start:
//
//  1. It restores its store from its data dir. With no data dir it takes a new incarnation
//     (step 3) and skips step 2.
//  2. Before accepting writes it asks every known peer (every member that has not left) for
//     ReplicaCounts of its current ReplicaID and MaxIncarnation of its node name. It keeps
//     its ID only if every peer answered, its own ReplicaCounts are not Behind any peer's,
//     and no peer knows a higher incarnation of its node. A peer that holds nothing more than
//     the writer cannot swallow its writes, so a lone node keeps its ID.
//  3. Otherwise it takes a new incarnation: higher than every incarnation of its node it or
//     any peer reported, and at least the current time in nanoseconds, so that a node that
//     lost its disk and cannot reach the peers that know its last incarnation still does not
//     reuse it. It persists the new incarnation (synced) before its first write.
//
// Counts of old incarnations stay in every store and keep counting: they were acknowledged
// writes. Only the current ID writes.
package crdt

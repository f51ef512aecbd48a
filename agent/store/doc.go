// Package store keeps a peer's durable state in its data dir, in pebble
// (github.com/cockroachdb/pebble/v2). It is the only code that touches pebble: counter
// records, idempotency records and the agent's small meta values now; lock epochs and
// promises and the voter set later (their key prefixes are reserved in keys.go).
//
// # What the agent calls
//
//   - startup: Open(dir, cfg), which refuses a damaged or foreign data dir (ErrCorrupt,
//     ErrNewerFormat, ErrLocked) and never resets one; then LoadCounters(store) into an
//     empty crdt.Store (or ScanCounters to see each record); GetMeta for the replica
//     incarnation. With 1,000,000 keys this takes about 1.7 s (BenchmarkRestart).
//   - a local write: Apply to the crdt.Store, then NewBatch, MergeCounterFrom(store, key),
//     PutIdempotency if the request carries a key, and Commit(true) before acknowledging.
//     Concurrent synced commits share one fsync.
//   - merged remote state: MergeCounterFrom(store, key) for each key crdt's Merge reports
//     changed, Commit(false); Sync before acknowledging a majority write that rests on it.
//     (MergeCounter takes an already encoded record and checks it first.)
//   - a new incarnation: PutMeta, Commit(true), before the first write under it.
//   - housekeeping: DeleteExpiredIdempotency(now, max) every few seconds.
//   - shutdown: Close, safe to call twice.
//
// # Counter records
//
// Each counter key has one record in the store, an encoded crdt.State holding that key.
// Records are written with pebble's Merge and joined by a merge operator that computes the
// CRDT join (per replica, the larger P and N count), so records of a key may be committed
// in any order by concurrent writers without a lock: the stored record is the join of all of
// them, and an older record committed after a newer one loses nothing. See merge.go for the
// operator and its cost.
//
// # Durability
//
// Commit(true) returns once the batch is in pebble's write-ahead log and the log is
// fsynced; a crash at any moment after keeps it (TestCrashKeepsSyncedCommits crashes a
// crash-simulating filesystem at many points and checks). Commit(false) and
// DeleteExpiredIdempotency's deletes reach the disk with the next sync. Syncs are never
// turned off. A failed log write or fsync ends the process (as pebble's own default does):
// after a failed fsync the kernel may have dropped the dirty pages, so carrying on would
// acknowledge writes that are not on disk.
//
// Pebble checksums every record. It tells a damaged log record from a torn tail by the
// synced offsets the records after it carry; damage in the last 32 KiB block of the newest
// log cannot be told from a torn write, and pebble drops it like one.
//
// # Concurrency
//
// A DB is safe for concurrent use; a Batch belongs to one goroutine. Close waits for the
// calls in flight; calls after it return ErrClosed.
package store

// Package lockmgr is one owner's lock table and the acceptor side of ownership leases: the
// pure core of the agent's locks (DESIGN.md, data flow 4).
//
// The package is pure: no I/O, no goroutines, no clocks, no global mutable state. Time comes
// in as an explicit now argument on every call that can change state; the agent passes its
// (injected) clock's reading. Both Table and Acceptor are deterministic state machines owned
// by one goroutine; neither is safe for concurrent use.
//
// # Lock table
//
// Table holds, per key, at most one lease and a FIFO queue of waiters. Acquire grants at once
// when the key is free and nobody waits; otherwise, with a wait, it queues the request and
// returns a Ticket. Leases expire at their Expiry unless renewed; waiters give up at their
// own wait deadline. Both kinds of deadline sit in one binary heap; Tick(now) runs those due
// and returns the events (LeaseExpired, WaiterGranted, WaiterTimedOut, WaiterFailed), and
// NextDeadline says when to call it next. Release hands the key to the first waiter at once
// and returns the events too, so a handover needs no timer.
//
// TTLs run from MinTTL (1 s) to Config.MaxTTL, the lock-delay minus the drift margin
// (15 s − 2 s by default); 0 means Config.DefaultTTL (10 s). A lease ID is 128 bits from
// Config.Rand (crypto/rand unless a test injects a source).
//
// # Fencing tokens
//
// A token is one positive int64: bit 63 is 0, bits 62..32 are the epoch (31 bits, 1 to
// MaxEpoch) and bits 31..0 the sequence (32 bits, 1 to MaxSequence). Integer order is
// (epoch, sequence) order. The table grants on a key only under the epoch the owner set with
// SetEpoch, which only grows; each grant takes the next sequence. When a key's sequence
// reaches MaxSequence the table refuses with ErrSequenceExhausted until the owner sets a
// larger epoch — it never wraps. So tokens per key strictly increase, within one table and,
// since Export/Import carry the epoch and sequence and epochs come from the acceptors'
// highest epochs, across owners.
//
// # Acceptor
//
// Acceptor keeps, per key, at most one live promise — to one Owner incarnation, with an
// epoch and a deadline — and the highest epoch it ever promised, which only grows. Promise
// refuses another owner (or another incarnation of the same owner name) while a promise is
// live, with a *RefusedError naming the live promise and its deadline; the owner of a live
// promise may renew it with its own epoch. PromiseBatch renews many keys in one call;
// Transfer moves a live promise to a new owner in one step (the handoff).
//
// # What the agent must do
//
//   - Own a Table and an Acceptor from one goroutine, and pass the same clock's now to both.
//   - Before the first grant on K: get promises for K from a strict majority of voters with
//     an epoch above every Highest they report, timed from when the requests were sent;
//     then Table.SetEpoch(K, epoch). Grant (Acquire) and Renew only while the majority
//     promise outlasts the lease's expiry by Config.DriftMargin: tell the table with
//     SetOwnedUntil(K, deadline) after each promise round, and it refuses (ErrNotOwned) or
//     defers (waiters) any grant or renewal that would outlast it. Set it to a past time
//     the moment the majority is lost.
//   - Sync each accepted promise and the highest epoch to disk before answering; after a
//     restart, Acceptor.Restore the highest epochs and QuietUntil(start + LockDelay).
//   - Call Tick at NextDeadline (and after Acquire, Renew, Cancel, SetOwnedUntil and Import) and
//     answer the blocked requests named in the events; answer a Release's events at once.
//   - Handoff: stop granting K, Export it, send KeyState.MarshalBinary to the new owner,
//     which sets its SetEpoch and SetOwnedUntil, decodes and Imports it (mapping the old tickets to the returned new ones), then
//     Transfer the promises; Remove K on the old owner. On failure, wait the promises out.
//
// Not here yet: anything about voters, routing, persistence and the wire protocol; those are
// the agent's.
package lockmgr

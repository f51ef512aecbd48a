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
// A token is one positive int64 below 2^52 (exact in any JSON reader): bits 51..21 are the
// epoch (31 bits, 1 to MaxEpoch) and bits 20..0 the sequence (21 bits, 1 to MaxSequence).
// Integer order is
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
// # Voters
//
// The voters are the role=peer members that have not left; failed peers still count. A
// VoterSet is one committed version of them: Version 1 is formed at bootstrap
// (BootstrapSet), and each later version differs from the one before by exactly one member
// (VoterSet.Apply of a VoterChange: add one, or remove one, never the last). Cluster names the
// history (derived from the bootstrap members), so sets of two clusters formed apart are
// never mistaken for each other. Each peer keeps the newest set it knows, durably, in its
// VoterAcceptor.
//
// One member at a time, because majorities of two sets that differ by one member always
// intersect. Every ownership promise round names the owner's set (Cluster, Version), the
// owner counts a strict majority of that set, and an acceptor promises a key to one owner at
// a time whatever the version: so two rounds under versions v and v+1 (or the same v) cannot
// both hold majorities at once. For that, exactly one change may be chosen per version: each
// version v+1 is decided by single-decree Paxos among the voters of v.
//
//   - VoterProposer drives one change (its own) on top of its committed set: Prepare to every
//     voter of the set, and on a majority of promises, Accept with the change accepted under
//     the highest ballot those promises report — or its own if none does — and on a majority
//     of accepts, Commit of the new set to the voters of both sets. Ballots (Round, proposer
//     name#random) are totally ordered and never reused. A preempted proposer (ErrBallot)
//     waits a random time and retries higher; lost messages are resent every
//     Config.VoterRetry; a proposer behind (ErrStaleVersion) ends with the newer set.
//     VoterResult says which change was chosen and whether it was its own; the agent then
//     proposes again on the new set if the change it wants still applies.
//   - VoterAcceptor answers Prepare, Accept and Commit. Its durable state
//     (VoterAcceptorState: committed set, promised ballot, accepted ballot and change) must be
//     synced before each answer; a request's base set newer than its own is learned first,
//     an older one is refused with ErrStaleVersion and the newer set, so laggards catch up
//     from any reply.
//
// Versions two apart need more than intersection: an owner that got a majority of set v
// may still hold it when v+2 is committed, and majorities of v and v+2 can be disjoint. So an
// acceptor refuses to Accept a change on top of a set it learned while an ownership promise
// it let through before learning it may still be live: it accepts nothing until
// LockDelay + DriftMargin after the last CheckVersion pass before the learn (ErrSettling;
// the proposer simply resends), and nothing for that long after a restart with a committed
// set. Proof sketch: set v+2 is chosen by a majority Q of set v+1, each member of which
// learned v+1 before accepting and refuses promises under v after learning it; any
// majority round R under v shares an acceptor a with Q (sets v and v+1 differ by one); a let
// R through before it learned v+1, and accepted only LockDelay + DriftMargin after that, so R
// ran out before v+2 was chosen and before any promise under v+2. New rounds under v cannot
// get a majority past Q either. So at any time the live majority rounds are under at most
// two consecutive versions, which intersect. In a quiet cluster (no promises) a change is
// accepted at once; in a busy one, consecutive changes are about one promise period apart.
//
// What the agent does with voters:
//
//   - Ownership promises: a promise request carries the owner's set's Cluster and Version.
//     The acceptor calls VoterAcceptor.CheckVersion before every Acceptor.Promise,
//     PromiseBatch and Transfer, and refuses on its error: ErrNoVoters (no
//     set formed yet), ErrOtherCluster, or ErrStaleVersion with its newer set, which the owner
//     gives to its own VoterAcceptor.Commit before it retries the round over the new set's
//     majority. A version above the acceptor's passes: the acceptor is behind but learns
//     nothing from a number; the agent asks the owner for its set and gives it to Commit.
//     The owner counts only promises from members of the set it asked under.
//   - Bootstrap (--bootstrap-expect N, default 1): a peer with no committed set forms version
//     1 itself, BootstrapSet of the role=peer members it sees, with a random Cluster (names
//     alone would give a cluster formed again under the same names, after a disk loss, the
//     same history), when it sees at least N role=peer members (itself included), none of
//     them reports a committed set (a serf tag with the voter version, 0 for none), and it is
//     the first of them by name; it gives the set to its VoterAcceptor.Commit, and the others
//     learn it (agent: voters.get, or from the first Prepare, Accept, Commit or promise
//     request). Until then CheckVersion answers ErrNoVoters and no grant happens. Start
//     exactly N peers with the same N; a peer that sees any member with a committed set never
//     bootstraps — it waits to be added.
//   - Joins: a voter that sees an alive role=peer member that is not in its set proposes
//     VoterAdd for it (one proposer per peer at a time; concurrent proposers are safe, just
//     slower). Leaves: a peer leaving gracefully proposes VoterRemove of itself and waits for
//     the result before it leaves; `peer force-leave X` proposes VoterRemove of X. A failed
//     member is never removed.
//   - Two clusters merged: requests between them are refused with ErrOtherCluster. The set
//     with more members survives (a tie: the smaller Cluster); each peer of the other
//     history calls VoterAcceptor.Abandon, syncs, sets Acceptor.QuietUntil(now + LockDelay)
//     (it promises nothing for one promise period) and is then added as a new voter, one
//     at a time, by the survivors.
//
// Not here yet: routing, persistence and the wire protocol; those are the agent's.
package lockmgr

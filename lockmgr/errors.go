package lockmgr

import "errors"

// Errors returned by this package. Match them with errors.Is: the package wraps them with
// detail (which key, which value, what to do).
var (
	// ErrBadConfig is returned by Config.Validate, NewTable and NewAcceptor for an unusable
	// Config.
	ErrBadConfig = errors.New("lockmgr: bad config")

	// ErrBadKey is returned for an empty key or one longer than MaxKeyLen.
	ErrBadKey = errors.New("lockmgr: bad key")

	// ErrBadHolder is returned by Acquire for a holder label longer than MaxHolderLen.
	ErrBadHolder = errors.New("lockmgr: bad holder label")

	// ErrBadTTL is returned by Acquire and Renew for a TTL below MinTTL or above
	// Config.MaxTTL (lock-delay minus the drift margin). The agent answers it with 400.
	ErrBadTTL = errors.New("lockmgr: bad ttl")

	// ErrBadWait is returned by Acquire for a negative wait or one above Config.MaxWait.
	ErrBadWait = errors.New("lockmgr: bad wait")

	// ErrHeld is returned by Acquire with wait 0 when the key is held or has waiters. The
	// agent answers 409 with Table.Info's holder and remaining time.
	ErrHeld = errors.New("lockmgr: lock is held")

	// ErrTooManyWaiters is returned by Acquire when the key already has Config.MaxWaiters
	// waiters.
	ErrTooManyWaiters = errors.New("lockmgr: too many waiters")

	// ErrNoEpoch is returned by Acquire (and carried by a WaiterFailed event) when no epoch
	// was set for the key: the owner must first hold an ownership lease on the key and call
	// Table.SetEpoch with its epoch.
	ErrNoEpoch = errors.New("lockmgr: no epoch for key")

	// ErrBadEpoch is returned by SetEpoch, MakeToken and Acceptor.Promise for epoch 0, an
	// epoch above MaxEpoch, or one below the epoch already in force (epochs only grow).
	ErrBadEpoch = errors.New("lockmgr: bad epoch")

	// ErrSequenceExhausted is returned by Acquire (and carried by a WaiterFailed event) when
	// the key's sequence reached MaxSequence under its epoch: the owner must get a new,
	// larger epoch (a new promise round) and call SetEpoch before it can grant again.
	ErrSequenceExhausted = errors.New("lockmgr: sequence exhausted for epoch, get a new epoch")

	// ErrNotOwned is returned by Acquire with wait 0 and by Renew when the key has an
	// ownership deadline (Table.SetOwnedUntil) and the lease would not end at least
	// Config.DriftMargin before it. The agent renews its promises or answers 503. A waiter
	// stays queued instead, and is granted when the ownership is extended.
	ErrNotOwned = errors.New("lockmgr: ownership lease does not outlast the lock lease")

	// ErrUnknownLease is returned by Renew and Release for a lease that is not the key's live
	// lease (released, expired, never granted, or a stale token). The agent answers 404.
	ErrUnknownLease = errors.New("lockmgr: unknown lease")

	// ErrUnknownTicket is returned by Cancel for a ticket that is no longer waiting.
	ErrUnknownTicket = errors.New("lockmgr: unknown ticket")

	// ErrRandom is returned by Acquire and NewVoterProposer when the Config.Rand source
	// fails to give the bytes they need.
	ErrRandom = errors.New("lockmgr: random source failed")

	// ErrKeyBusy is returned by Import for a key that already has a holder or waiters here.
	ErrKeyBusy = errors.New("lockmgr: key already has entries")

	// ErrBadEncoding is returned by KeyState.UnmarshalBinary and Import for bytes or a state
	// that are not a valid key state of this format version.
	ErrBadEncoding = errors.New("lockmgr: bad encoding")

	// ErrPromised is returned by Acceptor.Promise and Transfer while the key is promised to
	// another owner incarnation. It is a *RefusedError carrying the live promise.
	ErrPromised = errors.New("lockmgr: key promised to another owner")

	// ErrStaleEpoch is returned by Acceptor.Promise for an epoch not above the highest
	// epoch this acceptor ever promised for the key (a renewal by the same owner
	// incarnation may repeat its own epoch). It is a *RefusedError carrying that epoch.
	ErrStaleEpoch = errors.New("lockmgr: epoch not above the highest promised")

	// ErrBadDeadline is returned by Acceptor.Promise for a deadline not after now or more
	// than Config.LockDelay after now.
	ErrBadDeadline = errors.New("lockmgr: bad promise deadline")

	// ErrQuiet is returned by Acceptor.Promise and Transfer before the acceptor's quiet
	// period ends (Acceptor.QuietUntil): a restarted acceptor forgot the deadlines it
	// promised, so it promises nothing for one promise period.
	ErrQuiet = errors.New("lockmgr: acceptor is in its quiet period after a restart")

	// ErrBadOwner is returned by Acceptor.Promise for an owner with an empty name.
	ErrBadOwner = errors.New("lockmgr: bad owner")

	// ErrBadVoterSet is returned by BootstrapSet, VoterSet.Validate and the voter handlers
	// for a set with version 0, no members, too many, a bad name, or members not sorted and
	// unique.
	ErrBadVoterSet = errors.New("lockmgr: bad voter set")

	// ErrBadVoterChange is returned by VoterSet.Apply, NewVoterProposer and
	// VoterAcceptor.Accept for a change that adds a voter, removes a non-voter, would leave
	// no voters, or has a bad op or name.
	ErrBadVoterChange = errors.New("lockmgr: bad voter change")

	// ErrBadVoterMsg is returned by the VoterAcceptor handlers for a malformed request (a
	// zero ballot, a bad set or change). The agent drops the request.
	ErrBadVoterMsg = errors.New("lockmgr: bad voter message")

	// ErrStaleVersion is returned by the VoterAcceptor handlers and CheckVersion when the
	// request's voter-set version is below the acceptor's committed one. It is a
	// *VoterRefusedError carrying the acceptor's committed set, so the requester catches up.
	ErrStaleVersion = errors.New("lockmgr: stale voter-set version")

	// ErrBallot is returned by VoterAcceptor.Prepare and Accept for a ballot below the one
	// the acceptor promised. It is a *VoterRefusedError carrying the promised ballot.
	ErrBallot = errors.New("lockmgr: ballot below the promised one")

	// ErrOtherCluster is returned by the VoterAcceptor handlers and CheckVersion for a set
	// of another history: another Cluster, or the same version with other members (two
	// clusters merged). It is a *VoterRefusedError carrying the acceptor's set.
	ErrOtherCluster = errors.New("lockmgr: voter set of another cluster history")

	// ErrSettling is returned by VoterAcceptor.Accept while ownership promises this acceptor
	// let through under an older voter-set version may still be live (see "Voters" in the
	// package doc). It is a *VoterRefusedError carrying how long to wait.
	ErrSettling = errors.New("lockmgr: voter set still settling, older promises may be live")

	// ErrNoVoters is returned by VoterAcceptor.CheckVersion before the acceptor has a
	// committed voter set: no ownership promise (and so no grant) before the first voters
	// have formed (--bootstrap-expect).
	ErrNoVoters = errors.New("lockmgr: no voter set formed yet")
)

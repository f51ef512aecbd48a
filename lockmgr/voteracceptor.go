package lockmgr

import (
	"fmt"
	"slices"
	"time"
)

// VoterAcceptorState is a VoterAcceptor's durable state: the committed voter set and, for the
// next version (Set.Version+1), the Paxos acceptor's promised ballot and accepted change. The
// agent syncs it to disk (MarshalBinary) before it answers any request that changed it, and
// gives it back to NewVoterAcceptor after a restart. The zero value is a peer with no
// committed set.
type VoterAcceptorState struct {
	Set      VoterSet    // the committed set; Version 0: none yet
	Promised Ballot      // highest ballot promised for version Set.Version+1 (zero: none)
	Accepted Ballot      // ballot of the change accepted for Set.Version+1 (zero: none)
	Change   VoterChange // the accepted change, when Accepted is not zero
}

// Validate reports a state no acceptor could be in (ErrBadEncoding): a promise without a
// set, an accepted ballot above the promised one, or an accepted change that does not apply
// to the set.
func (st VoterAcceptorState) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: voter acceptor state: "+format, append([]any{ErrBadEncoding}, a...)...)
	}
	if st.Set.Version == 0 {
		if st.Set.Cluster != 0 || len(st.Set.Members) != 0 || !st.Promised.IsZero() || !st.Accepted.IsZero() || st.Change != (VoterChange{}) {
			return bad("no committed set, but a cluster, members, a ballot or a change")
		}
		return nil
	}
	if err := st.Set.Validate(); err != nil {
		return bad("%v", err)
	}
	if !st.Promised.IsZero() && st.Promised.validate() != nil {
		return bad("promised ballot %v", st.Promised)
	}
	if st.Accepted.IsZero() {
		if st.Change != (VoterChange{}) {
			return bad("a change with no accepted ballot")
		}
		return nil
	}
	if st.Accepted.validate() != nil || st.Accepted.Compare(st.Promised) > 0 {
		return bad("accepted ballot %v, promised %v", st.Accepted, st.Promised)
	}
	if _, err := st.Set.Apply(st.Change); err != nil {
		return bad("accepted change: %v", err)
	}
	return nil
}

func (st VoterAcceptorState) clone() VoterAcceptorState {
	st.Set.Members = slices.Clone(st.Set.Members)
	return st
}

// VoterRefusedError is a VoterAcceptor's refusal: why (Err: ErrStaleVersion, ErrBallot,
// ErrOtherCluster or ErrSettling) and what the requester needs to go on. Set is always the
// acceptor's committed set (a lagging proposer or owner adopts it when it is newer); Promised
// is the ballot that beat the request (ErrBallot: retry above it); Wait is how long until the
// acceptor accepts again (ErrSettling). Match it with errors.Is on Err.
type VoterRefusedError struct {
	Err      error
	Set      VoterSet
	Promised Ballot
	Wait     time.Duration
}

func (e *VoterRefusedError) Error() string {
	switch e.Err {
	case ErrBallot:
		return fmt.Sprintf("%v: promised %v for version %d, retry above it", e.Err, e.Promised, e.Set.Version+1)
	case ErrSettling:
		return fmt.Sprintf("%v: accepts again in %v", e.Err, e.Wait)
	}
	return fmt.Sprintf("%v: this acceptor has %v", e.Err, e.Set)
}

func (e *VoterRefusedError) Unwrap() error { return e.Err }

// VoterAnswer is a VoterAcceptor's yes to a Prepare or an Accept: which request it answers
// (Kind, the base set's Version, Ballot) and, for a Prepare, the change this acceptor has
// already accepted for Version+1 (Accepted is zero if none), which the proposer must adopt.
type VoterAnswer struct {
	Kind     VoterMsgKind
	Version  uint64
	Ballot   Ballot
	Accepted Ballot
	Change   VoterChange
}

// VoterAcceptor is one voter's side of the voter-set protocol: single-decree Paxos per
// version. For each version v+1 it promises ballots (Prepare) and accepts one change per
// ballot (Accept) on top of its committed set v, and learns committed sets (Commit, or the
// base set a request carries). It also answers, for ownership promises, whether the owner's
// voter-set version may be served (CheckVersion).
//
// Every handler that returns without error may have changed State: the agent syncs State to
// disk before it sends the answer (after a crash, an acceptor must not forget a promise or
// an accepted change it answered). Refusals with ErrBallot and ErrSettling may also have
// changed it (the request's newer base set was learned first); syncing after every handler
// call whose State differs is the simple rule. CheckVersion changes no durable state.
//
// Like Acceptor it has no clock: calls take now. It is not safe for concurrent use: one
// goroutine of the agent owns it (the same that owns the Acceptor).
type VoterAcceptor struct {
	cfg      Config
	st       VoterAcceptorState
	lastPass time.Time // the last CheckVersion that let an ownership promise through
	settle   time.Time // no Accept before this
}

// NewVoterAcceptor returns an acceptor in state st (the zero state for a new peer, the
// synced state after a restart), or an error wrapping ErrBadConfig or ErrBadEncoding.
//
// An acceptor restarted with a committed set (st.Set.Version > 0) accepts no change before
// now + LockDelay + DriftMargin: it forgot when it last let an ownership promise through,
// and a promise under an older version may still be live (see "Voters" in the package doc).
func NewVoterAcceptor(cfg Config, st VoterAcceptorState, now time.Time) (*VoterAcceptor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	a := &VoterAcceptor{cfg: cfg, st: st.clone()}
	if st.Set.Version > 0 {
		a.settle = now.Add(a.settleDelay())
	}
	return a, nil
}

func (a *VoterAcceptor) settleDelay() time.Duration { return a.cfg.LockDelay + a.cfg.DriftMargin }

// State returns a copy of the durable state, to sync before answering.
func (a *VoterAcceptor) State() VoterAcceptorState { return a.st.clone() }

// Set returns a copy of the committed voter set (Version 0: none yet).
func (a *VoterAcceptor) Set() VoterSet { return a.st.clone().Set }

// learn adopts s, a committed set newer than ours, and forgets the Paxos state of the old
// next version. Every ownership promise let through so far was under an older version (or
// one this acceptor had not learned): no change on top of s is accepted before those
// promises have run out.
func (a *VoterAcceptor) learn(s VoterSet) {
	a.st = VoterAcceptorState{Set: s}.clone()
	if !a.lastPass.IsZero() {
		if until := a.lastPass.Add(a.settleDelay()); until.After(a.settle) {
			a.settle = until
		}
	}
}

func (a *VoterAcceptor) refuse(err error) *VoterRefusedError {
	return &VoterRefusedError{Err: err, Set: a.Set()}
}

// base checks a request's base set against the committed one, learning it when newer.
func (a *VoterAcceptor) base(base VoterSet) error {
	if err := base.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadVoterMsg, err)
	}
	cur := a.st.Set
	switch {
	case cur.Version > 0 && base.Cluster != cur.Cluster:
		return a.refuse(ErrOtherCluster)
	case base.Version < cur.Version:
		return a.refuse(ErrStaleVersion)
	case base.Version == cur.Version && !base.Equal(cur):
		return a.refuse(ErrOtherCluster)
	case base.Version > cur.Version:
		a.learn(base)
	}
	return nil
}

// Prepare is Paxos phase 1 for version base.Version+1: promise to accept no ballot below b
// there, and answer with the change already accepted (if any). base is the proposer's
// committed set: a newer one than the acceptor's is learned first (committed sets are only
// ever sent by peers that learned them). Refusals:
//   - ErrStaleVersion: base is older than the acceptor's set (the error carries it);
//   - ErrOtherCluster: base is of another history;
//   - ErrBallot: b is below the promised ballot (the error carries it);
//   - ErrBadVoterMsg: a bad base or ballot.
//
// A repeated Prepare with the promised ballot gets the same answer again. Sync State before
// sending the answer.
func (a *VoterAcceptor) Prepare(base VoterSet, b Ballot, now time.Time) (VoterAnswer, error) {
	if err := b.validate(); err != nil {
		return VoterAnswer{}, err
	}
	if err := a.base(base); err != nil {
		return VoterAnswer{}, err
	}
	if b.Compare(a.st.Promised) < 0 {
		e := a.refuse(ErrBallot)
		e.Promised = a.st.Promised
		return VoterAnswer{}, e
	}
	a.st.Promised = b
	return VoterAnswer{Kind: VoterPrepare, Version: base.Version, Ballot: b,
		Accepted: a.st.Accepted, Change: a.st.Change}, nil
}

// Accept is Paxos phase 2 for version base.Version+1: accept change c under ballot b unless
// a higher ballot was promised. Refusals are Prepare's, plus:
//   - ErrSettling: ownership promises this acceptor let through under an older voter-set
//     version may still be live (the error carries how long to wait); see "Voters" in the
//     package doc;
//   - ErrBadVoterChange (wrapped in ErrBadVoterMsg): c does not apply to base, or b is the
//     accepted ballot with another change.
//
// Sync State before sending the answer.
func (a *VoterAcceptor) Accept(base VoterSet, b Ballot, c VoterChange, now time.Time) (VoterAnswer, error) {
	if err := b.validate(); err != nil {
		return VoterAnswer{}, err
	}
	if _, err := base.Apply(c); err != nil {
		return VoterAnswer{}, fmt.Errorf("%w: %w", ErrBadVoterMsg, err)
	}
	if err := a.base(base); err != nil {
		return VoterAnswer{}, err
	}
	if now.Before(a.settle) {
		e := a.refuse(ErrSettling)
		e.Wait = a.settle.Sub(now)
		return VoterAnswer{}, e
	}
	if b.Compare(a.st.Promised) < 0 {
		e := a.refuse(ErrBallot)
		e.Promised = a.st.Promised
		return VoterAnswer{}, e
	}
	if b == a.st.Accepted && c != a.st.Change {
		return VoterAnswer{}, fmt.Errorf("%w: ballot %v already accepted %v, not %v", ErrBadVoterMsg, b, a.st.Change, c)
	}
	a.st.Promised = b
	a.st.Accepted = b
	a.st.Change = c
	return VoterAnswer{Kind: VoterAccept, Version: base.Version, Ballot: b}, nil
}

// Commit learns a committed set (the proposer that saw a majority accept sends it to every
// member of the old and the new set). An older set, or the same one again, changes nothing;
// a newer one replaces the committed set and forgets the Paxos state of the old next version.
// Refusals: ErrOtherCluster for a set of another history; ErrBadVoterMsg for a bad set. Sync
// State when its Set changed; Commit has no answer.
func (a *VoterAcceptor) Commit(set VoterSet, now time.Time) error {
	err := a.base(set)
	if e, ok := err.(*VoterRefusedError); ok && e.Err == ErrStaleVersion {
		return nil // an old commit, delivered late
	}
	return err
}

// CheckVersion is asked before the agent's Acceptor answers an ownership promise request;
// the request carries the owner's committed voter set's Cluster and Version. It refuses:
//   - ErrNoVoters before this acceptor has a committed set (no grant before the first
//     voters have formed);
//   - ErrOtherCluster for another history;
//   - ErrStaleVersion for a version below this acceptor's (the error carries its set: the
//     owner adopts it, recounts its majority over it and asks again).
//
// A version above this acceptor's passes: the acceptor is behind, but learns nothing from the
// number (it cannot check a set it was not sent). The agent then asks the owner for its set
// and gives it to Commit (or waits for the next Prepare or Commit, which carry sets).
//
// A pass is remembered (not durably): no change on top of a set learned later is accepted
// until LockDelay + DriftMargin after it (ErrSettling), so that an ownership promise under
// an old version has run out before a set two versions newer can be committed.
func (a *VoterAcceptor) CheckVersion(cluster, version uint64, now time.Time) error {
	cur := a.st.Set
	switch {
	case cur.Version == 0:
		return ErrNoVoters
	case cluster != cur.Cluster:
		return a.refuse(ErrOtherCluster)
	case version < cur.Version:
		return a.refuse(ErrStaleVersion)
	}
	if now.After(a.lastPass) {
		a.lastPass = now
	}
	return nil
}

// Abandon forgets the committed set and the Paxos state: the agent calls it on a peer whose
// cluster history lost a merge (see "Voters" in the package doc), before the surviving
// cluster admits the peer as a new voter. Sync State afterwards. Until it learns a set
// again, CheckVersion refuses with ErrNoVoters.
func (a *VoterAcceptor) Abandon() {
	a.st = VoterAcceptorState{}
}

// Handle dispatches a request to Prepare, Accept or Commit (m.To is not checked). A Commit
// has no answer: the zero VoterAnswer.
func (a *VoterAcceptor) Handle(m VoterMsg, now time.Time) (VoterAnswer, error) {
	switch m.Kind {
	case VoterPrepare:
		return a.Prepare(m.Set, m.Ballot, now)
	case VoterAccept:
		return a.Accept(m.Set, m.Ballot, m.Change, now)
	case VoterCommit:
		return VoterAnswer{}, a.Commit(m.Set, now)
	}
	return VoterAnswer{}, fmt.Errorf("%w: kind %d", ErrBadVoterMsg, m.Kind)
}

package lockmgr

import (
	"fmt"
	"time"
)

// Owner names one incarnation of a peer: a restarted peer has a larger Incarnation, and
// promises made to its previous life are not its own.
type Owner struct {
	Name        string
	Incarnation uint64
}

func (o Owner) String() string { return fmt.Sprintf("%s#%d", o.Name, o.Incarnation) }

// Promise is an acceptor's promise that, until Deadline by its clock, it promises Key to no
// one but Owner, under Epoch.
type Promise struct {
	Key      string
	Owner    Owner
	Epoch    uint32
	Deadline time.Time
}

// RefusedError is the answer to a refused promise: why (Err: ErrPromised or ErrStaleEpoch),
// the live promise that stands in the way (for ErrPromised; the requester may try again
// after its Deadline) and the highest epoch this acceptor ever promised for the key (a new
// owner must ask above it).
type RefusedError struct {
	Err     error
	Live    Promise
	Highest uint32
}

func (e *RefusedError) Error() string {
	if e.Err == ErrPromised {
		return fmt.Sprintf("%v: key %q is promised to %v until %v (highest epoch %d)",
			e.Err, e.Live.Key, e.Live.Owner, e.Live.Deadline.UTC().Format(time.RFC3339Nano), e.Highest)
	}
	return fmt.Sprintf("%v: key %q, ask above epoch %d", e.Err, e.Live.Key, e.Highest)
}

func (e *RefusedError) Unwrap() error { return e.Err }

type acceptorKey struct {
	highest uint32
	promise Promise // live while promise.Deadline is after now
	has     bool
}

// Acceptor is the acceptor side of ownership leases on one peer: per key, at most one
// unexpired promise, to one owner incarnation, and the highest epoch ever promised, which
// only grows. Like Table it has no clock: every call takes now.
//
// The agent must sync each accepted promise and the highest epoch to disk before it answers,
// and an acceptor that restarts must promise nothing for one promise period (LockDelay),
// since it forgot the deadlines it promised; Restore puts back the durable highest epochs.
//
// An Acceptor is not safe for concurrent use: one goroutine of the agent owns it.
type Acceptor struct {
	cfg   Config
	keys  map[string]*acceptorKey
	quiet time.Time // no promises before this
}

// QuietUntil makes the acceptor refuse every promise with ErrQuiet before until. After a
// restart the agent calls it with its start time plus Config.LockDelay (and Restore for
// each durable highest epoch) before it answers any request.
func (a *Acceptor) QuietUntil(until time.Time) { a.quiet = until }

// NewAcceptor returns an acceptor with no promises, or an error wrapping ErrBadConfig.
func NewAcceptor(cfg Config) (*Acceptor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Acceptor{cfg: cfg, keys: map[string]*acceptorKey{}}, nil
}

// Promise promises key to owner under epoch until deadline, or refuses:
//   - ErrPromised (a *RefusedError) while a promise to another owner, or to another
//     incarnation of the same owner name, is live at now;
//   - ErrStaleEpoch (a *RefusedError) for an epoch not above the highest ever promised for
//     the key, except that the owner of the live promise may renew it with its own epoch;
//   - ErrBadDeadline for a deadline not after now or more than LockDelay after it;
//   - ErrQuiet during the quiet period after a restart (QuietUntil);
//   - ErrBadKey, ErrBadOwner, ErrBadEpoch for bad arguments.
//
// A promise to the live promise's owner keeps the later of the two deadlines. The answer is
// the promise now in force.
func (a *Acceptor) Promise(key string, owner Owner, epoch uint32, deadline, now time.Time) (Promise, error) {
	if err := a.check(key, owner, epoch, deadline, now); err != nil {
		return Promise{}, err
	}
	k := a.keys[key]
	if k == nil {
		k = &acceptorKey{}
		a.keys[key] = k
	}
	live := k.has && k.promise.Deadline.After(now)
	if live && k.promise.Owner != owner {
		return Promise{}, &RefusedError{Err: ErrPromised, Live: k.promise, Highest: k.highest}
	}
	renewal := live && epoch == k.promise.Epoch
	if epoch <= k.highest && !renewal {
		return Promise{}, &RefusedError{Err: ErrStaleEpoch, Live: Promise{Key: key}, Highest: k.highest}
	}
	// A live promise is never shortened, not even by its own owner under a new epoch: the
	// owner may act on the deadline it was given first.
	if live && k.promise.Deadline.After(deadline) {
		deadline = k.promise.Deadline
	}
	k.promise = Promise{Key: key, Owner: owner, Epoch: epoch, Deadline: deadline}
	k.has = true
	k.highest = max(k.highest, epoch)
	return k.promise, nil
}

func (a *Acceptor) check(key string, owner Owner, epoch uint32, deadline, now time.Time) error {
	if now.Before(a.quiet) {
		return fmt.Errorf("%w: promises resume at %v", ErrQuiet, a.quiet.UTC().Format(time.RFC3339Nano))
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if owner.Name == "" {
		return fmt.Errorf("%w: empty name", ErrBadOwner)
	}
	if epoch == 0 || epoch > MaxEpoch {
		return fmt.Errorf("%w: epoch %d, must be from 1 to %d", ErrBadEpoch, epoch, MaxEpoch)
	}
	if !deadline.After(now) || deadline.Sub(now) > a.cfg.LockDelay {
		return fmt.Errorf("%w: %v from now, must be more than 0 and at most the lock-delay %v",
			ErrBadDeadline, deadline.Sub(now), a.cfg.LockDelay)
	}
	return nil
}

// PromiseRequest is one key of a batch: see Acceptor.Promise.
type PromiseRequest struct {
	Key      string
	Epoch    uint32
	Deadline time.Time
}

// PromiseAnswer is the answer to one PromiseRequest: the promise in force, or why not.
type PromiseAnswer struct {
	Promise Promise
	Err     error
}

// PromiseBatch answers many keys for one owner in one call (the owner's per-tick renewal):
// answers[i] is Promise(reqs[i].Key, owner, reqs[i].Epoch, reqs[i].Deadline, now). It
// appends to dst and returns it.
func (a *Acceptor) PromiseBatch(dst []PromiseAnswer, owner Owner, reqs []PromiseRequest, now time.Time) []PromiseAnswer {
	for _, r := range reqs {
		p, err := a.Promise(r.Key, owner, r.Epoch, r.Deadline, now)
		dst = append(dst, PromiseAnswer{Promise: p, Err: err})
	}
	return dst
}

// Transfer moves key's live promise from one owner to another in one step (the handoff): it
// succeeds only if from holds a live promise, and promises key to to under epoch (above the
// highest) until deadline. Errors are those of Promise; ErrPromised when from holds no live
// promise (the Live field shows who does, if anyone).
func (a *Acceptor) Transfer(key string, from, to Owner, epoch uint32, deadline, now time.Time) (Promise, error) {
	if err := a.check(key, to, epoch, deadline, now); err != nil {
		return Promise{}, err
	}
	k := a.keys[key]
	if k == nil {
		k = &acceptorKey{}
		a.keys[key] = k
	}
	live := k.has && k.promise.Deadline.After(now)
	switch {
	case live && k.promise.Owner != from:
		return Promise{}, &RefusedError{Err: ErrPromised, Live: k.promise, Highest: k.highest}
	case !live && epoch < k.highest:
		// Nothing to move here (from's promise lapsed, or this acceptor never
		// gave one): a fresh promise under the moved epoch is as good, if
		// the epoch is not below the highest.
		return Promise{}, &RefusedError{Err: ErrStaleEpoch, Live: Promise{Key: key}, Highest: k.highest}
	case live && epoch <= k.highest && epoch != k.promise.Epoch:
		return Promise{}, &RefusedError{Err: ErrStaleEpoch, Live: Promise{Key: key}, Highest: k.highest}
	}
	if !live {
		k.promise = Promise{}
	}
	// As in Promise, the moved promise is never shorter than the live one.
	if k.promise.Deadline.After(deadline) {
		deadline = k.promise.Deadline
	}
	k.promise = Promise{Key: key, Owner: to, Epoch: epoch, Deadline: deadline}
	k.has = true
	k.highest = max(k.highest, epoch)
	return k.promise, nil
}

// Revoke ends owner's live promise on key early (a graceful release by the owner). It does
// nothing if owner holds no live promise on key.
func (a *Acceptor) Revoke(key string, owner Owner, now time.Time) {
	if k := a.keys[key]; k != nil && k.has && k.promise.Owner == owner && k.promise.Deadline.After(now) {
		k.has = false
	}
}

// Live returns key's promise in force at now, if any.
func (a *Acceptor) Live(key string, now time.Time) (Promise, bool) {
	if k := a.keys[key]; k != nil && k.has && k.promise.Deadline.After(now) {
		return k.promise, true
	}
	return Promise{}, false
}

// Highest returns the highest epoch this acceptor ever promised for key (0 if none).
func (a *Acceptor) Highest(key string) uint32 {
	if k := a.keys[key]; k != nil {
		return k.highest
	}
	return 0
}

// Restore sets key's highest epoch from durable storage at startup; it only raises it.
func (a *Acceptor) Restore(key string, highest uint32) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if highest > MaxEpoch {
		return fmt.Errorf("%w: epoch %d, must be at most %d", ErrBadEpoch, highest, MaxEpoch)
	}
	k := a.keys[key]
	if k == nil {
		k = &acceptorKey{}
		a.keys[key] = k
	}
	k.highest = max(k.highest, highest)
	return nil
}

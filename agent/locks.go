package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringleader/ringleader/lockmgr"
)

// Errors of the lock service. Match them with errors.Is.
var (
	// ErrBadLock is returned for a lock request with bad input (key, TTL,
	// wait, holder label, lease ID). The HTTP API answers 400.
	ErrBadLock = errors.New("bad lock request")
	// ErrLockHeld is returned when the key is still held when the wait ran
	// out; the error is a *LockHeldError. The HTTP API answers 409.
	ErrLockHeld = errors.New("lock is held")
	// ErrUnknownLease is returned by RenewLock and ReleaseLock for a lease
	// that is not the key's live lease (released, expired, never granted,
	// or granted by an owner that has since changed). The HTTP API
	// answers 404.
	ErrUnknownLease = errors.New("unknown lease")
	// ErrNoQuorum is returned when the owner of the key could not get
	// promises from a strict majority of the voters, or the voters have
	// not formed yet (--bootstrap-expect). The HTTP API answers 503.
	ErrNoQuorum = errors.New("no quorum")
)

// LockHeldError says who holds a key (their label) and for how much longer.
type LockHeldError struct {
	Key       string
	Holder    string
	Remaining time.Duration
}

func (e *LockHeldError) Error() string {
	by := fmt.Sprintf(" by %q", e.Holder)
	if e.Holder == "" {
		by = " (no holder label)"
	}
	return fmt.Sprintf("%v: key %q is held%s for %v more; retry later or wait longer", ErrLockHeld, e.Key, by, e.Remaining.Round(time.Millisecond))
}

func (e *LockHeldError) Unwrap() error { return ErrLockHeld }

// LockRequest is an acquire: TTL 0 means the default TTL, Wait 0 means do
// not queue.
type LockRequest struct {
	TTL    time.Duration
	Wait   time.Duration
	Holder string
}

// LockGrant is a held lease: its fencing token (compare it at the resource:
// tokens per key only grow), its ID (needed to renew and release), its TTL
// as granted, and the peer that granted it.
type LockGrant struct {
	Key   string
	Token int64
	Lease string
	TTL   time.Duration
	Owner string
}

// LockStatus describes a key as its owner sees it.
type LockStatus struct {
	Key       string
	Held      bool
	Holder    string
	Token     int64
	Remaining time.Duration
	Waiters   int
	Owner     string
}

// lockService is this peer's lock owner and acceptor (docs/locks.md).
type lockService struct {
	a        *Agent
	cfg      lockmgr.Config
	self     lockmgr.Owner
	acceptor *acceptorSide

	// mu guards table, claims and waiting. The table is lockmgr's: one
	// caller at a time.
	mu     sync.Mutex
	table  *lockmgr.Table
	claims map[string]*claim
	// handedTo names, for a lock-delay after each handoff that succeeded,
	// the peer a key went to (see movingTo); renewClaims prunes it.
	handedTo map[string]handedOver
	// waiting maps each queued Acquire to where its outcome goes.
	waiting map[lockmgr.Ticket]chan lockmgr.Event

	// leaving is set by a graceful leave: from then on this peer serves
	// only keys it still holds. Read on every request, so not under mu.
	leaving atomic.Bool

	// armed is when the timer loop wakes next (guarded by mu); kick wakes
	// it sooner, after a change made an earlier deadline.
	armed time.Time
	kick  chan struct{}
	// moved wakes the handoff loop after a ring change.
	moved chan struct{}

	// longTTL is the longest TTL asked for since longTTLAt (within a
	// lock-delay; guarded by mu): see renewEvery.
	longTTL   time.Duration
	longTTLAt time.Time

	// voterKick wakes the voter loop; wantSince is when the change it
	// wants first came up (voter loop only); pruned names members
	// force-left here, which the voter loop removes from the voter set
	// (guarded by mu).
	voterKick chan struct{}
	tagging   atomic.Bool  // a TagVoters update is in flight
	seen      atomic.Int64 // alive peers the voter loop saw while no set had formed
	wantSince time.Time
	// lastSet is the voter set the voter loop saw last, removed when
	// members dropped out of it (voter loop only).
	lastSet lockmgr.VoterSet
	removed map[string]time.Time
	pruned  map[string]bool
}

// claim is this peer's ownership lease on one key: the epoch a strict
// majority of the voters promised, and until when (by this peer's clock,
// counted from when the requests were sent).
type claim struct {
	epoch    uint32
	until    time.Time
	lastUsed time.Time
	// round is the promise round in flight for the key, if any.
	round *round
	// moving names the new owner once this peer started handing the key
	// over: it never grants under this claim again, and drops it when the
	// handoff succeeds or the promises lapse.
	moving string
	// adopted says the claim came with a handoff from a leaving peer: it
	// is renewed while the ring still names that peer (from) the owner,
	// and never handed back to it.
	adopted bool
	from    string
	// noRoundBefore holds off a new promise round: a handoff that failed
	// may have moved some of the old owner's promises here without its
	// leases, so this peer must not grant before they could have run out.
	noRoundBefore time.Time
	// tried is the epoch of the last round that asked for a new one, and
	// triedUntil when the promises it may have got run out.
	tried      uint32
	triedUntil time.Time
}

// handedOver is a key this peer handed over: to whom, and until when it
// still says so.
type handedOver struct {
	to    string
	until time.Time
}

// redirectError says the key's owner moved (a handoff): the request goes
// there instead.
type redirectError struct {
	to       string
	fallback bool // see lockOpRequest.Fallback
}

func (e *redirectError) Error() string { return "the lock key moved to " + e.to }

// movedTo returns a redirect if key is being handed over. Called with mu
// held.
func (ls *lockService) movedTo(key string) error {
	if c := ls.claims[key]; c != nil && c.moving != "" {
		return &redirectError{to: c.moving}
	}
	return nil
}

// round is one promise round; done is closed when err is set.
type round struct {
	done chan struct{}
	err  error
}

// metaLockIncarnation is the meta value holding this peer's last owner
// incarnation.
const metaLockIncarnation = "lock-incarnation"

// openLocks creates the lock service on the store: it loads the acceptor's
// durable epochs, starts its quiet period and takes a new owner
// incarnation, synced, so promises made to this peer's previous life are
// not its own.
func (a *Agent) openLocks() error {
	cfg := a.cfg.Locks.lockmgrConfig()
	acc, err := newAcceptorSide(a.db, a.clock, cfg)
	if err != nil {
		return err
	}
	// Lease IDs come from crypto/rand, read 4 KiB at a time: one system
	// call per 256 grants instead of one each. The table is only used
	// under ls.mu, so the buffer needs no lock of its own.
	tcfg := cfg
	tcfg.Rand = bufio.NewReaderSize(rand.Reader, 4096)
	table, err := lockmgr.NewTable(tcfg)
	if err != nil {
		return err
	}
	var inc uint64
	if v, ok, err := a.db.GetMeta(metaLockIncarnation); err != nil {
		return err
	} else if ok && len(v) == 8 {
		inc = binary.BigEndian.Uint64(v)
	}
	inc = max(inc+1, uint64(a.clock.Now().UnixNano()))
	b := a.db.NewBatch()
	if err := b.PutMeta(metaLockIncarnation, binary.BigEndian.AppendUint64(nil, inc)); err != nil {
		b.Close()
		return err
	}
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("agent: record the lock incarnation: %w", err)
	}
	ls := &lockService{
		a:         a,
		cfg:       cfg,
		self:      lockmgr.Owner{Name: a.cfg.NodeName, Incarnation: inc},
		acceptor:  acc,
		table:     table,
		claims:    map[string]*claim{},
		waiting:   map[lockmgr.Ticket]chan lockmgr.Event{},
		kick:      make(chan struct{}, 1),
		moved:     make(chan struct{}, 1),
		voterKick: make(chan struct{}, 1),
	}
	a.mu.Lock()
	a.locks = ls
	a.mu.Unlock()
	return nil
}

// lockService returns the lock service, or ErrNotStarted.
func (a *Agent) lockService() (*lockService, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.locks == nil {
		return nil, ErrNotStarted
	}
	return a.locks, nil
}

// wake tells the timer loop the table's next deadline may have moved
// earlier than the one it sleeps until. Called without mu.
func (ls *lockService) wake() {
	ls.mu.Lock()
	ls.wakeLocked()
	ls.mu.Unlock()
}

// wakeLocked is wake with mu held.
func (ls *lockService) wakeLocked() {
	if at, ok := ls.table.NextDeadline(); ok && at.Before(ls.armed) {
		select {
		case ls.kick <- struct{}{}:
		default:
		}
	}
}

// runTimers fires the table's timers (lease expiries, wait deadlines) and
// answers the requests they concern. Owned by the agent's wait group.
func (ls *lockService) runTimers() {
	defer ls.a.wg.Done()
	for {
		ls.mu.Lock()
		at, ok := ls.table.NextDeadline()
		d := time.Hour
		if ok {
			d = max(at.Sub(ls.a.clock.Now()), 0)
		}
		ls.armed = ls.a.clock.Now().Add(d)
		ls.mu.Unlock()
		t := ls.a.clock.NewTimer(d)
		select {
		case <-t.C():
			ls.mu.Lock()
			ls.dispatch(ls.table.Tick(ls.a.clock.Now()))
			ls.mu.Unlock()
		case <-ls.kick:
			t.Stop()
		case <-ls.a.stop:
			t.Stop()
			return
		}
	}
}

// dispatch delivers table events to the requests waiting for them. Called
// with mu held.
func (ls *lockService) dispatch(events []lockmgr.Event) {
	for _, ev := range events {
		switch ev.Kind {
		case lockmgr.LeaseExpired:
			ls.a.metrics.lockExpiries.Inc()
			continue
		case lockmgr.WaiterGranted:
			ls.a.metrics.lockGrants.Inc()
		}
		if ch, ok := ls.waiting[ev.Ticket]; ok {
			delete(ls.waiting, ev.Ticket)
			ch <- ev
		}
	}
}

// checkTTL resolves a requested TTL (0: the default) and refuses one out of
// range before any promise round; renewing says a renewal asked for it.
func (ls *lockService) checkTTL(ttl time.Duration, renewing bool) (time.Duration, error) {
	if ttl == 0 {
		return ls.cfg.DefaultTTL, nil
	}
	if ttl < lockmgr.MinTTL || ttl > ls.cfg.MaxTTL() {
		return 0, ttlRangeError(ls.cfg, ttl, renewing)
	}
	return ttl, nil
}

// ttlRangeError is the error for a TTL outside 1 s to the longest TTL,
// explicit zero included; renewing says a renewal asked for it, which
// changes what to do instead.
func ttlRangeError(cfg lockmgr.Config, ttl time.Duration, renewing bool) error {
	var hint string
	switch {
	case ttl == 0 && renewing:
		hint = "leave ttl out to keep the lease's TTL"
	case ttl == 0:
		hint = fmt.Sprintf("leave ttl out for the default %v", cfg.DefaultTTL)
	case renewing:
		hint = "renew again before the lease runs out instead of asking for a longer TTL"
	default:
		hint = "for a longer job, renew the lease before it runs out"
	}
	return fmt.Errorf("%w: ttl %v must be from %v to %v (the lock-delay %v minus the drift margin %v); %s",
		ErrBadLock, ttl, lockmgr.MinTTL, cfg.MaxTTL(), cfg.LockDelay, cfg.DriftMargin, hint)
}

// acquire grants key to the request, waiting up to req.Wait behind other
// holders. This peer must own the key (serve checked).
func (ls *lockService) acquire(ctx context.Context, key string, req LockRequest) (lockmgr.Lease, error) {
	ttl, err := ls.checkTTL(req.TTL, false)
	if err != nil {
		return lockmgr.Lease{}, err
	}
	if req.Wait < 0 || req.Wait > ls.cfg.MaxWait {
		return lockmgr.Lease{}, fmt.Errorf("%w: wait %v must be from 0 to %v", ErrBadLock, req.Wait, ls.cfg.MaxWait)
	}
	for attempt := 0; ; attempt++ {
		if err := ls.ensureOwned(ctx, key, ttl, attempt > 0); err != nil {
			return lockmgr.Lease{}, err
		}
		ls.mu.Lock()
		if err := ls.movedTo(key); err != nil {
			ls.mu.Unlock()
			return lockmgr.Lease{}, err
		}
		now := ls.a.clock.Now()
		res, err := ls.table.Acquire(key, req.Holder, ttl, req.Wait, now)
		ls.dispatch(ls.table.Tick(now))
		if errors.Is(err, lockmgr.ErrNotOwned) && attempt == 0 {
			// The ownership lease is too short for this TTL: renew it now.
			ls.mu.Unlock()
			continue
		}
		if errors.Is(err, lockmgr.ErrSequenceExhausted) && attempt == 0 {
			// 2^21 grants under this epoch: ask the voters for a new one
			// (they promise it to this owner at once, its promises being
			// live). Treat the claim as lapsed until then.
			if c := ls.claims[key]; c != nil && c.round == nil {
				c.until = time.Time{}
			}
			ls.mu.Unlock()
			continue
		}
		if err != nil {
			defer ls.mu.Unlock()
			return lockmgr.Lease{}, ls.tableError(key, err, now)
		}
		if c := ls.claims[key]; c != nil {
			c.lastUsed = now
		}
		ls.wakeLocked()
		if res.Granted {
			ls.mu.Unlock()
			ls.a.metrics.lockGrants.Inc()
			return res.Lease, nil
		}
		ch := make(chan lockmgr.Event, 1)
		ls.waiting[res.Ticket] = ch
		ls.mu.Unlock()
		ls.a.metrics.lockWaits.Inc()
		return ls.await(ctx, key, res.Ticket, ch)
	}
}

// await waits for a queued Acquire's outcome, cancelling it if ctx ends.
func (ls *lockService) await(ctx context.Context, key string, ticket lockmgr.Ticket, ch chan lockmgr.Event) (lockmgr.Lease, error) {
	var ev lockmgr.Event
	select {
	case ev = <-ch:
	case <-ctx.Done():
		ls.mu.Lock()
		now := ls.a.clock.Now()
		if ls.table.Cancel(ticket, now) == nil {
			delete(ls.waiting, ticket)
			ls.dispatch(ls.table.Tick(now))
			ls.mu.Unlock()
			ls.wake()
			return lockmgr.Lease{}, fmt.Errorf("%w: gave up waiting for %q: %v", ErrUnavailable, key, ctx.Err())
		}
		// The outcome was decided as the context ended — maybe just now, by
		// the timers Cancel ran, into the table's outbox: deliver it, take
		// it, and give a grant nobody will use straight back.
		ls.dispatch(ls.table.Tick(now))
		ls.mu.Unlock()
		select {
		case ev = <-ch:
		case <-ls.a.stop:
			return lockmgr.Lease{}, fmt.Errorf("%w: gave up waiting for %q: %v", ErrUnavailable, key, ctx.Err())
		}
		if ev.Kind == lockmgr.WaiterGranted {
			ls.mu.Lock()
			evs, _ := ls.table.Release(ev.Lease, ls.a.clock.Now())
			ls.dispatch(evs)
			ls.mu.Unlock()
		}
		return lockmgr.Lease{}, fmt.Errorf("%w: gave up waiting for %q: %v", ErrUnavailable, key, ctx.Err())
	}
	switch ev.Kind {
	case lockmgr.WaiterGranted:
		return ev.Lease, nil
	case lockmgr.WaiterTimedOut:
		ls.mu.Lock()
		defer ls.mu.Unlock()
		now := ls.a.clock.Now()
		if !ls.table.Info(key, now).Held {
			// Free, but not owned long enough to grant in time.
			return lockmgr.Lease{}, fmt.Errorf("%w: the wait for %q ran out while this peer could not renew its ownership of the key; retry", ErrNoQuorum, key)
		}
		return lockmgr.Lease{}, ls.tableError(key, lockmgr.ErrHeld, now)
	default:
		var rd *redirectError
		if errors.As(ev.Err, &rd) {
			return lockmgr.Lease{}, ev.Err
		}
		return lockmgr.Lease{}, fmt.Errorf("%w: %v", ErrUnavailable, ev.Err)
	}
}

// tableError turns a lockmgr error into the agent's. Called with mu held.
func (ls *lockService) tableError(key string, err error, now time.Time) error {
	switch {
	case errors.Is(err, lockmgr.ErrHeld):
		in := ls.table.Info(key, now)
		return &LockHeldError{Key: key, Holder: in.Holder, Remaining: in.Remaining}
	case errors.Is(err, lockmgr.ErrBadKey), errors.Is(err, lockmgr.ErrBadHolder),
		errors.Is(err, lockmgr.ErrBadTTL), errors.Is(err, lockmgr.ErrBadWait):
		return fmt.Errorf("%w: %v", ErrBadLock, err)
	case errors.Is(err, lockmgr.ErrUnknownLease):
		return fmt.Errorf("%w: %v", ErrUnknownLease, err)
	case errors.Is(err, lockmgr.ErrNotOwned), errors.Is(err, lockmgr.ErrNoEpoch):
		return fmt.Errorf("%w: %v; retry", ErrNoQuorum, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// renew extends the live lease named by id.
func (ls *lockService) renew(ctx context.Context, key string, id lockmgr.LeaseID, ttl time.Duration) (lockmgr.Lease, error) {
	if ttl != 0 {
		var err error
		if ttl, err = ls.checkTTL(ttl, true); err != nil {
			return lockmgr.Lease{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		ls.mu.Lock()
		if err := ls.movedTo(key); err != nil {
			ls.mu.Unlock()
			return lockmgr.Lease{}, err
		}
		now := ls.a.clock.Now()
		in := ls.table.Info(key, now)
		if !in.Held || in.Lease.ID != id {
			err := ls.unknownLease(key, id)
			ls.mu.Unlock()
			return lockmgr.Lease{}, err
		}
		l, err := ls.table.Renew(in.Lease, ttl, now)
		if errors.Is(err, lockmgr.ErrNotOwned) && attempt == 0 {
			need := ttl
			if need == 0 {
				need = in.Lease.Expiry.Sub(now)
			}
			ls.mu.Unlock()
			if err := ls.ensureOwned(ctx, key, max(need, ls.cfg.DefaultTTL), true); err != nil {
				return lockmgr.Lease{}, err
			}
			continue
		}
		if err != nil {
			defer ls.mu.Unlock()
			return lockmgr.Lease{}, ls.tableError(key, err, now)
		}
		if c := ls.claims[key]; c != nil {
			c.lastUsed = now
		}
		ls.wakeLocked()
		ls.mu.Unlock()
		return l, nil
	}
}

// release ends the live lease named by id and hands the key to the next
// waiter.
func (ls *lockService) release(key string, id lockmgr.LeaseID) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if err := ls.movedTo(key); err != nil {
		return err
	}
	now := ls.a.clock.Now()
	in := ls.table.Info(key, now)
	if !in.Held || in.Lease.ID != id {
		return ls.unknownLease(key, id)
	}
	evs, err := ls.table.Release(in.Lease, now)
	ls.dispatch(evs)
	if err != nil {
		return ls.tableError(key, err, now)
	}
	if c := ls.claims[key]; c != nil {
		c.lastUsed = now
	}
	ls.wakeLocked()
	return nil
}

// unknownLease answers a renew or release of a lease this peer does not
// hold. A peer that holds no claim on the key may have just become its
// owner, before the previous owner handed it over: the request goes on to
// the owner on the ring without this peer, marked so it comes back no
// further. Called with mu held.
func (ls *lockService) unknownLease(key string, id lockmgr.LeaseID) error {
	if c := ls.claims[key]; c == nil || !c.until.After(ls.a.clock.Now()) {
		if prev, err := ownerOn(ls.a.view.load().Ring, key, ls.self.Name); err == nil && prev != ls.self.Name {
			return &redirectError{to: prev, fallback: true}
		}
	}
	return fmt.Errorf("%w: key %q has no live lease %s: it expired, was released or was never granted; acquire the lock again", ErrUnknownLease, key, id)
}

// info describes key.
func (ls *lockService) info(key string) lockmgr.Info {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.table.Info(key, ls.a.clock.Now())
}

package lockmgr

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// LeaseID identifies one grant. It is 128 random bits from Config.Rand.
type LeaseID [16]byte

// String returns the ID as 32 hex digits.
func (id LeaseID) String() string { return fmt.Sprintf("%x", id[:]) }

// Lease is one grant of a key: its fencing token, its ID (the proof of holding it, needed to
// renew and release) and when it expires by the table's clock.
type Lease struct {
	Key    string
	Token  int64
	ID     LeaseID
	Expiry time.Time
}

// Ticket names one waiting Acquire. Tickets are unique within a Table and grow in the order
// the waiters queued.
type Ticket uint64

// EventKind says what happened to a lease or a waiter.
type EventKind uint8

// The kinds of Event.
const (
	// LeaseExpired: Event.Lease ran out without being renewed or released.
	LeaseExpired EventKind = iota + 1
	// WaiterGranted: the waiter Event.Ticket now holds Event.Lease.
	WaiterGranted
	// WaiterTimedOut: the waiter Event.Ticket's wait ran out before the key was free; the
	// agent answers its request with 409.
	WaiterTimedOut
	// WaiterFailed: the key was free but the waiter Event.Ticket could not be granted
	// (Event.Err: ErrSequenceExhausted, ErrRandom).
	WaiterFailed
)

func (k EventKind) String() string {
	switch k {
	case LeaseExpired:
		return "expired"
	case WaiterGranted:
		return "granted"
	case WaiterTimedOut:
		return "timed-out"
	case WaiterFailed:
		return "failed"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one thing that happened in a Table: returned by Tick and Release.
type Event struct {
	Kind   EventKind
	Key    string
	Ticket Ticket // waiter events
	Holder string // the holder label of the lease or waiter
	Lease  Lease  // LeaseExpired, WaiterGranted
	Err    error  // WaiterFailed
}

// Acquired is the answer to an Acquire: either a granted Lease, or a Ticket whose outcome
// (WaiterGranted, WaiterTimedOut or WaiterFailed) comes later from Tick or Release.
type Acquired struct {
	Granted bool
	Lease   Lease  // when Granted
	Ticket  Ticket // when not Granted
}

// Info describes a key: its holder, if any, and its queue.
type Info struct {
	Held      bool
	Holder    string
	Lease     Lease
	Remaining time.Duration
	Waiters   int
	Epoch     uint32
	Sequence  uint32
}

type holding struct {
	lease  Lease
	holder string
	ttl    time.Duration
	timer  timer
}

type waiter struct {
	ticket   Ticket
	key      *keyState
	holder   string
	ttl      time.Duration
	deadline time.Time
	timer    timer
}

type keyState struct {
	key     string
	epoch   uint32
	seq     uint32
	until   time.Time // ownership deadline; zero: not limited by the table
	holder  *holding
	waiters []*waiter // FIFO
}

// Table is one owner's lock table: for each key, at most one lease and a FIFO queue of
// waiters, with fencing tokens from the key's epoch and sequence.
//
// A Table is a deterministic state machine. It has no clock: every call that can change
// state takes now, the caller's current time, and first runs the timers due by then (a now
// earlier than one already seen counts as that one, so time never runs backwards inside the
// table). What the timers do (expired leases, waiters granted, timed out or failed) is kept
// in an outbox that Tick and Release return; after Acquire, Renew, Cancel, SetEpoch or Import
// the caller collects it with Tick. NextDeadline says when Tick is next due.
//
// A Table is not safe for concurrent use: one goroutine of the agent owns it.
type Table struct {
	cfg     Config
	rand    io.Reader
	now     time.Time
	keys    map[string]*keyState
	tickets map[Ticket]*waiter
	timers  timerHeap
	order   uint64
	ticket  Ticket
	outbox  []Event
}

// NewTable returns an empty table, or an error wrapping ErrBadConfig.
func NewTable(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	return &Table{cfg: cfg, rand: r, keys: map[string]*keyState{}, tickets: map[Ticket]*waiter{}}, nil
}

func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: length %d, must be from 1 to %d bytes", ErrBadKey, len(key), MaxKeyLen)
	}
	return nil
}

func (t *Table) checkTTL(ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		return t.cfg.DefaultTTL, nil
	}
	if ttl < MinTTL || ttl > t.cfg.MaxTTL() {
		return 0, fmt.Errorf("%w: %v, must be from %v to %v (lock-delay minus the drift margin); long jobs renew",
			ErrBadTTL, ttl, MinTTL, t.cfg.MaxTTL())
	}
	return ttl, nil
}

// SetEpoch sets the epoch the table grants key under, from the owner's ownership lease.
// Epochs only grow: a smaller epoch is refused with ErrBadEpoch, the same one is a no-op, and
// a larger one restarts the sequence (the next token is (epoch, 1)). Leases already granted
// keep their tokens.
func (t *Table) SetEpoch(key string, epoch uint32) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if epoch == 0 || epoch > MaxEpoch {
		return fmt.Errorf("%w: epoch %d for key %q, must be from 1 to %d", ErrBadEpoch, epoch, key, MaxEpoch)
	}
	ks := t.keys[key]
	if ks == nil {
		ks = &keyState{key: key}
		t.keys[key] = ks
	}
	switch {
	case epoch < ks.epoch:
		return fmt.Errorf("%w: epoch %d for key %q is below the epoch in force %d; epochs only grow",
			ErrBadEpoch, epoch, key, ks.epoch)
	case epoch > ks.epoch:
		ks.epoch, ks.seq = epoch, 0
	}
	return nil
}

// SetOwnedUntil tells the table until when the owner holds its ownership lease on key (the
// earliest deadline it may count on from a majority of promises, timed from when it sent
// them). From then on the table grants and renews on key only leases that end at least
// Config.DriftMargin before until; Acquire and Renew refuse others with ErrNotOwned, and
// waiters stay queued until the ownership is extended. A zero until lifts the limit (the
// agent then checks it itself). Extending it grants to waiters that can now be granted:
// collect the events with Tick.
func (t *Table) SetOwnedUntil(key string, until, now time.Time) error {
	if err := checkKey(key); err != nil {
		return err
	}
	now = t.advance(now)
	ks := t.keys[key]
	if ks == nil {
		ks = &keyState{key: key}
		t.keys[key] = ks
	}
	ks.until = until
	if ks.epoch != 0 {
		t.grantNext(ks, now)
	}
	return nil
}

// owned reports whether a lease on ks ending at expiry may be granted or renewed.
func (t *Table) owned(ks *keyState, expiry time.Time) bool {
	return ks.until.IsZero() || !expiry.Add(t.cfg.DriftMargin).After(ks.until)
}

// fit returns the TTL a lease on ks granted or renewed at now gets for a request of ttl:
// ttl itself if the ownership covers it, ttl shortened to fit if it falls short by at most
// Config.TTLSlack (and leaves at least MinTTL), and ok false otherwise.
func (t *Table) fit(ks *keyState, ttl time.Duration, now time.Time) (time.Duration, bool) {
	if t.owned(ks, now.Add(ttl)) {
		return ttl, true
	}
	avail := ks.until.Add(-t.cfg.DriftMargin).Sub(now)
	if ttl-avail <= t.cfg.TTLSlack && avail >= MinTTL {
		return avail, true
	}
	return 0, false
}

// Epoch returns the epoch and sequence in force for key (0, 0 if none was set).
func (t *Table) Epoch(key string) (epoch, seq uint32) {
	if ks := t.keys[key]; ks != nil {
		return ks.epoch, ks.seq
	}
	return 0, 0
}

// Acquire asks for key for ttl (0 means Config.DefaultTTL), on behalf of holder (a label for
// humans, not an identity). If the key is free and nobody waits, it grants at once. Else,
// with wait 0 it returns ErrHeld; with wait > 0 it queues the request behind the earlier
// waiters and returns a Ticket: Tick or Release later report WaiterGranted, WaiterTimedOut
// (at now + wait) or WaiterFailed for it.
func (t *Table) Acquire(key, holder string, ttl, wait time.Duration, now time.Time) (Acquired, error) {
	if err := checkKey(key); err != nil {
		return Acquired{}, err
	}
	if len(holder) > MaxHolderLen {
		return Acquired{}, fmt.Errorf("%w: length %d, must be at most %d bytes", ErrBadHolder, len(holder), MaxHolderLen)
	}
	ttl, err := t.checkTTL(ttl)
	if err != nil {
		return Acquired{}, err
	}
	if wait < 0 || wait > t.cfg.MaxWait {
		return Acquired{}, fmt.Errorf("%w: %v, must be from 0 to %v", ErrBadWait, wait, t.cfg.MaxWait)
	}
	now = t.advance(now)
	ks := t.keys[key]
	if ks == nil || ks.epoch == 0 {
		return Acquired{}, fmt.Errorf("%w %q: get an ownership lease and call SetEpoch first", ErrNoEpoch, key)
	}
	if ks.holder == nil && len(ks.waiters) == 0 {
		l, err := t.grant(ks, holder, ttl, now)
		switch {
		case err == nil:
			return Acquired{Granted: true, Lease: l}, nil
		case !errors.Is(err, ErrNotOwned) || wait == 0:
			return Acquired{}, err
		}
	} else if wait == 0 {
		return Acquired{}, fmt.Errorf("%w: key %q", ErrHeld, key)
	}
	if len(ks.waiters) >= t.cfg.MaxWaiters {
		return Acquired{}, fmt.Errorf("%w: key %q has %d waiters, the most it queues", ErrTooManyWaiters, key, len(ks.waiters))
	}
	t.ticket++
	w := t.enqueue(ks, t.ticket, holder, ttl, now.Add(wait))
	return Acquired{Ticket: w.ticket}, nil
}

func (t *Table) enqueue(ks *keyState, ticket Ticket, holder string, ttl time.Duration, deadline time.Time) *waiter {
	w := &waiter{ticket: ticket, key: ks, holder: holder, ttl: ttl, deadline: deadline}
	w.timer = timer{at: deadline, waiter: w, index: -1}
	t.schedule(&w.timer)
	ks.waiters = append(ks.waiters, w)
	t.tickets[ticket] = w
	return w
}

func (t *Table) schedule(tm *timer) {
	t.order++
	tm.order = t.order
	t.timers.push(tm)
}

// grant makes a new lease on a free key.
func (t *Table) grant(ks *keyState, holder string, ttl time.Duration, now time.Time) (Lease, error) {
	fitted, ok := t.fit(ks, ttl, now)
	if !ok {
		return Lease{}, fmt.Errorf("%w: key %q owned until %v, a %v lease needs %v more",
			ErrNotOwned, ks.key, ks.until, ttl, now.Add(ttl+t.cfg.DriftMargin).Sub(ks.until))
	}
	asked := ttl
	ttl = fitted
	if ks.seq >= MaxSequence {
		return Lease{}, fmt.Errorf("%w: key %q at epoch %d", ErrSequenceExhausted, ks.key, ks.epoch)
	}
	var id LeaseID
	if _, err := io.ReadFull(t.rand, id[:]); err != nil {
		return Lease{}, fmt.Errorf("%w: %v", ErrRandom, err)
	}
	tok, err := MakeToken(ks.epoch, ks.seq+1)
	if err != nil {
		return Lease{}, err
	}
	ks.seq++
	h := &holding{lease: Lease{Key: ks.key, Token: tok, ID: id, Expiry: now.Add(ttl)}, holder: holder, ttl: asked}
	t.hold(ks, h)
	return h.lease, nil
}

func (t *Table) hold(ks *keyState, h *holding) {
	h.timer = timer{at: h.lease.Expiry, lease: ks, index: -1}
	t.schedule(&h.timer)
	ks.holder = h
}

func (t *Table) live(l Lease) (*keyState, error) {
	ks := t.keys[l.Key]
	if ks == nil || ks.holder == nil || ks.holder.lease.ID != l.ID || ks.holder.lease.Token != l.Token {
		return nil, fmt.Errorf("%w: key %q lease %s token %d is not held (released, expired or never granted)",
			ErrUnknownLease, l.Key, l.ID, l.Token)
	}
	return ks, nil
}

// Renew extends a live lease to now + ttl (0 means the TTL it was granted with) and returns
// it with its new expiry; token and ID stay. A lease that expired by now is gone:
// ErrUnknownLease.
func (t *Table) Renew(l Lease, ttl time.Duration, now time.Time) (Lease, error) {
	now = t.advance(now)
	ks, err := t.live(l)
	if err != nil {
		return Lease{}, err
	}
	if ttl == 0 {
		ttl = ks.holder.ttl
	} else if ttl, err = t.checkTTL(ttl); err != nil {
		return Lease{}, err
	}
	h := ks.holder
	fitted, ok := t.fit(ks, ttl, now)
	if !ok {
		return Lease{}, fmt.Errorf("%w: key %q owned until %v; the lease keeps its expiry %v",
			ErrNotOwned, ks.key, ks.until, h.lease.Expiry)
	}
	h.ttl = ttl // as asked: a renewal with 0 asks for it again, not for what fitted
	h.lease.Expiry = now.Add(fitted)
	h.timer.at = h.lease.Expiry
	t.order++
	h.timer.order = t.order
	t.timers.fix(h.timer.index)
	return h.lease, nil
}

// Release ends a live lease and hands the key to the first waiter that can take it. It
// returns the outbox: the events of the timers due by now and of the handover.
func (t *Table) Release(l Lease, now time.Time) ([]Event, error) {
	now = t.advance(now)
	ks, err := t.live(l)
	if err != nil {
		return t.drain(), err
	}
	t.timers.remove(&ks.holder.timer)
	ks.holder = nil
	t.grantNext(ks, now)
	return t.drain(), nil
}

// Cancel removes a waiter that no longer wants the key (its client went away).
func (t *Table) Cancel(ticket Ticket, now time.Time) error {
	now = t.advance(now)
	w := t.tickets[ticket]
	if w == nil {
		return fmt.Errorf("%w: %d", ErrUnknownTicket, ticket)
	}
	t.dequeue(w)
	t.grantNext(w.key, now)
	return nil
}

func (t *Table) dequeue(w *waiter) {
	t.timers.remove(&w.timer)
	delete(t.tickets, w.ticket)
	q := w.key.waiters
	for i, x := range q {
		if x == w {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			w.key.waiters = q[:len(q)-1]
			break
		}
	}
}

// grantNext grants a free key to its waiters in FIFO order until one holds it, or until the
// first waiter's lease would outlast the ownership (it stays first in the queue).
func (t *Table) grantNext(ks *keyState, now time.Time) {
	for ks.holder == nil && len(ks.waiters) > 0 {
		w := ks.waiters[0]
		if _, ok := t.fit(ks, w.ttl, now); !ok {
			return
		}
		t.dequeue(w)
		l, err := t.grant(ks, w.holder, w.ttl, now)
		if err != nil {
			t.outbox = append(t.outbox, Event{Kind: WaiterFailed, Key: ks.key, Ticket: w.ticket, Holder: w.holder, Err: err})
			continue
		}
		t.outbox = append(t.outbox, Event{Kind: WaiterGranted, Key: ks.key, Ticket: w.ticket, Holder: w.holder, Lease: l})
	}
}

// Tick runs the timers due by now and returns the outbox: leases expired, waiters granted,
// timed out or failed, in the order they happened.
func (t *Table) Tick(now time.Time) []Event {
	t.advance(now)
	return t.drain()
}

func (t *Table) drain() []Event {
	ev := t.outbox
	t.outbox = nil
	return ev
}

// NextDeadline returns when the earliest lease expiry or wait deadline falls: the caller
// should call Tick then. ok is false when nothing is scheduled.
func (t *Table) NextDeadline() (at time.Time, ok bool) {
	if len(t.timers) == 0 {
		return time.Time{}, false
	}
	return t.timers[0].at, true
}

// advance runs every timer due by now (clamped to never run backwards) and returns the
// clamped now.
func (t *Table) advance(now time.Time) time.Time {
	if now.Before(t.now) {
		now = t.now
	}
	t.now = now
	for len(t.timers) > 0 && !t.timers[0].at.After(now) {
		tm := t.timers[0]
		t.timers.remove(tm)
		if w := tm.waiter; w != nil {
			t.dequeue(w)
			t.outbox = append(t.outbox, Event{Kind: WaiterTimedOut, Key: w.key.key, Ticket: w.ticket, Holder: w.holder})
			continue
		}
		ks := tm.lease
		h := ks.holder
		ks.holder = nil
		t.outbox = append(t.outbox, Event{Kind: LeaseExpired, Key: ks.key, Holder: h.holder, Lease: h.lease})
		t.grantNext(ks, now)
	}
	return now
}

// Info describes key as of now without changing anything: a lease whose expiry is not after
// now counts as not held.
func (t *Table) Info(key string, now time.Time) Info {
	ks := t.keys[key]
	if ks == nil {
		return Info{}
	}
	in := Info{Waiters: len(ks.waiters), Epoch: ks.epoch, Sequence: ks.seq}
	if h := ks.holder; h != nil && h.lease.Expiry.After(now) {
		in.Held, in.Holder, in.Lease, in.Remaining = true, h.holder, h.lease, h.lease.Expiry.Sub(now)
	}
	return in
}

// Len returns how many keys the table knows (with an epoch, a holder or waiters).
func (t *Table) Len() int { return len(t.keys) }

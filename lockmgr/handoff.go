package lockmgr

import (
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// HeldState is a key's live lease in a KeyState.
type HeldState struct {
	Lease  Lease
	Holder string
	TTL    time.Duration
}

// WaiterState is one waiter in a KeyState, in queue order.
type WaiterState struct {
	Ticket   Ticket // the exporting table's ticket
	Holder   string
	TTL      time.Duration
	Deadline time.Time
}

// KeyState is everything a table knows of one key, for a handoff to the key's new owner:
// the epoch and sequence in force, the live lease and the waiters.
type KeyState struct {
	Key      string
	Epoch    uint32
	Sequence uint32
	Held     *HeldState
	Waiters  []WaiterState
}

// Export returns key's entries as of now (after running the timers due by then), and
// whether the table knows key. It changes nothing else: the caller stops granting key (it
// must not call Acquire for it) until Remove, or until the handoff fails.
func (t *Table) Export(key string, now time.Time) (KeyState, bool) {
	t.advance(now)
	ks := t.keys[key]
	if ks == nil {
		return KeyState{}, false
	}
	st := KeyState{Key: key, Epoch: ks.epoch, Sequence: ks.seq}
	if h := ks.holder; h != nil {
		st.Held = &HeldState{Lease: h.lease, Holder: h.holder, TTL: h.ttl}
	}
	for _, w := range ks.waiters {
		st.Waiters = append(st.Waiters, WaiterState{Ticket: w.ticket, Holder: w.holder, TTL: w.ttl, Deadline: w.deadline})
	}
	return st, true
}

// Remove forgets key and its entries (after its handoff). Its waiters are dropped with no
// event: the agent answers their requests from the new owner's outcome.
func (t *Table) Remove(key string) {
	ks := t.keys[key]
	if ks == nil {
		return
	}
	if ks.holder != nil {
		t.timers.remove(&ks.holder.timer)
	}
	for len(ks.waiters) > 0 {
		t.dequeue(ks.waiters[0])
	}
	delete(t.keys, key)
}

// Import takes in a key's entries from its previous owner, after running the timers due by
// now. The epoch and sequence only grow: they become the larger of the table's and the
// state's (a larger epoch restarts nothing: the sequence carries on). A key with a holder or
// waiters here already is refused with ErrKeyBusy; a bad state with ErrBadEncoding. It
// returns the new tickets of the state's waiters, in order (tickets are per table).
// Deadlines that passed already fire at the next Tick.
func (t *Table) Import(st KeyState, now time.Time) ([]Ticket, error) {
	if err := st.validate(t.cfg.MaxTTL()); err != nil {
		return nil, err
	}
	if len(st.Waiters) > t.cfg.MaxWaiters {
		return nil, fmt.Errorf("%w: key %q has %d waiters, more than MaxWaiters %d", ErrBadEncoding, st.Key, len(st.Waiters), t.cfg.MaxWaiters)
	}
	t.advance(now)
	ks := t.keys[st.Key]
	if ks != nil && (ks.holder != nil || len(ks.waiters) > 0) {
		return nil, fmt.Errorf("%w: key %q", ErrKeyBusy, st.Key)
	}
	if ks == nil {
		ks = &keyState{key: st.Key}
		t.keys[st.Key] = ks
	}
	switch {
	case st.Epoch > ks.epoch:
		ks.epoch, ks.seq = st.Epoch, st.Sequence
	case st.Epoch == ks.epoch:
		ks.seq = max(ks.seq, st.Sequence)
	}
	if st.Held != nil {
		t.hold(ks, &holding{lease: st.Held.Lease, holder: st.Held.Holder, ttl: st.Held.TTL})
	}
	tickets := make([]Ticket, 0, len(st.Waiters))
	for _, w := range st.Waiters {
		t.ticket++
		t.enqueue(ks, t.ticket, w.Holder, w.TTL, w.Deadline)
		tickets = append(tickets, t.ticket)
	}
	return tickets, nil
}

func (st *KeyState) validate(maxTTL time.Duration) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: key state: "+format, append([]any{ErrBadEncoding}, a...)...)
	}
	if st.Key == "" || len(st.Key) > MaxKeyLen {
		return bad("key length %d", len(st.Key))
	}
	if st.Epoch > MaxEpoch || (st.Epoch == 0 && st.Sequence != 0) {
		return bad("epoch %d sequence %d", st.Epoch, st.Sequence)
	}
	if len(st.Waiters) > MaxWaitersLimit {
		return bad("%d waiters", len(st.Waiters))
	}
	if h := st.Held; h != nil {
		e, s := SplitToken(h.Lease.Token)
		if h.Lease.Key != st.Key || h.Lease.Token <= 0 || e == 0 || s == 0 ||
			e > st.Epoch || (e == st.Epoch && s > st.Sequence) {
			return bad("lease token %d under epoch %d sequence %d", h.Lease.Token, st.Epoch, st.Sequence)
		}
		if h.TTL < MinTTL || h.TTL > maxTTL || len(h.Holder) > MaxHolderLen {
			return bad("lease ttl %v", h.TTL)
		}
	}
	for _, w := range st.Waiters {
		if w.TTL < MinTTL || w.TTL > maxTTL || len(w.Holder) > MaxHolderLen {
			return bad("waiter ttl %v", w.TTL)
		}
	}
	return nil
}

// formatVersion is the first byte of an encoded KeyState; decoders refuse other versions.
const formatVersion = 1

// wire forms: msgpack arrays, times as Unix nanoseconds.
type wireState struct {
	_        struct{} `msgpack:",as_array"`
	Key      string
	Epoch    uint32
	Sequence uint32
	Held     []wireHeld // 0 or 1
	Waiters  []wireWaiter
}

type wireHeld struct {
	_      struct{} `msgpack:",as_array"`
	Token  int64
	ID     []byte
	Expiry int64
	Holder string
	TTL    int64
}

type wireWaiter struct {
	_        struct{} `msgpack:",as_array"`
	Ticket   uint64
	Holder   string
	TTL      int64
	Deadline int64
}

// MarshalBinary encodes st: a format-version byte, then msgpack.
func (st KeyState) MarshalBinary() ([]byte, error) {
	w := wireState{Key: st.Key, Epoch: st.Epoch, Sequence: st.Sequence}
	if h := st.Held; h != nil {
		w.Held = []wireHeld{{Token: h.Lease.Token, ID: h.Lease.ID[:], Expiry: h.Lease.Expiry.UnixNano(), Holder: h.Holder, TTL: int64(h.TTL)}}
	}
	for _, x := range st.Waiters {
		w.Waiters = append(w.Waiters, wireWaiter{Ticket: uint64(x.Ticket), Holder: x.Holder, TTL: int64(x.TTL), Deadline: x.Deadline.UnixNano()})
	}
	b, err := msgpack.Marshal(&w)
	if err != nil {
		return nil, err
	}
	return append([]byte{formatVersion}, b...), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded. Bad bytes give ErrBadEncoding, never a
// panic; on error st is unchanged.
func (st *KeyState) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrBadEncoding)
	}
	if b[0] != formatVersion {
		return fmt.Errorf("%w: format version %d, this build reads version %d", ErrBadEncoding, b[0], formatVersion)
	}
	var w wireState
	if err := msgpack.Unmarshal(b[1:], &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadEncoding, err)
	}
	out := KeyState{Key: w.Key, Epoch: w.Epoch, Sequence: w.Sequence}
	if len(w.Held) > 1 {
		return fmt.Errorf("%w: %d holders, at most 1", ErrBadEncoding, len(w.Held))
	}
	if len(w.Held) == 1 {
		h := w.Held[0]
		if len(h.ID) != len(LeaseID{}) {
			return fmt.Errorf("%w: lease id of %d bytes", ErrBadEncoding, len(h.ID))
		}
		out.Held = &HeldState{Lease: Lease{Key: w.Key, Token: h.Token, Expiry: time.Unix(0, h.Expiry)}, Holder: h.Holder, TTL: time.Duration(h.TTL)}
		copy(out.Held.Lease.ID[:], h.ID)
	}
	for _, x := range w.Waiters {
		out.Waiters = append(out.Waiters, WaiterState{Ticket: Ticket(x.Ticket), Holder: x.Holder, TTL: time.Duration(x.TTL), Deadline: time.Unix(0, x.Deadline)})
	}
	if err := out.validate(time.Duration(1<<63 - 1)); err != nil {
		return err
	}
	*st = out
	return nil
}

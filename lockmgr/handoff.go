package lockmgr

import (
	"bytes"
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
// now. The caller must first SetEpoch the key to its own epoch (from its promises, at least
// the state's epoch), and SetOwnedUntil it: the table keeps granting only under that epoch,
// so the next token is above every token in the state. A key with no epoch, or one below
// the state's, is refused with ErrNoEpoch or ErrBadEpoch; under the same epoch the sequence
// becomes the larger of the two. A key with a holder or waiters here already is refused with
// ErrKeyBusy; a bad state with ErrBadEncoding. It returns the new tickets of the state's
// waiters, in order (tickets are per table). Deadlines that passed already fire at the next
// Tick, and a free key's waiters are granted at once: collect the events with Tick.
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
	switch {
	case ks == nil || ks.epoch == 0:
		return nil, fmt.Errorf("%w %q: SetEpoch to the new owner's epoch (at least %d) before Import", ErrNoEpoch, st.Key, st.Epoch)
	case st.Epoch > ks.epoch:
		return nil, fmt.Errorf("%w: key %q is at epoch %d, the imported state at %d; set a larger epoch first",
			ErrBadEpoch, st.Key, ks.epoch, st.Epoch)
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
	t.grantNext(ks, now) // a free key with waiters: collect the grants with Tick
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

// MarshalBinary encodes st: a format-version byte, then one msgpack array
//
//	[key, epoch, sequence, held, waiters]
//	held:    [] or [[token, id (bin 16), expiry (Unix ns), holder, ttl (ns)]]
//	waiters: [[ticket, holder, ttl (ns), deadline (Unix ns)], ...]
func (st KeyState) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(formatVersion)
	e := msgpack.NewEncoder(&buf)
	e.EncodeArrayLen(5)
	e.EncodeString(st.Key)
	e.EncodeUint(uint64(st.Epoch))
	e.EncodeUint(uint64(st.Sequence))
	if h := st.Held; h != nil {
		e.EncodeArrayLen(1)
		e.EncodeArrayLen(5)
		e.EncodeInt(h.Lease.Token)
		e.EncodeBytes(h.Lease.ID[:])
		e.EncodeInt(h.Lease.Expiry.UnixNano())
		e.EncodeString(h.Holder)
		e.EncodeInt(int64(h.TTL))
	} else {
		e.EncodeArrayLen(0)
	}
	e.EncodeArrayLen(len(st.Waiters))
	for _, w := range st.Waiters {
		e.EncodeArrayLen(4)
		e.EncodeUint(uint64(w.Ticket))
		e.EncodeString(w.Holder)
		e.EncodeInt(int64(w.TTL))
		if err := e.EncodeInt(w.Deadline.UnixNano()); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded. Bad bytes give ErrBadEncoding, never a
// panic, and never an allocation larger than the input allows; on error st is unchanged.
func (st *KeyState) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrBadEncoding)
	}
	if b[0] != formatVersion {
		return fmt.Errorf("%w: format version %d, this build reads version %d", ErrBadEncoding, b[0], formatVersion)
	}
	d := &stateDecoder{}
	d.r.Reset(b[1:])
	d.d = msgpack.NewDecoder(&d.r)
	out, err := d.state()
	if err != nil {
		return err
	}
	if d.r.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the state", ErrBadEncoding, d.r.Len())
	}
	if err := out.validate(time.Duration(1<<63 - 1)); err != nil {
		return err
	}
	*st = out
	return nil
}

type stateDecoder struct {
	r   bytes.Reader
	d   *msgpack.Decoder
	err error
}

// array reads an array header of want elements (want < 0: any number, each taking at least
// minBytes of the input left).
func (d *stateDecoder) array(want, minBytes int) int {
	if d.err != nil {
		return 0
	}
	n, err := d.d.DecodeArrayLen()
	switch {
	case err != nil:
		d.err = fmt.Errorf("%w: %v", ErrBadEncoding, err)
	case n < 0 || (want >= 0 && n != want):
		d.err = fmt.Errorf("%w: array of %d elements, want %d", ErrBadEncoding, n, want)
	case n > d.r.Len()/minBytes:
		d.err = fmt.Errorf("%w: array of %d elements does not fit in the %d bytes left", ErrBadEncoding, n, d.r.Len())
	default:
		return n
	}
	return 0
}

func (d *stateDecoder) int64() int64 {
	if d.err != nil {
		return 0
	}
	x, err := d.d.DecodeInt64()
	if err != nil {
		d.err = fmt.Errorf("%w: %v", ErrBadEncoding, err)
	}
	return x
}

func (d *stateDecoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	x, err := d.d.DecodeUint64()
	if err != nil {
		d.err = fmt.Errorf("%w: %v", ErrBadEncoding, err)
	}
	return x
}

func (d *stateDecoder) uint32() uint32 {
	if d.err != nil {
		return 0
	}
	x, err := d.d.DecodeUint64()
	if err != nil || x > 1<<32-1 {
		d.err = fmt.Errorf("%w: bad 32-bit integer %d: %v", ErrBadEncoding, x, err)
	}
	return uint32(x)
}

// raw reads a msgpack str or bin of at most max bytes (nil reads as empty). It parses the
// header itself so that a declared length larger than the input left allocates nothing.
func (d *stateDecoder) raw(max int) []byte {
	if d.err != nil {
		return nil
	}
	fail := func(format string, a ...any) []byte {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrBadEncoding}, a...)...)
		return nil
	}
	c, err := d.r.ReadByte()
	if err != nil {
		return fail("reading a string: %v", err)
	}
	var size int // bytes of the length that follow c
	n := 0
	switch {
	case c == 0xc0:
		return nil
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		size = 1
	case c == 0xda || c == 0xc5:
		size = 2
	case c == 0xdb || c == 0xc6:
		size = 4
	default:
		return fail("code %#x where a string belongs", c)
	}
	for range size {
		x, err := d.r.ReadByte()
		if err != nil {
			return fail("reading a string length: %v", err)
		}
		n = n<<8 | int(x)
	}
	if n > max || n > d.r.Len() {
		return fail("string of %d bytes, at most %d and %d left", n, max, d.r.Len())
	}
	b := make([]byte, n)
	d.r.Read(b)
	return b
}

func (d *stateDecoder) string(max int) string { return string(d.raw(max)) }

func (d *stateDecoder) state() (KeyState, error) {
	var st KeyState
	d.array(5, 1)
	st.Key = d.string(MaxKeyLen)
	st.Epoch = d.uint32()
	st.Sequence = d.uint32()
	if n := d.array(-1, 8); n > 1 {
		return st, fmt.Errorf("%w: %d holders, at most 1", ErrBadEncoding, n)
	} else if n == 1 {
		h := &HeldState{}
		d.array(5, 1)
		h.Lease.Key = st.Key
		h.Lease.Token = d.int64()
		id := d.raw(len(h.Lease.ID))
		if d.err == nil && len(id) != len(h.Lease.ID) {
			return st, fmt.Errorf("%w: lease id of %d bytes, want %d", ErrBadEncoding, len(id), len(h.Lease.ID))
		}
		copy(h.Lease.ID[:], id)
		h.Lease.Expiry = time.Unix(0, d.int64())
		h.Holder = d.string(MaxHolderLen)
		h.TTL = time.Duration(d.int64())
		st.Held = h
	}
	n := d.array(-1, 5)
	if n > MaxWaitersLimit {
		return st, fmt.Errorf("%w: %d waiters, at most %d", ErrBadEncoding, n, MaxWaitersLimit)
	}
	for range n {
		d.array(4, 1)
		var w WaiterState
		w.Ticket = Ticket(d.uint64())
		w.Holder = d.string(MaxHolderLen)
		w.TTL = time.Duration(d.int64())
		w.Deadline = time.Unix(0, d.int64())
		if d.err != nil {
			break
		}
		st.Waiters = append(st.Waiters, w)
	}
	return st, d.err
}

package crdt

import (
	"fmt"
	"math/bits"
	"strings"
	"sync/atomic"
)

// MaxKeyLen is the longest key a Store accepts, in bytes. Keys are 1 to MaxKeyLen arbitrary
// bytes; the HTTP API enforces the same limit.
const MaxKeyLen = 512

// Config configures a Store. Get one from DefaultConfig and change what you need.
type Config struct {
	// Shards is how many parts the store is split into, by key hash, each with its own mutex
	// for adding keys and tracking changes (writes to existing keys lock only the key). More
	// shards let more goroutines add keys and read changes at once; each costs about 250
	// bytes, and 8 bytes in every Cursor. A power of two from 1 to 4096. Default 32.
	Shards int

	// Instance tells this Store apart from every earlier Store of the same process data (for
	// example, the Store before a restart). A Cursor carries it, and DeltasSince treats a
	// cursor of another instance as the zero Cursor, so a cursor kept across a restart sends
	// everything again instead of silently skipping changes. The agent sets it to something
	// that differs on each start, such as a boot counter kept in its data dir. Default 0.
	Instance uint64
}

// DefaultConfig returns the default Config.
func DefaultConfig() Config {
	return Config{Shards: 32}
}

// Validate returns an error wrapping ErrBadConfig if c is unusable. It does not change c.
func (c Config) Validate() error {
	if c.Shards < 1 || c.Shards > 4096 || bits.OnesCount(uint(c.Shards)) != 1 {
		return fmt.Errorf("%w: Shards must be a power of two from 1 to 4096, got %d", ErrBadConfig, c.Shards)
	}
	return nil
}

// Store is a set of PN-counters by key, safe for concurrent use. It is a delta-state CRDT:
// each write is applied under a replica ID; Merge joins in states or deltas from other
// replicas; DeltasSince hands out what changed for gossip; Digest, CompareDigest and States
// find and repair differences with a peer (anti-entropy); Snapshot and Restore persist it.
//
// Keys are never deleted: a counter's state only grows. A key exists once some replica has
// a non-zero count for it.
type Store struct {
	cfg      Config
	mask     uint64 // len(shards) - 1
	shards   []shard
	replicas *replicaTable
	leaves   [digestLeaves]atomic.Uint64 // digest leaf hashes, updated by flush; see digest.go
}

// New returns an empty Store, or an error wrapping ErrBadConfig.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, mask: uint64(cfg.Shards - 1), shards: make([]shard, cfg.Shards), replicas: newReplicaTable()}
	for i := range s.shards {
		s.shards[i].reset(0)
	}
	return s, nil
}

func (s *Store) shardFor(kh uint64) *shard { return &s.shards[kh&s.mask] }

// checkKey returns ErrBadKey (wrapped) for a key the store does not accept.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return badKeyError(len(key))
	}
	return nil
}

func badKeyError(n int) error {
	return fmt.Errorf("%w: a key must be 1 to %d bytes, got %d", ErrBadKey, MaxKeyLen, n)
}

// Apply adds amount (negative to subtract) to key's counter under replica r, and returns the
// key's new value. It is the local write: r is this peer's own replica ID.
//
// It returns ErrBadKey for a key that is empty or longer than MaxKeyLen, ErrBadAmount for
// amount 0, ErrBadReplica for an invalid r, and ErrOverflow if r's own count would pass the
// uint64 range or the value would leave the int64 range, and ErrStoreFull for a new key in a
// full shard; in every error case nothing changed.
// An Apply that lands an out-of-range value (see ErrValueOverflow) back in range is accepted.
func (s *Store) Apply(key string, r ReplicaID, amount int64) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	if amount == 0 {
		return 0, fmt.Errorf("%w: amount must be non-zero (read a value with Value)", ErrBadAmount)
	}
	ri, err := s.replicas.intern(r)
	if err != nil {
		return 0, err
	}
	kh := hashKey(key)
	sh := s.shardFor(kh)
	if v, ok, err := sh.applyExisting(key, kh, ri, amount); ok {
		return v, err
	}
	return sh.applyNew(key, kh, ri, amount)
}

// applyExisting is Apply's common case: key holds a count of replica ri already. It finds
// the key without a lock and locks only its entry (and mu, briefly, on the entry's first
// change since the last flush). It reports false, having done nothing, if the key or the
// replica's count is not there.
func (sh *shard) applyExisting(key string, kh uint64, ri uint32, amount int64) (int64, bool, error) {
	i, e := sh.lockEntry(key, kh)
	if e == nil {
		return 0, false, nil
	}
	si := e.findSlot(ri)
	if e.flags&entryDead != 0 || si < 0 {
		e.lock.unlock()
		return 0, false, nil
	}
	v, err := applyToSlot(e, si, key, amount)
	first := err == nil && e.flags&entryPending == 0
	if first {
		e.flags |= entryPending
	}
	e.lock.unlock()
	if first {
		sh.mu.Lock()
		if i < sh.count && sh.at(i) == e { // not replaced by Restore meanwhile
			sh.pending = append(sh.pending, i)
		}
		sh.mu.Unlock()
	}
	return v, true, err
}

// applyNew is Apply for a new key, a new replica in the key, or an entry Restore replaced:
// it works under mu.
func (sh *shard) applyNew(key string, kh uint64, ri uint32, amount int64) (int64, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.find(key, kh)
	if e == nil {
		if err := checkAdd(wide{}, 0, amount); err != nil {
			return 0, keyError(err, key)
		}
		sl := slot{replica: ri}
		if amount > 0 {
			sl.p = magnitude(amount)
		} else {
			sl.n = magnitude(amount)
		}
		if _, ok := sh.add(strings.Clone(key), kh, []slot{sl}); !ok {
			return 0, fmt.Errorf("%w: a shard holds %d keys; use more shards", ErrStoreFull, maxShardEntries)
		}
		return amount, nil
	}
	e.lock.lock()
	defer e.lock.unlock()
	si := e.findSlot(ri)
	if si < 0 {
		if err := checkAdd(e.sum(), 0, amount); err != nil {
			return 0, keyError(err, key)
		}
		si = e.addSlot(ri)
	}
	v, err := applyToSlot(e, si, key, amount)
	if err == nil && e.flags&entryPending == 0 {
		e.flags |= entryPending
		sh.pending = append(sh.pending, i)
	}
	return v, err
}

// applyToSlot adds amount to slot si of e, whose lock is held, makes that slot's replica the
// hot one (see entry), and returns the new value; or it refuses with ErrOverflow and changes
// nothing.
func applyToSlot(e *entry, si int, key string, amount int64) (int64, error) {
	sl := e.slotAt(si)
	own := sl.p
	if amount < 0 {
		own = sl.n
	}
	cur := e.sum()
	v, ok := cur.addInt(amount).int64()
	if !ok || own+magnitude(amount) < own {
		return 0, keyError(checkAdd(cur, own, amount), key)
	}
	if amount > 0 {
		sl.p += magnitude(amount)
	} else {
		sl.n += magnitude(amount)
	}
	e.makeHot(si)
	return v, nil
}

// checkAdd returns the error that adding amount to a counter of value cur, whose writing
// replica holds own on the side amount adds to, must be refused with, or nil.
func checkAdd(cur wide, own uint64, amount int64) error {
	if _, ok := cur.addInt(amount).int64(); !ok {
		if _, inRange := cur.int64(); !inRange {
			return fmt.Errorf("%w: its merged value is already outside the int64 range and adding %d does not bring it back; nothing was changed", ErrOverflow, amount)
		}
		return fmt.Errorf("%w: adding %d would take the value out of the int64 range; nothing was changed", ErrOverflow, amount)
	}
	if own+magnitude(amount) < own {
		return fmt.Errorf("%w: this replica's own count would pass the uint64 range; take a new incarnation", ErrOverflow)
	}
	return nil
}

// keyError names the key in an error from checkAdd.
func keyError(err error, key string) error { return fmt.Errorf("key %q: %w", key, err) }

// Value returns key's value. It returns ErrBadKey for an invalid key, ErrNotFound for a key
// the store holds no counts for, and ErrValueOverflow if the merged value is outside the
// int64 range.
func (s *Store) Value(key string) (int64, error) {
	var w wide
	if err := s.read(key, func(e *entry) { w = e.sum() }); err != nil {
		return 0, err
	}
	v, ok := w.int64()
	if !ok {
		return 0, fmt.Errorf("%w: key %q: the merged value is outside the int64 range; add to bring it back", ErrValueOverflow, key)
	}
	return v, nil
}

// Counter returns a copy of key's counter, with each replica's counts, or ErrBadKey or
// ErrNotFound.
func (s *Store) Counter(key string) (PNCounter, error) {
	var c PNCounter
	err := s.read(key, func(e *entry) {
		ids := s.replicas.load().ids // loaded under the entry lock: it has every replica in e
		for j := range e.numSlots() {
			sl := e.slotAt(j)
			c.p.raise(ids[sl.replica], sl.p)
			c.n.raise(ids[sl.replica], sl.n)
		}
	})
	return c, err
}

// read calls f with key's entry locked, or returns ErrBadKey or ErrNotFound.
func (s *Store) read(key string, f func(*entry)) error {
	if err := checkKey(key); err != nil {
		return err
	}
	kh := hashKey(key)
	sh := s.shardFor(kh)
	if _, e := sh.lockEntry(key, kh); e != nil {
		live := e.flags&entryDead == 0
		if live {
			f(e)
		}
		e.lock.unlock()
		if live {
			return nil
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, e := sh.find(key, kh)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	e.lock.lock()
	f(e)
	e.lock.unlock()
	return nil
}

// Len returns the number of keys in the store.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += int(sh.count)
		sh.mu.Unlock()
	}
	return n
}

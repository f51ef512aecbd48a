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
	// Shards is how many independently locked parts the store is split into, by key hash.
	// More shards let more goroutines write at once; each costs about 250 bytes, and 8 bytes
	// in every Cursor. A power of two from 1 to 4096. Default 32.
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
		s.shards[i].head, s.shards[i].tail = noEntry, noEntry
	}
	return s, nil
}

func (s *Store) shardFor(kh uint64) *shard { return &s.shards[kh&s.mask] }

// checkKey returns ErrBadKey (wrapped) for a key the store does not accept.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: a key must be 1 to %d bytes, got %d", ErrBadKey, MaxKeyLen, len(key))
	}
	return nil
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
	sh.mu.Lock()
	v, err := s.applyLocked(sh, key, kh, ri, amount)
	sh.mu.Unlock()
	return v, err
}

// applyLocked is Apply with sh locked.
func (s *Store) applyLocked(sh *shard, key string, kh uint64, ri uint32, amount int64) (int64, error) {
	i, found := sh.find(key, kh)
	var old []slot
	if found {
		old = sh.at(i).slots
	}
	si := -1
	for j := range old {
		if old[j].replica == ri {
			si = j
			break
		}
	}
	cur := sumSlots(old)
	v, ok := cur.addInt(amount).int64()
	if !ok {
		if _, inRange := cur.int64(); !inRange {
			return 0, fmt.Errorf("%w: key %q: its merged value is already outside the int64 range and adding %d does not bring it back; nothing was changed", ErrOverflow, key, amount)
		}
		return 0, fmt.Errorf("%w: key %q: adding %d would take the value out of the int64 range; nothing was changed", ErrOverflow, key, amount)
	}
	mag := magnitude(amount)
	if si >= 0 {
		c := old[si].p
		if amount < 0 {
			c = old[si].n
		}
		if c+mag < c {
			return 0, fmt.Errorf("%w: key %q: this replica's own count would pass the uint64 range; take a new incarnation", ErrOverflow, key)
		}
	}
	if !found {
		var ok bool
		if i, ok = sh.add(strings.Clone(key), kh); !ok {
			return 0, fmt.Errorf("%w: a shard holds %d keys; use more shards", ErrStoreFull, maxShardEntries)
		}
	}
	e := sh.at(i)
	if si < 0 {
		e.slots = make([]slot, len(old)+1)
		copy(e.slots, old)
		si = len(old)
		e.slots[si].replica = ri
	}
	if amount > 0 {
		e.slots[si].p += mag
	} else {
		e.slots[si].n += mag
	}
	sh.noteChange(i)
	return v, nil
}

func sumSlots(slots []slot) wide {
	var w wide
	for _, sl := range slots {
		w = w.addUint(sl.p).subUint(sl.n)
	}
	return w
}

// Value returns key's value. It returns ErrBadKey for an invalid key, ErrNotFound for a key
// the store holds no counts for, and ErrValueOverflow if the merged value is outside the
// int64 range.
func (s *Store) Value(key string) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	kh := hashKey(key)
	sh := s.shardFor(kh)
	sh.mu.Lock()
	i, found := sh.find(key, kh)
	var w wide
	if found {
		w = sumSlots(sh.at(i).slots)
	}
	sh.mu.Unlock()
	if !found {
		return 0, fmt.Errorf("%w: %q", ErrNotFound, key)
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
	if err := checkKey(key); err != nil {
		return PNCounter{}, err
	}
	kh := hashKey(key)
	sh := s.shardFor(kh)
	var c PNCounter
	sh.mu.Lock()
	i, found := sh.find(key, kh)
	if found {
		ids := s.replicas.load().ids
		for _, sl := range sh.at(i).slots {
			c.p.raise(ids[sl.replica], sl.p)
			c.n.raise(ids[sl.replica], sl.n)
		}
	}
	sh.mu.Unlock()
	if !found {
		return PNCounter{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return c, nil
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

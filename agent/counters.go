package agent

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sync"
	"sync/atomic"

	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/crdt"
	"github.com/ringleader/ringleader/ring"
)

// Errors of the counter API (wrapped with detail; match with errors.Is).
var (
	// ErrBadDelta is returned for a delta of zero or one that would take a
	// count or the value out of range; nothing was changed.
	ErrBadDelta = errors.New("bad delta")
	// ErrNotReady is returned for a write while this peer is still checking
	// its replica identity with its peers at startup, or is leaving.
	ErrNotReady = errors.New("counters not ready")
	// ErrNoMajority is returned by a consistency=majority write or read that
	// did not hear from a strict majority of the voters in time. A write
	// that returns it was still applied and made durable on this peer, and
	// spreads from there.
	ErrNoMajority = errors.New("no majority")
	// ErrValueOverflow is returned by a read of a key whose merged value is
	// outside the int64 range (each side of a partition stayed in range on
	// its own). The counts are exact; adding the opposite amount brings it
	// back.
	ErrValueOverflow = errors.New("value out of int64 range")
	// ErrIdempotencyConflict is returned when an Idempotency-Key is reused
	// within its window for a different request (another key or delta).
	ErrIdempotencyConflict = errors.New("idempotency key reused for a different request")
	// ErrBadIdempotencyKey is returned (wrapped, saying why) for an
	// Idempotency-Key, or a batch item's idempotency_key, that is empty,
	// longer than MaxIdempotencyKeyLen, not printable ASCII or repeated
	// within one batch; nothing was applied. It also matches ErrBadKey,
	// which these errors matched before it existed.
	ErrBadIdempotencyKey error = badIdempotencyKey{}
	// ErrUnavailable is returned when a peer this request needs (the owner
	// of an Idempotency-Key, or a peer that may hold its record) cannot be
	// reached; the write was not applied,
	// unless that peer got it before the call failed (a timeout, a broken
	// connection): a retry with the same key that reaches that peer
	// applies it at most once (one that reaches another owner, across a
	// partition, applies it again).
	ErrUnavailable = errors.New("unavailable")

	// ErrBadBatch is returned for a batch with no items or more than
	// MaxBatchItems. It is a kind of ErrBadDelta (a 400), with its own
	// text.
	ErrBadBatch error = badBatch{}
)

type badBatch struct{}

func (badBatch) Error() string        { return "bad batch" }
func (badBatch) Is(target error) bool { return target == ErrBadDelta }

// badIdempotencyKey is ErrBadIdempotencyKey: its own text, so that the
// error does not read as a bad counter key, yet a kind of ErrBadKey.
type badIdempotencyKey struct{}

func (badIdempotencyKey) Error() string        { return "bad Idempotency-Key" }
func (badIdempotencyKey) Is(target error) bool { return target == ErrBadKey }

// Consistency is how many peers a counter write waits for, or a read asks.
type Consistency int

const (
	// Local acknowledges a write once it is durable on this peer, and reads
	// this peer's value.
	Local Consistency = iota
	// Majority acknowledges a write once a strict majority of the voters
	// hold it durably, and reads after merging the state of a majority.
	Majority
)

// ParseConsistency parses "local" (or "") and "majority".
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "local":
		return Local, nil
	case "majority":
		return Majority, nil
	}
	return Local, fmt.Errorf("consistency=%q: give local or majority", s)
}

func (c Consistency) String() string {
	if c == Majority {
		return "majority"
	}
	return "local"
}

// CounterItem is one write of a batch: add Delta to Key. IdempotencyKey,
// if set, makes a retry within the window apply it once.
type CounterItem struct {
	Key            string `json:"key" msgpack:"k"`
	Delta          int64  `json:"delta" msgpack:"d"`
	IdempotencyKey string `json:"idempotency_key,omitempty" msgpack:"i,omitempty"`
}

// CounterResult is the answer to one write.
type CounterResult struct {
	Key   string `json:"key" msgpack:"k"`
	Value int64  `json:"value" msgpack:"v"`
	// Replayed says the answer is the first result of an earlier request
	// with the same idempotency key; nothing was applied this time.
	Replayed bool `json:"replayed,omitempty" msgpack:"r,omitempty"`
}

// counters is the agent's counter service: the crdt store, its durable
// copy, this peer's replica identity, and the keys waiting to spread.
type counters struct {
	a     *Agent
	store *crdt.Store
	db    *store.DB

	// id is this peer's replica ID; nil until the startup identity check
	// is done (writes are refused until then), and again while leaving.
	id atomic.Pointer[crdt.ReplicaID]
	// writing is held shared by every local write from taking the ID to
	// marking its keys dirty; the hand-off on leave takes it alone after
	// clearing id, so no write it missed can still be acknowledged.
	writing sync.RWMutex

	dirty dirtySet

	// mergeMu serializes merging remote state with committing it, so a sync
	// after any merge that returned covers what that merge changed.
	mergeMu sync.Mutex

	// idemLocks serialize requests per idempotency key (by hash).
	idemLocks [256]sync.Mutex
	// idemMoveFrom is the ring before the ring changes moveIdemLoop has
	// not yet handled, and idemMoveKick (buffered 1) wakes it.
	idemMoveMu   sync.Mutex
	idemMoveFrom *ring.Ring
	idemMoveFor  map[string]bool // peers that asked for their records
	// idemRetryFor are peers a copy of a record did not reach; moveIdemLoop
	// copies them their records again after a back-off.
	idemRetryFor map[string]bool
	idemMoveKick chan struct{}
	// idemCount estimates the live idempotency records (puts minus
	// deletes, counted from the store at startup).
	idemCount atomic.Int64
}

// replica returns this peer's replica ID, or ErrNotReady.
func (c *counters) replica() (crdt.ReplicaID, error) {
	id := c.id.Load()
	if id == nil {
		return crdt.ReplicaID{}, fmt.Errorf("%w: this peer is starting (confirming its replica identity with its peers) or leaving; retry in a moment or use another peer", ErrNotReady)
	}
	return *id, nil
}

// applyErr translates crdt's errors for a write of item.
func applyErr(key string, delta int64, err error) error {
	switch {
	case errors.Is(err, crdt.ErrBadKey):
		return fmt.Errorf("%w: %v", ErrBadKey, err)
	case errors.Is(err, crdt.ErrBadAmount):
		return fmt.Errorf("%w: delta must be a non-zero integer", ErrBadDelta)
	case errors.Is(err, crdt.ErrOverflow):
		return fmt.Errorf("%w: adding %d to %q would take its value out of the int64 range, or this peer's running total of its additions or subtractions to it past 2^64; it was not applied", ErrBadDelta, delta, key)
	}
	return err
}

// validateItems checks every item before anything is applied.
func validateItems(items []CounterItem) error {
	for i, it := range items {
		if err := ValidateKey(it.Key); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
		if it.Delta == 0 {
			return fmt.Errorf("item %d (%q): %w: delta must be a non-zero integer", i, it.Key, ErrBadDelta)
		}
		if it.IdempotencyKey != "" {
			if err := validateIdempotencyKey(it.IdempotencyKey); err != nil {
				return fmt.Errorf("item %d (%q): %w", i, it.Key, err)
			}
		}
	}
	return nil
}

// applyLocal applies items in order under this peer's replica ID and makes
// them durable in one synced commit before returning; rec, if not nil,
// adds records for the applied items to that commit. It stops at the first item crdt refuses
// (overflow): the items before it are applied and committed, and the error
// says how many.
func (c *counters) applyLocal(items []CounterItem, rec func([]CounterResult, *store.Batch) error) ([]CounterResult, error) {
	c.writing.RLock()
	defer c.writing.RUnlock()
	id, err := c.replica()
	if err != nil {
		return nil, err
	}
	results := make([]CounterResult, 0, len(items))
	var applyErrAt error
	for _, it := range items {
		v, err := c.store.Apply(it.Key, id, it.Delta)
		if err != nil {
			applyErrAt = applyErr(it.Key, it.Delta, err)
			if len(items) > 1 {
				applyErrAt = fmt.Errorf("%w; nor were the batch's items after it, unless they had gone out before it with earlier items (to the same peer); \"applied\" lists each item that was applied, with its index", applyErrAt)
			}
			break
		}
		results = append(results, CounterResult{Key: it.Key, Value: v})
	}
	if len(results) > 0 {
		if err := c.commit(results, rec, true); err != nil {
			return nil, err
		}
		for _, r := range results {
			c.dirty.add(r.Key)
		}
		c.a.metrics.increments.Add(float64(len(results)))
	}
	return results, applyErrAt
}

// commit writes the current state of each result's key (and rec's records)
// in one batch.
func (c *counters) commit(results []CounterResult, rec func([]CounterResult, *store.Batch) error, sync bool) error {
	b := c.db.NewBatch()
	defer b.Close()
	for i, r := range results {
		if i > 0 && r.Key == results[i-1].Key {
			continue
		}
		if err := b.MergeCounterFrom(c.store, r.Key); err != nil {
			return fmt.Errorf("agent: recording %q: %w", r.Key, err)
		}
	}
	if rec != nil {
		if err := rec(results, b); err != nil {
			return err
		}
	}
	return commitErr(b.Commit(sync))
}

// commitErr explains a failed commit of a write.
func commitErr(err error) error {
	if err != nil {
		return fmt.Errorf("%w: the write could not be made durable (%v); it may still count", ErrNotReady, err)
	}
	return nil
}

// mergeRemote merges a state received from a peer and records the keys it
// changed; with sync it returns only once they, and everything merged
// before, are on disk. It returns the changed keys.
func (c *counters) mergeRemote(st crdt.State, sync bool) ([]string, error) {
	c.mergeMu.Lock()
	changed, err := c.store.Merge(st)
	if len(changed) > 0 {
		b := c.db.NewBatch()
		for _, k := range changed {
			if e := b.MergeCounterFrom(c.store, k); e != nil && err == nil {
				err = e
			}
		}
		if e := b.Commit(false); e != nil && err == nil {
			err = e
		}
	}
	c.mergeMu.Unlock()
	if err != nil {
		return changed, fmt.Errorf("agent: merging %d keys from a peer: %w", st.Len(), err)
	}
	c.a.metrics.deltasReceived.Add(float64(st.Len()))
	if sync {
		if err := c.db.Sync(); err != nil {
			return changed, fmt.Errorf("agent: syncing merged keys: %w", err)
		}
	}
	return changed, nil
}

// value reads key's local value; a key never written reads 0.
func (c *counters) value(key string) (int64, error) {
	v, err := c.store.Value(key)
	switch {
	case errors.Is(err, crdt.ErrNotFound):
		return 0, nil
	case errors.Is(err, crdt.ErrValueOverflow):
		return 0, fmt.Errorf("%w: the replicas of %q together hold %s (its writers each stayed in range, e.g. on both sides of a partition); %s", ErrValueOverflow, key, c.overflowed(key), c.overflowRepair(key))
	case errors.Is(err, crdt.ErrBadKey):
		return 0, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return v, err
}

// overflowed returns the exact value of key, a sum past int64 that
// crdt refuses to read: every replica's additions less its subtractions.
func (c *counters) overflowed(key string) *big.Int {
	pn, err := c.store.Counter(key)
	sum := new(big.Int)
	if err != nil {
		return sum
	}
	var x big.Int
	for _, r := range pn.Replicas() {
		p, n := pn.Counts(r)
		sum.Add(sum, x.SetUint64(p))
		sum.Sub(sum, x.SetUint64(n))
	}
	return sum
}

// overflowRepair says what to write to bring key back into int64 (to
// its nearest end): a write of the opposite sign, which one write can do
// only while the distance fits a delta.
func (c *counters) overflowRepair(key string) string {
	v := c.overflowed(key)
	var edge big.Int
	op := "subtract"
	if v.Sign() > 0 {
		edge.SetInt64(math.MaxInt64)
	} else {
		edge.SetInt64(math.MinInt64)
		op = "add"
	}
	var d big.Int
	d.Sub(v, &edge)
	d.Abs(&d)
	most := new(big.Int).SetUint64(1 << 63) // the largest subtraction; an addition takes one less
	if op == "add" {
		most.SetInt64(math.MaxInt64)
	}
	if d.Cmp(most) > 0 {
		return fmt.Sprintf("bringing it back takes a write of %s%s, more than one delta can carry (a write that leaves it out of range is refused)", map[string]string{"add": "+", "subtract": "-"}[op], d.String())
	}
	return fmt.Sprintf("%s at least %s in one write to bring it back into range (a write that leaves it out of range is refused)", op, d.String())
}

// dirtySet holds the keys written locally since the last spread round,
// sharded so concurrent writers rarely share a lock.
type dirtySet struct {
	// marked is set by add after it inserts a key and cleared by take
	// before it collects, so a take that finds it clear may skip the
	// shards: every key added before it was set is already collected. The
	// spread loop takes the set every round (10-20 times a second), and
	// locking 64 shards each time for nothing added up across 200
	// simulated peers.
	marked atomic.Bool
	shards [64]struct {
		mu   sync.Mutex
		keys map[string]struct{}
		_    [40]byte // keep shards on separate cache lines
	}
}

func (d *dirtySet) add(key string) {
	sh := &d.shards[fnv32(key)%uint32(len(d.shards))]
	sh.mu.Lock()
	if sh.keys == nil {
		sh.keys = make(map[string]struct{})
	}
	sh.keys[key] = struct{}{}
	sh.mu.Unlock()
	d.marked.Store(true)
}

// take removes and returns every key in the set.
func (d *dirtySet) take() []string {
	if !d.marked.Swap(false) {
		return nil
	}
	var out []string
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		for k := range sh.keys {
			out = append(out, k)
		}
		if len(sh.keys) > 0 {
			sh.keys = nil
		}
		sh.mu.Unlock()
	}
	return out
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

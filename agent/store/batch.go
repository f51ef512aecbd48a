package store

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringleader/ringleader/crdt"
)

// Batch collects writes that Commit applies atomically, in one pebble batch and one
// write-ahead log record: after a crash either all of them are there or none. A Batch is for
// one goroutine and one Commit; get a new one for the next.
type Batch struct {
	db      *DB
	pb      *pebble.Batch
	idem    bool // holds idempotency records: commit under db.idemMu (see DB)
	done    bool
	scratch []byte // MergeCounterFrom encodes records here
}

// NewBatch returns an empty Batch. Commit or Close it.
func (db *DB) NewBatch() *Batch {
	return &Batch{db: db, pb: db.pdb.NewBatch()}
}

// MergeCounterFrom adds a counter record of key holding its current state in s (what
// s.AppendKeyRecord encodes). The stored state of key becomes the CRDT join of all its
// records, whatever order they are committed in, so concurrent writers need no lock and a
// record taken before another but committed after it loses nothing. It is the agent's hot
// path: the record comes from crdt's own encoder, so it is not decoded again. It returns
// ErrBadKey for a key out of range and an error wrapping crdt.ErrNotFound for a key s does
// not hold, adding nothing.
func (b *Batch) MergeCounterFrom(s *crdt.Store, key string) error {
	if b.done {
		return ErrBatchDone
	}
	if len(key) == 0 || len(key) > MaxCounterKeyLen {
		return fmt.Errorf("%w: a counter key must be 1 to %d bytes, got %d", ErrBadKey, MaxCounterKeyLen, len(key))
	}
	rec, err := s.AppendKeyRecord(b.scratch[:0], key)
	if err != nil {
		return fmt.Errorf("store: encode the counter record of %q: %w", key, err)
	}
	b.scratch = rec
	return b.mergeCounter(key, rec)
}

// MergeCounter adds a counter record that did not come straight from a crdt.Store (for
// example one received or read back): record must be the encoding of a crdt.State holding
// key, as crdt.Store.AppendKeyRecord gives it. It joins like MergeCounterFrom. It decodes
// the record to check it (about 1.7 µs) and returns ErrBadKey or ErrBadValue, adding
// nothing, if it is not such a record. It copies key and record.
func (b *Batch) MergeCounter(key string, record []byte) error {
	if b.done {
		return ErrBatchDone
	}
	if len(key) == 0 || len(key) > MaxCounterKeyLen {
		return fmt.Errorf("%w: a counter key must be 1 to %d bytes, got %d", ErrBadKey, MaxCounterKeyLen, len(key))
	}
	if err := checkCounterRecord(key, record); err != nil {
		return err
	}
	return b.mergeCounter(key, record)
}

func (b *Batch) mergeCounter(key string, record []byte) error {
	op := b.pb.MergeDeferred(1+len(key), len(record))
	op.Key[0] = prefixCounter
	copy(op.Key[1:], key)
	copy(op.Value, record)
	return op.Finish()
}

// checkCounterRecord returns ErrBadValue unless record is an encoded crdt.State holding key
// and nothing else.
func checkCounterRecord(key string, record []byte) error {
	var st crdt.State
	if err := st.AppendEncoded(record); err != nil {
		return fmt.Errorf("%w: counter record of %q: %w", ErrBadValue, key, err)
	}
	n := 0
	for k := range st.All() {
		if k != key {
			return fmt.Errorf("%w: counter record of %q holds key %q", ErrBadValue, key, k)
		}
		n++
	}
	if n != 1 {
		return fmt.Errorf("%w: counter record of %q holds %d states of it, want 1", ErrBadValue, key, n)
	}
	return nil
}

// PutIdempotency stores an idempotency record: value (at most MaxIdempotencyValueLen bytes,
// for example the first answer to a request) under key until expires. GetIdempotency
// returns it until then, and DeleteExpiredIdempotency removes it after. Putting a key again
// replaces its value and expiry. It returns ErrBadKey or ErrBadValue, adding nothing. It
// copies key and value.
func (b *Batch) PutIdempotency(key string, value []byte, expires time.Time) error {
	if b.done {
		return ErrBatchDone
	}
	if len(key) == 0 || len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("%w: an idempotency key must be 1 to %d bytes, got %d", ErrBadKey, MaxIdempotencyKeyLen, len(key))
	}
	if len(value) > MaxIdempotencyValueLen {
		return fmt.Errorf("%w: an idempotency value must be at most %d bytes, got %d", ErrBadValue, MaxIdempotencyValueLen, len(value))
	}
	rec := appendIdempotencyValue(make([]byte, 0, idempotencyHeaderLen+len(value)), expires, value)
	if err := b.pb.Set(appendKey(nil, prefixIdempotency, key), rec, nil); err != nil {
		return err
	}
	b.idem = true
	return b.pb.Set(appendExpiryKey(nil, expires, key), nil, nil)
}

// PutMeta stores value (at most MaxMetaValueLen bytes) under name (1 to MaxMetaNameLen
// bytes), replacing what was there. Meta values are the agent's own small records, such as
// this peer's replica incarnation. It returns ErrBadKey or ErrBadValue, adding nothing. It
// copies name and value.
func (b *Batch) PutMeta(name string, value []byte) error {
	if b.done {
		return ErrBatchDone
	}
	if len(name) == 0 || len(name) > MaxMetaNameLen {
		return fmt.Errorf("%w: a meta name must be 1 to %d bytes, got %d", ErrBadKey, MaxMetaNameLen, len(name))
	}
	if len(value) > MaxMetaValueLen {
		return fmt.Errorf("%w: a meta value must be at most %d bytes, got %d", ErrBadValue, MaxMetaValueLen, len(value))
	}
	return b.pb.Set(appendKey(nil, prefixMeta, name), value, nil)
}

// Len returns the number of writes in the batch (an idempotency record counts twice: the
// record and its expiry index entry).
func (b *Batch) Len() int {
	if b.done {
		return 0
	}
	return int(b.pb.Count())
}

// Commit applies the batch atomically and releases it. With sync, it returns only once the
// batch is on disk (pebble's write-ahead log fsynced): a crash after that keeps it. Concurrent
// synced commits share one fsync (group commit), so many small synced commits cost about as
// much as one. Without sync, the batch is visible at once and reaches the disk with the next
// synced commit or Sync; a crash before that may lose it (and then every later unsynced
// commit too: the log keeps order).
//
// Commit returns ErrClosed if the DB was closed, and ErrBatchDone if the batch was already
// committed or closed. A failed write or fsync of the log is fatal (see the package
// documentation).
func (b *Batch) Commit(sync bool) error {
	if b.done {
		return ErrBatchDone
	}
	b.done = true
	db := b.db
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		_ = b.pb.Close()
		return ErrClosed
	}
	if b.idem {
		db.idemMu.RLock()
		defer db.idemMu.RUnlock()
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := db.pdb.Apply(b.pb, opts); err != nil {
		// Like pebble's own DB.Set, release the batch only on success: after a failed
		// Apply pebble may still refer to it.
		return fmt.Errorf("store: commit to %s: %w", db.dir, err)
	}
	_ = b.pb.Close()
	return nil
}

// Close discards the batch if it was not committed, and releases it. It is safe to call
// after Commit, and more than once.
func (b *Batch) Close() {
	if b.done {
		return
	}
	b.done = true
	_ = b.pb.Close()
}

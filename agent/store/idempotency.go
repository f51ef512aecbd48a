package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// An idempotency record's value:
//
//	version (1 byte, 1) | expiry (8 bytes, sortableNanos) | value (the rest)
//
// The expiry index holds, for each record, the key 'X' expiry key with an empty value, so
// expired records can be found oldest first without reading the others.
const (
	idempotencyVersion   byte = 1
	idempotencyHeaderLen      = 1 + 8
)

func appendIdempotencyValue(dst []byte, expires time.Time, value []byte) []byte {
	dst = append(dst, idempotencyVersion)
	dst = binary.BigEndian.AppendUint64(dst, sortableNanos(expires))
	return append(dst, value...)
}

// decodeIdempotencyValue splits a stored idempotency record. The value it returns shares
// b's memory. It returns ErrCorrupt for bytes that are no such record.
func decodeIdempotencyValue(b []byte) (expires uint64, value []byte, err error) {
	if len(b) < idempotencyHeaderLen {
		return 0, nil, fmt.Errorf("%w: idempotency record of %d bytes, want at least %d", ErrCorrupt, len(b), idempotencyHeaderLen)
	}
	if b[0] != idempotencyVersion {
		return 0, nil, fmt.Errorf("%w: idempotency record of version %d, want %d", ErrCorrupt, b[0], idempotencyVersion)
	}
	if len(b)-idempotencyHeaderLen > MaxIdempotencyValueLen {
		return 0, nil, fmt.Errorf("%w: idempotency value of %d bytes, at most %d allowed", ErrCorrupt, len(b)-idempotencyHeaderLen, MaxIdempotencyValueLen)
	}
	return binary.BigEndian.Uint64(b[1:idempotencyHeaderLen]), b[idempotencyHeaderLen:], nil
}

// decodeExpiryKey splits an expiry index key. It returns ErrCorrupt for a key that is no
// such index key.
func decodeExpiryKey(k []byte) (expires uint64, key []byte, err error) {
	if len(k) < 1+8+1 || len(k) > 1+8+MaxIdempotencyKeyLen || k[0] != prefixExpiry {
		return 0, nil, fmt.Errorf("%w: bad idempotency expiry index key %x", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:9]), k[9:], nil
}

// GetIdempotency returns the value stored under key by PutIdempotency, and whether there is
// one that has not expired at now (a record lives while now is before its expiry). A record
// that expired but was not deleted yet reads as absent.
func (db *DB) GetIdempotency(key string, now time.Time) (value []byte, ok bool, err error) {
	if len(key) == 0 || len(key) > MaxIdempotencyKeyLen {
		return nil, false, fmt.Errorf("%w: an idempotency key must be 1 to %d bytes, got %d", ErrBadKey, MaxIdempotencyKeyLen, len(key))
	}
	rec, found, err := db.get(appendKey(nil, prefixIdempotency, key))
	if err != nil {
		return nil, false, db.readError("read idempotency record", err)
	}
	if !found {
		return nil, false, nil
	}
	expires, value, err := decodeIdempotencyValue(rec)
	if err != nil {
		return nil, false, db.readError(fmt.Sprintf("read idempotency record %q", key), err)
	}
	if sortableNanos(now) >= expires {
		return nil, false, nil
	}
	return value, true, nil
}

// DeleteExpiredIdempotency deletes up to max idempotency records that expired at or before
// now, oldest expiry first, and returns how many expiry index entries it removed (a record
// put twice has two, the older of which only names it) and whether more expired ones
// remain. Call it periodically (for example every few seconds with max 1000) so storage
// stays bounded by the write rate times the idempotency window. Its deletes are committed
// without sync: one lost in a crash is found again by the next call. It blocks batches that
// put idempotency records while it runs.
func (db *DB) DeleteExpiredIdempotency(now time.Time, max int) (deleted int, more bool, err error) {
	if max <= 0 {
		return 0, false, nil
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return 0, false, ErrClosed
	}
	db.idemMu.Lock()
	defer db.idemMu.Unlock()

	// Every index key with expiry <= now sorts below upper.
	upper := binary.BigEndian.AppendUint64([]byte{prefixExpiry}, sortableNanos(now)+1)
	iter, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixExpiry}, UpperBound: upper})
	if err != nil {
		return 0, false, db.readError("scan idempotency expiry index", err)
	}
	pb := db.pdb.NewBatch()
	defer pb.Close()
	var recKey []byte
	for valid := iter.First(); valid; valid = iter.Next() {
		if deleted == max {
			more = true
			break
		}
		expires, key, derr := decodeExpiryKey(iter.Key())
		if derr != nil {
			err = derr
			break
		}
		if err = pb.Delete(iter.Key(), nil); err != nil {
			break
		}
		// Delete the record only if this index entry is its current one: a record put
		// again with a later expiry keeps living, and its new index entry will delete it.
		recKey = appendKey(recKey[:0], prefixIdempotency, string(key))
		rec, closer, gerr := db.pdb.Get(recKey)
		if errors.Is(gerr, pebble.ErrNotFound) {
			deleted++
			continue
		}
		if gerr != nil {
			err = gerr
			break
		}
		recExpires, _, derr := decodeIdempotencyValue(rec)
		_ = closer.Close()
		if derr != nil || recExpires == expires {
			if err = pb.Delete(recKey, nil); err != nil {
				break
			}
		}
		deleted++
	}
	if err == nil {
		err = iter.Error()
	}
	if cerr := iter.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, false, db.readError("delete expired idempotency records", err)
	}
	if !pb.Empty() {
		if err := db.pdb.Apply(pb, pebble.NoSync); err != nil {
			return 0, false, fmt.Errorf("store: delete expired idempotency records in %s: %w", db.dir, err)
		}
	}
	return deleted, more, nil
}

// CountIdempotency returns how many idempotency records the store holds, expired ones not
// yet deleted included. It scans the records' keys (about 100 ns a record), so call it at
// startup and keep a running count after.
func (db *DB) CountIdempotency() (int, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return 0, ErrClosed
	}
	iter, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixIdempotency}, UpperBound: keyspaceEnd(prefixIdempotency)})
	if err != nil {
		return 0, db.readError("count idempotency records", err)
	}
	n := 0
	for valid := iter.First(); valid; valid = iter.Next() {
		n++
	}
	err = iter.Error()
	if cerr := iter.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, db.readError("count idempotency records", err)
	}
	return n, nil
}

// ScanIdempotency calls fn, in key order, with every idempotency record live at now: its key,
// its value and its expiry. fn must not keep value past its return. It stops early, returning
// nil, when fn returns false. A record it cannot decode ends the scan with an error naming it.
func (db *DB) ScanIdempotency(now time.Time, fn func(key string, value []byte, expires time.Time) bool) error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	iter, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixIdempotency}, UpperBound: keyspaceEnd(prefixIdempotency)})
	if err != nil {
		return db.readError("scan idempotency records", err)
	}
	var scanErr error
	for valid := iter.First(); valid; valid = iter.Next() {
		key := string(iter.Key()[1:])
		expires, value, err := decodeIdempotencyValue(iter.Value())
		if err != nil {
			scanErr = db.readError(fmt.Sprintf("read idempotency record %q", key), err)
			break
		}
		if sortableNanos(now) >= expires {
			continue
		}
		if !fn(key, value, fromSortableNanos(expires)) {
			break
		}
	}
	err = iter.Error()
	if cerr := iter.Close(); err == nil {
		err = cerr
	}
	if scanErr != nil {
		return scanErr
	}
	if err != nil {
		return db.readError("scan idempotency records", err)
	}
	return nil
}

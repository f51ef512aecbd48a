package store

import (
	"encoding/binary"
	"fmt"
)

// lockEpochLen is the size of a lock epoch value.
const lockEpochLen = 4

// PutLockEpoch records the highest ownership epoch this peer's acceptor ever promised for a
// lock key (1 to MaxLockKeyLen bytes), replacing what was there. The acceptor commits it
// with sync before it answers a promise that raised the epoch, so that fencing tokens never
// fall after a restart. It returns ErrBadKey, adding nothing.
func (b *Batch) PutLockEpoch(key string, epoch uint32) error {
	if b.done {
		return ErrBatchDone
	}
	if len(key) == 0 || len(key) > MaxLockKeyLen {
		return fmt.Errorf("%w: a lock key must be 1 to %d bytes, got %d", ErrBadKey, MaxLockKeyLen, len(key))
	}
	return b.pb.Set(appendKey(nil, prefixLockEpoch, key), binary.BigEndian.AppendUint32(nil, epoch), nil)
}

// ScanLockEpochs calls fn with every lock key and its recorded epoch, in key byte order. A
// record of the wrong size stops the scan with an error wrapping ErrCorrupt; an error from
// fn stops it and is returned.
func (db *DB) ScanLockEpochs(fn func(key string, epoch uint32) error) error {
	return db.scanKeyspace(prefixLockEpoch, "scan lock epochs", func(key, value []byte) error {
		if len(value) != lockEpochLen || len(key) == 0 {
			return fmt.Errorf("%w: lock epoch record of %q in %s has %d bytes, want %d; move the directory "+
				"aside or restore it from a backup", ErrCorrupt, key, db.dir, len(value), lockEpochLen)
		}
		return fn(string(key), binary.BigEndian.Uint32(value))
	})
}

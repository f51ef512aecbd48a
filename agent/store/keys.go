package store

import (
	"encoding/binary"
	"time"

	"github.com/ringleader/ringleader/crdt"
)

// Key layout. Every pebble key of the store starts with one byte naming its keyspace; this is
// the one place that lists them. A keyspace's keys sort together, so a scan of one keyspace is
// a range [prefix, prefix+1).
//
//	0x00 "format"                  store format version (one byte, formatVersion); set once
//	'C' counter key                counter record: an encoded crdt.State holding that key,
//	                               written with pebble's Merge and joined by the crdt merger
//	'I' idempotency key            idempotency record: see idempotency.go for the value
//	'X' expiry(8) idempotency key  expiry index of idempotency records, empty value; expiry
//	                               is unix nanoseconds, big-endian with the sign bit flipped,
//	                               so byte order is time order
//	'M' name                       meta value: raw bytes the agent owns (e.g. incarnation)
//	'E' lock key                   the highest ownership epoch this peer's acceptor ever
//	                               promised for the lock key: 4 bytes big-endian
//
// Reserved for later issues, so that nothing else takes them: 'P' ownership promises, 'V' the
// voter set. A new keyspace takes a new byte; a change to the encoding of
// an existing one raises formatVersion.
const (
	prefixSystem      byte = 0x00
	prefixCounter     byte = 'C'
	prefixIdempotency byte = 'I'
	prefixExpiry      byte = 'X'
	prefixMeta        byte = 'M'
	prefixLockEpoch   byte = 'E'
)

// formatKey holds the store format version.
var formatKey = []byte{prefixSystem, 'f', 'o', 'r', 'm', 'a', 't'}

// formatVersion is the store format this package writes and reads. Open refuses a store of a
// higher version (ErrNewerFormat).
const formatVersion byte = 1

// Limits on what the store accepts.
const (
	// MaxCounterKeyLen is the longest counter key, the same as crdt.MaxKeyLen.
	MaxCounterKeyLen = crdt.MaxKeyLen
	// MaxIdempotencyKeyLen is the longest idempotency key, in bytes.
	MaxIdempotencyKeyLen = 255
	// MaxIdempotencyValueLen is the largest value an idempotency record keeps, in bytes.
	MaxIdempotencyValueLen = 64 << 10
	// MaxMetaNameLen is the longest meta value name, in bytes.
	MaxMetaNameLen = 255
	// MaxMetaValueLen is the largest meta value, in bytes.
	MaxMetaValueLen = 1 << 20
	// MaxLockKeyLen is the longest lock key, the same as lockmgr.MaxKeyLen.
	MaxLockKeyLen = 1024
)

// appendKey appends prefix and name to dst.
func appendKey(dst []byte, prefix byte, name string) []byte {
	dst = append(dst, prefix)
	return append(dst, name...)
}

// appendExpiryKey appends the expiry index key of an idempotency record.
func appendExpiryKey(dst []byte, expires time.Time, key string) []byte {
	dst = append(dst, prefixExpiry)
	dst = binary.BigEndian.AppendUint64(dst, sortableNanos(expires))
	return append(dst, key...)
}

// sortableNanos returns t as unix nanoseconds with the sign bit flipped, so that unsigned
// byte order is time order also before 1970.
func sortableNanos(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }

// fromSortableNanos is the inverse of sortableNanos.
func fromSortableNanos(u uint64) time.Time { return time.Unix(0, int64(u^(1<<63))) }

// keyspaceEnd returns the exclusive upper bound of a keyspace.
func keyspaceEnd(prefix byte) []byte { return []byte{prefix + 1} }

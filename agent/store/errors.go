package store

import "errors"

// Errors returned by this package. Match them with errors.Is: the package wraps them with
// detail (which directory, which key, what to do).
var (
	// ErrCorrupt is returned by Open for a data dir that cannot be a store: pebble reports its
	// files corrupt, the path is a file and not a directory, the directory holds files but no
	// pebble database, or the database holds no store format marker. It is also returned by
	// reads that meet corruption pebble detects (a checksum mismatch). The error names the
	// directory. The store never resets such a directory itself: move it aside and start
	// again (the peer takes a new incarnation and anti-entropy refills its counters), or
	// restore it from a backup.
	ErrCorrupt = errors.New("store: data dir corrupt")

	// ErrNewerFormat is returned by Open for a data dir written by a newer version of the
	// store or of pebble than this binary understands. Run the newer binary, or move the
	// directory aside.
	ErrNewerFormat = errors.New("store: data dir has a newer format")

	// ErrLocked is returned by Open when another DB (in this or another process) has the
	// directory open.
	ErrLocked = errors.New("store: data dir in use")

	// ErrClosed is returned by every method of a DB that was closed, and by Batch.Commit of a
	// batch of a closed DB.
	ErrClosed = errors.New("store: closed")

	// ErrBadKey is returned for a counter key, idempotency key or meta name that is empty or
	// too long (see MaxCounterKeyLen, MaxIdempotencyKeyLen, MaxMetaNameLen).
	ErrBadKey = errors.New("store: bad key")

	// ErrBadValue is returned for a value too large to store (see MaxIdempotencyValueLen,
	// MaxMetaValueLen), and by Batch.MergeCounter for a record that is not the encoding of a
	// crdt.State holding exactly the given key.
	ErrBadValue = errors.New("store: bad value")

	// ErrBadConfig is returned by Config.Validate and Open for an unusable Config.
	ErrBadConfig = errors.New("store: bad config")

	// ErrBatchDone is returned by a Batch method called after Commit or Close.
	ErrBatchDone = errors.New("store: batch already committed or closed")
)

package crdt

import "errors"

// Errors returned by this package. Match them with errors.Is: the package wraps them with
// detail (which key, which replica, what to do).
var (
	// ErrOverflow is returned by a write (GCounter.Increment, PNCounter.Add, Store.Apply) that
	// was refused because it would take a replica's own count past the uint64 range, or the
	// counter's value past the range of its type (uint64 for a G-Counter, int64 for a
	// PN-Counter). Nothing was changed; the write can be retried with a smaller amount.
	ErrOverflow = errors.New("crdt: counter overflow")

	// ErrValueOverflow is returned by a read (GCounter.Value, PNCounter.Value, Store.Value,
	// Store.Apply of a counter already out of range) when the merged value lies outside the
	// range of its type. Each side of a partition can add up to the limit and pass its own
	// ErrOverflow check; once their states merge the exact value no longer fits. The counts
	// themselves are kept exactly; the value is never wrapped. Adds that bring the value back
	// into range are accepted.
	ErrValueOverflow = errors.New("crdt: counter value out of range")

	// ErrBadKey is returned for a key that is empty or longer than MaxKeyLen bytes.
	ErrBadKey = errors.New("crdt: bad key")

	// ErrBadAmount is returned for a write of amount zero, which would change nothing.
	ErrBadAmount = errors.New("crdt: bad amount")

	// ErrBadReplica is returned for a ReplicaID with an empty or too long node name.
	ErrBadReplica = errors.New("crdt: bad replica id")

	// ErrNotFound is returned by Store reads of a key the store holds no counts for.
	ErrNotFound = errors.New("crdt: key not found")

	// ErrStoreFull is returned when a shard of a Store already holds the most keys it can
	// (about four billion); a store that large needs more shards.
	ErrStoreFull = errors.New("crdt: store full")

	// ErrTooManyReplicas is returned when a store would have to track more than MaxReplicas
	// distinct replica IDs.
	ErrTooManyReplicas = errors.New("crdt: too many replicas")

	// ErrBadEncoding is returned by every decoder for bytes that are not a valid encoding:
	// truncated, hostile, of another format version, or of another type.
	ErrBadEncoding = errors.New("crdt: bad encoding")

	// ErrBadConfig is returned by Config.Validate and New for an unusable Config.
	ErrBadConfig = errors.New("crdt: bad config")
)

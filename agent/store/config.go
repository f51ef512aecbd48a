package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures a DB. Get one from DefaultConfig and change what you need; Open does not
// change the Config it is given.
type Config struct {
	// FS is the filesystem the DB lives on. Nil means the real disk (vfs.Default). Tests and
	// the simulation pass vfs.NewCrashableMem(), whose CrashClone keeps only what was synced.
	FS vfs.FS

	// Logger receives pebble's messages: its informational lines at Debug, its errors (for
	// example a failed background compaction) at Error. Nil discards them.
	Logger *slog.Logger

	// CacheSize is the size of pebble's block cache, in bytes. The working set of a peer is
	// its counter store in memory (crdt), so the cache only has to serve startup, the
	// idempotency and meta reads, and compactions. At least 1 MiB. Default 16 MiB.
	CacheSize int64

	// MemTableSize is the size of one pebble memtable, in bytes; pebble keeps up to two
	// before it stalls writes, and replays up to about this much WAL at startup. At least
	// 1 MiB, at most 1 GiB. Default 8 MiB.
	MemTableSize int64

	// WALMinSyncInterval is the shortest time between two syncs of the write-ahead log: a
	// synced commit that arrives sooner waits for it, and shares it with the commits that
	// arrive meanwhile; a commit after a quiet spell is not delayed. Zero (the default) syncs
	// as soon as the sync before ended. Negative is refused.
	WALMinSyncInterval time.Duration
}

// DefaultConfig returns the default Config: the real disk, no logging, a 16 MiB cache and
// 8 MiB memtables.
func DefaultConfig() Config {
	return Config{CacheSize: 16 << 20, MemTableSize: 8 << 20}
}

// Validate returns an error wrapping ErrBadConfig if c is unusable. It does not change c.
func (c Config) Validate() error {
	if c.CacheSize < 1<<20 {
		return fmt.Errorf("%w: CacheSize must be at least 1 MiB, got %d bytes", ErrBadConfig, c.CacheSize)
	}
	if c.MemTableSize < 1<<20 || c.MemTableSize > 1<<30 {
		return fmt.Errorf("%w: MemTableSize must be 1 MiB to 1 GiB, got %d bytes", ErrBadConfig, c.MemTableSize)
	}
	if c.WALMinSyncInterval < 0 {
		return fmt.Errorf("%w: WALMinSyncInterval must not be negative, got %v", ErrBadConfig, c.WALMinSyncInterval)
	}
	return nil
}

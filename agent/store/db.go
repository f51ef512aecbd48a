package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
)

// pebbleFormat is the pebble format this store creates and keeps. It is pinned, not
// pebble.FormatNewest, so that a pebble upgrade does not ratchet the format of existing data
// dirs (which would stop an older binary from opening them) without us deciding so.
const pebbleFormat = pebble.FormatValueSeparation

// DB is a peer's durable state in one data dir. It is safe for concurrent use.
type DB struct {
	dir          string
	pdb          *pebble.DB
	lock         *pebble.Lock
	log          *slog.Logger
	fsyncLatency prometheus.Histogram

	// closeMu guards closed. Every method holds it for reading while it uses pdb (pebble
	// panics on a closed DB), and Close holds it for writing, so Close waits for the calls
	// in flight and later calls return ErrClosed.
	closeMu sync.RWMutex
	closed  bool

	// idemMu orders idempotency writes against their cleanup: a Batch holding idempotency
	// records commits with it held for reading; DeleteExpiredIdempotency holds it for
	// writing between reading a record and deleting it, so it never deletes a record that a
	// concurrent batch has just written anew.
	idemMu sync.RWMutex
}

// Open opens the store in dir, creating the directory and an empty store if there is none.
//
// Open never resets or repairs a directory. It returns an error naming dir and wrapping
// ErrCorrupt if pebble reports the files corrupt, dir is a file, dir holds files but no
// pebble database, or the database is not a store; ErrNewerFormat if a newer store or pebble
// wrote it; ErrLocked if another DB has it open; ErrBadConfig for an unusable cfg. Other
// errors (permissions, a full disk) are returned wrapped, naming dir.
//
// Pebble replays its write-ahead log at Open: a write committed with sync is there, a torn
// tail from a crash is dropped.
func Open(dir string, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fsys := cfg.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := prepareDir(fsys, dir); err != nil {
		return nil, err
	}
	lock, err := pebble.LockDirectory(dir, fsys)
	if err != nil {
		return nil, lockError(dir, err)
	}
	db, err := openLocked(dir, fsys, log, cfg, lock)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	return db, nil
}

// prepareDir makes sure dir is a directory, creating it if need be. It syncs the parent of
// every directory it creates, so that a crash cannot lose the new directory's entry (and the
// synced store inside it with it).
func prepareDir(fsys vfs.FS, dir string) error {
	fi, err := fsys.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%w: %s is a file, not a directory: move it aside or configure another data dir", ErrCorrupt, dir)
	case err == nil:
		return nil
	case isNotDir(err):
		return fmt.Errorf("%w: a part of the path %s is a file, not a directory (%v): move it aside or configure another data dir", ErrCorrupt, dir, err)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("store: cannot open data dir %s: %w", dir, err)
	}
	// The directories to create, deepest first.
	var missing []string
	for p := dir; ; {
		if _, err := fsys.Stat(p); err == nil {
			break
		}
		missing = append(missing, p)
		parent := fsys.PathDir(p)
		if parent == p {
			break
		}
		p = parent
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		if isNotDir(err) || errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: cannot create %s, a part of its path is a file: %v; move it aside or configure another data dir", ErrCorrupt, dir, err)
		}
		return fmt.Errorf("store: cannot create data dir %s: %w", dir, err)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := syncDir(fsys, fsys.PathDir(missing[i])); err != nil {
			return fmt.Errorf("store: cannot sync the parent of new data dir %s: %w", missing[i], err)
		}
	}
	return nil
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// isNotDir reports whether err says that a part of a path is not a directory (the real
// disk says ENOTDIR, pebble's MemFS only says so in words).
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || strings.Contains(err.Error(), "not a directory")
}

// lockError wraps an error of pebble.LockDirectory.
func lockError(dir string, err error) error {
	var pathErr *fs.PathError
	if !errors.As(err, &pathErr) &&
		(errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "lock held")) {
		return fmt.Errorf("%w: %s is open in another process or DB (%v): stop that one first", ErrLocked, dir, err)
	}
	return fmt.Errorf("store: cannot lock data dir %s: %w", dir, err)
}

func openLocked(dir string, fsys vfs.FS, log *slog.Logger, cfg Config, lock *pebble.Lock) (*DB, error) {
	if err := checkPebbleDir(fsys, dir); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cfg.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	plog := pebbleLogger{log: log, dir: dir}
	opts := &pebble.Options{
		FS:                 fsys,
		Lock:               lock,
		Cache:              cache,
		MemTableSize:       uint64(cfg.MemTableSize),
		Merger:             counterMerger,
		WALMinSyncInterval: func() time.Duration { return cfg.WALMinSyncInterval },
		FormatMajorVersion: pebbleFormat,
		Logger:             plog,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { log.Error("store: pebble background error", "dir", dir, "err", err) },
			// Pebble's default exits the process; reads that meet the corruption return
			// an error anyway, which is what the caller should see.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("store: pebble found corrupt data", "dir", dir, "info", info.String())
			},
		},
	}
	pdb, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, openError(dir, err)
	}
	db := &DB{dir: dir, pdb: pdb, lock: lock, log: log}
	created, err := db.checkFormat()
	if err != nil {
		_ = pdb.Close()
		return nil, err
	}
	if created {
		// Pebble creates a database at its oldest format and raises it afterwards, so
		// the first write-ahead log of a new database lacks the sync offsets that let
		// pebble tell a damaged record from a torn tail at recovery: damage there would
		// silently drop every later record. Reopening starts a log in the full format.
		if err := pdb.Close(); err != nil {
			return nil, fmt.Errorf("store: close new store in %s: %w", dir, err)
		}
		if db.pdb, err = pebble.Open(dir, opts); err != nil {
			return nil, openError(dir, err)
		}
	}
	db.fsyncLatency = db.pdb.Metrics().LogWriter.FsyncLatency
	return db, nil
}

// checkPebbleDir refuses a directory that holds files but no pebble database: pebble would
// create a new database among them, which hides a data dir whose pebble files were lost
// behind an empty store. What a creation that crashed half-way leaves is accepted: pebble
// finishes it, or refuses if the half-made database already holds data.
func checkPebbleDir(fsys vfs.FS, dir string) error {
	desc, err := pebble.Peek(dir, fsys)
	if err != nil {
		return openError(dir, err)
	}
	if desc.Exists {
		return nil
	}
	names, err := fsys.List(dir)
	if err != nil {
		return fmt.Errorf("store: cannot list data dir %s: %w", dir, err)
	}
	for _, name := range names {
		if !isPebbleCreationFile(name) {
			return fmt.Errorf("%w: %s holds files (such as %q) but no pebble database: "+
				"if its database files were lost, restore them from a backup; "+
				"otherwise configure an empty or new data dir", ErrCorrupt, dir, name)
		}
	}
	return nil
}

// isPebbleCreationFile reports whether name is a file that pebble writes while it creates a
// database, before the database exists.
func isPebbleCreationFile(name string) bool {
	return name == "LOCK" ||
		strings.HasPrefix(name, "MANIFEST-") ||
		strings.HasPrefix(name, "marker.") ||
		strings.HasPrefix(name, "OPTIONS-") ||
		strings.HasSuffix(name, ".log") ||
		strings.HasSuffix(name, ".dbtmp")
}

// openError wraps an error of pebble.Open or pebble.Peek.
func openError(dir string, err error) error {
	msg := err.Error()
	switch {
	case pebble.IsCorruptionError(err), errors.Is(err, pebble.ErrDBNotPristine):
		return fmt.Errorf("%w: %s: %v; move the directory aside (the peer then starts with a new "+
			"incarnation and anti-entropy refills its counters) or restore it from a backup", ErrCorrupt, dir, err)
	case strings.Contains(msg, "unknown format major version"):
		return fmt.Errorf("%w: %s: %v; run the newer binary that wrote it, or move it aside", ErrNewerFormat, dir, err)
	case isNotDir(err):
		return fmt.Errorf("%w: a part of the path %s is a file, not a directory (%v): move it aside "+
			"or configure another data dir", ErrCorrupt, dir, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EIO):
		return fmt.Errorf("store: cannot open data dir %s: %w", dir, err)
	}
	// Anything else pebble refuses while reading its own files (a garbage marker, an
	// unreadable OPTIONS file, a manifest that names missing tables) is damage to the
	// directory.
	return fmt.Errorf("%w: %s: %v; move the directory aside (the peer then starts with a new "+
		"incarnation and anti-entropy refills its counters) or restore it from a backup", ErrCorrupt, dir, err)
}

// checkFormat reads the store format marker, writing it (synced) into a new database, and
// reports whether it did.
func (db *DB) checkFormat() (created bool, err error) {
	v, closer, err := db.pdb.Get(formatKey)
	if err == nil {
		defer closer.Close()
		switch {
		case len(v) == 1 && v[0] == formatVersion:
			return false, nil
		case len(v) == 1 && v[0] > formatVersion:
			return false, fmt.Errorf("%w: %s holds a store of format %d, this binary reads format %d: "+
				"run the newer binary that wrote it, or move it aside", ErrNewerFormat, db.dir, v[0], formatVersion)
		}
		return false, fmt.Errorf("%w: %s holds a bad store format marker %x: move it aside or restore it from a backup",
			ErrCorrupt, db.dir, v)
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return false, db.readError("read the store format", err)
	}
	iter, err := db.pdb.NewIter(nil)
	if err != nil {
		return false, db.readError("read the store format", err)
	}
	empty := !iter.First()
	if err := errors.Join(iter.Error(), iter.Close()); err != nil {
		return false, db.readError("read the store format", err)
	}
	if !empty {
		return false, fmt.Errorf("%w: %s holds a pebble database that is not a ringleader store (no format marker): "+
			"configure another data dir", ErrCorrupt, db.dir)
	}
	if err := db.pdb.Set(formatKey, []byte{formatVersion}, pebble.Sync); err != nil {
		return false, fmt.Errorf("store: write the store format to %s: %w", db.dir, err)
	}
	return true, nil
}

// readError wraps an error of a pebble read, as ErrCorrupt if pebble found corruption (or
// the merger found a damaged record).
func (db *DB) readError(what string, err error) error {
	if pebble.IsCorruptionError(err) || errors.Is(err, ErrCorrupt) {
		if errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("store: %s in %s: %w; move the directory aside or restore it from a backup", what, db.dir, err)
		}
		return fmt.Errorf("%w: %s in %s: %v; move the directory aside or restore it from a backup", ErrCorrupt, what, db.dir, err)
	}
	return fmt.Errorf("store: %s in %s: %w", what, db.dir, err)
}

// Dir returns the directory the DB lives in.
func (db *DB) Dir() string { return db.dir }

// Close closes the DB, after waiting for the calls in flight. It syncs pebble's log first,
// so commits made with sync=false are durable once it returns. It is safe to call more than
// once; calls after the first return nil.
func (db *DB) Close() error {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	err := db.pdb.Close()
	if lerr := db.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("store: close %s: %w", db.dir, err)
	}
	return nil
}

// Sync makes every commit so far durable: it returns once pebble's write-ahead log is synced
// past them. Call it before acknowledging anything that rests on commits made with
// sync=false (for example a majority write that merged remote state). Concurrent Syncs and
// synced commits share one fsync.
func (db *DB) Sync() error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync %s: %w", db.dir, err)
	}
	return nil
}

// FsyncLatency returns pebble's histogram of write-ahead log fsync latencies, in
// nanoseconds. It has no name: export it by reading it (its Write method) into a metric of
// your own.
func (db *DB) FsyncLatency() prometheus.Histogram { return db.fsyncLatency }

// get reads key's value into a copy, under closeMu.
func (db *DB) get(key []byte) ([]byte, bool, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return nil, false, ErrClosed
	}
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

var _ io.Closer = (*DB)(nil)

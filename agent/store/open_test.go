package store

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const testDir = "/data/store"

// memConfig returns a Config over fs.
func memConfig(fs vfs.FS) Config {
	cfg := DefaultConfig()
	cfg.CacheSize = 1 << 20
	cfg.MemTableSize = 1 << 20
	cfg.FS = fs
	return cfg
}

// openMem opens the store in testDir of fs, failing the test on error.
func openMem(t tb, fs vfs.FS) *DB {
	t.Helper()
	db, err := Open(testDir, memConfig(fs))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// writeFile replaces name in fs with data.
func writeFile(t tb, fs vfs.FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// readFile returns the content of name in fs.
func readFile(t tb, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fileWith returns the name of the one file in testDir whose name has the prefix.
func fileWith(t tb, fs vfs.FS, prefix string) string {
	t.Helper()
	names, err := fs.List(testDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return n
		}
	}
	t.Fatalf("no file %s* in %s: %v", prefix, testDir, names)
	return ""
}

// populated returns a MemFS holding a closed store with a few records, flushed to an
// sstable.
func populated(t tb) *vfs.MemFS {
	t.Helper()
	return populate(t, true)
}

// populate is populated, leaving the records in the WAL only unless flush.
func populate(t tb, flush bool) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	db := openMem(t, fs)
	b := db.NewBatch()
	for _, k := range []string{"a", "b", "c"} {
		if err := b.MergeCounter(k, testRecord(t, k, "n1", 1, 5, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PutMeta("incarnation", []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if flush {
		if err := db.pdb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestOpenRefusesBadDir(t *testing.T) {
	garbage := []byte("this is not what pebble wrote \x00\x01\x02\xff")
	tests := []struct {
		name  string
		dir   string
		setup func(t *testing.T) vfs.FS
		want  error
	}{
		{"garbage MANIFEST", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			writeFile(t, fs, testDir+"/"+currentManifest(t, fs), garbage)
			return fs
		}, ErrCorrupt},
		{"empty MANIFEST", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			writeFile(t, fs, testDir+"/"+currentManifest(t, fs), nil)
			return fs
		}, ErrCorrupt},
		{"MANIFEST missing", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			if err := fs.Remove(testDir + "/" + currentManifest(t, fs)); err != nil {
				t.Fatal(err)
			}
			return fs
		}, ErrCorrupt},
		{"manifest marker names a missing MANIFEST", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			m := fileWith(t, fs, "marker.manifest.")
			if err := fs.Rename(testDir+"/"+m, testDir+"/marker.manifest.000001.MANIFEST-000999"); err != nil {
				t.Fatal(err)
			}
			return fs
		}, ErrCorrupt},
		{"garbage format-version marker", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			m := fileWith(t, fs, "marker.format-version.")
			if err := fs.Rename(testDir+"/"+m, testDir+"/marker.format-version.000001.xyz"); err != nil {
				t.Fatal(err)
			}
			return fs
		}, ErrCorrupt},
		{"garbage OPTIONS", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			writeFile(t, fs, testDir+"/"+fileWith(t, fs, "OPTIONS-"), garbage)
			return fs
		}, ErrCorrupt},
		// Pebble v2 finds its manifest through the marker files, not CURRENT: a stray
		// CURRENT beside them is ignored, and the data is all there.
		{"garbage CURRENT beside the markers", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			writeFile(t, fs, testDir+"/CURRENT", garbage)
			return fs
		}, nil},
		// Without markers, a CURRENT file is a database of pebble v1's format, which
		// pebble v2 can no longer read.
		{"garbage CURRENT alone", testDir, func(t *testing.T) vfs.FS {
			fs := vfs.NewMem()
			if err := fs.MkdirAll(testDir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, fs, testDir+"/CURRENT", garbage)
			return fs
		}, ErrCorrupt},
		{"sstables but no pebble database", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			for _, n := range mustList(t, fs) {
				if strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "marker.") || strings.HasPrefix(n, "OPTIONS-") {
					if err := fs.Remove(testDir + "/" + n); err != nil {
						t.Fatal(err)
					}
				}
			}
			return fs
		}, ErrCorrupt},
		{"other files but no pebble database", testDir, func(t *testing.T) vfs.FS {
			fs := vfs.NewMem()
			if err := fs.MkdirAll(testDir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, fs, testDir+"/serf.snapshot", []byte("alive: n1 127.0.0.1:7946\n"))
			return fs
		}, ErrCorrupt},
		{"a file where the dir should be", testDir, func(t *testing.T) vfs.FS {
			fs := vfs.NewMem()
			if err := fs.MkdirAll("/data", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, fs, testDir, garbage)
			return fs
		}, ErrCorrupt},
		{"a file where a parent dir should be", testDir + "/sub", func(t *testing.T) vfs.FS {
			fs := vfs.NewMem()
			if err := fs.MkdirAll("/data", 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, fs, testDir, garbage)
			return fs
		}, ErrCorrupt},
		{"sstable corrupt", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			name := testDir + "/" + fileWith(t, fs, "0000") // the WAL or an sstable; both are checked
			for _, n := range mustList(t, fs) {
				if strings.HasSuffix(n, ".sst") {
					name = testDir + "/" + n
				}
			}
			b := readFile(t, fs, name)
			for i := 0; i < len(b)/2; i++ {
				b[i] ^= 0x5a
			}
			writeFile(t, fs, name, b)
			return fs
		}, ErrCorrupt},
		// Pebble tells damage from a torn tail by the synced offsets of the records after
		// it, so the damage must lie before the log's last 32 KiB block (damage within it
		// looks like a torn write and is dropped: pebble's limit).
		{"WAL corrupt in its synced part", testDir, func(t *testing.T) vfs.FS {
			fs := vfs.NewMem()
			db := openMem(t, fs)
			for i := range 200 {
				b := db.NewBatch()
				k := fmt.Sprintf("k%03d-%s", i, strings.Repeat("x", 400))
				if err := b.MergeCounter(k, testRecord(t, k, "n1", 1, 5, 0)); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(true); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			var name string
			for _, n := range mustList(t, fs) {
				if strings.HasSuffix(n, ".log") && (name == "" || n > name) {
					name = n
				}
			}
			b := readFile(t, fs, testDir+"/"+name)
			if len(b) < 3*32<<10 {
				t.Fatalf("WAL %s has %d bytes, want several blocks", name, len(b))
			}
			b[len(b)/3] ^= 0x5a
			writeFile(t, fs, testDir+"/"+name, b)
			return fs
		}, ErrCorrupt},
		{"newer pebble format", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			m := fileWith(t, fs, "marker.format-version.")
			if err := fs.Rename(testDir+"/"+m, testDir+"/marker.format-version.000099.999"); err != nil {
				t.Fatal(err)
			}
			return fs
		}, ErrNewerFormat},
		{"newer store format", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			rawSet(t, fs, formatKey, []byte{formatVersion + 1})
			return fs
		}, ErrNewerFormat},
		{"bad store format marker", testDir, func(t *testing.T) vfs.FS {
			fs := populated(t)
			rawSet(t, fs, formatKey, []byte("v1"))
			return fs
		}, ErrCorrupt},
		{"pebble database that is not a store", testDir, func(t *testing.T) vfs.FS {
			fs := vfs.NewMem()
			rawSet(t, fs, []byte("something else"), []byte("x"))
			return fs
		}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := tt.setup(t)
			db, err := Open(tt.dir, memConfig(fs))
			n := 0
			if err == nil {
				// Some damage only shows on reading.
				err = db.ScanCounters(func(string, []byte) error { n++; return nil })
				_ = db.Close()
			}
			if tt.want == nil {
				if err != nil || n != 3 {
					t.Fatalf("got %v and %d counters, want no error and 3 counters", err, n)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("error %q does not name the directory %s", err, tt.dir)
			}
			t.Logf("%v", err)
		})
	}
}

// currentManifest returns the name of the MANIFEST that pebble's marker names.
func currentManifest(t tb, fs vfs.FS) string {
	t.Helper()
	m := fileWith(t, fs, "marker.manifest.")
	return m[strings.LastIndex(m, ".")+1:]
}

func mustList(t tb, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List(testDir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// rawSet writes key=value into the pebble database in testDir of fs, past the store.
func rawSet(t tb, fs vfs.FS, key, value []byte) {
	t.Helper()
	pdb, err := pebble.Open(testDir, &pebble.Options{FS: fs, Merger: counterMerger, Logger: pebbleLogger{log: discardLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pdb.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := pdb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenAfterCrashedCreation opens a directory that holds only what a creation that
// crashed at once leaves: pebble's LOCK file.
func TestOpenAfterCrashedCreation(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll(testDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, testDir+"/LOCK", nil)
	db := openMem(t, fs)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLocked(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	defer db.Close()
	_, err := Open(testDir, memConfig(fs))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openMem(t, fs) // the lock is released by Close
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenTwiceOnDisk(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(dir, DefaultConfig()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	for i := range 3 {
		if err := db.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	checks := []struct {
		name string
		call func() error
	}{
		{"Sync", db.Sync},
		{"Commit", func() error {
			b := db.NewBatch()
			if err := b.PutMeta("m", nil); err != nil {
				return err
			}
			return b.Commit(true)
		}},
		{"ScanCounters", func() error { return db.ScanCounters(func(string, []byte) error { return nil }) }},
		{"GetMeta", func() error { _, _, err := db.GetMeta("m"); return err }},
		{"GetIdempotency", func() error { _, _, err := db.GetIdempotency("k", testNow); return err }},
		{"DeleteExpiredIdempotency", func() error { _, _, err := db.DeleteExpiredIdempotency(testNow, 10); return err }},
	}
	for _, c := range checks {
		if err := c.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", c.name, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"cache too small", func(c *Config) { c.CacheSize = 1000 }, false},
		{"memtable too small", func(c *Config) { c.MemTableSize = 1000 }, false},
		{"memtable too large", func(c *Config) { c.MemTableSize = 2 << 30 }, false},
		{"min sync interval", func(c *Config) { c.WALMinSyncInterval = time.Millisecond }, true},
		{"negative min sync interval", func(c *Config) { c.WALMinSyncInterval = -time.Millisecond }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			before := c
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate = %v, want ErrBadConfig", err)
			}
			if c != before {
				t.Fatal("Validate changed the config")
			}
			if !tt.ok {
				if _, err := Open("/nowhere", c); !errors.Is(err, ErrBadConfig) {
					t.Fatalf("Open = %v, want ErrBadConfig", err)
				}
			}
		})
	}
}

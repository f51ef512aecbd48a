package store

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringleader/ringleader/crdt"
)

var crashSeed = flag.Int64("store.crashseed", 0, "seed of TestCrashKeepsSyncedCommits (0: from the clock)")

// crashPoint is a crash-consistent copy of the filesystem and what had been acknowledged
// before it was taken.
type crashPoint struct {
	fs           *vfs.MemFS
	unsyncedPct  int
	ackedSeq     []uint64         // per writer: the highest seq acknowledged by a synced commit
	ackedValue   map[string]int64 // per key: a lower bound of the value a synced commit held
	afterCommits int64
}

// TestCrashKeepsSyncedCommits runs several writers committing batches (a counter record, the
// writer's sequence number as a meta value, an idempotency record) over a crash-simulating
// filesystem, most of them synced, and takes crash copies at many points; CrashClone keeps
// what was synced and a random part of the rest. Each copy, reopened, must hold every commit
// acknowledged with sync before the copy was taken, each commit whole, and each writer's
// commits as a prefix (the log keeps order). It runs with syncs back to back and with a
// minimum interval between them (WALMinSyncInterval, which the agent sets), where a synced
// commit waits for a later sync.
func TestCrashKeepsSyncedCommits(t *testing.T) {
	for _, iv := range []time.Duration{0, 500 * time.Microsecond} {
		t.Run(fmt.Sprintf("min-sync-interval=%v", iv), func(t *testing.T) { crashKeepsSyncedCommits(t, iv) })
	}
}

func crashKeepsSyncedCommits(t *testing.T, minSync time.Duration) {
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: rerun with -store.crashseed=%d (goroutine interleaving still varies)", seed, seed)
		}
	})
	const (
		writers   = 4
		perWriter = 300
		keys      = 5
		points    = 40
	)
	rng := rand.New(rand.NewSource(seed))
	fs := vfs.NewCrashableMem()
	cfg := memConfig(fs)
	cfg.WALMinSyncInterval = minSync
	db, err := Open(testDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := crdt.New(crdt.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	self := rid(t, "self", 1)

	var (
		ackedSeq  [writers]atomic.Uint64
		ackMu     sync.Mutex // guards ackedVal
		ackedVal  = map[string]int64{}
		committed atomic.Int64
	)
	snapshot := func(pct int) crashPoint {
		cp := crashPoint{unsyncedPct: pct, ackedSeq: make([]uint64, writers), ackedValue: map[string]int64{}, afterCommits: committed.Load()}
		for i := range writers {
			cp.ackedSeq[i] = ackedSeq[i].Load()
		}
		ackMu.Lock()
		for k, v := range ackedVal {
			cp.ackedValue[k] = v
		}
		ackMu.Unlock()
		// Only now copy: whatever was acknowledged above had its fsync done already.
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
		if pct > 0 {
			cfg.RNG = randv2.New(randv2.NewPCG(rng.Uint64(), rng.Uint64()))
		}
		cp.fs = fs.CrashClone(cfg)
		return cp
	}
	var crashes []crashPoint
	crashes = append(crashes, snapshot(0)) // a new, empty store

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wrng := rand.New(rand.NewSource(rng.Int63()))
		wg.Go(func() {
			for seq := uint64(1); seq <= perWriter; seq++ {
				key := fmt.Sprintf("k%d", wrng.Intn(keys))
				v, err := s.Apply(key, self, 1)
				if err != nil {
					errs <- err
					return
				}
				b := db.NewBatch()
				err = b.MergeCounterFrom(s, key)
				if err == nil {
					err = b.PutMeta(fmt.Sprintf("w%d", w), binary.BigEndian.AppendUint64(nil, seq))
				}
				if err == nil {
					err = b.PutIdempotency(fmt.Sprintf("w%d-%d", w, seq), []byte(key), testNow.Add(time.Hour))
				}
				sync := wrng.Intn(4) != 0 // three in four synced
				if err == nil {
					err = b.Commit(sync)
				}
				if err != nil {
					errs <- err
					return
				}
				if sync {
					ackedSeq[w].Store(seq) // seqs of one writer only grow
					ackMu.Lock()
					ackedVal[key] = max(ackedVal[key], v)
					ackMu.Unlock()
				}
				committed.Add(1)
			}
		})
	}
	// Take crash copies spread over the run: wait (with a deadline) for the next batch of
	// commits, then copy.
	deadline := time.Now().Add(time.Minute)
	for p := 1; p < points; p++ {
		target := int64(p * writers * perWriter / points)
		for committed.Load() < target && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond) // polling a condition, with a deadline
		}
		crashes = append(crashes, snapshot([]int{0, 0, 30, 70, 100}[rng.Intn(5)]))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	crashes = append(crashes, snapshot(0))
	final := map[string]int64{}
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		if v, err := s.Value(k); err == nil {
			final[k] = v
		}
	}
	for i, cp := range crashes {
		checkCrashPoint(t, i, cp, final)
	}
}

func checkCrashPoint(t *testing.T, i int, cp crashPoint, final map[string]int64) {
	t.Helper()
	where := fmt.Sprintf("crash point %d (after %d commits, %d%% of unsynced data kept)", i, cp.afterCommits, cp.unsyncedPct)
	if _, err := cp.fs.Stat(testDir); err != nil {
		t.Fatalf("%s: the data dir is gone: %v", where, err) // Open would make a new one
	}
	db, err := Open(testDir, memConfig(cp.fs))
	if err != nil {
		t.Fatalf("%s: reopen: %v", where, err)
	}
	defer db.Close()
	// Counters: at least what a synced commit held, at most what was ever written.
	got := map[string]int64{}
	if err := db.ScanCounters(func(key string, rec []byte) error {
		v, err := counterOf(t, key, rec).Value()
		got[key] = v
		return err
	}); err != nil {
		t.Fatalf("%s: scan: %v", where, err)
	}
	for k, v := range cp.ackedValue {
		if got[k] < v {
			t.Fatalf("%s: key %s = %d on disk, but a synced commit of value %d was acknowledged", where, k, got[k], v)
		}
	}
	for k, v := range got {
		if v > final[k] {
			t.Fatalf("%s: key %s = %d on disk, more than ever written (%d)", where, k, v, final[k])
		}
	}
	// Each writer: its last commit on disk is at or past its last synced acknowledgement,
	// and every commit before it is there, whole.
	for w, acked := range cp.ackedSeq {
		var seq uint64
		if v, ok, err := db.GetMeta(fmt.Sprintf("w%d", w)); err != nil {
			t.Fatalf("%s: %v", where, err)
		} else if ok {
			seq = binary.BigEndian.Uint64(v)
		}
		if seq < acked {
			t.Fatalf("%s: writer %d has commit %d on disk, but commit %d was acknowledged synced", where, w, seq, acked)
		}
		for s := uint64(1); s <= seq; s++ {
			if _, ok, err := db.GetIdempotency(fmt.Sprintf("w%d-%d", w, s), testNow); err != nil || !ok {
				t.Fatalf("%s: writer %d: commit %d is on disk but the idempotency record of its commit %d is not (%v)", where, w, seq, s, err)
			}
		}
		if _, ok, _ := db.GetIdempotency(fmt.Sprintf("w%d-%d", w, seq+1), testNow); ok {
			t.Fatalf("%s: writer %d: the idempotency record of commit %d is on disk without its meta value", where, w, seq+1)
		}
	}
}

// TestSyncMakesEarlierCommitsDurable checks Sync and Close: commits made with sync=false
// survive a crash that keeps only synced data once either has returned.
func TestSyncMakesEarlierCommitsDurable(t *testing.T) {
	tests := []struct {
		name string
		sync func(db *DB) error
	}{
		{"Sync", (*DB).Sync},
		{"Close", (*DB).Close},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			db, err := Open(testDir, memConfig(fs))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for i := range 10 {
				b := db.NewBatch()
				if err := b.PutMeta(fmt.Sprintf("m%d", i), []byte("v")); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(false); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.sync(db); err != nil {
				t.Fatal(err)
			}
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
			db2, err := Open(testDir, memConfig(clone))
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			for i := range 10 {
				if _, ok, err := db2.GetMeta(fmt.Sprintf("m%d", i)); err != nil || !ok {
					t.Fatalf("unsynced commit %d lost after %s and a crash: %v", i, tt.name, err)
				}
			}
		})
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/ringleader/ringleader/crdt"
)

// counts is one replica's counts in a key.
type counts struct{ p, n uint64 }

// recordOf returns the record of key holding the given replicas' counts.
func recordOf(t tb, key string, cs map[crdt.ReplicaID]counts) []byte {
	t.Helper()
	s, err := crdt.New(crdt.Config{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	for r, c := range cs {
		if c.p > 0 {
			if _, err := s.Apply(key, r, int64(c.p)); err != nil {
				t.Fatal(err)
			}
		}
		if c.n > 0 {
			if _, err := s.Apply(key, r, -int64(c.n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec, err := s.AppendKeyRecord(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// counterOf decodes a record of key into its counter.
func counterOf(t tb, key string, rec []byte) crdt.PNCounter {
	t.Helper()
	var st crdt.State
	if err := st.AppendEncoded(rec); err != nil {
		t.Fatalf("record of %q does not decode: %v", key, err)
	}
	var c crdt.PNCounter
	n := 0
	for k, kc := range st.All() {
		if k != key {
			t.Fatalf("record of %q holds key %q", key, k)
		}
		c.Merge(kc)
		n++
	}
	if n != 1 {
		t.Fatalf("record of %q holds %d states of it, want 1", key, n)
	}
	return c
}

func rid(t tb, node string, inc uint64) crdt.ReplicaID {
	t.Helper()
	r, err := crdt.NewReplicaID(node, inc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestJoinRecords(t *testing.T) {
	a, b := rid(t, "a", 1), rid(t, "b", 1)
	rec := func(cs map[crdt.ReplicaID]counts) []byte { return recordOf(t, "k", cs) }
	older := rec(map[crdt.ReplicaID]counts{a: {3, 1}})
	newer := rec(map[crdt.ReplicaID]counts{a: {5, 1}, b: {2, 0}})
	left := rec(map[crdt.ReplicaID]counts{a: {7, 0}, b: {1, 0}})
	right := rec(map[crdt.ReplicaID]counts{a: {2, 4}, b: {9, 0}})
	tests := []struct {
		name    string
		ops     [][]byte
		want    map[crdt.ReplicaID]counts
		same    int // index of the op returned unchanged, or -1
		wantErr error
	}{
		{"one record", [][]byte{older}, map[crdt.ReplicaID]counts{a: {3, 1}}, 0, nil},
		{"older then newer", [][]byte{older, newer}, map[crdt.ReplicaID]counts{a: {5, 1}, b: {2, 0}}, 1, nil},
		{"newer then older", [][]byte{newer, older}, map[crdt.ReplicaID]counts{a: {5, 1}, b: {2, 0}}, 0, nil},
		{"same record twice", [][]byte{newer, newer}, map[crdt.ReplicaID]counts{a: {5, 1}, b: {2, 0}}, 0, nil},
		{"diverged records", [][]byte{left, right}, map[crdt.ReplicaID]counts{a: {7, 4}, b: {9, 0}}, -1, nil},
		{"diverged and a smaller one", [][]byte{older, left, right}, map[crdt.ReplicaID]counts{a: {7, 4}, b: {9, 0}}, -1, nil},
		{"garbage", [][]byte{older, []byte("garbage")}, nil, -1, ErrCorrupt},
		{"empty bytes", [][]byte{[]byte{}, older}, nil, -1, ErrCorrupt},
		{"truncated", [][]byte{older, newer[:len(newer)-1]}, nil, -1, ErrCorrupt},
		{"another key", [][]byte{older, recordOf(t, "other", map[crdt.ReplicaID]counts{a: {1, 0}})}, nil, -1, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newJoinMerger([]byte("Ck"), tt.ops[0])
			if err != nil {
				t.Fatal(err)
			}
			for i, op := range tt.ops[1:] {
				if i%2 == 0 {
					err = m.MergeNewer(op)
				} else {
					err = m.MergeOlder(op)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			out, _, err := m.Finish(true)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Finish: got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := counterOf(t, "k", out), counterOf(t, "k", rec(tt.want)); !got.Equal(want) {
				t.Fatalf("join = %v, want %v", got, want)
			}
			if tt.same >= 0 && string(out) != string(tt.ops[tt.same]) {
				t.Errorf("join is not record %d unchanged", tt.same)
			}
		})
	}
}

// genRecords draws the records of one key: snapshots of replicas' counts as they grow, as a
// store would take them, plus some that diverge (taken by different stores).
func genRecords(t *rapid.T, key string) [][]byte {
	nodes := []string{"a", "b", "c"}
	var recs [][]byte
	for range rapid.IntRange(1, 8).Draw(t, "records") {
		cs := map[crdt.ReplicaID]counts{}
		for _, node := range nodes {
			if rapid.Bool().Draw(t, "has "+node) {
				cs[crdt.ReplicaID{Node: node, Incarnation: 1}] = counts{
					p: rapid.Uint64Range(0, 1<<40).Draw(t, "p"),
					n: rapid.Uint64Range(0, 1<<40).Draw(t, "n"),
				}
			}
		}
		if len(cs) == 0 || allZero(cs) {
			cs[crdt.ReplicaID{Node: "a", Incarnation: 1}] = counts{p: 1}
		}
		recs = append(recs, recordOf(t, key, cs))
	}
	return recs
}

func allZero(cs map[crdt.ReplicaID]counts) bool {
	for _, c := range cs {
		if c.p != 0 || c.n != 0 {
			return false
		}
	}
	return true
}

// joinOf is the reference: the pointwise max of the records, by crdt's own PNCounter.Merge.
func joinOf(t tb, key string, recs [][]byte) crdt.PNCounter {
	var c crdt.PNCounter
	for _, r := range recs {
		c.Merge(counterOf(t, key, r))
	}
	return c
}

func mergeAll(t tb, ops [][]byte) []byte {
	m, _ := newJoinMerger(nil, ops[0])
	for _, op := range ops[1:] {
		if err := m.MergeNewer(op); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := m.Finish(true)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestJoinLaws checks that the merge operator is the CRDT join: commutative, associative,
// idempotent, and equal to the pointwise max.
func TestJoinLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		recs := genRecords(t, "k")
		want := joinOf(t, "k", recs)
		if got := counterOf(t, "k", mergeAll(t, recs)); !got.Equal(want) {
			t.Fatalf("join of %d records = %v, want %v", len(recs), got, want)
		}
		perm := rapid.Permutation(recs).Draw(t, "order")
		if got := counterOf(t, "k", mergeAll(t, perm)); !got.Equal(want) {
			t.Fatalf("join in another order = %v, want %v", got, want)
		}
		// Associative: join the halves first.
		mid := rapid.IntRange(0, len(perm)).Draw(t, "split")
		var parts [][]byte
		if mid > 0 {
			parts = append(parts, mergeAll(t, perm[:mid]))
		}
		if mid < len(perm) {
			parts = append(parts, mergeAll(t, perm[mid:]))
		}
		if got := counterOf(t, "k", mergeAll(t, parts)); !got.Equal(want) {
			t.Fatalf("join of joined halves = %v, want %v", got, want)
		}
		// Idempotent: every record again.
		if got := counterOf(t, "k", mergeAll(t, append(append([][]byte{}, recs...), perm...))); !got.Equal(want) {
			t.Fatalf("join with duplicates = %v, want %v", got, want)
		}
	})
}

// TestMergeCounterConverges writes random records of several keys in random order, in
// random batches, flushing and compacting at random, and checks that what is read back,
// before and after a reopen, is the join of each key's records.
func TestMergeCounterConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		keys := []string{"k0", "k1", "k2"}
		type write struct {
			key string
			rec []byte
		}
		var writes []write
		recordsOf := func(ws []write, key string) [][]byte {
			var out [][]byte
			for _, w := range ws {
				if w.key == key {
					out = append(out, w.rec)
				}
			}
			return out
		}
		for _, k := range keys[:rapid.IntRange(1, len(keys)).Draw(t, "keys")] {
			for _, r := range genRecords(t, k) {
				writes = append(writes, write{k, r})
			}
		}
		writes = rapid.Permutation(writes).Draw(t, "order")
		fs := vfs.NewMem()
		db := openMem(t, fs)
		defer func() { _ = db.Close() }() // the db of the moment
		b := db.NewBatch()
		for i, w := range writes {
			if err := b.MergeCounter(w.key, w.rec); err != nil {
				t.Fatal(err)
			}
			if rapid.IntRange(0, 2).Draw(t, "commit") == 0 || i == len(writes)-1 {
				if err := b.Commit(rapid.Bool().Draw(t, "sync")); err != nil {
					t.Fatal(err)
				}
				b = db.NewBatch()
				switch rapid.IntRange(0, 5).Draw(t, "lsm") {
				case 0:
					if err := db.pdb.Flush(); err != nil {
						t.Fatal(err)
					}
				case 1:
					if err := db.pdb.Compact(context.Background(), []byte{prefixCounter}, keyspaceEnd(prefixCounter), false); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		b.Close()
		check := func(db *DB, when string) {
			want := map[string]crdt.PNCounter{}
			for _, w := range writes {
				c := want[w.key]
				c.Merge(counterOf(t, w.key, w.rec))
				want[w.key] = c
			}
			got := map[string]crdt.PNCounter{}
			if err := db.ScanCounters(func(key string, rec []byte) error {
				got[key] = counterOf(t, key, rec)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: read back %d keys, want %d", when, len(got), len(want))
			}
			for k, w := range want {
				if !got[k].Equal(w) {
					t.Fatalf("%s: key %q = %v, want the join %v", when, k, got[k], w)
				}
			}
		}
		check(db, "before reopen")
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openMem(t, fs)
		check(db, "after reopen")
		// LoadCounters rebuilds the same.
		s, _ := crdt.New(crdt.DefaultConfig())
		if _, err := db.LoadCounters(s); err != nil {
			t.Fatal(err)
		}
		for _, w := range writes {
			c, err := s.Counter(w.key)
			if err != nil {
				t.Fatal(err)
			}
			want := joinOf(t, w.key, recordsOf(writes, w.key))
			if !c.Equal(want) {
				t.Fatalf("LoadCounters: key %q = %v, want %v", w.key, c, want)
			}
		}
	})
}

// TestConcurrentWritersOneStore is the race the merge operator exists for: writers share one
// crdt.Store, each applies, encodes and commits, and commits land in any order. What is on
// disk must equal the store in memory.
func TestConcurrentWritersOneStore(t *testing.T) {
	const writers, perWriter = 8, 200
	s, err := crdt.New(crdt.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	self := rid(t, "self", 1)
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("k%d", (w+i)%3) // three hot keys
				if _, err := s.Apply(key, self, int64(i%7+1)); err != nil {
					errs <- err
					return
				}
				b := db.NewBatch()
				if err := b.MergeCounterFrom(s, key); err != nil {
					errs <- err
					return
				}
				if err := b.Commit(i%4 == 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	if err := db.ScanCounters(func(key string, rec []byte) error {
		n++
		want, err := s.Counter(key)
		if err != nil {
			return err
		}
		if got := counterOf(t, key, rec); !got.Equal(want) {
			t.Errorf("key %q on disk = %v, in memory %v", key, got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("scanned %d keys, want 3", n)
	}
}

func TestMergeCounterRejects(t *testing.T) {
	a := rid(t, "a", 1)
	good := recordOf(t, "k", map[crdt.ReplicaID]counts{a: {1, 0}})
	s, _ := crdt.New(crdt.Config{Shards: 1})
	for _, k := range []string{"k", "k2"} {
		if _, err := s.Apply(k, a, 1); err != nil {
			t.Fatal(err)
		}
	}
	twoKeys, err := s.Snapshot().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := crdt.State{}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	long := string(make([]byte, MaxCounterKeyLen+1))
	tests := []struct {
		name string
		key  string
		rec  []byte
		want error
	}{
		{"empty key", "", good, ErrBadKey},
		{"key too long", long, good, ErrBadKey},
		{"garbage record", "k", []byte{1, 2, 3}, ErrBadValue},
		{"nil record", "k", nil, ErrBadValue},
		{"record of another key", "other", good, ErrBadValue},
		{"record of two keys", "k", twoKeys, ErrBadValue},
		{"record of no key", "k", empty, ErrBadValue},
	}
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := db.NewBatch()
			defer b.Close()
			if err := b.MergeCounter(tt.key, tt.rec); !errors.Is(err, tt.want) {
				t.Fatalf("MergeCounter: got %v, want %v", err, tt.want)
			}
			if b.Len() != 0 {
				t.Fatalf("batch holds %d writes after a refused one", b.Len())
			}
		})
	}
	from := []struct {
		name string
		key  string
		want error
	}{
		{"empty key", "", ErrBadKey},
		{"key too long", long, ErrBadKey},
		{"key the store lacks", "missing", crdt.ErrNotFound},
	}
	for _, tt := range from {
		t.Run("from store/"+tt.name, func(t *testing.T) {
			b := db.NewBatch()
			defer b.Close()
			if err := b.MergeCounterFrom(s, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("MergeCounterFrom: got %v, want %v", err, tt.want)
			}
			if b.Len() != 0 {
				t.Fatalf("batch holds %d writes after a refused one", b.Len())
			}
		})
	}
}

// TestOlderRecordCommittedLast is the interleaving crdt/doc.go warns about, step by step:
// writer A encodes, writer B applies, encodes and commits, then A commits its older record.
func TestOlderRecordCommittedLast(t *testing.T) {
	s, _ := crdt.New(crdt.DefaultConfig())
	self := rid(t, "self", 1)
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	commit := func(rec []byte) {
		b := db.NewBatch()
		if err := b.MergeCounter("k", rec); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply("k", self, 1); err != nil {
		t.Fatal(err)
	}
	recA, _ := s.AppendKeyRecord(nil, "k")
	if _, err := s.Apply("k", self, 10); err != nil {
		t.Fatal(err)
	}
	recB, _ := s.AppendKeyRecord(nil, "k")
	commit(recB)
	commit(recA)
	if err := db.ScanCounters(func(key string, rec []byte) error {
		if v, err := counterOf(t, key, rec).Value(); err != nil || v != 11 {
			t.Fatalf("value on disk = %d, %v; want 11", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCounters(t *testing.T) {
	src, _ := crdt.New(crdt.DefaultConfig())
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	const n = 2*loadChunk + 17 // more than one chunk, and a partial one
	b := db.NewBatch()
	for i := range n {
		key := fmt.Sprintf("k%05d", i)
		for j := range 3 {
			if _, err := src.Apply(key, rid(t, fmt.Sprintf("n%d", j), 1), int64(i+j+1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.MergeCounterFrom(src, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s, _ := crdt.New(crdt.DefaultConfig())
	got, err := db.LoadCounters(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != n || s.Len() != n {
		t.Fatalf("LoadCounters read %d records into %d keys, want %d", got, s.Len(), n)
	}
	for i := range n {
		key := fmt.Sprintf("k%05d", i)
		want, _ := src.Counter(key)
		if c, err := s.Counter(key); err != nil || !c.Equal(want) {
			t.Fatalf("key %s loaded as %v, %v; want %v", key, c, err, want)
		}
	}
}

// TestDamagedRecordOnDisk puts records past MergeCounter's check, as damage would: reads
// must return ErrCorrupt, never panic.
func TestDamagedRecordOnDisk(t *testing.T) {
	good := testRecord(t, "k", "a", 1, 2, 0)
	tests := []struct {
		name  string
		write func(db *DB) error
	}{
		{"garbage merged with a good record", func(db *DB) error {
			if err := db.pdb.Merge([]byte("Ck"), good, nil); err != nil {
				return err
			}
			return db.pdb.Merge([]byte("Ck"), []byte("garbage"), nil)
		}},
		{"garbage alone", func(db *DB) error { return db.pdb.Merge([]byte("Ck"), []byte("garbage"), nil) }},
		{"record of another key", func(db *DB) error {
			if err := db.pdb.Merge([]byte("Ck"), good, nil); err != nil {
				return err
			}
			return db.pdb.Merge([]byte("Ck"), testRecord(t, "other", "a", 1, 3, 0), nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openMem(t, vfs.NewMem())
			defer db.Close()
			if err := tt.write(db); err != nil {
				t.Fatal(err)
			}
			s, _ := crdt.New(crdt.DefaultConfig())
			if _, err := db.LoadCounters(s); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("LoadCounters: got %v, want ErrCorrupt", err)
			} else if !strings.Contains(err.Error(), testDir) {
				t.Fatalf("error %q does not name the directory", err)
			}
		})
	}
}

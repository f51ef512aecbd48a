package crdt

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		shards  int
		wantErr bool
	}{
		{name: "default", shards: DefaultConfig().Shards},
		{name: "one shard", shards: 1},
		{name: "max", shards: 4096},
		{name: "zero", shards: 0, wantErr: true},
		{name: "not a power of two", shards: 12, wantErr: true},
		{name: "too many", shards: 8192, wantErr: true},
		{name: "negative", shards: -4, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Shards: tt.shards}
			err := cfg.Validate()
			if (err != nil) != tt.wantErr || err != nil && !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if _, err := New(cfg); (err != nil) != tt.wantErr {
				t.Fatalf("New() error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestStoreApply(t *testing.T) {
	type write struct {
		key    string
		r      ReplicaID
		amount int64
	}
	ownCountsAtMax := []write{{"k", ra, math.MaxInt64}, {"k", ra, math.MinInt64}, {"k", ra, math.MaxInt64}, {"k", ra, -math.MaxInt64}, {"k", ra, 1}}
	tests := []struct {
		name    string
		before  []write
		w       write
		want    int64
		wantErr error
	}{
		{name: "new key", w: write{"k", ra, 5}, want: 5},
		{name: "subtract", before: []write{{"k", ra, 5}}, w: write{"k", ra, -8}, want: -3},
		{name: "second replica", before: []write{{"k", ra, 5}}, w: write{"k", rb, 2}, want: 7},
		{name: "max key length", w: write{strings.Repeat("x", MaxKeyLen), ra, 1}, want: 1},
		{name: "binary key", w: write{"\x00\xff", ra, 1}, want: 1},
		{name: "empty key", w: write{"", ra, 1}, wantErr: ErrBadKey},
		{name: "key too long", w: write{strings.Repeat("x", MaxKeyLen+1), ra, 1}, wantErr: ErrBadKey},
		{name: "zero amount", w: write{"k", ra, 0}, wantErr: ErrBadAmount},
		{name: "zero replica", w: write{"k", ReplicaID{}, 1}, wantErr: ErrBadReplica},
		{name: "node name too long", w: write{"k", ReplicaID{Node: strings.Repeat("n", MaxNodeLen+1)}, 1}, wantErr: ErrBadReplica},
		{name: "min int64", w: write{"k", ra, math.MinInt64}, want: math.MinInt64},
		{name: "value past max", before: []write{{"k", rb, math.MaxInt64}}, w: write{"k", ra, 1}, wantErr: ErrOverflow},
		{name: "value past min", before: []write{{"k", rb, math.MinInt64}}, w: write{"k", ra, -1}, wantErr: ErrOverflow},
		// P = 2^64-1 and N = 2^64-1 with value 0: the next add in either direction would
		// keep the value in range but pass the replica's own uint64 count.
		{name: "own P past uint64", before: ownCountsAtMax, w: write{"k", ra, 1}, wantErr: ErrOverflow},
		{name: "own N past uint64", before: ownCountsAtMax, w: write{"k", ra, -1}, wantErr: ErrOverflow},
		{name: "other replica still writes", before: ownCountsAtMax, w: write{"k", rb, 1}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustStore(t)
			for _, w := range tt.before {
				mustApply(t, s, w.key, w.r, w.amount)
			}
			before := contents(s.Snapshot())
			got, err := s.Apply(tt.w.key, tt.w.r, tt.w.amount)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if d := sameContents(contents(s.Snapshot()), before); d != "" {
					t.Fatalf("refused Apply changed the store: %s", d)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("Apply = %d, want %d", got, tt.want)
			}
			if v, err := s.Value(tt.w.key); err != nil || v != tt.want {
				t.Fatalf("Value = %d, %v, want %d", v, err, tt.want)
			}
		})
	}
}

func TestStoreMergedValueOverflow(t *testing.T) {
	a, b := mustStore(t), mustStore(t)
	mustApply(t, a, "k", ra, math.MaxInt64)
	mustApply(t, b, "k", rb, 2)
	mustMerge(t, a, b.Snapshot())
	if v, err := a.Value("k"); !errors.Is(err, ErrValueOverflow) || v != 0 {
		t.Fatalf("Value = %d, %v, want 0, ErrValueOverflow", v, err)
	}
	// The counts are exact and kept.
	c, err := a.Counter("k")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Counts(ra); p != math.MaxInt64 {
		t.Fatalf("P of %s = %d, want %d", ra, p, int64(math.MaxInt64))
	}
	// An add that stays out of range is refused; one that lands in range is accepted.
	if _, err := a.Apply("k", ra, -1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Apply(-1) = %v, want ErrOverflow", err)
	}
	if v, err := a.Apply("k", ra, -2); err != nil || v != math.MaxInt64 {
		t.Fatalf("Apply(-2) = %d, %v, want %d", v, err, int64(math.MaxInt64))
	}
}

func TestStoreReads(t *testing.T) {
	s := mustStore(t)
	mustApply(t, s, "a", ra, 3)
	mustApply(t, s, "a", rb, -1)
	tests := []struct {
		name    string
		key     string
		want    int64
		wantErr error
	}{
		{name: "present", key: "a", want: 2},
		{name: "absent", key: "b", wantErr: ErrNotFound},
		{name: "empty key", key: "", wantErr: ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.Value(tt.key)
			if !errors.Is(err, tt.wantErr) || v != tt.want {
				t.Fatalf("Value = %d, %v, want %d, %v", v, err, tt.want, tt.wantErr)
			}
			c, err := s.Counter(tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Counter error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if v, _ := c.Value(); v != tt.want {
					t.Fatalf("Counter value = %d, want %d", v, tt.want)
				}
			}
		})
	}
	c, _ := s.Counter("a")
	if p, n := c.Counts(rb); p != 0 || n != 1 {
		t.Fatalf("Counts(rb) = %d, %d, want 0, 1", p, n)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestStoreKeys(t *testing.T) {
	s := mustStore(t)
	for _, k := range []string{"b/2", "a/1", "b/1", "a/3", "c", "a/2", "b/3"} {
		mustApply(t, s, k, ra, 1)
	}
	tests := []struct {
		name     string
		prefix   string
		after    string
		limit    int
		want     []string
		wantMore bool
	}{
		{name: "all", want: []string{"a/1", "a/2", "a/3", "b/1", "b/2", "b/3", "c"}},
		{name: "prefix", prefix: "b/", want: []string{"b/1", "b/2", "b/3"}},
		{name: "first page", limit: 2, want: []string{"a/1", "a/2"}, wantMore: true},
		{name: "next page", after: "a/2", limit: 2, want: []string{"a/3", "b/1"}, wantMore: true},
		{name: "last page", after: "b/2", limit: 2, want: []string{"b/3", "c"}},
		{name: "prefix page", prefix: "a/", after: "a/1", limit: 1, want: []string{"a/2"}, wantMore: true},
		{name: "exact limit", prefix: "b/", limit: 3, want: []string{"b/1", "b/2", "b/3"}},
		{name: "none", prefix: "z", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more := s.Keys(tt.prefix, tt.after, tt.limit)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || more != tt.wantMore {
				t.Fatalf("Keys = %q, %v, want %q, %v", got, more, tt.want, tt.wantMore)
			}
		})
	}
}

// TestStoreConcurrentApply checks under the race detector that concurrent writes, merges,
// delta reads and digests are safe and that no write is lost.
func TestStoreConcurrentApply(t *testing.T) {
	s := mustStore(t)
	other := mustStore(t)
	const writers, perWriter = 4, 2000
	keys := benchKeys(50)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := ReplicaID{Node: "w", Incarnation: uint64(w)}
			for i := range perWriter {
				if _, err := s.Apply(keys[i%len(keys)], r, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var c Cursor
		for range 50 {
			var st State
			st, c, _ = s.DeltasSince(c, 10)
			if _, err := other.Merge(st); err != nil {
				t.Error(err)
				return
			}
			s.CompareDigest(other.Digest())
		}
	}()
	wg.Wait()
	total := int64(0)
	for _, k := range keys {
		v, err := s.Value(k)
		if err != nil {
			t.Fatal(err)
		}
		total += v
	}
	if total != writers*perWriter {
		t.Fatalf("sum of values = %d, want %d", total, writers*perWriter)
	}
}

func TestShardSize(t *testing.T) {
	// 256 bytes: a size class of its own, so the shards array is cache-line aligned and each
	// shard's read-mostly tables pointer has a line to itself (see shard).
	if got := unsafe.Sizeof(shard{}); got != 256 {
		t.Fatalf("shard is %d bytes, want 256", got)
	}
	if off := unsafe.Offsetof(shard{}.mu); off != 64 {
		t.Fatalf("shard.mu is at byte %d, want 64: the first cache line is for the tables pointer", off)
	}
	// 128 bytes, so that each entry (pages are allocated aligned) fills a 128-byte pair of
	// cache lines, and a page is exactly four runtime pages.
	if got := unsafe.Sizeof(entry{}); got != 128 {
		t.Fatalf("entry is %d bytes, want 128", got)
	}
	if got := unsafe.Sizeof(page{}); got%8192 != 0 {
		t.Fatalf("page is %d bytes, want a multiple of 8192", got)
	}
	// The first cache line holds what an Apply of the hot replica reads and writes.
	if end := unsafe.Offsetof(entry{}.key) + unsafe.Sizeof(entry{}.key); end > 64 {
		t.Fatalf("entry.key ends at byte %d, want the lock, flags, hot counts and key in the first 64", end)
	}
}

// TestStoreConcurrentEverything runs writers on shared and new keys, under several replicas,
// against readers, merges, delta readers, digests and snapshots, under the race detector, and
// checks that no acknowledged write is lost.
func TestStoreConcurrentEverything(t *testing.T) {
	s, _ := New(Config{Shards: 4})
	source := mustStore(t)
	mustApply(t, source, "merged", rc, 7)
	const writers, perWriter = 4, 3000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				r := ReplicaID{Node: "w", Incarnation: uint64(w*10 + i%3)} // new replicas in old keys
				key := "shared/" + strconv.Itoa(i%40)
				if i%5 == 0 {
					key = "own/" + strconv.Itoa(w) + "/" + strconv.Itoa(i) // new keys
				}
				if _, err := s.Apply(key, r, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var c Cursor
			other := mustStore(t)
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Value("shared/1")
				s.Counter("shared/2")
				var st State
				st, c, _ = s.DeltasSince(c, 50)
				if _, err := other.Merge(st); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Merge(source.Snapshot()); err != nil {
					t.Error(err)
					return
				}
				s.CompareDigest(other.Digest())
				s.Snapshot()
				s.Keys("own/", "", 10)
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	var total int64
	for _, k := range s.Snapshot().Keys() {
		if k == "merged" {
			continue
		}
		v, err := s.Value(k)
		if err != nil {
			t.Fatal(err)
		}
		total += v
	}
	if total != writers*perWriter {
		t.Fatalf("sum of values = %d, want %d", total, writers*perWriter)
	}
	// The lazily kept digest agrees with a store rebuilt from scratch.
	fresh := mustStore(t)
	mustMerge(t, fresh, s.Snapshot())
	if _, diff := compareStores(s, fresh); len(diff) != 0 {
		t.Fatalf("digest of the store and of its copy differ on %q", diff)
	}
}

// TestStoreRestoreDuringWrites: Restore may run while writers write. Writes racing with it
// may land before or after it, but nothing panics or races, and the store is consistent after.
func TestStoreRestoreDuringWrites(t *testing.T) {
	s, _ := New(Config{Shards: 2})
	fillMixed(t, s, 100)
	snap := s.Snapshot()
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := ReplicaID{Node: "writer", Incarnation: uint64(w)}
			for i := range 2000 {
				if _, err := s.Apply("key/"+strconv.Itoa(i%150), r, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	restores := 0
	for running := true; running || restores < 20; restores++ {
		select {
		case <-done:
			running = false
		default:
		}
		if err := s.Restore(snap); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d restores ran during the writes", restores)
	fresh := mustStore(t)
	mustMerge(t, fresh, s.Snapshot())
	assertSameStore(t, fresh, s)
	if _, diff := compareStores(s, fresh); len(diff) != 0 {
		t.Fatalf("after restores under writes the digest differs from a copy's on %q", diff)
	}
	// Writes after the last Restore all count.
	before, _ := s.Value("key/1")
	mustApply(t, s, "key/1", ra, 5)
	if after, _ := s.Value("key/1"); after != before+5 {
		t.Fatalf("value %d after adding 5 to %d", after, before)
	}
}

func TestMergeReportsEachChangedKeyOnce(t *testing.T) {
	record := func(key string, r ReplicaID, amount int64) []byte {
		s := mustStore(t)
		mustApply(t, s, key, r, amount)
		b, err := s.AppendKeyRecord(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		records [][]byte
		want    []string
	}{
		{name: "new key twice", records: [][]byte{record("a", ra, 1), record("a", rb, 1)}, want: []string{"a"}},
		{name: "existing key twice", records: [][]byte{record("old", rb, 1), record("old", rc, 1)}, want: []string{"old"}},
		{name: "second copy changes nothing", records: [][]byte{record("old", rb, 5), record("old", rb, 2)}, want: []string{"old"}},
		{name: "only second copy changes", records: [][]byte{record("old", ra, 1), record("old", rb, 2)}, want: []string{"old"}},
		{name: "nothing changes", records: [][]byte{record("old", ra, 1), record("old", ra, 1)}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustStore(t)
			mustApply(t, s, "old", ra, 1)
			var st State
			for _, r := range tt.records {
				if err := st.AppendEncoded(r); err != nil {
					t.Fatal(err)
				}
			}
			got := mustMerge(t, s, st)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("Merge reported %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMergeCountWraps(t *testing.T) {
	s, _ := New(Config{Shards: 1})
	other := mustStore(t)
	mustApply(t, other, "k", rb, 1)
	if got := mustMerge(t, s, other.Snapshot()); len(got) != 1 { // stamps k with merges = 1
		t.Fatalf("first Merge reported %q, want [k]", got)
	}
	s.shards[0].mu.Lock()
	s.shards[0].merges = 1<<(32-mergeShift) - 1 // the next Merge wraps back to 1
	s.shards[0].mu.Unlock()
	mustApply(t, other, "k", rb, 1)
	if got := mustMerge(t, s, other.Snapshot()); len(got) != 1 {
		t.Fatalf("Merge at the wrap reported %q, want [k]: a stale stamp hid the change", got)
	}
}

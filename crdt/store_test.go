package crdt

import (
	"errors"
	"math"
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
	// shard's hot fields start a line (see shard).
	if got := unsafe.Sizeof(shard{}); got != 256 {
		t.Fatalf("shard is %d bytes, want 256", got)
	}
	if off := unsafe.Offsetof(shard{}.pages); off+24 > 64 {
		t.Fatalf("shard.pages ends at byte %d, want within the first cache line", off+24)
	}
}

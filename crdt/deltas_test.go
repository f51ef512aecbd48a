package crdt

import (
	"slices"
	"strconv"
	"testing"
)

// drain reads every delta after c in pages of size page and returns the keys in order.
func drain(t *testing.T, s *Store, c Cursor, page int) ([]string, Cursor) {
	t.Helper()
	var keys []string
	for range 10_000 {
		st, next, more := s.DeltasSince(c, page)
		if page > 0 && st.Len() > page {
			t.Fatalf("DeltasSince returned %d keys, limit %d", st.Len(), page)
		}
		keys = append(keys, st.Keys()...)
		c = next
		if !more {
			return keys, c
		}
	}
	t.Fatal("DeltasSince never finished")
	return nil, c
}

func TestDeltasSince(t *testing.T) {
	tests := []struct {
		name   string
		shards int
		page   int
	}{
		{name: "one shard, no limit", shards: 1, page: 0},
		{name: "one shard, pages of 3", shards: 1, page: 3},
		{name: "many shards, pages of 1", shards: 8, page: 1},
		{name: "many shards, pages of 7", shards: 8, page: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := New(Config{Shards: tt.shards})
			var c Cursor
			for k := range 20 {
				mustApply(t, s, "k"+strconv.Itoa(k), ra, 1)
			}
			keys, c := drain(t, s, c, tt.page)
			if len(keys) != 20 {
				t.Fatalf("first drain: %d keys, want 20", len(keys))
			}
			// Nothing new: nothing returned.
			if keys, _ := drain(t, s, c, tt.page); len(keys) != 0 {
				t.Fatalf("no changes, yet DeltasSince returned %q", keys)
			}
			// Write k3 three times and k5 once: each returned once, with its current state.
			for range 3 {
				mustApply(t, s, "k3", rb, 2)
			}
			mustApply(t, s, "k5", ra, 1)
			before := c
			keys, c = drain(t, s, c, tt.page)
			slices.Sort(keys)
			if !slices.Equal(keys, []string{"k3", "k5"}) {
				t.Fatalf("after writes to k3 and k5: %q", keys)
			}
			st, _, _ := s.DeltasSince(before, 0)
			if got := contents(st)["k3"]; func() int64 { v, _ := got.Value(); return v }() != 7 {
				t.Fatalf("delta for k3 does not hold its current state")
			}
			// A merge that changes a key makes it a delta too; one that changes nothing does not.
			other := mustStore(t)
			mustApply(t, other, "k9", rc, 4)
			mustApply(t, other, "new", rc, 1)
			mustMerge(t, s, other.Snapshot())
			keys, c = drain(t, s, c, tt.page)
			slices.Sort(keys)
			if !slices.Equal(keys, []string{"k9", "new"}) {
				t.Fatalf("after merge: %q", keys)
			}
			mustMerge(t, s, other.Snapshot())
			if keys, _ := drain(t, s, c, tt.page); len(keys) != 0 {
				t.Fatalf("idempotent merge produced deltas %q", keys)
			}
		})
	}
}

func TestDeltasSinceOldestFirst(t *testing.T) {
	s, _ := New(Config{Shards: 1})
	for _, k := range []string{"a", "b", "c", "d"} {
		mustApply(t, s, k, ra, 1)
	}
	// Order is by when a DeltasSince (or digest) first saw a key changed: a, b, c, d were
	// seen here; b and a change again after.
	s.DeltasSince(Cursor{}, 0)
	mustApply(t, s, "b", ra, 1)
	mustApply(t, s, "a", ra, 1)
	keys, _ := drain(t, s, Cursor{}, 1)
	if !slices.Equal(keys, []string{"c", "d", "b", "a"}) {
		t.Fatalf("keys in order %q, want oldest change first: c d b a", keys)
	}
}

func TestCursorForeignOrStale(t *testing.T) {
	s, _ := New(Config{Shards: 4, Instance: 1})
	for k := range 10 {
		mustApply(t, s, "k"+strconv.Itoa(k), ra, 1)
	}
	_, c := drain(t, s, Cursor{}, 0)
	tests := []struct {
		name  string
		store func() *Store
	}{
		{name: "another instance", store: func() *Store {
			o, _ := New(Config{Shards: 4, Instance: 2})
			mustMerge(t, o, s.Snapshot())
			return o
		}},
		{name: "another shard count", store: func() *Store {
			o, _ := New(Config{Shards: 8, Instance: 1})
			mustMerge(t, o, s.Snapshot())
			return o
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.store()
			keys, _ := drain(t, o, c, 0)
			if len(keys) != o.Len() {
				t.Fatalf("foreign cursor gave %d keys, want all %d", len(keys), o.Len())
			}
		})
	}
	t.Run("cursor ahead of the store", func(t *testing.T) {
		// The same Instance after a restart cannot be told apart, except when the cursor
		// names versions the store has not reached: those read as the zero cursor.
		one, _ := New(Config{Shards: 1, Instance: 1})
		for k := range 10 {
			mustApply(t, one, "k"+strconv.Itoa(k), ra, 1)
		}
		_, ahead := drain(t, one, Cursor{}, 0)
		restarted, _ := New(Config{Shards: 1, Instance: 1})
		mustApply(t, restarted, "k1", ra, 1)
		if keys, _ := drain(t, restarted, ahead, 0); !slices.Equal(keys, []string{"k1"}) {
			t.Fatalf("cursor ahead of the store gave %q, want [k1]", keys)
		}
	})
	t.Run("restore", func(t *testing.T) {
		snap := s.Snapshot()
		if err := s.Restore(snap); err != nil {
			t.Fatal(err)
		}
		keys, _ := drain(t, s, c, 3)
		if len(keys) != 10 {
			t.Fatalf("after Restore, old cursor gave %d keys, want 10", len(keys))
		}
	})
}

func TestStoreCursorStartsNow(t *testing.T) {
	s := mustStore(t)
	mustApply(t, s, "old", ra, 1)
	c := s.Cursor()
	mustApply(t, s, "new", ra, 1)
	keys, _ := drain(t, s, c, 0)
	if !slices.Equal(keys, []string{"new"}) {
		t.Fatalf("DeltasSince(Cursor()) = %q, want [new]", keys)
	}
}

func TestCursorCodecRoundTrip(t *testing.T) {
	s, _ := New(Config{Shards: 16, Instance: 99})
	for k := range 100 {
		mustApply(t, s, "k"+strconv.Itoa(k), ra, 1)
	}
	_, c, _ := s.DeltasSince(Cursor{}, 40)
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var c2 Cursor
	if err := c2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if c2.instance != c.instance || !slices.Equal(c2.versions, c.versions) {
		t.Fatalf("cursor round trip: got %+v, want %+v", c2, c)
	}
	k1, _ := drain(t, s, c, 0)
	k2, _ := drain(t, s, c2, 0)
	if !slices.Equal(k1, k2) || len(k1) != 60 {
		t.Fatalf("decoded cursor gives %d keys, original %d, want 60", len(k2), len(k1))
	}
}

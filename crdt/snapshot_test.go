package crdt

import (
	"errors"
	"strconv"
	"testing"
)

func fillMixed(t tb, s *Store, keys int) {
	t.Helper()
	for i := range keys {
		k := "key/" + strconv.Itoa(i)
		for j, r := range []ReplicaID{ra, rb, rc} {
			if (i+j)%3 != 0 {
				mustApply(t, s, k, r, int64(i*7+j)-20)
			}
		}
		if i%5 == 0 {
			mustApply(t, s, k, ra, 1)
		}
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		keys int
		cfg  Config
	}{
		{name: "empty", keys: 0, cfg: DefaultConfig()},
		{name: "small", keys: 10, cfg: DefaultConfig()},
		{name: "one shard", keys: 500, cfg: Config{Shards: 1}},
		{name: "many shards", keys: 2000, cfg: Config{Shards: 256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustStore(t)
			fillMixed(t, s, tt.keys)
			b, err := s.Snapshot().MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var st State
			if err := st.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			restored, _ := New(tt.cfg)
			mustApply(t, restored, "stale", ra, 1) // Restore replaces this
			if err := restored.Restore(st); err != nil {
				t.Fatal(err)
			}
			assertSameStore(t, restored, s)
			if restored.Digest().hashes == nil || restored.Len() != s.Len() {
				t.Fatalf("restored Len = %d, want %d", restored.Len(), s.Len())
			}
			if _, diff := compareStores(s, restored); len(diff) != 0 {
				t.Fatalf("digests of a store and its restored copy differ on %q", diff)
			}
			// The restored store keeps working.
			mustApply(t, restored, "key/1", ra, 1)
		})
	}
}

func TestKeyRecordsRebuildStore(t *testing.T) {
	s := mustStore(t)
	fillMixed(t, s, 300)
	stale, err := s.AppendKeyRecord(nil, "key/1")
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, "key/1", ra, 5)
	var st State
	keys, _ := s.Keys("", "", 0)
	for _, k := range keys {
		rec, err := s.AppendKeyRecord(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AppendEncoded(rec); err != nil {
			t.Fatal(err)
		}
	}
	// A stale record of a key appended as well is harmless: merging keeps the larger counts.
	if err := st.AppendEncoded(stale); err != nil {
		t.Fatal(err)
	}
	restored := mustStore(t)
	if err := restored.Restore(st); err != nil {
		t.Fatal(err)
	}
	assertSameStore(t, restored, s)

	if _, err := s.AppendKeyRecord(nil, "absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AppendKeyRecord(absent) = %v, want ErrNotFound", err)
	}
	if err := st.AppendEncoded([]byte{formatVersion, 0x91}); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("AppendEncoded(bad) = %v, want ErrBadEncoding", err)
	}
	if st.Len() != 301 {
		t.Fatalf("a failed AppendEncoded changed the state: Len %d, want 301", st.Len())
	}
}

func TestStatesSkipsUnknownAndInvalidKeys(t *testing.T) {
	s := mustStore(t)
	mustApply(t, s, "a", ra, 1)
	mustApply(t, s, "b", rb, 2)
	st := s.States([]string{"b", "zzz", "", "a"})
	if got := st.Keys(); len(got) != 2 || got[0] != "b" || got[1] != "a" {
		t.Fatalf("States keys = %q, want [b a]", got)
	}
	if len(st.replicas) != 2 {
		t.Fatalf("States carries %d replicas, want only the 2 used", len(st.replicas))
	}
}

func TestStateAppendEncodedAfterCopy(t *testing.T) {
	rec := func(key string, r ReplicaID) []byte {
		s := mustStore(t)
		mustApply(t, s, key, r, 1)
		b, err := s.AppendKeyRecord(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var st State
	if err := st.AppendEncoded(rec("a", ra)); err != nil {
		t.Fatal(err)
	}
	cp := st // a copy, appended to elsewhere: st must stay right
	if err := cp.AppendEncoded(rec("b", rb)); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendEncoded(rec("c", rc)); err != nil {
		t.Fatal(err)
	}
	got := contents(st)
	pa, _ := got["a"].Counts(ra)
	pc, _ := got["c"].Counts(rc)
	if len(got) != 2 || pa != 1 || pc != 1 {
		t.Fatalf("after appending to a copy, the original holds %v", got)
	}
}

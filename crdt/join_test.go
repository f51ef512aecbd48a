package crdt

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

// JoinRecords equals the PN-counter join of the records, and returns a
// record itself when it holds the join.
func TestJoinRecordsIsTheJoin(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		replicas := []ReplicaID{mustReplica(t, "a", 1), mustReplica(t, "b", 1), mustReplica(t, "b", 2), mustReplica(t, "c", 7)}
		n := rapid.IntRange(1, 6).Draw(t, "records")
		var records [][]byte
		var want PNCounter
		var counters []PNCounter
		for i := range n {
			s, err := New(Config{Shards: 1})
			if err != nil {
				t.Fatal(err)
			}
			writes := rapid.IntRange(1, 8).Draw(t, "writes")
			for w := range writes {
				r := replicas[rapid.IntRange(0, len(replicas)-1).Draw(t, "replica")]
				amount := rapid.Int64Range(-50, 50).Filter(func(v int64) bool { return v != 0 }).Draw(t, "amount")
				if _, err := s.Apply("k", r, amount); err != nil {
					t.Fatalf("record %d write %d: %v", i, w, err)
				}
			}
			rec, err := s.AppendKeyRecord(nil, "k")
			if err != nil {
				t.Fatal(err)
			}
			records = append(records, rec)
			c, err := s.Counter("k")
			if err != nil {
				t.Fatal(err)
			}
			counters = append(counters, c)
			want.Merge(c)
		}
		out, err := JoinRecords(records)
		if err != nil {
			t.Fatal(err)
		}
		var st State
		if err := st.UnmarshalBinary(out); err != nil {
			t.Fatal(err)
		}
		got := 0
		for k, c := range st.All() {
			got++
			if k != "k" || !c.Equal(want) {
				t.Fatalf("join is %q %v, want k %v", k, c, want)
			}
		}
		if got != 1 {
			t.Fatalf("join holds %d keys", got)
		}
		holder := false
		for _, c := range counters {
			holder = holder || c.Equal(want)
		}
		returned := false
		for _, r := range records {
			returned = returned || string(r) == string(out)
		}
		if holder && !returned {
			t.Fatalf("a record holds the join but a new record was encoded")
		}
	})
}

func mustReplica(t *rapid.T, node string, inc uint64) ReplicaID {
	r, err := NewReplicaID(node, inc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestJoinRecordsRefusesMixedKeys(t *testing.T) {
	s, _ := New(Config{Shards: 1})
	r, _ := NewReplicaID("a", 1)
	s.Apply("x", r, 1)
	s.Apply("y", r, 1)
	x, _ := s.AppendKeyRecord(nil, "x")
	y, _ := s.AppendKeyRecord(nil, "y")
	both, _ := s.States([]string{"x", "y"}).MarshalBinary()
	for name, recs := range map[string][][]byte{"two keys": {x, y}, "two in one": {x, both}, "none": nil, "garbage": {x, []byte{1, 2, 3}}} {
		if _, err := JoinRecords(recs); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}

// TestJoinRecordsFastPath: records of one growing store (one holds the join, as in a storage
// flush) take the fast path, and whatever the fast path answers, for any records, the State
// decoder answers the same: records of several stores, replicas past what the fast path
// reads, long names and keys, large counts, and records with a byte changed, cut or added.
func TestJoinRecordsFastPath(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nrep := rapid.IntRange(1, 20).Draw(t, "replicas")
		replicas := make([]ReplicaID, nrep)
		for i := range replicas {
			node := rapid.StringMatching(`[a-z]{1,40}`).Draw(t, "node")
			replicas[i] = mustReplica(t, node, rapid.Uint64Range(1, 1<<40).Draw(t, "incarnation"))
		}
		key := rapid.StringMatching(`[a-z/]{1,300}`).Draw(t, "key")
		stores := rapid.IntRange(1, 3).Draw(t, "stores")
		var records [][]byte
		for range stores {
			s, err := New(Config{Shards: 1})
			if err != nil {
				t.Fatal(err)
			}
			for range rapid.IntRange(1, 4).Draw(t, "snapshots") {
				for range rapid.IntRange(1, 6).Draw(t, "writes") {
					r := replicas[rapid.IntRange(0, nrep-1).Draw(t, "replica")]
					amount := rapid.OneOf(rapid.Int64Range(-3, 3), rapid.Int64Range(1, 1<<50)).
						Filter(func(v int64) bool { return v != 0 }).Draw(t, "amount")
					if _, err := s.Apply(key, r, amount); err != nil && !errors.Is(err, ErrOverflow) {
						t.Fatal(err)
					}
				}
				rec, err := s.AppendKeyRecord(nil, key)
				if err != nil {
					t.Fatal(err)
				}
				records = append(records, rec)
			}
		}
		if len(records) < 2 {
			return
		}
		if stores == 1 && nrep <= fastJoinRecordReplicas {
			if _, ok := joinRecordsFast(records); !ok {
				t.Fatalf("records of one growing store with %d replicas did not take the fast path", nrep)
			}
		}
		if rapid.Bool().Draw(t, "damage") {
			i := rapid.IntRange(0, len(records)-1).Draw(t, "damaged")
			rec := append([]byte(nil), records[i]...)
			switch rapid.IntRange(0, 2).Draw(t, "how") {
			case 0:
				rec[rapid.IntRange(0, len(rec)-1).Draw(t, "at")] ^= byte(rapid.IntRange(1, 255).Draw(t, "xor"))
			case 1:
				rec = rec[:rapid.IntRange(0, len(rec)-1).Draw(t, "cut")]
			case 2:
				rec = append(rec, byte(rapid.IntRange(0, 255).Draw(t, "extra")))
			}
			records[i] = rec
		}
		checkJoinPaths(t, records)
	})
}

// checkJoinPaths fails if the fast path answers records and the State decoder answers
// otherwise.
func checkJoinPaths(t interface{ Fatalf(string, ...any) }, records [][]byte) {
	fast, ok := joinRecordsFast(records)
	if !ok {
		return
	}
	slow, err := joinRecordsDecoded(records)
	if err != nil {
		t.Fatalf("the fast path joined records the decoder refuses: %v", err)
	}
	if string(fast) != string(slow) {
		t.Fatalf("the fast path returned %x, the decoder %x", fast, slow)
	}
}

// BenchmarkJoinRecords joins twelve records of one growing key with five replicas, as a
// storage flush does for a busy key.
func BenchmarkJoinRecords(b *testing.B) {
	s, _ := New(Config{Shards: 1})
	var records [][]byte
	for i := range 12 {
		for r := range 5 {
			id, _ := NewReplicaID("node-"+string(rune('a'+r)), 1)
			s.Apply("counters/some-key", id, int64(i+r+1))
		}
		rec, _ := s.AppendKeyRecord(nil, "counters/some-key")
		records = append(records, rec)
	}
	for _, path := range []struct {
		name string
		join func([][]byte) ([]byte, error)
	}{{"fast", JoinRecords}, {"decoded", joinRecordsDecoded}} {
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := path.join(records); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

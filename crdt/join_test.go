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

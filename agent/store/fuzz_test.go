package store

import (
	"bytes"
	"testing"
	"time"

	"github.com/ringleader/ringleader/crdt"
)

// Fuzz targets for every decoder of stored bytes. Seed corpora are in testdata/fuzz.

func FuzzDecodeIdempotencyValue(f *testing.F) {
	f.Add(appendIdempotencyValue(nil, testNow, []byte(`{"key":"k","value":3}`)))
	f.Add(appendIdempotencyValue(nil, time.Unix(0, 0), nil))
	f.Add([]byte{idempotencyVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		exp, value, err := decodeIdempotencyValue(b)
		if err != nil {
			return
		}
		if again := appendIdempotencyValue(nil, fromSortableNanos(exp), value); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode of %x gives %x", b, again)
		}
	})
}

func FuzzDecodeExpiryKey(f *testing.F) {
	f.Add(appendExpiryKey(nil, testNow, "req-1"))
	f.Add(appendExpiryKey(nil, time.Unix(0, -1), "x"))
	f.Add([]byte{prefixExpiry})
	f.Fuzz(func(t *testing.T, k []byte) {
		exp, key, err := decodeExpiryKey(k)
		if err != nil {
			return
		}
		if again := appendExpiryKey(nil, fromSortableNanos(exp), string(key)); !bytes.Equal(again, k) {
			t.Fatalf("decode then encode of %x gives %x", k, again)
		}
	})
}

// FuzzJoinRecords feeds the merge operator two arbitrary operands: it must return an error
// or a record, never panic, and for two good records of one key return their join.
func FuzzJoinRecords(f *testing.F) {
	a := crdt.ReplicaID{Node: "a", Incarnation: 1}
	b := crdt.ReplicaID{Node: "b", Incarnation: 1}
	f.Add(recordOf(f, "k", map[crdt.ReplicaID]counts{a: {3, 1}}), recordOf(f, "k", map[crdt.ReplicaID]counts{a: {1, 2}, b: {4, 0}}))
	f.Add(recordOf(f, "k", map[crdt.ReplicaID]counts{a: {3, 1}}), recordOf(f, "other", map[crdt.ReplicaID]counts{a: {1, 0}}))
	f.Add([]byte("garbage"), recordOf(f, "k", map[crdt.ReplicaID]counts{b: {1, 0}}))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		m, err := newJoinMerger([]byte("Ck"), x)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.MergeOlder(y); err != nil {
			t.Fatal(err)
		}
		out, _, err := m.Finish(true)
		if err != nil {
			return
		}
		var st crdt.State
		if err := st.AppendEncoded(out); err != nil {
			if bytes.Equal(x, y) {
				return // one operand, passed through unread
			}
			t.Fatalf("join of %x and %x does not decode: %v", x, y, err)
		}
		// When both decode, the join is their pointwise max.
		var want, got crdt.PNCounter
		for _, op := range [][]byte{x, y} {
			var s crdt.State
			if err := s.AppendEncoded(op); err != nil {
				return
			}
			for _, c := range s.All() {
				want.Merge(c)
			}
		}
		for _, c := range st.All() {
			got.Merge(c)
		}
		if !got.Equal(want) {
			t.Fatalf("join = %v, want %v", got, want)
		}
	})
}

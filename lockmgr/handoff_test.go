package lockmgr

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestExportImport(t *testing.T) {
	old := newTestTable(t, 4)
	old.SetEpoch("k", 3)
	a, _ := old.Acquire("k", "a", 5*time.Second, 0, t0)
	old.Acquire("k", "b", 0, 10*time.Second, t0)
	old.Acquire("k", "c", 0, 20*time.Second, t0)
	st, ok := old.Export("k", at(time.Second))
	if !ok || st.Held == nil || len(st.Waiters) != 2 {
		t.Fatalf("export %+v", st)
	}
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got KeyState
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normal(got), normal(st)) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, st)
	}
	old.Remove("k")
	if old.Len() != 0 {
		t.Fatal("Remove kept the key")
	}
	if _, ok := old.NextDeadline(); ok {
		t.Fatal("Remove kept timers")
	}

	nw := newTestTable(t, 5)
	if _, err := nw.Import(got, at(time.Second)); !errors.Is(err, ErrNoEpoch) {
		t.Fatalf("import without an epoch: %v", err)
	}
	nw.SetEpoch("k", 2)
	if _, err := nw.Import(got, at(time.Second)); !errors.Is(err, ErrBadEpoch) {
		t.Fatalf("import above the epoch: %v", err)
	}
	nw.SetEpoch("k", 4)
	tickets, err := nw.Import(got, at(time.Second))
	if err != nil || len(tickets) != 2 {
		t.Fatal(tickets, err)
	}
	if _, err := nw.Import(got, at(time.Second)); !errors.Is(err, ErrKeyBusy) {
		t.Fatalf("second import: %v", err)
	}
	ev, err := nw.Release(a.Lease, at(2*time.Second))
	if err != nil || len(ev) != 1 || ev[0].Ticket != tickets[0] || ev[0].Lease.Token <= a.Lease.Token {
		t.Fatalf("release after import: %+v %v", ev, err)
	}
}

// normal makes times comparable with DeepEqual (monotonic readings and locations differ).
func normal(st KeyState) KeyState {
	if st.Held != nil {
		h := *st.Held
		h.Lease.Expiry = time.Unix(0, h.Lease.Expiry.UnixNano())
		st.Held = &h
	}
	ws := append([]WaiterState(nil), st.Waiters...)
	for i := range ws {
		ws[i].Deadline = time.Unix(0, ws[i].Deadline.UnixNano())
	}
	st.Waiters = ws
	return st
}

func TestImportRefusesBadState(t *testing.T) {
	tests := []struct {
		name string
		st   KeyState
	}{
		{"no key", KeyState{Epoch: 1}},
		{"sequence without epoch", KeyState{Key: "k", Sequence: 1}},
		{"token above sequence", KeyState{Key: "k", Epoch: 1, Sequence: 1,
			Held: &HeldState{Lease: Lease{Key: "k", Token: 1<<SequenceBits + 2}, TTL: time.Second}}},
		{"ttl above max", KeyState{Key: "k", Epoch: 1, Sequence: 1,
			Held: &HeldState{Lease: Lease{Key: "k", Token: 1<<SequenceBits + 1}, TTL: time.Hour}}},
		{"waiter ttl zero", KeyState{Key: "k", Epoch: 1, Waiters: []WaiterState{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTestTable(t, 6)
			tab.SetEpoch("k", 1)
			if _, err := tab.Import(tt.st, t0); !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

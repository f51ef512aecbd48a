package lockmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// FuzzDecodeKeyState checks that bad bytes give an error and never a panic, that whatever
// decodes re-encodes to the same state, and that a fresh table imports it or refuses it with
// an error. The seed corpus (seedKeyStates: valid encodings, truncations, another version
// byte, huge declared lengths) is committed under testdata/fuzz/FuzzDecodeKeyState, so plain
// go test runs it too; rewrite it with
//
//	LOCKMGR_WRITE_FUZZ_CORPUS=1 go test ./lockmgr -run TestWriteFuzzCorpus
//
// Run it for 5 minutes with
//
//	go test ./lockmgr -run '^$' -fuzz '^FuzzDecodeKeyState$' -fuzztime 5m
func FuzzDecodeKeyState(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var st KeyState
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var st2 KeyState
		if err := st2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(st), normal(st2)) {
			t.Fatalf("re-decoded state differs:\n%+v\n%+v", st, st2)
		}
		tab := newTestTable(t, 9)
		tab.SetEpoch(st.Key, max(st.Epoch, 1))
		if _, err := tab.Import(st, t0); err != nil {
			return
		}
		tab.Tick(t0.Add(time.Hour))
	})
}

func seedKeyStates() [][]byte {
	var seeds [][]byte
	enc := func(st KeyState) []byte {
		b, err := st.MarshalBinary()
		if err != nil {
			panic(err)
		}
		return b
	}
	empty := enc(KeyState{Key: "k"})
	full := enc(KeyState{Key: "jobs/nightly", Epoch: 3, Sequence: 9,
		Held: &HeldState{Lease: Lease{Key: "jobs/nightly", Token: 3<<SequenceBits | 9, ID: LeaseID{1, 2, 3}, Expiry: t0.Add(5 * time.Second)},
			Holder: "worker-a", TTL: 10 * time.Second},
		Waiters: []WaiterState{{Ticket: 4, Holder: "b", TTL: time.Second, Deadline: t0.Add(time.Minute)},
			{Ticket: 5, Holder: "c", TTL: 2 * time.Second, Deadline: t0.Add(time.Second)}}})
	seeds = append(seeds, empty, full, nil, []byte{formatVersion}, []byte{2})
	for _, n := range []int{2, 5, len(full) / 2, len(full) - 1} {
		seeds = append(seeds, full[:n])
	}
	other := append([]byte{}, full...)
	other[0] = 0
	seeds = append(seeds, other)
	// An array header declaring 2^32-1 elements, a string declaring 2^32-1 bytes.
	seeds = append(seeds, []byte{formatVersion, 0xdd, 0xff, 0xff, 0xff, 0xff})
	seeds = append(seeds, []byte{formatVersion, 0x95, 0xdb, 0xff, 0xff, 0xff, 0xff})
	seeds = append(seeds, []byte{formatVersion, 0x95, 0xa1, 'k', 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff})
	return seeds
}

// TestWriteFuzzCorpus rewrites testdata/fuzz/FuzzDecodeKeyState from seedKeyStates when
// LOCKMGR_WRITE_FUZZ_CORPUS is set; otherwise it checks that every seed decodes or errs.
func TestWriteFuzzCorpus(t *testing.T) {
	seeds := seedKeyStates()
	for _, s := range seeds {
		var st KeyState
		_ = st.UnmarshalBinary(s)
	}
	writeFuzzCorpus(t, "FuzzDecodeKeyState", seeds)
}

// writeFuzzCorpus writes seeds as testdata/fuzz/<target>/seed-NN when
// LOCKMGR_WRITE_FUZZ_CORPUS is set, and does nothing otherwise.
func writeFuzzCorpus(t *testing.T, target string, seeds [][]byte) {
	t.Helper()
	if os.Getenv("LOCKMGR_WRITE_FUZZ_CORPUS") == "" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

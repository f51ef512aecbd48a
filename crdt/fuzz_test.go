package crdt

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Fuzz targets, one per decoder. Each checks that bad bytes give an error and never a panic,
// and that whatever decodes re-encodes to something that decodes to the same value and can
// be used. The seed corpus (valid encodings, truncations, another version byte, huge declared
// lengths: the seedXxx functions below) is committed under testdata/fuzz/FuzzDecodeXxx, so
// plain go test runs it too; rewrite it with
//
//	CRDT_WRITE_FUZZ_CORPUS=1 go test ./crdt -run TestWriteFuzzCorpus
//
// Run one for 5 minutes with
//
//	go test ./crdt -run '^$' -fuzz '^FuzzDecodeState$' -fuzztime 5m

func FuzzDecodeState(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		again := roundTrip(t, st, new(State))
		if d := sameContents(contents(*again), contents(st)); d != "" {
			t.Fatalf("re-decoded state differs: %s", d)
		}
		s, _ := New(Config{Shards: 2})
		if _, err := s.Merge(st); err != nil {
			t.Fatal(err)
		}
		if err := s.Restore(st); err != nil {
			t.Fatal(err)
		}
		for _, k := range st.Keys() {
			s.Value(k) // may be out of range; must not panic
		}
		s.DeltasSince(Cursor{}, 3)
		compareStores(s, mustStore(t))
	})
}

func FuzzDecodeDigest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Digest
		if err := d.UnmarshalBinary(b); err != nil {
			return
		}
		again := roundTrip(t, d, new(Digest))
		if fmt.Sprint(*again) != fmt.Sprint(d) {
			t.Fatalf("re-decoded digest differs: %v, want %v", *again, d)
		}
		s := mustStore(t)
		mustApply(t, s, "k", ra, 1)
		s.CompareDigest(d)
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Cursor
		if err := c.UnmarshalBinary(b); err != nil {
			return
		}
		again := roundTrip(t, c, new(Cursor))
		if fmt.Sprint(*again) != fmt.Sprint(c) {
			t.Fatalf("re-decoded cursor differs: %v, want %v", *again, c)
		}
		s, _ := New(Config{Shards: 4})
		mustApply(t, s, "k", ra, 1)
		s.DeltasSince(c, 0)
	})
}

func FuzzDecodeReplicaCounts(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var rc ReplicaCounts
		if err := rc.UnmarshalBinary(b); err != nil {
			return
		}
		again := roundTrip(t, rc, new(ReplicaCounts))
		if behind, err := rc.Behind(*again); err != nil || len(behind) != 0 {
			t.Fatalf("re-decoded counts differ: %v, %q", err, behind)
		}
	})
}

func FuzzDecodeGCounter(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var g GCounter
		if err := g.UnmarshalBinary(b); err != nil {
			return
		}
		if again := roundTrip(t, g, new(GCounter)); !again.Equal(g) {
			t.Fatal("re-decoded counter differs")
		}
		g.Value()
	})
}

func FuzzDecodePNCounter(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var c PNCounter
		if err := c.UnmarshalBinary(b); err != nil {
			return
		}
		if again := roundTrip(t, c, new(PNCounter)); !again.Equal(c) {
			t.Fatal("re-decoded counter differs")
		}
		c.Value()
	})
}

type marshaler interface{ MarshalBinary() ([]byte, error) }
type unmarshaler interface{ UnmarshalBinary([]byte) error }

// roundTrip encodes v and decodes the bytes into out.
func roundTrip[T unmarshaler](t *testing.T, v marshaler, out T) T {
	t.Helper()
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatalf("encoding a decoded value: %v", err)
	}
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("decoding a re-encoded value: %v", err)
	}
	return out
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// hostile returns inputs that are wrong in the ways a decoder must survive: truncations of a
// valid encoding, another version byte, and huge declared lengths.
func hostile(valid []byte) [][]byte {
	out := [][]byte{nil, {formatVersion}, {formatVersion + 1}}
	for _, n := range []int{1, 2, 3, len(valid) / 2, len(valid) - 1} {
		if n > 0 && n < len(valid) {
			out = append(out, valid[:n])
		}
	}
	wrongVersion := append([]byte{}, valid...)
	wrongVersion[0] = 2
	out = append(out, wrongVersion,
		[]byte{formatVersion, 0xdd, 0xff, 0xff, 0xff, 0xff},                               // array32 of 4G elements
		[]byte{formatVersion, 0x92, 0x03, 0xdd, 0x7f, 0xff, 0xff, 0xff},                   // a State with 2G replicas
		[]byte{formatVersion, 0x93, 0x03, 0x90, 0x91, 0x92, 0xdb, 0xff, 0xff, 0xff, 0xff}, // str32 of 4 GB
		[]byte{formatVersion, 0x95, 0x05, 0x00, 0x90, 0xc6, 0xff, 0xff, 0xff, 0xf8, 0x90}, // bin32 of 4 GB
		append(append([]byte{}, valid...), 0x00),                                          // trailing byte
	)
	return out
}

func seedStates() [][]byte {
	s := mustStore(nopTB{})
	fillMixed(nopTB{}, s, 6)
	mustApply(nopTB{}, s, "\x00binary\xff", rc, -9)
	full := mustBytes(s.Snapshot().MarshalBinary())
	one := mustBytes(s.AppendKeyRecord(nil, "key/1"))
	empty := mustBytes(State{}.MarshalBinary())
	return append([][]byte{full, one, empty}, hostile(full)...)
}

func seedDigests() [][]byte {
	a, b := mustStore(nopTB{}), mustStore(nopTB{})
	fillMixed(nopTB{}, a, 40)
	mustApply(nopTB{}, b, "key/3", rb, 1)
	top := a.Digest()
	l1, _ := b.CompareDigest(top)
	l2, _ := a.CompareDigest(l1)
	seeds := [][]byte{mustBytes(top.MarshalBinary()), mustBytes(l1.MarshalBinary()), mustBytes(l2.MarshalBinary()), mustBytes(Digest{}.MarshalBinary())}
	return append(seeds, hostile(seeds[2])...)
}

func seedCursors() [][]byte {
	s, _ := New(Config{Shards: 8, Instance: 3})
	fillMixed(nopTB{}, s, 20)
	_, c, _ := s.DeltasSince(Cursor{}, 5)
	valid := mustBytes(c.MarshalBinary())
	return append([][]byte{valid, mustBytes(Cursor{}.MarshalBinary())}, hostile(valid)...)
}

func seedReplicaCounts() [][]byte {
	s := mustStore(nopTB{})
	fillMixed(nopTB{}, s, 10)
	valid := mustBytes(s.ReplicaCounts(ra).MarshalBinary())
	return append([][]byte{valid, mustBytes(s.ReplicaCounts(ReplicaID{Node: "x"}).MarshalBinary())}, hostile(valid)...)
}

func seedGCounters() [][]byte {
	var g GCounter
	g.Increment(ra, 1)
	g.Increment(rb, 1<<60)
	valid := mustBytes(g.MarshalBinary())
	return append([][]byte{valid, mustBytes(GCounter{}.MarshalBinary())}, hostile(valid)...)
}

func seedPNCounters() [][]byte {
	var c PNCounter
	c.Add(ra, 5)
	c.Add(rb, -1<<62)
	c.Add(rc, 1)
	valid := mustBytes(c.MarshalBinary())
	return append([][]byte{valid, mustBytes(PNCounter{}.MarshalBinary())}, hostile(valid)...)
}

// nopTB lets the seed builders use the test helpers outside a test; they never fail there.
type nopTB struct{}

func (nopTB) Helper()                      {}
func (nopTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (nopTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// TestWriteFuzzCorpus writes the seeds above as the committed corpus files, when asked to.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("CRDT_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set CRDT_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz")
	}
	targets := map[string][][]byte{
		"FuzzDecodeState": seedStates(), "FuzzDecodeDigest": seedDigests(),
		"FuzzDecodeCursor": seedCursors(), "FuzzDecodeReplicaCounts": seedReplicaCounts(),
		"FuzzDecodeGCounter": seedGCounters(), "FuzzDecodePNCounter": seedPNCounters(),
	}
	for name, seeds := range targets {
		dir := filepath.Join("testdata", "fuzz", name)
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
}

// FuzzJoinRecordsFast: for any two or three records, JoinRecords' fast path answers only
// what the State decoder answers too (checkJoinPaths).
func FuzzJoinRecordsFast(f *testing.F) {
	s := mustStore(f)
	var recs [][]byte
	for i, r := range []ReplicaID{ra, rb, ra, rb} {
		mustApply(f, s, "k", r, int64(i+1))
		rec, err := s.AppendKeyRecord(nil, "k")
		if err != nil {
			f.Fatal(err)
		}
		recs = append(recs, rec)
	}
	f.Add(recs[0], recs[1], recs[2])
	f.Add(recs[3], recs[1], recs[2])
	f.Add(recs[1], recs[1], []byte{})
	f.Add(recs[2], []byte("garbage"), recs[3])
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		checkJoinPaths(t, [][]byte{a, b})
		checkJoinPaths(t, [][]byte{a, b, c})
	})
}

package crdt

import (
	"errors"
	"runtime"
	"testing"
)

// decoders lists every decoder with its seeds (valid and hostile).
var decoders = []struct {
	name   string
	seeds  func() [][]byte
	decode func([]byte) error
}{
	{"State", seedStates, func(b []byte) error { return new(State).UnmarshalBinary(b) }},
	{"Digest", seedDigests, func(b []byte) error { return new(Digest).UnmarshalBinary(b) }},
	{"Cursor", seedCursors, func(b []byte) error { return new(Cursor).UnmarshalBinary(b) }},
	{"ReplicaCounts", seedReplicaCounts, func(b []byte) error { return new(ReplicaCounts).UnmarshalBinary(b) }},
	{"GCounter", seedGCounters, func(b []byte) error { return new(GCounter).UnmarshalBinary(b) }},
	{"PNCounter", seedPNCounters, func(b []byte) error { return new(PNCounter).UnmarshalBinary(b) }},
}

// TestDecodersRefuseHostileBytes: the hostile seeds (truncations, another version, huge
// declared lengths, trailing bytes) are all refused with ErrBadEncoding.
func TestDecodersRefuseHostileBytes(t *testing.T) {
	for _, d := range decoders {
		t.Run(d.name, func(t *testing.T) {
			seeds := d.seeds()
			valid := 0
			for _, s := range seeds {
				if d.decode(s) == nil {
					valid++
				}
			}
			// Each seed list starts with valid encodings, then hostile() of one of them.
			var hostileSeeds [][]byte
			for _, s := range seeds {
				if err := d.decode(s); err != nil {
					if !errors.Is(err, ErrBadEncoding) {
						t.Fatalf("error %v does not wrap ErrBadEncoding", err)
					}
					hostileSeeds = append(hostileSeeds, s)
				}
			}
			if len(hostileSeeds) < 8 || valid < 2 {
				t.Fatalf("%d valid and %d refused seeds; want at least 2 and 8", valid, len(hostileSeeds))
			}
		})
	}
}

func TestDecodeOtherKind(t *testing.T) {
	st := mustBytes(State{}.MarshalBinary())
	err := new(Cursor).UnmarshalBinary(st)
	if !errors.Is(err, ErrBadEncoding) || err.Error() != "crdt: bad encoding: input is a State, not a Cursor" {
		t.Fatalf("decoding a State as a Cursor: %v", err)
	}
}

// TestDecodersAllocateBoundedByInput: whatever lengths the input declares, a decoder
// allocates at most a small multiple of the input size (plus a constant for the decoder).
func TestDecodersAllocateBoundedByInput(t *testing.T) {
	big := mustStore(t)
	fillMixed(t, big, 2000)
	bigState := mustBytes(big.Snapshot().MarshalBinary())
	const fixed, perByte = 8 << 10, 32
	for _, d := range decoders {
		t.Run(d.name, func(t *testing.T) {
			inputs := d.seeds()
			if d.name == "State" {
				inputs = append(inputs, bigState)
			}
			for i, in := range inputs {
				allocated := bytesAllocated(func() { d.decode(in) })
				if limit := uint64(fixed + perByte*len(in)); allocated > limit {
					t.Errorf("seed %d: %d input bytes made the decoder allocate %d bytes, limit %d", i, len(in), allocated, limit)
				}
			}
		})
	}
}

// bytesAllocated returns the heap bytes f allocates, averaged over a few runs.
func bytesAllocated(f func()) uint64 {
	const runs = 5
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

package lockmgr

import (
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeVoterSet checks that bad bytes give an error and never a panic, and that
// whatever decodes is a valid set (or the zero set) that re-encodes to the same set. The
// seed corpus (seedVoterSets) is committed under testdata/fuzz/FuzzDecodeVoterSet; rewrite
// it with
//
//	LOCKMGR_WRITE_FUZZ_CORPUS=1 go test ./lockmgr -run TestWriteVoterFuzzCorpus
//
// Run it for 5 minutes with
//
//	go test ./lockmgr -run '^$' -fuzz '^FuzzDecodeVoterSet$' -fuzztime 5m
func FuzzDecodeVoterSet(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var s VoterSet
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		if !isZeroSet(s) {
			if err := s.Validate(); err != nil {
				t.Fatalf("decoded an invalid set %v: %v", s, err)
			}
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var s2 VoterSet
		if err := s2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded set does not decode: %v", err)
		}
		if !s.Equal(s2) {
			t.Fatalf("re-decoded set differs:\n%v\n%v", s, s2)
		}
	})
}

// FuzzDecodeVoterAcceptorState checks the same for the voter acceptor's durable state, and
// that an acceptor restarted from whatever decodes answers requests without panicking. Seed
// corpus: testdata/fuzz/FuzzDecodeVoterAcceptorState (seedVoterAcceptorStates).
//
//	go test ./lockmgr -run '^$' -fuzz '^FuzzDecodeVoterAcceptorState$' -fuzztime 5m
func FuzzDecodeVoterAcceptorState(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var st VoterAcceptorState
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var st2 VoterAcceptorState
		if err := st2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("re-decoded state differs:\n%+v\n%+v", st, st2)
		}
		a, err := NewVoterAcceptor(DefaultConfig(), st, t0)
		if err != nil {
			t.Fatalf("decoded state refused: %v", err)
		}
		if st.Set.Version == 0 || st.Promised.Round == 1<<64-1 {
			return
		}
		b2 := Ballot{Round: st.Promised.Round + 1, Proposer: "fuzz"}
		if _, err := a.Prepare(st.Set, b2, t0); err != nil {
			t.Fatalf("prepare above the promised ballot refused: %v", err)
		}
		c := VoterChange{VoterAdd, "fuzz-new"}
		if st.Set.Contains(c.Member) {
			c.Op = VoterRemove
		}
		_, applies := st.Set.Apply(c)
		if _, err := a.Accept(st.Set, b2, c, t0.Add(time.Hour)); err != nil && applies == nil {
			t.Fatalf("accept refused: %v", err)
		}
	})
}

func mustMarshal(m interface{ MarshalBinary() ([]byte, error) }) []byte {
	b, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// truncations returns b cut at a few places, and b with another version byte.
func truncations(b []byte) [][]byte {
	var out [][]byte
	for _, n := range []int{1, 2, len(b) / 2, len(b) - 1} {
		if n > 0 && n < len(b) {
			out = append(out, b[:n])
		}
	}
	other := append([]byte{}, b...)
	other[0] = 2
	return append(out, other)
}

func seedVoterSets() [][]byte {
	v1, _ := BootstrapSet([]string{"peer-a", "peer-b", "peer-c"})
	v2, _ := v1.Apply(VoterChange{VoterAdd, "peer-d"})
	full := mustMarshal(v2)
	seeds := [][]byte{mustMarshal(v1), full, mustMarshal(VoterSet{}), nil, {voterFormatVersion}}
	seeds = append(seeds, truncations(full)...)
	// Huge declared lengths: the array of members, a member name; members out of order.
	seeds = append(seeds,
		[]byte{voterFormatVersion, 0x93, 0x01, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
		[]byte{voterFormatVersion, 0x93, 0x01, 0x01, 0x91, 0xdb, 0xff, 0xff, 0xff, 0xff},
		mustMarshal(VoterSet{Cluster: 1, Version: 1, Members: []string{"b", "a"}}),
	)
	return seeds
}

func seedVoterAcceptorStates() [][]byte {
	v1, _ := BootstrapSet([]string{"peer-a", "peer-b", "peer-c"})
	full := mustMarshal(VoterAcceptorState{Set: v1, Promised: Ballot{4, "peer-b#00000000000000ff"},
		Accepted: Ballot{3, "peer-a#0000000000000001"}, Change: VoterChange{VoterRemove, "peer-c"}})
	seeds := [][]byte{mustMarshal(VoterAcceptorState{}), mustMarshal(VoterAcceptorState{Set: v1}), full, nil}
	seeds = append(seeds, truncations(full)...)
	// A promise with no set; an accepted change that does not apply; a huge member count.
	seeds = append(seeds,
		mustMarshal(VoterAcceptorState{Promised: Ballot{1, "x"}}),
		mustMarshal(VoterAcceptorState{Set: v1, Promised: Ballot{1, "x"}, Accepted: Ballot{1, "x"}, Change: VoterChange{VoterAdd, "peer-a"}}),
		[]byte{voterFormatVersion, 0x94, 0x93, 0x01, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
	)
	return seeds
}

// TestWriteVoterFuzzCorpus rewrites testdata/fuzz/FuzzDecodeVoterSet and
// FuzzDecodeVoterAcceptorState from the seeds when LOCKMGR_WRITE_FUZZ_CORPUS is set;
// otherwise it checks that every seed decodes or errs.
func TestWriteVoterFuzzCorpus(t *testing.T) {
	for name, seeds := range map[string][][]byte{
		"FuzzDecodeVoterSet":           seedVoterSets(),
		"FuzzDecodeVoterAcceptorState": seedVoterAcceptorStates(),
	} {
		for _, s := range seeds {
			var vs VoterSet
			_ = vs.UnmarshalBinary(s)
			var st VoterAcceptorState
			_ = st.UnmarshalBinary(s)
		}
		writeFuzzCorpus(t, name, seeds)
	}
}

// Valid encodings decode to what was encoded; seeds meant to be bad are refused.
func TestVoterEncodingRoundTrip(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	for _, s := range []VoterSet{{}, v1} {
		var got VoterSet
		if err := got.UnmarshalBinary(mustMarshal(s)); err != nil || !got.Equal(s) {
			t.Fatalf("%v decoded as %v: %v", s, got, err)
		}
	}
	st := VoterAcceptorState{Set: v1, Promised: Ballot{2, "b#1"}, Accepted: Ballot{2, "b#1"}, Change: VoterChange{VoterAdd, "d"}}
	var got VoterAcceptorState
	if err := got.UnmarshalBinary(mustMarshal(st)); err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("%+v decoded as %+v: %v", st, got, err)
	}
	bad := map[string][]byte{
		"empty":          nil,
		"version only":   {voterFormatVersion},
		"other version":  truncations(mustMarshal(v1))[len(truncations(mustMarshal(v1)))-1],
		"unsorted":       mustMarshal(VoterSet{Cluster: 1, Version: 1, Members: []string{"b", "a"}}),
		"trailing bytes": append(mustMarshal(v1), 0),
	}
	for name, b := range bad {
		var s VoterSet
		if err := s.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: decoded %v", name, s)
		}
	}
}

package lockmgr

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func TestMakeToken(t *testing.T) {
	tests := []struct {
		name       string
		epoch, seq uint32
		want       int64
		err        error
	}{
		{"first", 1, 1, 1<<SequenceBits + 1, nil},
		{"largest", MaxEpoch, MaxSequence, 1<<52 - 1, nil},
		{"epoch zero", 0, 1, 0, ErrBadEpoch},
		{"epoch too large", MaxEpoch + 1, 1, 0, ErrBadEpoch},
		{"sequence too large", 1, MaxSequence + 1, 0, ErrSequenceExhausted},
		{"largest fits a double exactly", MaxEpoch, MaxSequence, 1<<52 - 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MakeToken(tt.epoch, tt.seq)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("MakeToken(%d, %d) = %d, %v; want %d, %v", tt.epoch, tt.seq, got, err, tt.want, tt.err)
			}
		})
	}
}

// Tokens order as (epoch, sequence) pairs and split back to them.
func TestTokenOrderProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e1 := rapid.Uint32Range(1, MaxEpoch).Draw(t, "e1")
		e2 := rapid.Uint32Range(1, MaxEpoch).Draw(t, "e2")
		s1 := rapid.Uint32Range(0, MaxSequence).Draw(t, "s1")
		s2 := rapid.Uint32Range(0, MaxSequence).Draw(t, "s2")
		a, _ := MakeToken(e1, s1)
		b, _ := MakeToken(e2, s2)
		if a <= 0 || b <= 0 {
			t.Fatalf("non-positive token %d %d", a, b)
		}
		if ge, gs := SplitToken(a); ge != e1 || gs != s1 {
			t.Fatalf("split(%d) = %d,%d want %d,%d", a, ge, gs, e1, s1)
		}
		pairLess := e1 < e2 || (e1 == e2 && s1 < s2)
		if (a < b) != pairLess {
			t.Fatalf("(%d,%d)<(%d,%d) is %v but %d<%d is %v", e1, s1, e2, s2, pairLess, a, b, a < b)
		}
	})
}

package crdt

import (
	"errors"
	"math"
	"testing"
)

var (
	ra = ReplicaID{Node: "a", Incarnation: 1}
	rb = ReplicaID{Node: "b", Incarnation: 1}
	rc = ReplicaID{Node: "c", Incarnation: 7}
)

func TestGCounterIncrement(t *testing.T) {
	tests := []struct {
		name    string
		start   map[ReplicaID]uint64
		r       ReplicaID
		n       uint64
		wantErr error
		want    uint64
	}{
		{name: "first increment", r: ra, n: 3, want: 3},
		{name: "adds to own count", start: map[ReplicaID]uint64{ra: 3, rb: 4}, r: ra, n: 2, want: 9},
		{name: "zero refused", r: ra, n: 0, wantErr: ErrBadAmount},
		{name: "empty node refused", r: ReplicaID{}, n: 1, wantErr: ErrBadReplica},
		{name: "own count overflow refused", start: map[ReplicaID]uint64{ra: math.MaxUint64}, r: ra, n: 1, wantErr: ErrOverflow},
		{name: "value overflow refused", start: map[ReplicaID]uint64{rb: math.MaxUint64 - 1}, r: ra, n: 2, wantErr: ErrOverflow},
		{name: "up to the limit", start: map[ReplicaID]uint64{rb: math.MaxUint64 - 2}, r: ra, n: 2, want: math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g GCounter
			for r, c := range tt.start {
				g.raise(r, c)
			}
			before := g.Clone()
			delta, err := g.Increment(tt.r, tt.n)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Increment error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !g.Equal(before) {
					t.Fatalf("refused increment changed the counter")
				}
				return
			}
			if v, err := g.Value(); err != nil || v != tt.want {
				t.Fatalf("Value = %d, %v, want %d", v, err, tt.want)
			}
			// The delta holds exactly the new count of r, and merging it is a no-op now.
			if delta.Count(tt.r) != g.Count(tt.r) || len(delta.Replicas()) != 1 {
				t.Fatalf("delta %v, want only %s=%d", delta.counts, tt.r, g.Count(tt.r))
			}
			c := before.Clone()
			c.Merge(delta)
			if !c.Equal(g) {
				t.Fatalf("before ⊔ delta = %v, want %v", c.counts, g.counts)
			}
		})
	}
}

func TestGCounterMergedValueOverflow(t *testing.T) {
	var a, b GCounter
	if _, err := a.Increment(ra, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Increment(rb, 1); err != nil {
		t.Fatal(err)
	}
	a.Merge(b)
	if _, err := a.Value(); !errors.Is(err, ErrValueOverflow) {
		t.Fatalf("Value of a merged sum past uint64 = %v, want ErrValueOverflow", err)
	}
}

func TestPNCounterAdd(t *testing.T) {
	type pn struct{ p, n uint64 }
	tests := []struct {
		name    string
		start   map[ReplicaID]pn
		r       ReplicaID
		amount  int64
		wantErr error
		want    int64
	}{
		{name: "add", r: ra, amount: 5, want: 5},
		{name: "subtract", start: map[ReplicaID]pn{ra: {5, 0}}, r: ra, amount: -7, want: -2},
		{name: "other replica", start: map[ReplicaID]pn{rb: {1, 10}}, r: ra, amount: 4, want: -5},
		{name: "zero refused", r: ra, amount: 0, wantErr: ErrBadAmount},
		{name: "bad replica refused", r: ReplicaID{Incarnation: 3}, amount: 1, wantErr: ErrBadReplica},
		{name: "max int64", r: ra, amount: math.MaxInt64, want: math.MaxInt64},
		{name: "min int64", r: ra, amount: math.MinInt64, want: math.MinInt64},
		{name: "past max refused", start: map[ReplicaID]pn{rb: {math.MaxInt64, 0}}, r: ra, amount: 1, wantErr: ErrOverflow},
		{name: "past min refused", start: map[ReplicaID]pn{rb: {0, 1 << 63}}, r: ra, amount: -1, wantErr: ErrOverflow},
		{name: "own P past uint64 refused", start: map[ReplicaID]pn{ra: {math.MaxUint64, math.MaxUint64}}, r: ra, amount: 1, wantErr: ErrOverflow},
		{name: "own N past uint64 refused", start: map[ReplicaID]pn{ra: {math.MaxUint64 - 5, math.MaxUint64}}, r: ra, amount: -1, wantErr: ErrOverflow},
		{name: "big counts, small value", start: map[ReplicaID]pn{ra: {math.MaxUint64 - 1, math.MaxUint64 - 3}}, r: ra, amount: 1, want: 3},
		{name: "back into range", start: map[ReplicaID]pn{ra: {math.MaxInt64, 0}, rb: {10, 0}}, r: ra, amount: -10, want: math.MaxInt64},
		{name: "still out of range refused", start: map[ReplicaID]pn{ra: {math.MaxInt64, 0}, rb: {10, 0}}, r: ra, amount: -9, wantErr: ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c PNCounter
			for r, x := range tt.start {
				c.p.raise(r, x.p)
				c.n.raise(r, x.n)
			}
			before := c.Clone()
			delta, err := c.Add(tt.r, tt.amount)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !c.Equal(before) {
					t.Fatalf("refused add changed the counter")
				}
				return
			}
			if v, err := c.Value(); err != nil || v != tt.want {
				t.Fatalf("Value = %d, %v, want %d", v, err, tt.want)
			}
			m := before.Clone()
			m.Merge(delta)
			if !m.Equal(c) {
				t.Fatalf("before ⊔ delta differs from the counter after Add")
			}
		})
	}
}

func TestPNCounterMergedValueOverflow(t *testing.T) {
	tests := []struct {
		name     string
		aAmount  int64
		bAmount  int64
		wantErr  error
		wantSide string
	}{
		{name: "both near max", aAmount: math.MaxInt64, bAmount: 1, wantErr: ErrValueOverflow},
		{name: "both near min", aAmount: math.MinInt64, bAmount: -1, wantErr: ErrValueOverflow},
		{name: "opposite signs stay in range", aAmount: math.MaxInt64, bAmount: math.MinInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a, b PNCounter
			if _, err := a.Add(ra, tt.aAmount); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Add(rb, tt.bAmount); err != nil {
				t.Fatal(err)
			}
			a.Merge(b)
			v, err := a.Value()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Value = %d, %v, want error %v", v, err, tt.wantErr)
			}
			if err == nil && v != tt.aAmount+tt.bAmount {
				t.Fatalf("Value = %d, want %d", v, tt.aAmount+tt.bAmount)
			}
			if err != nil && v != 0 {
				t.Fatalf("Value returned %d with an error, want 0", v)
			}
		})
	}
}

func TestCounterCodecRoundTrip(t *testing.T) {
	var g GCounter
	var c PNCounter
	for i, r := range []ReplicaID{ra, rb, rc} {
		if _, err := g.Increment(r, uint64(i+1)<<40); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Add(r, int64(i)-1); err != nil && !errors.Is(err, ErrBadAmount) {
			t.Fatal(err)
		}
	}
	gb, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g2 GCounter
	if err := g2.UnmarshalBinary(gb); err != nil || !g2.Equal(g) {
		t.Fatalf("GCounter round trip: %v, equal %v", err, g2.Equal(g))
	}
	cb, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var c2 PNCounter
	if err := c2.UnmarshalBinary(cb); err != nil || !c2.Equal(c) {
		t.Fatalf("PNCounter round trip: %v, equal %v", err, c2.Equal(c))
	}
	// A GCounter encoding is not a PNCounter.
	if err := c2.UnmarshalBinary(gb); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("PNCounter.UnmarshalBinary(GCounter bytes) = %v, want ErrBadEncoding", err)
	}
}

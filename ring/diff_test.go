package ring

import (
	"math"
	"slices"
	"testing"
)

const half = uint64(1) << 63

func TestArcs(t *testing.T) {
	r := mustBuild(t, membersOf(spread), Config{VNodes: 1}, at(spread))
	want := []OwnedArc{
		{Arc{0, 150}, "a"},
		{Arc{151, 600}, "b"},
		{Arc{601, half + 549}, "c"},
		{Arc{half + 550, math.MaxUint64}, "a"},
	}
	if got := r.Arcs(); !slices.Equal(got, want) {
		t.Errorf("Arcs() = %v, want %v", got, want)
	}
	shares := r.Shares()
	wantShares := []Share{
		{"a", 1, float64(half-399) * 0x1p-64},
		{"b", 1, 450 * 0x1p-64},
		{"c", 1, float64(half-51) * 0x1p-64},
	}
	if !slices.Equal(shares, wantShares) {
		t.Errorf("Shares() = %v, want %v", shares, wantShares)
	}
}

// TestArcsAtTheEdges checks Arcs against OwnerAt and the brute-force reference on rings
// with points at and around 0 and the top of the ring, where arcs wrap.
func TestArcsAtTheEdges(t *testing.T) {
	const top = math.MaxUint64
	tests := []struct {
		name      string
		positions map[string][]uint64
	}{
		{"top and one", map[string][]uint64{"a": {top}, "b": {1}}},
		{"one and top", map[string][]uint64{"a": {1}, "b": {top}}},
		{"zero and top", map[string][]uint64{"a": {0}, "b": {top}}},
		{"top and zero", map[string][]uint64{"a": {top}, "b": {0}}},
		{"zero and one", map[string][]uint64{"a": {0}, "b": {1}}},
		{"both near the top", map[string][]uint64{"a": {top - 1}, "b": {top}}},
		{"opposite, a at zero", map[string][]uint64{"a": {0}, "b": {half}}},
		{"opposite, b at zero", map[string][]uint64{"a": {half}, "b": {0}}},
		{"opposite, off zero", map[string][]uint64{"a": {5}, "b": {half + 5}}},
		{"shared at zero", map[string][]uint64{"a": {0}, "b": {0}, "c": {top}}},
		{"shared at the top", map[string][]uint64{"a": {3}, "b": {top}, "c": {top}}},
		{"three around zero", map[string][]uint64{"a": {top - 2}, "b": {2}, "c": {half}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := membersOf(tt.positions)
			place := at(tt.positions)
			r := mustBuild(t, ms, Config{VNodes: 1}, place)
			arcs := r.Arcs()
			if arcs[0].First != 0 || arcs[len(arcs)-1].Last != top {
				t.Fatalf("Arcs() = %v do not cover the ring", arcs)
			}
			for i, a := range arcs {
				if i > 0 && (a.First != arcs[i-1].Last+1 || a.Owner == arcs[i-1].Owner) {
					t.Fatalf("Arcs() = %v: arc %d does not follow on", arcs, i)
				}
				for _, pos := range []uint64{a.First, a.Last, a.First + 1, a.Last - 1} {
					if !a.Contains(pos) {
						continue
					}
					want := refRanking(ms, Config{VNodes: 1}, place, pos)[0]
					if got, _ := r.OwnerAt(pos); got != want || a.Owner != want {
						t.Errorf("at %#x: OwnerAt %q, arc %v says %q, reference %q", pos, got, a.Arc, a.Owner, want)
					}
				}
			}
		})
	}
}

func TestArcsOneMember(t *testing.T) {
	r := mustNew(t, []Member{{"solo", 3}}, DefaultConfig())
	want := []OwnedArc{{Arc{0, math.MaxUint64}, "solo"}}
	if got := r.Arcs(); !slices.Equal(got, want) {
		t.Errorf("Arcs() = %v, want %v", got, want)
	}
	if got := r.Shares(); len(got) != 1 || got[0].Fraction != 1 {
		t.Errorf("Shares() = %v, want all of the ring", got)
	}
	if got := (Arc{0, math.MaxUint64}).Fraction(); got != 1 {
		t.Errorf("Fraction of the whole ring = %v, want 1", got)
	}
}

func TestDiff(t *testing.T) {
	before := mustBuild(t, membersOf(spread), Config{VNodes: 1}, at(spread))
	withD := map[string][]uint64{"a": {100}, "b": {200}, "c": {1000}, "d": {500}}
	after := mustBuild(t, membersOf(withD), Config{VNodes: 1}, at(withD))
	empty := mustNew(t, nil, DefaultConfig())
	tests := []struct {
		name          string
		before, after *Ring
		want          DiffResult
	}{
		{
			name: "join", before: before, after: after,
			want: DiffResult{
				Arcs: []ArcChange{
					{Arc{351, 600}, "b", "d"}, // b keeps the midpoint 350 by name
					{Arc{601, 749}, "c", "d"}, // c keeps the midpoint 750 by name
				},
				Members: []MemberChange{{"a", 0, 0}, {"b", 0, 250 * 0x1p-64}, {"c", 0, 149 * 0x1p-64}, {"d", 399 * 0x1p-64, 0}},
				Moved:   399 * 0x1p-64,
			},
		},
		{
			name: "leave", before: after, after: before,
			want: DiffResult{
				Arcs: []ArcChange{
					{Arc{351, 600}, "d", "b"},
					{Arc{601, 749}, "d", "c"},
				},
				Members: []MemberChange{{"a", 0, 0}, {"b", 250 * 0x1p-64, 0}, {"c", 149 * 0x1p-64, 0}, {"d", 0, 399 * 0x1p-64}},
				Moved:   399 * 0x1p-64,
			},
		},
		{
			name: "same ring", before: before, after: before,
			want: DiffResult{Members: []MemberChange{{"a", 0, 0}, {"b", 0, 0}, {"c", 0, 0}}},
		},
		{
			name: "from empty", before: empty, after: before,
			want: DiffResult{
				Arcs: []ArcChange{
					{Arc{0, 150}, "", "a"},
					{Arc{151, 600}, "", "b"},
					{Arc{601, half + 549}, "", "c"},
					{Arc{half + 550, math.MaxUint64}, "", "a"},
				},
				Members: []MemberChange{{"a", float64(half-399) * 0x1p-64, 0}, {"b", 450 * 0x1p-64, 0}, {"c", float64(half-51) * 0x1p-64, 0}},
				Moved:   1,
			},
		},
		{
			name: "to nil", before: before, after: nil,
			want: DiffResult{
				Arcs: []ArcChange{
					{Arc{0, 150}, "a", ""},
					{Arc{151, 600}, "b", ""},
					{Arc{601, half + 549}, "c", ""},
					{Arc{half + 550, math.MaxUint64}, "a", ""},
				},
				Members: []MemberChange{{"a", 0, float64(half-399) * 0x1p-64}, {"b", 0, 450 * 0x1p-64}, {"c", 0, float64(half-51) * 0x1p-64}},
				Moved:   1,
			},
		},
		{
			name: "nil to empty", before: nil, after: empty,
			want: DiffResult{Members: []MemberChange{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.before, tt.after)
			if !slices.Equal(got.Arcs, tt.want.Arcs) {
				t.Errorf("Arcs = %v, want %v", got.Arcs, tt.want.Arcs)
			}
			if !slices.Equal(got.Members, tt.want.Members) {
				t.Errorf("Members = %v, want %v", got.Members, tt.want.Members)
			}
			if got.Moved != tt.want.Moved {
				t.Errorf("Moved = %v, want %v", got.Moved, tt.want.Moved)
			}
		})
	}
}

func TestDiffAt(t *testing.T) {
	d := DiffResult{Arcs: []ArcChange{{Arc{10, 20}, "a", "b"}, {Arc{30, 30}, "b", "c"}}}
	tests := []struct {
		name   string
		pos    uint64
		want   ArcChange
		wantOK bool
	}{
		{"before", 9, ArcChange{}, false},
		{"first", 10, d.Arcs[0], true},
		{"last", 20, d.Arcs[0], true},
		{"gap", 25, ArcChange{}, false},
		{"one-position arc", 30, d.Arcs[1], true},
		{"after", math.MaxUint64, ArcChange{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := d.At(tt.pos)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("At(%d) = %v, %v; want %v, %v", tt.pos, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

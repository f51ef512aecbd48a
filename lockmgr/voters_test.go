package lockmgr

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustBootstrap(t testing.TB, names ...string) VoterSet {
	t.Helper()
	s, err := BootstrapSet(names)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBootstrapSet(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  []string
		err   error
	}{
		{"one", []string{"a"}, []string{"a"}, nil},
		{"sorted and unique", []string{"c", "a", "b", "a"}, []string{"a", "b", "c"}, nil},
		{"empty", nil, nil, ErrBadVoterSet},
		{"empty name", []string{"a", ""}, nil, ErrBadVoterSet},
		{"long name", []string{strings.Repeat("x", MaxMemberLen+1)}, nil, ErrBadVoterSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.names)
			s, err := BootstrapSet(tt.names)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if !slices.Equal(in, tt.names) {
				t.Fatal("BootstrapSet changed its argument")
			}
			if err != nil {
				return
			}
			if s.Version != 1 || !slices.Equal(s.Members, tt.want) || s.Cluster == 0 {
				t.Fatalf("got %v, want v1 %v", s, tt.want)
			}
		})
	}
	// Every peer forms the same set from the same names, in any order; other names give
	// another cluster.
	a, b := mustBootstrap(t, "x", "y", "z"), mustBootstrap(t, "z", "x", "y")
	if !a.Equal(b) {
		t.Fatalf("%v != %v", a, b)
	}
	if c := mustBootstrap(t, "x", "y"); c.Cluster == a.Cluster {
		t.Fatal("two different bootstrap sets share a cluster id")
	}
	// The name boundary counts: {"ab"} and {"a","b"} are different clusters.
	if mustBootstrap(t, "ab").Cluster == mustBootstrap(t, "a", "b").Cluster {
		t.Fatal("cluster id ignores name boundaries")
	}
}

func TestVoterSetApply(t *testing.T) {
	abc := mustBootstrap(t, "a", "b", "c")
	tests := []struct {
		name   string
		set    VoterSet
		change VoterChange
		want   []string
		err    error
	}{
		{"add", abc, VoterChange{VoterAdd, "d"}, []string{"a", "b", "c", "d"}, nil},
		{"add first", abc, VoterChange{VoterAdd, "0"}, []string{"0", "a", "b", "c"}, nil},
		{"remove", abc, VoterChange{VoterRemove, "b"}, []string{"a", "c"}, nil},
		{"add a member", abc, VoterChange{VoterAdd, "a"}, nil, ErrBadVoterChange},
		{"remove a non-member", abc, VoterChange{VoterRemove, "d"}, nil, ErrBadVoterChange},
		{"remove the last", mustBootstrap(t, "a"), VoterChange{VoterRemove, "a"}, nil, ErrBadVoterChange},
		{"bad op", abc, VoterChange{7, "d"}, nil, ErrBadVoterChange},
		{"empty name", abc, VoterChange{VoterAdd, ""}, nil, ErrBadVoterChange},
		{"bad set", VoterSet{Version: 1, Members: []string{"b", "a"}}, VoterChange{VoterAdd, "c"}, nil, ErrBadVoterSet},
		{"no set", VoterSet{}, VoterChange{VoterAdd, "c"}, nil, ErrBadVoterSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.set.Members)
			got, err := tt.set.Apply(tt.change)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if !slices.Equal(before, tt.set.Members) {
				t.Fatal("Apply changed its receiver")
			}
			if err != nil {
				return
			}
			if got.Version != tt.set.Version+1 || got.Cluster != tt.set.Cluster || !slices.Equal(got.Members, tt.want) {
				t.Fatalf("got %v, want v%d %v", got, tt.set.Version+1, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			if c, ok := tt.set.Diff(got); !ok || c != tt.change {
				t.Fatalf("Diff = %v %v, want %v", c, ok, tt.change)
			}
		})
	}
}

func TestVoterSetMajorityContainsDiff(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		var names []string
		for i := range n {
			names = append(names, string(rune('a'+i)))
		}
		s := mustBootstrap(t, names...)
		if s.Majority() != want {
			t.Errorf("Majority of %d = %d, want %d", n, s.Majority(), want)
		}
		if !s.Contains("a") || s.Contains("z") {
			t.Errorf("Contains wrong on %v", s)
		}
	}
	abc := mustBootstrap(t, "a", "b", "c")
	abcd, _ := abc.Apply(VoterChange{VoterAdd, "d"})
	abd := VoterSet{Cluster: abc.Cluster, Version: 2, Members: []string{"a", "b", "d"}}
	other := abcd
	other.Cluster++
	for _, next := range []VoterSet{abc, abd, other, {Cluster: abc.Cluster, Version: 3, Members: abcd.Members}} {
		if c, ok := abc.Diff(next); ok {
			t.Errorf("Diff(%v) = %v, want none", next, c)
		}
	}
}

func TestBallotCompare(t *testing.T) {
	tests := []struct {
		a, b Ballot
		want int
	}{
		{Ballot{}, Ballot{1, "a"}, -1},
		{Ballot{1, "b"}, Ballot{2, "a"}, -1},
		{Ballot{2, "a"}, Ballot{2, "b"}, -1},
		{Ballot{2, "b"}, Ballot{2, "b"}, 0},
		{Ballot{3, "a"}, Ballot{2, "z"}, 1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

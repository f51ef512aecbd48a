package ring

import (
	"fmt"
	"slices"
	"testing"
)

// mustNew builds a ring or fails the test.
func mustNew(t testing.TB, members []Member, cfg Config) *Ring {
	t.Helper()
	r, err := New(members, cfg)
	if err != nil {
		t.Fatalf("New(%v, %+v): %v", members, cfg, err)
	}
	return r
}

// mustBuild builds a ring with the given placement or fails the test.
func mustBuild(t testing.TB, members []Member, cfg Config, position positionFunc) *Ring {
	t.Helper()
	r, err := build(members, cfg, position)
	if err != nil {
		t.Fatalf("build(%v, %+v): %v", members, cfg, err)
	}
	return r
}

// at places virtual nodes by hand: virtual node i of member name sits at positions[name][i].
func at(positions map[string][]uint64) positionFunc {
	return func(buf []byte, name string, i int) (uint64, []byte) {
		ps, ok := positions[name]
		if !ok || i >= len(ps) {
			panic(fmt.Sprintf("test placement has no position %d for %q", i, name))
		}
		return ps[i], buf
	}
}

// coarse is a placement with only 16 positions on the ring, so that virtual nodes share
// positions and keys fall exactly between points: the tie-breaks get exercised.
func coarse(buf []byte, name string, i int) (uint64, []byte) {
	pos, buf := vnodePosition(buf, name, i)
	return pos &^ (1<<60 - 1), buf
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

// members returns n members named prefix-0 … prefix-(n-1), of weight 1.
func members(prefix string, n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{Name: fmt.Sprintf("%s-%d", prefix, i), Weight: 1}
	}
	return ms
}

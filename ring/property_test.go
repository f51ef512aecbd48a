package ring

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Property tests. rapid prints the failing input and the seed to replay it with
// -rapid.seed; -rapid.checks raises the number of cases (default 100).

// genMember draws a member. Names come from a small alphabet with '#', the separator of
// virtual node names, so that names like "a#1" meet "a".
func genMember() *rapid.Generator[Member] {
	return rapid.Custom(func(t *rapid.T) Member {
		return Member{
			Name:   rapid.StringMatching(`[abc#1]{1,4}`).Draw(t, "name"),
			Weight: rapid.IntRange(1, 3).Draw(t, "weight"),
		}
	})
}

// genMembers draws a valid member set of min to max members.
func genMembers(min, max int) *rapid.Generator[[]Member] {
	return rapid.SliceOfNDistinct(genMember(), min, max, func(m Member) string { return m.Name })
}

// genConfig draws small VNodes mostly, the default sometimes.
func genConfig() *rapid.Generator[Config] {
	return rapid.Custom(func(t *rapid.T) Config {
		return Config{VNodes: rapid.OneOf(rapid.IntRange(1, 16), rapid.Just(DefaultConfig().VNodes)).Draw(t, "vnodes")}
	})
}

// genPlacement draws the real placement or the coarse one, whose shared positions and exact
// midpoints exercise the tie-breaks.
func genPlacement() *rapid.Generator[positionFunc] {
	return rapid.Custom(func(t *rapid.T) positionFunc {
		if rapid.Bool().Draw(t, "coarse placement") {
			return coarse
		}
		return vnodePosition
	})
}

// genPos draws a ring position: anywhere, or near a point of r, or near the midpoint of two
// neighbouring points, or near a multiple of 2^59 (the points and midpoints of the coarse
// placement).
func genPos(r *Ring) *rapid.Generator[uint64] {
	return rapid.Custom(func(t *rapid.T) uint64 {
		var base uint64
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			return rapid.Uint64().Draw(t, "pos")
		case 1:
			if len(r.points) > 0 {
				base = r.points[rapid.IntRange(0, len(r.points)-1).Draw(t, "point")].pos
			}
		case 2:
			base = rapid.Uint64Range(0, 31).Draw(t, "half-slot") << 59
		case 3:
			if len(r.points) > 0 {
				i := rapid.IntRange(0, len(r.points)-1).Draw(t, "point")
				a, b := r.points[i].pos, r.points[(i+1)%len(r.points)].pos
				base = a + (b-a)/2
			}
		}
		return base + uint64(rapid.IntRange(-2, 2).Draw(t, "offset"))
	})
}

// genKey draws a non-empty key.
func genKey() *rapid.Generator[string] {
	return rapid.StringN(1, 12, -1)
}

// drawRing draws a valid ring with its members, settings and placement.
func drawRing(t *rapid.T, min, max int) (*Ring, []Member, Config, positionFunc) {
	ms := genMembers(min, max).Draw(t, "members")
	cfg := genConfig().Draw(t, "config")
	place := genPlacement().Draw(t, "placement")
	r, err := build(ms, cfg, place)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return r, ms, cfg, place
}

// The reference: a member's score at x is the distance from x to its nearest virtual node,
// either way round; members rank by score, then name. Owner and Preference must agree with
// this brute force over every virtual node.

func refRanking(ms []Member, cfg Config, place positionFunc, x uint64) []string {
	type scored struct {
		name  string
		score uint64
	}
	var all []scored
	for _, m := range ms {
		best := uint64(math.MaxUint64)
		for i := range m.Weight * cfg.VNodes {
			p, _ := place(nil, m.Name, i)
			best = min(best, p-x, x-p)
		}
		all = append(all, scored{m.Name, best})
	}
	slices.SortFunc(all, func(a, b scored) int {
		return cmp.Or(cmp.Compare(a.score, b.score), strings.Compare(a.name, b.name))
	})
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	return names
}

func TestPropertyMatchesReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r, ms, cfg, place := drawRing(t, 1, 8)
		if cfg.VNodes > 16 {
			cfg.VNodes = 16 // the reference is slow; keep it small
			r, _ = build(ms, cfg, place)
		}
		x := genPos(r).Draw(t, "pos")
		want := refRanking(ms, cfg, place, x)
		if got, _ := r.OwnerAt(x); got != want[0] {
			t.Fatalf("OwnerAt(%#x) = %q, reference %q", x, got, want[0])
		}
		n := rapid.IntRange(0, len(ms)).Draw(t, "n")
		if got := r.appendPreference(nil, x, n); !slices.Equal(got, want[:n]) {
			t.Fatalf("preference at %#x, n=%d = %q, reference %q", x, n, got, want[:n])
		}
	})
}

func TestPropertyOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r, ms, cfg, place := drawRing(t, 0, 12)
		shuffled := rapid.Permutation(ms).Draw(t, "shuffled")
		r2, err := build(shuffled, cfg, place)
		if err != nil {
			t.Fatal(err)
		}
		if r.Checksum() != r2.Checksum() {
			t.Fatalf("checksums differ: %s, %s", r.ChecksumHex(), r2.ChecksumHex())
		}
		if !slices.Equal(r.points, r2.points) {
			t.Fatal("virtual nodes differ")
		}
		if !slices.Equal(r.Arcs(), r2.Arcs()) {
			t.Fatal("arcs differ")
		}
		key := genKey().Draw(t, "key")
		o1, err1 := r.Owner(key)
		o2, err2 := r2.Owner(key)
		if o1 != o2 || !errors.Is(err1, err2) && err1 != err2 {
			t.Fatalf("Owner(%q) = %q, %v and %q, %v", key, o1, err1, o2, err2)
		}
	})
}

// checkOnlyMoves checks that between rings before and after, every key that changed owner
// moved to the member called name (joined = true) or away from it (joined = false), and
// that exactly that member's share moved.
func checkOnlyMoves(t *rapid.T, before, after *Ring, name string, joined bool) {
	d := Diff(before, after)
	for _, a := range d.Arcs {
		if joined && (a.To != name || a.From == name) || !joined && (a.From != name || a.To == name) {
			t.Fatalf("arc %v moved from %q to %q; only moves %s %q are allowed", a.Arc, a.From, a.To, map[bool]string{true: "to", false: "from"}[joined], name)
		}
	}
	grown, share := after, d.Members
	if !joined {
		grown = before
	}
	var want float64
	for _, s := range grown.Shares() {
		if s.Name == name {
			want = s.Fraction
		}
	}
	if !joined && after.Has(name) { // a weight change: the difference of the shares moved
		for _, s := range after.Shares() {
			if s.Name == name {
				want -= s.Fraction
			}
		}
	}
	if joined && before.Has(name) {
		for _, s := range before.Shares() {
			if s.Name == name {
				want -= s.Fraction
			}
		}
	}
	if math.Abs(d.Moved-want) > 1e-12 {
		t.Fatalf("moved %v of the ring, want %q's share %v (members %v)", d.Moved, name, want, share)
	}
	for _, pos := range rapid.SliceOfN(genPos(after), 1, 20).Draw(t, "positions") {
		o1, _ := before.OwnerAt(pos)
		o2, _ := after.OwnerAt(pos)
		if o1 != o2 && (joined && o2 != name || !joined && o1 != name) {
			t.Fatalf("position %#x moved from %q to %q", pos, o1, o2)
		}
		p1, p2 := fullPreference(before, pos), fullPreference(after, pos)
		if !joined {
			p1, p2 = p2, p1
		}
		if !before.Has(name) || !after.Has(name) { // a join or leave: the member is only inserted
			if without := slices.DeleteFunc(slices.Clone(p2), func(s string) bool { return s == name }); !slices.Equal(without, p1) {
				t.Fatalf("preference at %#x changed beyond %q: %q, then %q", pos, name, p1, p2)
			}
		}
	}
}

func fullPreference(r *Ring, pos uint64) []string {
	if r.Len() == 0 {
		return nil
	}
	return r.appendPreference(nil, pos, r.Len())
}

func TestPropertyJoinMovesKeysOnlyToNewMember(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		all := genMembers(1, 12).Draw(t, "members")
		cfg := genConfig().Draw(t, "config")
		place := genPlacement().Draw(t, "placement")
		before, _ := build(all[1:], cfg, place)
		after, _ := build(all, cfg, place)
		checkOnlyMoves(t, before, after, all[0].Name, true)
	})
}

func TestPropertyLeaveMovesKeysOnlyFromLeaver(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		all := genMembers(1, 12).Draw(t, "members")
		cfg := genConfig().Draw(t, "config")
		place := genPlacement().Draw(t, "placement")
		before, _ := build(all, cfg, place)
		after, _ := build(all[1:], cfg, place)
		checkOnlyMoves(t, before, after, all[0].Name, false)
	})
}

func TestPropertyWeightChangeMovesOnlyThatMember(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		all := genMembers(1, 12).Draw(t, "members")
		cfg := genConfig().Draw(t, "config")
		place := genPlacement().Draw(t, "placement")
		heavier := slices.Clone(all)
		heavier[0].Weight += rapid.IntRange(1, 3).Draw(t, "extra weight")
		light, _ := build(all, cfg, place)
		heavy, _ := build(heavier, cfg, place)
		checkOnlyMoves(t, light, heavy, all[0].Name, true)
		checkOnlyMoves(t, heavy, light, all[0].Name, false)
	})
}

func TestPropertyPreference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r, ms, _, _ := drawRing(t, 1, 12)
		key := genKey().Draw(t, "key")
		n := rapid.IntRange(0, len(ms)+2).Draw(t, "n")
		got, err := r.Preference(key, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != min(n, len(ms)) {
			t.Fatalf("Preference(%q, %d) has %d members, want %d: %q", key, n, len(got), min(n, len(ms)), got)
		}
		seen := map[string]bool{}
		for _, name := range got {
			if seen[name] || !r.Has(name) {
				t.Fatalf("Preference(%q, %d) = %q: %q is repeated or not a member", key, n, got, name)
			}
			seen[name] = true
		}
		owner, _ := r.Owner(key)
		if n > 0 && got[0] != owner {
			t.Fatalf("Preference(%q, %d) = %q starts with someone other than the owner %q", key, n, got, owner)
		}
		if all, _ := r.Preference(key, len(ms)); !slices.Equal(all[:len(got)], got) {
			t.Fatalf("Preference(%q, %d) = %q is not a prefix of the full list %q", key, n, got, all)
		}
	})
}

func TestPropertyArcsMatchOwners(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r, _, _, _ := drawRing(t, 1, 12)
		arcs := r.Arcs()
		if arcs[0].First != 0 || arcs[len(arcs)-1].Last != math.MaxUint64 {
			t.Fatalf("arcs do not cover the ring: %v … %v", arcs[0], arcs[len(arcs)-1])
		}
		var total float64
		for i, a := range arcs {
			if a.First > a.Last || i > 0 && (a.First != arcs[i-1].Last+1 || a.Owner == arcs[i-1].Owner) {
				t.Fatalf("arc %d %v does not follow %v", i, a, arcs[max(i-1, 0)])
			}
			for _, pos := range []uint64{a.First, a.Last, a.First + (a.Last-a.First)/2} {
				if got, _ := r.OwnerAt(pos); got != a.Owner {
					t.Fatalf("OwnerAt(%#x) = %q, but arc %v says %q", pos, got, a.Arc, a.Owner)
				}
			}
			total += a.Fraction()
		}
		var shares float64
		for _, s := range r.Shares() {
			shares += s.Fraction
		}
		if math.Abs(total-1) > 1e-9 || math.Abs(shares-1) > 1e-9 {
			t.Fatalf("arcs add up to %v and shares to %v, want 1", total, shares)
		}
	})
}

func TestPropertyDiffMatchesOwners(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		before, _, _, _ := drawRing(t, 0, 8)
		after, _, _, _ := drawRing(t, 0, 8)
		d := Diff(before, after)
		var moved float64
		for i, a := range d.Arcs {
			if a.First > a.Last || i > 0 && a.First <= d.Arcs[i-1].Last {
				t.Fatalf("arc %d %v overlaps or precedes %v", i, a.Arc, d.Arcs[i-1].Arc)
			}
			if i > 0 && a.First == d.Arcs[i-1].Last+1 && a.From == d.Arcs[i-1].From && a.To == d.Arcs[i-1].To {
				t.Fatalf("arcs %d and %d have the same change and were not merged", i-1, i)
			}
			moved += a.Fraction()
		}
		var gained, lost float64
		for _, m := range d.Members {
			gained += m.Gained
			lost += m.Lost
		}
		if before.Len() > 0 && after.Len() > 0 && (math.Abs(gained-d.Moved) > 1e-9 || math.Abs(lost-d.Moved) > 1e-9) {
			t.Fatalf("gained %v, lost %v, moved %v", gained, lost, d.Moved)
		}
		if math.Abs(moved-d.Moved) > 1e-9 {
			t.Fatalf("arcs add up to %v, Moved is %v", moved, d.Moved)
		}
		for _, pos := range rapid.SliceOfN(rapid.OneOf(genPos(before), genPos(after)), 1, 20).Draw(t, "positions") {
			o1, _ := before.OwnerAt(pos)
			o2, _ := after.OwnerAt(pos)
			c, changed := d.At(pos)
			if changed != (o1 != o2) || changed && (c.From != o1 || c.To != o2) {
				t.Fatalf("at %#x owners %q → %q, but Diff says %v, %v", pos, o1, o2, c, changed)
			}
		}
	})
}

// TestPropertyBadInputNeverPanics feeds New and the lookups anything at all.
func TestPropertyBadInputNeverPanics(t *testing.T) {
	sentinels := []error{ErrBadConfig, ErrEmptyName, ErrZeroWeight, ErrDuplicateMember, ErrTooManyVNodes}
	rapid.Check(t, func(t *rapid.T) {
		ms := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Member {
			return Member{
				Name:   rapid.StringMatching(`[ab]{0,2}`).Draw(t, "name"),
				Weight: rapid.OneOf(rapid.IntRange(-2, 3), rapid.Just(math.MaxInt), rapid.Just(math.MinInt)).Draw(t, "weight"),
			}
		}), 0, 6).Draw(t, "members")
		cfg := Config{VNodes: rapid.OneOf(rapid.IntRange(-2, 8), rapid.Just(math.MaxInt)).Draw(t, "vnodes")}
		r, err := New(ms, cfg)
		if err != nil {
			if !slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) }) {
				t.Fatalf("New: %v wraps no documented error", err)
			}
			if r != nil {
				t.Fatal("New returned a ring and an error")
			}
		}
		key := rapid.String().Draw(t, "key")
		n := rapid.OneOf(rapid.IntRange(-2, 8), rapid.Just(math.MaxInt), rapid.Just(math.MinInt)).Draw(t, "n")
		_, _ = r.Owner(key)
		_, _ = r.Preference(key, n)
		_, _ = r.AppendPreference(nil, key, n)
		_ = Diff(r, r)
		_ = r.Arcs()
		_ = r.Shares()
		_ = r.String()
	})
}

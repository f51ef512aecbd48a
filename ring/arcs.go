package ring

import (
	"math"
	"math/bits"
)

// Arc is a range of ring positions (see KeyHash) from First to Last, both included. Arcs
// never wrap around the top of the ring: First <= Last, and a range that crosses position 0
// is described as two arcs, one ending at math.MaxUint64 and one starting at 0.
type Arc struct {
	First, Last uint64
}

// Contains reports whether pos lies in the arc.
func (a Arc) Contains(pos uint64) bool {
	return a.First <= pos && pos <= a.Last
}

// Fraction returns the arc's share of the ring: its length over 2^64.
func (a Arc) Fraction() float64 {
	return fraction(0, a.Last-a.First) + 0x1p-64
}

// OwnedArc is an arc and the member that owns every position in it.
type OwnedArc struct {
	Arc
	Owner string
}

// Share is one member's part of the ring.
type Share struct {
	Name   string
	Weight int
	// Fraction is the share of the key space the member owns, from 0 to 1: for keys with
	// well-spread hashes, about the fraction of keys it owns.
	Fraction float64
}

// Arcs returns the ring's ownership: the arcs each member owns, in position order, covering
// the whole ring from 0 to math.MaxUint64, with no two neighbours of the same owner (but the
// first and the last may share one: an arc through 0 is cut there). An empty ring has none.
// The slice is new; the caller may keep it.
func (r *Ring) Arcs() []OwnedArc {
	if r == nil {
		return nil
	}
	segs := r.segments()
	arcs := make([]OwnedArc, len(segs))
	for k, s := range segs {
		arcs[k] = OwnedArc{Arc: Arc{First: s.start, Last: segmentLast(segs, k)}, Owner: r.members[s.owner].Name}
	}
	return arcs
}

// Shares returns every member's share of the key space, sorted by name. The fractions add up
// to 1 (up to rounding); a member's expected share is its weight over the total weight.
func (r *Ring) Shares() []Share {
	if r == nil {
		return nil
	}
	sums := make([]uint128, len(r.members))
	segs := r.segments()
	for k, s := range segs {
		sums[s.owner].addLength(s.start, segmentLast(segs, k))
	}
	shares := make([]Share, len(r.members))
	for i, m := range r.members {
		shares[i] = Share{Name: m.Name, Weight: m.Weight, Fraction: sums[i].fraction()}
	}
	return shares
}

// segment is a run of positions with one owner, from start to the next segment's start.
type segment struct {
	start uint64
	owner uint32
}

// segmentLast returns the last position of segs[k].
func segmentLast(segs []segment, k int) uint64 {
	if k+1 < len(segs) {
		return segs[k+1].start - 1
	}
	return math.MaxUint64
}

// segments returns the ring's ownership as maximal runs in position order, the first
// starting at 0; the last runs to the top of the ring. An empty ring has none.
//
// Between two neighbouring positions a and b (cyclically) holding points, with owners A and
// B (the first member by name at each position), the positions a+t for 0 <= t < b-a belong
// to A where t < b-a-t, to B where t > b-a-t, and at the midpoint (t = b-a-t) to the one
// first by name: exactly what ownerAt computes.
func (r *Ring) segments() []segment {
	pts := r.points
	if len(pts) == 0 {
		return nil
	}
	// Each distinct position is a group, owned by its first point.
	first, last := segment{pts[0].pos, pts[0].owner}, r.groupAt(len(pts)-1)
	if first.start == last.start {
		return []segment{{start: 0, owner: first.owner}}
	}
	out := make([]segment, 0, len(pts)+2)
	add := func(s segment) {
		if len(out) == 0 || s.owner != out[len(out)-1].owner {
			out = append(out, s)
		}
	}
	// The positions from the last group round the top to the first group are split
	// between their owners at s. Position 0 lies among them unless the first group is at 0.
	s, hasSplit := split(last, first)
	topSplit := hasSplit && s > last.start // s lies below the top of the ring
	owner0 := first.owner
	if first.start > 0 && !topSplit && (!hasSplit || s > 0) {
		owner0 = last.owner
	}
	add(segment{0, owner0})
	if hasSplit && !topSplit && s > 0 {
		add(segment{s, first.owner})
	}
	for i := 0; i < len(pts); {
		g := segment{pts[i].pos, pts[i].owner}
		for i++; i < len(pts) && pts[i].pos == g.start; i++ {
		}
		add(g)
		if i < len(pts) {
			if at, ok := split(g, segment{pts[i].pos, pts[i].owner}); ok {
				add(segment{at, pts[i].owner})
			}
		} else if topSplit {
			add(segment{s, first.owner})
		}
	}
	return out
}

// groupAt returns the group (position and first owner) of point i.
func (r *Ring) groupAt(i int) segment {
	for i > 0 && r.points[i-1].pos == r.points[i].pos {
		i--
	}
	return segment{r.points[i].pos, r.points[i].owner}
}

// split returns where the positions from group a up to the next group b stop belonging to
// a's owner and start belonging to b's, and false if both have the same owner or b takes
// none of them.
func split(a, b segment) (uint64, bool) {
	if a.owner == b.owner {
		return 0, false
	}
	gap := b.start - a.start // cyclic
	half := gap / 2          // positions a keeps: t < gap-t, and the midpoint if a is first
	if gap%2 == 1 || a.owner < b.owner {
		half++
	}
	if half >= gap {
		return 0, false
	}
	return a.start + half, true
}

// uint128 sums arc lengths, which can reach 2^64.
type uint128 struct{ hi, lo uint64 }

// addLength adds the length of the arc from first to last, both included.
func (u *uint128) addLength(first, last uint64) {
	var c uint64
	u.lo, c = bits.Add64(u.lo, last-first, 0)
	u.hi += c
	u.lo, c = bits.Add64(u.lo, 1, 0)
	u.hi += c
}

// fraction returns u / 2^64.
func (u uint128) fraction() float64 { return fraction(u.hi, u.lo) }

func fraction(hi, lo uint64) float64 {
	return float64(hi) + float64(lo)*0x1p-64
}

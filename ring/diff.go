package ring

import (
	"math"
	"sort"
	"strings"
)

// DiffResult is what changed between two rings: every arc of the key space whose owner
// changed, and what each member gained and lost. It is what lock handoff and repair need:
// a member hands over the keys in the arcs it lost and takes over those it gained.
type DiffResult struct {
	// Arcs are the arcs whose owner changed, in position order, not overlapping.
	// Neighbouring arcs with the same change are merged into one.
	Arcs []ArcChange
	// Members has every member of either ring, sorted by name, with the fractions of the
	// key space it gained and lost.
	Members []MemberChange
	// Moved is the fraction of the key space whose owner changed: the sum of the arcs'
	// fractions, and of the members' gains (or losses).
	Moved float64
}

// ArcChange is an arc whose owner changed from From to To. From is "" when the old ring was
// empty; To is "" when the new one is.
type ArcChange struct {
	Arc
	From, To string
}

// MemberChange is the fraction of the key space a member gained and lost between two rings.
type MemberChange struct {
	Name         string
	Gained, Lost float64
}

// At returns the change at position pos (see KeyHash), if its owner changed.
func (d DiffResult) At(pos uint64) (ArcChange, bool) {
	i := sort.Search(len(d.Arcs), func(i int) bool { return d.Arcs[i].Last >= pos })
	if i < len(d.Arcs) && d.Arcs[i].Contains(pos) {
		return d.Arcs[i], true
	}
	return ArcChange{}, false
}

// noOwner stands for the owner of every position of an empty ring.
const noOwner = math.MaxUint32

// Diff compares two rings: for every position of the key space, the owner in before against
// the owner in after. Either ring may be empty or nil (no owner anywhere). The rings may
// have different settings. Diff takes time and memory linear in the rings' points.
func Diff(before, after *Ring) DiffResult {
	a, b := before.segmentsOrNone(), after.segmentsOrNone()

	// Members of either ring, by name; ia and ib map each ring's member indexes to them.
	all, ia, ib := mergeMembers(before.membersOrNone(), after.membersOrNone())
	gained := make([]uint128, len(all))
	lost := make([]uint128, len(all))
	var moved uint128
	id := func(m []int, owner uint32) int {
		if owner == noOwner {
			return -1
		}
		return m[owner]
	}

	var res DiffResult
	i, j := 0, 0
	for {
		first := max(a[i].start, b[j].start)
		la, lb := segmentLast(a, i), segmentLast(b, j)
		last := min(la, lb)
		from, to := id(ia, a[i].owner), id(ib, b[j].owner)
		if from != to {
			var fromName, toName string
			if from >= 0 {
				fromName = all[from].Name
				lost[from].addLength(first, last)
			}
			if to >= 0 {
				toName = all[to].Name
				gained[to].addLength(first, last)
			}
			moved.addLength(first, last)
			n := len(res.Arcs)
			if n > 0 && res.Arcs[n-1].Last == first-1 && res.Arcs[n-1].From == fromName && res.Arcs[n-1].To == toName {
				res.Arcs[n-1].Last = last
			} else {
				res.Arcs = append(res.Arcs, ArcChange{Arc: Arc{First: first, Last: last}, From: fromName, To: toName})
			}
		}
		if last == math.MaxUint64 {
			break
		}
		if la == last {
			i++
		}
		if lb == last {
			j++
		}
	}

	res.Members = make([]MemberChange, len(all))
	for k, m := range all {
		res.Members[k] = MemberChange{Name: m.Name, Gained: gained[k].fraction(), Lost: lost[k].fraction()}
	}
	res.Moved = moved.fraction()
	return res
}

// segmentsOrNone returns r's segments, or for an empty ring one segment with no owner.
func (r *Ring) segmentsOrNone() []segment {
	if r == nil || len(r.points) == 0 {
		return []segment{{start: 0, owner: noOwner}}
	}
	return r.segments()
}

func (r *Ring) membersOrNone() []Member {
	if r == nil {
		return nil
	}
	return r.members
}

// mergeMembers returns the members of a and b (each sorted by name) as one list sorted by
// name, and for each of a and b the index in it of each of their members.
func mergeMembers(a, b []Member) (all []Member, ia, ib []int) {
	ia, ib = make([]int, len(a)), make([]int, len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = strings.Compare(a[i].Name, b[j].Name)
		}
		switch {
		case c < 0:
			ia[i] = len(all)
			all = append(all, a[i])
			i++
		case c > 0:
			ib[j] = len(all)
			all = append(all, b[j])
			j++
		default:
			ia[i], ib[j] = len(all), len(all)
			all = append(all, b[j])
			i++
			j++
		}
	}
	return all, ia, ib
}

package ring

import (
	"fmt"
	"slices"
)

// Owner returns the name of the member that owns key: the member with the virtual node
// nearest to KeyHash(key). It returns ErrEmptyKey for the empty key and ErrEmptyRing when
// the ring has no members. It does not allocate.
func (r *Ring) Owner(key string) (string, error) {
	if key == "" {
		return "", ErrEmptyKey
	}
	return r.OwnerAt(KeyHash(key))
}

// OwnerAt returns the name of the member that owns position pos of the ring (see KeyHash),
// or ErrEmptyRing. It does not allocate.
func (r *Ring) OwnerAt(pos uint64) (string, error) {
	if r == nil || len(r.points) == 0 {
		return "", ErrEmptyRing
	}
	return r.members[r.ownerAt(pos)].Name, nil
}

// ownerAt returns the index of the member owning position x of a ring with points: the
// owner of the nearest point, and of two at the same distance the one first by name.
func (r *Ring) ownerAt(x uint64) uint32 {
	pts := r.points
	i := r.successor(x)
	if i == len(pts) {
		i = 0
	}
	next := pts[i] // first of its position's points, so first by name there
	if next.pos == x {
		return next.owner
	}
	j := i - 1
	if j < 0 {
		j = len(pts) - 1
	}
	for r.shared && j > 0 && pts[j-1].pos == pts[j].pos { // points sharing a position: the first
		j--
	}
	prev := pts[j]
	dn, dp := next.pos-x, x-prev.pos // clockwise and counter-clockwise distances
	if dn < dp || (dn == dp && next.owner < prev.owner) {
		return next.owner
	}
	return prev.owner
}

// successor returns the index of the first point at or after position x, len(points) if
// there is none. The ring has points.
func (r *Ring) successor(x uint64) int {
	b := x >> r.shift
	lo, hi := int(r.index[b]), int(r.index[b+1])
	pts := r.points[lo:hi]
	if len(pts) > 8 { // only a crowded bucket: positions are hashes
		i, _ := slices.BinarySearchFunc(pts, x, func(p point, x uint64) int {
			if p.pos < x {
				return -1
			}
			return 1
		})
		return lo + i
	}
	i := 0
	for i < len(pts) && pts[i].pos < x {
		i++
	}
	return lo + i
}

// Preference returns the names of up to n distinct members for key, in order of preference:
// the owner first, then the member with the next nearest virtual node, and so on outward
// from KeyHash(key) in both directions. n is capped at the number of members; n of 0 gives
// an empty list. Errors: ErrEmptyKey, ErrBadCount for n < 0, ErrEmptyRing.
//
// The list is what replication or failover wants: adding a member only inserts it into
// lists, and removing one only takes it out; the others keep their order.
func (r *Ring) Preference(key string, n int) ([]string, error) {
	if err := r.checkPreference(key, n); err != nil {
		return nil, err
	}
	n = min(n, len(r.members))
	return r.appendPreference(make([]string, 0, n), KeyHash(key), n), nil
}

// AppendPreference appends Preference(key, n) to dst and returns the extended slice. It
// does not allocate when dst has room and n is at most 16. On error dst is returned as is.
func (r *Ring) AppendPreference(dst []string, key string, n int) ([]string, error) {
	if err := r.checkPreference(key, n); err != nil {
		return dst, err
	}
	return r.appendPreference(dst, KeyHash(key), min(n, len(r.members))), nil
}

func (r *Ring) checkPreference(key string, n int) error {
	switch {
	case key == "":
		return ErrEmptyKey
	case n < 0:
		return fmt.Errorf("%w: asked for %d members, ask for 0 or more", ErrBadCount, n)
	case r == nil || len(r.points) == 0:
		return ErrEmptyRing
	}
	return nil
}

// smallPreference is the largest n whose members appendPreference tracks on the stack.
const smallPreference = 16

// picked tracks the members a preference list has taken.
type picked struct {
	small [smallPreference]uint32 // the members taken, when the list is short
	taken []uint64                // a bitset of the members taken, when it is long
	n     int                     // members taken
}

// take records member o and reports whether it is new to the list.
func (p *picked) take(o uint32) bool {
	if p.taken != nil {
		if p.taken[o/64]&(1<<(o%64)) != 0 {
			return false
		}
		p.taken[o/64] |= 1 << (o % 64)
	} else {
		if slices.Contains(p.small[:p.n], o) {
			return false
		}
		p.small[p.n] = o
	}
	p.n++
	return true
}

// appendPreference appends the first n (at most the member count) members in order of their
// nearest point's distance from x, and of two at the same distance the one first by name.
//
// It walks the points outward from x with two cursors, clockwise and counter-clockwise,
// visiting each point once, nearest first. Points at the same distance (a key exactly
// between two points, or points sharing a position) are visited as one batch in member
// order.
func (r *Ring) appendPreference(dst []string, x uint64, n int) []string {
	pts := r.points
	cw := r.successor(x)
	if cw == len(pts) {
		cw = 0
	}
	ccw := cw - 1
	if ccw < 0 {
		ccw = len(pts) - 1
	}
	var p picked
	if n > smallPreference {
		p.taken = make([]uint64, (len(r.members)+63)/64)
	}
	for visited := 0; p.n < n && visited < len(pts); {
		dc, da := pts[cw].pos-x, x-pts[ccw].pos
		if dc != da && !r.shared { // the usual case: one point is nearest
			var o uint32
			if dc < da {
				o = pts[cw].owner
				if cw++; cw == len(pts) {
					cw = 0
				}
			} else {
				o = pts[ccw].owner
				if ccw--; ccw < 0 {
					ccw = len(pts) - 1
				}
			}
			visited++
			if p.take(o) {
				dst = append(dst, r.members[o].Name)
			}
			continue
		}

		d := min(dc, da)
		var batchSpace [4]uint32
		batch := batchSpace[:0]
		for visited < len(pts) && pts[cw].pos-x == d {
			batch = append(batch, pts[cw].owner)
			visited++
			if cw++; cw == len(pts) {
				cw = 0
			}
		}
		for visited < len(pts) && x-pts[ccw].pos == d {
			batch = append(batch, pts[ccw].owner)
			visited++
			if ccw--; ccw < 0 {
				ccw = len(pts) - 1
			}
		}
		slices.Sort(batch)
		for _, o := range batch {
			if p.n < n && p.take(o) {
				dst = append(dst, r.members[o].Name)
			}
		}
	}
	return dst
}

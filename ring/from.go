package ring

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

// NewFrom returns the ring New(members, cfg) returns, built with the help of prev, an
// earlier ring: the virtual nodes of the members both have (same name, same weight, same
// VNodes) are taken from prev instead of being hashed and sorted again, and only the
// newcomers' are placed. A membership change of a few members then costs one pass over the
// ring's points instead of a hash of each and a sort. prev is not changed and may be nil
// (NewFrom is then New). The result is the same ring, point for point, whatever prev is.
//
// A peer that rebuilds its ring on every membership change passes its current ring: with
// 200 members and 128 virtual nodes, a rebuild after one member comes back is several
// times cheaper than New (BenchmarkNewFrom).
func NewFrom(prev *Ring, members []Member, cfg Config) (*Ring, error) {
	return buildFrom(prev, members, cfg, vnodePosition)
}

func buildFrom(prev *Ring, members []Member, cfg Config, position positionFunc) (*Ring, error) {
	if prev == nil || prev.vnodes != cfg.VNodes || len(prev.points) == 0 {
		return build(members, cfg, position)
	}
	ms, total, err := sortedMembers(members, cfg)
	if err != nil {
		return nil, err
	}
	r := &Ring{members: ms, vnodes: cfg.VNodes, checksum: checksum(ms, cfg.VNodes)}
	if total == 0 {
		return r, nil
	}
	// Walk both member lists (each sorted by name): remap[o] is the new index of prev's
	// member o, or -1 if it is gone or changed weight; added are the new indices of the
	// members whose virtual nodes must be placed.
	remap := make([]int32, len(prev.members))
	var added []int
	addedPoints := 0
	i, j := 0, 0
	for i < len(prev.members) || j < len(ms) {
		c := 0
		switch {
		case i == len(prev.members):
			c = 1
		case j == len(ms):
			c = -1
		default:
			c = strings.Compare(prev.members[i].Name, ms[j].Name)
		}
		switch {
		case c < 0: // gone
			remap[i] = -1
			i++
		case c > 0: // new
			added = append(added, j)
			addedPoints += ms[j].Weight * cfg.VNodes
			j++
		case prev.members[i].Weight != ms[j].Weight: // placed anew
			remap[i] = -1
			added = append(added, j)
			addedPoints += ms[j].Weight * cfg.VNodes
			i++
			j++
		default:
			remap[i] = int32(j)
			i++
			j++
		}
	}
	if 2*addedPoints > total {
		// Mostly new points: a full build is as cheap.
		return build(members, cfg, position)
	}
	fresh := make([]point, 0, addedPoints)
	var buf []byte
	for _, owner := range added {
		m := ms[owner]
		for v := range m.Weight * cfg.VNodes {
			var pos uint64
			pos, buf = position(buf, m.Name, v)
			fresh = append(fresh, point{pos: pos, owner: uint32(owner)})
		}
	}
	slices.SortFunc(fresh, comparePoints)
	// Merge prev's kept points, renumbered (the renumbering keeps their order: members keep
	// their relative rank by name), with the fresh ones, by (position, owner) as
	// sortAndIndex orders them.
	pts := make([]point, 0, total)
	f := 0
	for _, p := range prev.points {
		o := remap[p.owner]
		if o < 0 {
			continue
		}
		q := point{pos: p.pos, owner: uint32(o)}
		for f < len(fresh) && (fresh[f].pos < q.pos || fresh[f].pos == q.pos && fresh[f].owner < q.owner) {
			pts = append(pts, fresh[f])
			f++
		}
		pts = append(pts, q)
	}
	pts = append(pts, fresh[f:]...)
	r.points = pts
	r.index, r.shift = indexSorted(pts)
	r.shared = sharesPositions(pts)
	return r, nil
}

// comparePoints orders points by position, then by member.
func comparePoints(p, q point) int {
	return cmp.Or(cmp.Compare(p.pos, q.pos), cmp.Compare(p.owner, q.owner))
}

// indexSorted returns the bucket index of sorted points and its shift, as sortAndIndex
// does: 2^k buckets for the smallest k with 2^k > len(pts), index[b] the number of points
// in buckets below b.
func indexSorted(pts []point) (index []uint32, shift uint) {
	k := bits.Len(uint(len(pts)))
	shift = uint(64 - k)
	index = make([]uint32, 1<<k+1)
	for _, p := range pts {
		index[p.pos>>shift+1]++
	}
	for b := 1; b < len(index); b++ {
		index[b] += index[b-1]
	}
	return index, shift
}

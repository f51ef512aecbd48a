package ring

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Member is one participant of a ring.
type Member struct {
	// Name identifies the member: non-empty and unique within a ring. Keys are placed by
	// name, so a peer that keeps its name across restarts keeps its keys.
	Name string
	// Weight is the member's relative capacity, 1 or more. A member of weight 2 has twice
	// the virtual nodes, so about twice the keys, of a member of weight 1.
	Weight int
}

// point is one virtual node: a position on the ring and the member it belongs to.
type point struct {
	pos   uint64
	owner uint32 // index into Ring.members
}

// Ring is an immutable consistent-hash ring: keys are placed on a circle of 2^64 positions,
// members sit at Weight × Config.VNodes virtual nodes each, and a key belongs to the member
// with the virtual node nearest to it (see the package documentation for the exact rule).
//
// A Ring never changes after New returns it, so any number of goroutines may use it at once
// with no lock. To follow membership, build a new Ring and swap it in (for example with
// atomic.Pointer[Ring]); readers of the old one are not disturbed. A nil *Ring is an empty
// ring: its lookups return ErrEmptyRing.
type Ring struct {
	members []Member // sorted by name; a member's index is its rank by name
	points  []point  // every virtual node, sorted by (pos, owner)
	// index[b] is the number of points whose top bits (pos >> shift) are below b, so the
	// points of bucket b are points[index[b]:index[b+1]]. With at least as many buckets as
	// points, a lookup reads about one bucket entry and one or two points.
	index    []uint32
	shift    uint
	shared   bool   // whether two points share a position (rare: a 64-bit hash collision)
	vnodes   int    // Config.VNodes
	checksum uint64 // see Checksum
}

// New builds a ring of members with the settings in cfg. The ring depends only on the set of
// members and cfg, never on the order of members. New neither changes nor keeps members.
//
// With no members New returns an empty ring, whose lookups return ErrEmptyRing: a peer can
// start with an empty ring and build a fuller one as members join.
//
// New returns an error wrapping ErrBadConfig, ErrEmptyName, ErrZeroWeight,
// ErrDuplicateMember or ErrTooManyVNodes, naming the member at fault.
func New(members []Member, cfg Config) (*Ring, error) {
	return build(members, cfg, vnodePosition)
}

// positionFunc places virtual node i of a member; tests replace vnodePosition with one they
// can compute by hand.
type positionFunc func(buf []byte, name string, i int) (uint64, []byte)

func build(members []Member, cfg Config, position positionFunc) (*Ring, error) {
	ms, total, err := sortedMembers(members, cfg)
	if err != nil {
		return nil, err
	}
	r := &Ring{members: ms, vnodes: cfg.VNodes, checksum: checksum(ms, cfg.VNodes)}
	if total == 0 {
		return r, nil
	}
	placed := make([]point, 0, total) // in member order
	var buf []byte
	for owner, m := range ms {
		for i := range m.Weight * cfg.VNodes {
			var pos uint64
			pos, buf = position(buf, m.Name, i)
			placed = append(placed, point{pos: pos, owner: uint32(owner)})
		}
	}
	r.points, r.index, r.shift = sortAndIndex(placed)
	r.shared = sharesPositions(r.points)
	return r, nil
}

// sortedMembers checks members against cfg and returns a copy sorted by name, with the
// number of virtual nodes they make.
func sortedMembers(members []Member, cfg Config) ([]Member, int, error) {
	if err := cfg.Validate(); err != nil {
		return nil, 0, err
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	total := 0
	for i, m := range ms {
		switch {
		case m.Name == "":
			return nil, 0, fmt.Errorf("%w: give every member a name", ErrEmptyName)
		case m.Weight < 1:
			return nil, 0, fmt.Errorf("%w: member %q has weight %d, give it 1 or more", ErrZeroWeight, m.Name, m.Weight)
		case i > 0 && ms[i-1].Name == m.Name:
			return nil, 0, fmt.Errorf("%w: %q appears more than once, list each member once", ErrDuplicateMember, m.Name)
		case m.Weight > (MaxPoints-total)/cfg.VNodes:
			return nil, 0, fmt.Errorf("%w: member %q with weight %d takes the ring past %d virtual nodes at %d per unit of weight; lower the weights or Config.VNodes",
				ErrTooManyVNodes, m.Name, m.Weight, MaxPoints, cfg.VNodes)
		}
		total += m.Weight * cfg.VNodes
	}
	return ms, total, nil
}

// sharesPositions reports whether two of the sorted points sit at one position.
func sharesPositions(pts []point) bool {
	for i := 1; i < len(pts); i++ {
		if pts[i].pos == pts[i-1].pos {
			return true
		}
	}
	return false
}

// sortAndIndex returns placed (at least one point, in member order) sorted by position and
// at the same position by member, with the bucket index of the sorted points and its shift.
//
// It sorts by counting: a pass counts the points of each bucket (the top bits of their
// position), a pass moves each point to its bucket, keeping their order, and each bucket,
// holding about one point, is sorted on its own. That is linear in the points, several
// times faster than a comparison sort of the ring.
func sortAndIndex(placed []point) (pts []point, index []uint32, shift uint) {
	k := bits.Len(uint(len(placed))) // 2^k buckets > len(placed)
	shift = uint(64 - k)
	index = make([]uint32, 1<<k+1)
	for _, p := range placed {
		index[p.pos>>shift]++
	}
	for b := 1; b < len(index); b++ { // index[b]: the end of bucket b
		index[b] += index[b-1]
	}
	pts = make([]point, len(placed))
	for i := len(placed) - 1; i >= 0; i-- { // backwards, so index[b] ends at the start of b
		b := placed[i].pos >> shift
		index[b]--
		pts[index[b]] = placed[i]
	}
	for b := range len(index) - 1 {
		bucket := pts[index[b]:index[b+1]]
		if len(bucket) > 16 {
			slices.SortStableFunc(bucket, func(p, q point) int { return cmp.Compare(p.pos, q.pos) })
			continue
		}
		for i := 1; i < len(bucket); i++ { // insertion sort, stable: members stay in order
			for j := i; j > 0 && bucket[j].pos < bucket[j-1].pos; j-- {
				bucket[j], bucket[j-1] = bucket[j-1], bucket[j]
			}
		}
	}
	return pts, index, shift
}

// Members returns the members, sorted by name. The slice is a copy the caller may keep.
func (r *Ring) Members() []Member {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// Has reports whether a member called name is in the ring.
func (r *Ring) Has(name string) bool {
	_, ok := r.memberIndex(name)
	return ok
}

// memberIndex returns the index of the member called name.
func (r *Ring) memberIndex(name string) (int, bool) {
	if r == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(r.members, name, func(m Member, name string) int {
		return strings.Compare(m.Name, name)
	})
}

// VNodes returns the number of virtual nodes per unit of weight the ring was built with
// (Config.VNodes), 0 for a nil ring.
func (r *Ring) VNodes() int {
	if r == nil {
		return 0
	}
	return r.vnodes
}

// Points returns the number of virtual nodes on the ring: the sum of Weight × VNodes.
func (r *Ring) Points() int {
	if r == nil {
		return 0
	}
	return len(r.points)
}

// Checksum returns a 64-bit fingerprint of everything that decides where keys go: the
// placement Version, Config.VNodes and every member's name and weight. Two rings with the
// same checksum place every key the same way, whatever order their members were given in;
// peers compare checksums to see that they share a view. A nil ring has the checksum of no
// members at VNodes 0, which no ring New builds has.
func (r *Ring) Checksum() uint64 {
	if r == nil {
		return checksum(nil, 0)
	}
	return r.checksum
}

// ChecksumHex returns Checksum as 16 lower-case hex digits.
func (r *Ring) ChecksumHex() string {
	s := strconv.FormatUint(r.Checksum(), 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// String describes the ring for logs, for example
// "ring{members: 3, vnodes: 128, checksum: 5c0d4ab1c3e2f901}".
func (r *Ring) String() string {
	return fmt.Sprintf("ring{members: %d, vnodes: %d, checksum: %s}", r.Len(), r.VNodes(), r.ChecksumHex())
}

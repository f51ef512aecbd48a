package lockmgr

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Limits on a voter set.
const (
	// MaxVoters is the most members a VoterSet holds.
	MaxVoters = 1024
	// MaxMemberLen is the longest member name, in bytes (serf node names are shorter).
	MaxMemberLen = 256
	// MaxProposerLen is the longest Ballot.Proposer: a member name, '#' and 16 hex digits.
	MaxProposerLen = MaxMemberLen + 17
)

// VoterSet is a committed voter set: the role=peer members whose strict majority promises
// ownership leases. Version 1 is the bootstrap set (BootstrapSet); each later version
// differs from the one before by exactly one member (Apply). Cluster names the history the
// set belongs to: BootstrapSet derives it from the bootstrap members, and Apply keeps it, so
// two clusters formed apart have different Cluster values even when their versions match.
//
// Members is sorted and holds no duplicates. The zero VoterSet (Version 0) means "no
// committed set yet". A VoterSet is a value: its methods never change it, and a set returned
// by this package shares no slice with another.
type VoterSet struct {
	Cluster uint64
	Version uint64
	Members []string
}

// BootstrapSet returns version 1 of a new cluster's voter set: names, sorted and without
// duplicates, with Cluster derived from them (FNV-1a over the sorted names), so every peer
// that forms it from the same names forms the same set. It refuses an empty list, an empty
// or too long name and more than MaxVoters names with ErrBadVoterSet.
func BootstrapSet(names []string) (VoterSet, error) {
	m := slices.Clone(names)
	slices.Sort(m)
	m = slices.Compact(m)
	h := fnv.New64a()
	for _, n := range m {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	s := VoterSet{Cluster: h.Sum64(), Version: 1, Members: m}
	if err := s.Validate(); err != nil {
		return VoterSet{}, err
	}
	return s, nil
}

// Validate reports why s is not a usable committed set (ErrBadVoterSet): version 0, no
// members, more than MaxVoters, an empty or too long name, or members not sorted and unique.
func (s VoterSet) Validate() error {
	switch {
	case s.Version == 0:
		return fmt.Errorf("%w: version 0", ErrBadVoterSet)
	case len(s.Members) == 0 || len(s.Members) > MaxVoters:
		return fmt.Errorf("%w: %d members, must be from 1 to %d", ErrBadVoterSet, len(s.Members), MaxVoters)
	}
	for i, m := range s.Members {
		if err := checkMember(m); err != nil {
			return fmt.Errorf("%w: %w", ErrBadVoterSet, err)
		}
		if i > 0 && s.Members[i-1] >= m {
			return fmt.Errorf("%w: members not sorted and unique at %q", ErrBadVoterSet, m)
		}
	}
	return nil
}

func checkMember(m string) error {
	if m == "" || len(m) > MaxMemberLen {
		return fmt.Errorf("member name of %d bytes, must be from 1 to %d", len(m), MaxMemberLen)
	}
	return nil
}

// Majority is the number of distinct members that form a strict majority of s: len/2 + 1.
func (s VoterSet) Majority() int { return len(s.Members)/2 + 1 }

// Contains reports whether name is a member of s.
func (s VoterSet) Contains(name string) bool {
	_, ok := slices.BinarySearch(s.Members, name)
	return ok
}

// Equal reports whether s and o are the same set: same cluster, version and members.
func (s VoterSet) Equal(o VoterSet) bool {
	return s.Cluster == o.Cluster && s.Version == o.Version && slices.Equal(s.Members, o.Members)
}

// Apply returns the next version of s with c applied, or an error wrapping
// ErrBadVoterChange when c adds a member of s, removes a non-member, would empty the set or
// grow it past MaxVoters, or has a bad name or op; s must be a valid set (else
// ErrBadVoterSet).
func (s VoterSet) Apply(c VoterChange) (VoterSet, error) {
	if err := s.Validate(); err != nil {
		return VoterSet{}, err
	}
	if err := c.Validate(); err != nil {
		return VoterSet{}, err
	}
	i, in := slices.BinarySearch(s.Members, c.Member)
	next := VoterSet{Cluster: s.Cluster, Version: s.Version + 1}
	switch {
	case c.Op == VoterAdd && in:
		return VoterSet{}, fmt.Errorf("%w: %v, already a voter of version %d", ErrBadVoterChange, c, s.Version)
	case c.Op == VoterAdd && len(s.Members) >= MaxVoters:
		return VoterSet{}, fmt.Errorf("%w: %v, the set already has %d voters", ErrBadVoterChange, c, MaxVoters)
	case c.Op == VoterAdd:
		next.Members = slices.Insert(slices.Clip(slices.Clone(s.Members)), i, c.Member)
	case !in:
		return VoterSet{}, fmt.Errorf("%w: %v, not a voter of version %d", ErrBadVoterChange, c, s.Version)
	case len(s.Members) == 1:
		return VoterSet{}, fmt.Errorf("%w: %v would leave no voters", ErrBadVoterChange, c)
	default:
		next.Members = slices.Delete(slices.Clone(s.Members), i, i+1)
	}
	return next, nil
}

// Diff returns the change that turns s into next, when next is s's successor (same
// cluster, version one above, exactly one member added or removed).
func (s VoterSet) Diff(next VoterSet) (VoterChange, bool) {
	if s.Cluster != next.Cluster || next.Version != s.Version+1 {
		return VoterChange{}, false
	}
	var c VoterChange
	switch len(next.Members) - len(s.Members) {
	case 1:
		c.Op = VoterAdd
		for _, m := range next.Members {
			if !s.Contains(m) {
				c.Member = m
				break
			}
		}
	case -1:
		c.Op = VoterRemove
		for _, m := range s.Members {
			if !next.Contains(m) {
				c.Member = m
				break
			}
		}
	default:
		return VoterChange{}, false
	}
	if got, err := s.Apply(c); err != nil || !got.Equal(next) {
		return VoterChange{}, false
	}
	return c, true
}

func (s VoterSet) String() string {
	return fmt.Sprintf("voters %x/v%d [%s]", s.Cluster, s.Version, strings.Join(s.Members, " "))
}

// VoterOp is what a VoterChange does.
type VoterOp uint8

const (
	// VoterAdd adds a member (a role=peer member that joined).
	VoterAdd VoterOp = 1
	// VoterRemove removes a member (a graceful leave or `peer force-leave`; never a failure).
	VoterRemove VoterOp = 2
)

func (o VoterOp) String() string {
	switch o {
	case VoterAdd:
		return "add"
	case VoterRemove:
		return "remove"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// VoterChange is one member added to or removed from a voter set.
type VoterChange struct {
	Op     VoterOp
	Member string
}

// Validate reports a bad op or member name (ErrBadVoterChange).
func (c VoterChange) Validate() error {
	if c.Op != VoterAdd && c.Op != VoterRemove {
		return fmt.Errorf("%w: %v", ErrBadVoterChange, c.Op)
	}
	if err := checkMember(c.Member); err != nil {
		return fmt.Errorf("%w: %w", ErrBadVoterChange, err)
	}
	return nil
}

func (c VoterChange) String() string { return c.Op.String() + " " + c.Member }

// Ballot orders the proposals for one voter-set version: by Round, then by Proposer, which
// names one VoterProposer (its peer's name, '#' and 16 random hex digits), so two proposers
// never use the same ballot. The zero Ballot is below every real one and means "none".
type Ballot struct {
	Round    uint64
	Proposer string
}

// Compare returns -1, 0 or +1 as b is below, equal to or above o.
func (b Ballot) Compare(o Ballot) int {
	if c := cmp.Compare(b.Round, o.Round); c != 0 {
		return c
	}
	return strings.Compare(b.Proposer, o.Proposer)
}

// IsZero reports whether b is the zero ballot ("none").
func (b Ballot) IsZero() bool { return b.Round == 0 && b.Proposer == "" }

func (b Ballot) String() string { return fmt.Sprintf("%d.%s", b.Round, b.Proposer) }

func (b Ballot) validate() error {
	if b.Round == 0 {
		return fmt.Errorf("%w: ballot round 0", ErrBadVoterMsg)
	}
	if b.Proposer == "" || len(b.Proposer) > MaxProposerLen {
		return fmt.Errorf("%w: ballot proposer of %d bytes, must be from 1 to %d", ErrBadVoterMsg, len(b.Proposer), MaxProposerLen)
	}
	return nil
}

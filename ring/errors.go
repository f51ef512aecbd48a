package ring

import "errors"

// Errors returned by this package. Match them with errors.Is: the package wraps them with
// detail (which member, which value, what to do).
var (
	// ErrEmptyRing is returned by Owner, OwnerAt, Preference and AppendPreference of a ring
	// with no members (including a nil *Ring). It is not a failure of the ring: the caller
	// has no peer to send the key to yet, and should wait for one to join.
	ErrEmptyRing = errors.New("ring: ring has no members")

	// ErrEmptyKey is returned by Owner, Preference and AppendPreference for the empty key.
	ErrEmptyKey = errors.New("ring: empty key")

	// ErrBadCount is returned by Preference and AppendPreference for a negative count.
	ErrBadCount = errors.New("ring: bad preference count")

	// ErrZeroWeight is returned by New for a member whose weight is below 1.
	ErrZeroWeight = errors.New("ring: member weight below 1")

	// ErrDuplicateMember is returned by New when two members have the same name.
	ErrDuplicateMember = errors.New("ring: duplicate member")

	// ErrEmptyName is returned by New for a member with an empty name.
	ErrEmptyName = errors.New("ring: empty member name")

	// ErrTooManyVNodes is returned by New when the members' weights times Config.VNodes add
	// up to more than MaxPoints virtual nodes.
	ErrTooManyVNodes = errors.New("ring: too many virtual nodes")

	// ErrBadConfig is returned by Config.Validate and New for an unusable Config.
	ErrBadConfig = errors.New("ring: bad config")
)

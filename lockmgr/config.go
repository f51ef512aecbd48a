package lockmgr

import (
	"fmt"
	"io"
	"time"
)

// Limits on what a table holds.
const (
	// MinTTL is the shortest lease a table grants.
	MinTTL = time.Second
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 1024
	// MaxHolderLen is the longest holder label, in bytes.
	MaxHolderLen = 256
	// MaxWaitersLimit is the largest Config.MaxWaiters, and the most waiters a decoded
	// KeyState may carry.
	MaxWaitersLimit = 1 << 16
)

// Config holds the settings of a Table and an Acceptor. LockDelay and DriftMargin must be the
// same on every peer of a cluster (the agent carries LockDelay in serf tags).
type Config struct {
	// LockDelay is the promise period: the longest an acceptor promises a key to one owner,
	// and so the longest a dead owner's keys stay ungrantable. DefaultConfig sets 15 s.
	LockDelay time.Duration

	// DriftMargin is how much the clocks of two peers may disagree about a LockDelay
	// (bounded drift). A lock lease must end DriftMargin before the ownership lease it is
	// granted under, so the longest TTL is LockDelay - DriftMargin (MaxTTL). DefaultConfig
	// sets 2 s; it must be at least 0 and leave MaxTTL ≥ MinTTL.
	DriftMargin time.Duration

	// TTLSlack is how much shorter than asked a grant or renewal may be: one whose lease
	// would outlast the ownership (less the drift margin) by at most TTLSlack gets the TTL
	// that fits instead of ErrNotOwned, if that is at least MinTTL. The ownership lease is
	// timed from when its promises were asked for, so a TTL of exactly MaxTTL never fits;
	// the slack lets it through, a few milliseconds short. From 0 to MaxTTL - MinTTL;
	// DefaultConfig sets 0 (the agent sets LockDelay/20).
	TTLSlack time.Duration

	// DefaultTTL is the TTL of an Acquire that asks for 0. From MinTTL to MaxTTL;
	// DefaultConfig sets 10 s.
	DefaultTTL time.Duration

	// MaxWait is the longest wait an Acquire may ask for. At least 0; DefaultConfig sets
	// 5 min.
	MaxWait time.Duration

	// MaxWaiters is the most waiters one key queues. From 1 to MaxWaitersLimit;
	// DefaultConfig sets 1024.
	MaxWaiters int

	// VoterRetry is how often a VoterProposer sends its requests again to the voters that
	// have not answered, and half the longest random wait after a preemption before it
	// tries a higher ballot. Above 0; DefaultConfig sets 1 s.
	VoterRetry time.Duration

	// Rand is the source of lease IDs (16 bytes each) and of a VoterProposer's random
	// waits. Nil means crypto/rand. Tests inject a seeded source; production must use an
	// unpredictable one, since a lease ID is the only proof that a caller holds a lease.
	Rand io.Reader
}

// DefaultConfig returns the settings every peer uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		LockDelay:   15 * time.Second,
		DriftMargin: 2 * time.Second,
		DefaultTTL:  10 * time.Second,
		MaxWait:     5 * time.Minute,
		MaxWaiters:  1024,
		VoterRetry:  time.Second,
	}
}

// MaxTTL is the longest TTL a table grants: LockDelay - DriftMargin.
func (c Config) MaxTTL() time.Duration { return c.LockDelay - c.DriftMargin }

// Validate reports the first unusable setting, wrapping ErrBadConfig. It does not change c.
func (c Config) Validate() error {
	switch {
	case c.DriftMargin < 0:
		return fmt.Errorf("%w: DriftMargin is %v, must be at least 0", ErrBadConfig, c.DriftMargin)
	case c.MaxTTL() < MinTTL:
		return fmt.Errorf("%w: LockDelay %v minus DriftMargin %v leaves %v, below the minimum TTL %v",
			ErrBadConfig, c.LockDelay, c.DriftMargin, c.MaxTTL(), MinTTL)
	case c.DefaultTTL < MinTTL || c.DefaultTTL > c.MaxTTL():
		return fmt.Errorf("%w: DefaultTTL is %v, must be from %v to %v (LockDelay - DriftMargin)",
			ErrBadConfig, c.DefaultTTL, MinTTL, c.MaxTTL())
	case c.TTLSlack < 0 || c.TTLSlack > c.MaxTTL()-MinTTL:
		return fmt.Errorf("%w: TTLSlack is %v, must be from 0 to %v (MaxTTL - MinTTL)", ErrBadConfig, c.TTLSlack, c.MaxTTL()-MinTTL)
	case c.MaxWait < 0:
		return fmt.Errorf("%w: MaxWait is %v, must be at least 0", ErrBadConfig, c.MaxWait)
	case c.MaxWaiters < 1 || c.MaxWaiters > MaxWaitersLimit:
		return fmt.Errorf("%w: MaxWaiters is %d, must be from 1 to %d", ErrBadConfig, c.MaxWaiters, MaxWaitersLimit)
	case c.VoterRetry <= 0:
		return fmt.Errorf("%w: VoterRetry is %v, must be above 0", ErrBadConfig, c.VoterRetry)
	}
	return nil
}

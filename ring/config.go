package ring

import "fmt"

// Limits on the size of a ring. They keep a ring's memory bounded (about 22 bytes per
// virtual node) and its member indexes in 32 bits.
const (
	// MaxVNodes is the largest Config.VNodes.
	MaxVNodes = 1 << 16
	// MaxPoints is the largest number of virtual nodes in one ring: the sum over members of
	// Weight × Config.VNodes.
	MaxPoints = 1 << 24
)

// Config holds the settings of a ring. Every peer of a cluster must use the same Config: two
// rings built from the same members with different settings place keys differently (their
// Checksums differ, so the difference shows).
type Config struct {
	// VNodes is the number of virtual nodes a member gets per unit of weight: a member of
	// weight w sits at w × VNodes points on the ring. More points even out the load (the
	// relative standard deviation of a member's share is about 1/√(2·VNodes)) at the cost
	// of memory (about 22 bytes per point) and build time (about 40 ns per point).
	// From 1 to MaxVNodes; DefaultConfig sets 128. A zero Config is not valid: start from
	// DefaultConfig.
	VNodes int
}

// DefaultConfig returns the settings every peer uses unless told otherwise: 128 virtual
// nodes per unit of weight.
func DefaultConfig() Config {
	return Config{VNodes: 128}
}

// Validate reports the first unusable setting, wrapping ErrBadConfig. It does not change c.
func (c Config) Validate() error {
	if c.VNodes < 1 || c.VNodes > MaxVNodes {
		return fmt.Errorf("%w: VNodes is %d, must be from 1 to %d (DefaultConfig gives %d)",
			ErrBadConfig, c.VNodes, MaxVNodes, DefaultConfig().VNodes)
	}
	return nil
}

package memnet

import (
	"errors"
	"fmt"
	"time"
)

// Config shapes a Network. DefaultConfig gives a working value for every
// field; New rejects a Config that fails Validate and never writes into the
// one it was given.
type Config struct {
	// PacketQueue is how many undelivered packets a gossip Transport holds
	// for its reader (memberlist reads PacketCh). A packet that arrives at a
	// full queue is dropped, like a datagram at a full UDP socket buffer.
	// Default 1024.
	PacketQueue int

	// StreamBuffer is how many bytes each direction of a stream holds
	// between writer and reader (the sender's and receiver's socket buffers
	// together). A writer whose bytes do not fit blocks until the reader
	// makes room, its write deadline passes or either side closes.
	// Default 256 KiB.
	StreamBuffer int

	// AcceptBacklog is how many dialed connections a listener holds until
	// they are accepted (by Accept, or by memberlist reading StreamCh). A
	// dial to a full backlog waits, like a SYN to a full accept queue.
	// Default 128.
	AcceptBacklog int

	// ConnectTimeout bounds a dial whose context has no deadline, standing
	// in for the kernel's connect timeout, so that a dial across a cut link
	// ends even when its caller set no deadline. Default 10 s.
	ConnectTimeout time.Duration

	// Seed seeds the network's random sources: ephemeral port numbers, and
	// which packets SetLoss loses and how much jitter SetLatency adds, so
	// that a run repeats. Default 0, which is as good a seed as any.
	Seed uint64
}

// DefaultConfig returns a Config whose values suit tests and simulations of
// a LAN cluster.
func DefaultConfig() Config {
	return Config{
		PacketQueue:    1024,
		StreamBuffer:   256 << 10,
		AcceptBacklog:  128,
		ConnectTimeout: 10 * time.Second,
	}
}

// Validate reports every field that New would reject, joined into one
// error, or nil. It does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.PacketQueue < 1 {
		errs = append(errs, fmt.Errorf("memnet: PacketQueue is %d; it must be at least 1", c.PacketQueue))
	}
	if c.StreamBuffer < 1 {
		errs = append(errs, fmt.Errorf("memnet: StreamBuffer is %d; it must be at least 1 byte", c.StreamBuffer))
	}
	if c.AcceptBacklog < 1 {
		errs = append(errs, fmt.Errorf("memnet: AcceptBacklog is %d; it must be at least 1", c.AcceptBacklog))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("memnet: ConnectTimeout is %v; it must be positive", c.ConnectTimeout))
	}
	return errors.Join(errs...)
}

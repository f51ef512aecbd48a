package memnet

import (
	"context"
	"errors"
	"os"
)

// Errors of the network itself. Errors of dials, listens and stream or
// packet I/O are *net.OpError values wrapping what a real socket would give,
// so that code written against package net matches them the same way:
//
//   - syscall.ECONNREFUSED: a dial to a port nobody listens on;
//   - syscall.EHOSTUNREACH: a dial to an IP that is not a host;
//   - syscall.EADDRINUSE: a Listen or GossipTransport on a port in use;
//   - syscall.ECONNRESET: a write to a stream whose peer has closed;
//   - syscall.EMSGSIZE: a packet larger than a UDP datagram can be;
//   - net.ErrClosed: I/O on a stream, listener or transport after its Close
//     or Shutdown;
//   - os.ErrDeadlineExceeded: a read or write whose deadline passed; the
//     error's Timeout method reports true;
//   - a timeout error matching both os.ErrDeadlineExceeded and
//     context.DeadlineExceeded: a dial whose context ran out.
var (
	// ErrHostExists is returned by Network.AddHost for an IP that already
	// names a host on the network.
	ErrHostExists = errors.New("memnet: a host with this ip is already on the network")

	// ErrUnknownHost is returned by the fault methods (Partition, Cut,
	// CutOneWay, Isolate, SetLinkLoss, SetLinkLatency, Pause, Resume,
	// SetClock, Crash) for an IP that names no host; add it with AddHost first.
	ErrUnknownHost = errors.New("memnet: no host has this ip; add it with AddHost first")
)

// timeoutError is what a dial returns when its context's deadline passes:
// like net's own dial timeout it says "i/o timeout" and reports Timeout, and
// it matches both os.ErrDeadlineExceeded and context.DeadlineExceeded.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (timeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded
}

// contextError maps a finished context's error the way package net does:
// a passed deadline becomes a timeout error, a cancel stays context.Canceled.
func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return timeoutError{}
	}
	return ctx.Err()
}

package memnet

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// listener is a bound stream port on a host: dials to it wait in a backlog
// of Config.AcceptBacklog conns until accepted. A gossip Transport's
// StreamCh is the backlog itself.
type listener struct {
	host *Host
	addr netip.AddrPort
	// tracker, if not nil, tracks every conn accepted into the backlog (a
	// Transport's, so that its Shutdown closes them).
	tracker *connSet
	backlog chan net.Conn

	closeOnce sync.Once
	// done is closed first thing by Close, waking dials waiting for room.
	done chan struct{}
	// mu guards closed. Dials hold it shared while they put a conn in the
	// backlog, so once Close has taken it no dial can add one more.
	mu     sync.RWMutex
	closed bool
}

var _ net.Listener = (*listener)(nil)

// Listen binds a stream (TCP) listener on this host. addr is ":port" or
// "ip:port" with this host's IP or an unspecified one; port 0 picks a free
// ephemeral port. It fails with an error wrapping syscall.EADDRINUSE if the
// port is taken, by another listener or a gossip Transport.
//
// Listen and DialContext make a Host fit an interface such as
//
//	interface {
//		Listen(addr string) (net.Listener, error)
//		DialContext(ctx context.Context, addr string) (net.Conn, error)
//	}
func (h *Host) Listen(addr string) (net.Listener, error) {
	port, err := h.bindAddr(addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	l, err := h.bindStream(port, nil, func(uint16) bool { return false })
	if err != nil {
		return nil, err
	}
	return l, nil
}

// bindStream binds a listener at port (a free ephemeral one when port is
// 0, skipping ports for which alsoTaken is true). The caller must not hold
// h.mu.
func (h *Host) bindStream(port uint16, tracker *connSet, alsoTaken func(uint16) bool) (*listener, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bindStreamLocked(port, tracker, alsoTaken)
}

// bindStreamLocked is bindStream for a caller that holds h.mu.
func (h *Host) bindStreamLocked(port uint16, tracker *connSet, alsoTaken func(uint16) bool) (*listener, error) {
	taken := func(p uint16) bool {
		_, used := h.listeners[p]
		return used || alsoTaken(p)
	}
	if port == 0 {
		port = h.nextEphemeral(taken)
	}
	bound := tcpAddr(netip.AddrPortFrom(h.ip, port))
	if port == 0 || taken(port) {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: bound, Err: syscall.EADDRINUSE}
	}
	l := &listener{
		host:    h,
		addr:    netip.AddrPortFrom(h.ip, port),
		tracker: tracker,
		backlog: make(chan net.Conn, h.net.cfg.AcceptBacklog),
		done:    make(chan struct{}),
	}
	h.listeners[port] = l
	return l, nil
}

// Accept returns the next dialed conn, or an error wrapping net.ErrClosed
// once the listener is closed.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.opError("accept", net.ErrClosed)
	default:
	}
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, l.opError("accept", net.ErrClosed)
	}
}

// Close unbinds the port, makes Accept fail, and closes conns still in the
// backlog; their dialers read io.EOF. Accepted conns stay open. A second
// Close returns an error wrapping net.ErrClosed.
func (l *listener) Close() error {
	first := false
	l.closeOnce.Do(func() {
		first = true
		l.host.mu.Lock()
		if l.host.listeners[l.addr.Port()] == l {
			delete(l.host.listeners, l.addr.Port())
		}
		l.host.mu.Unlock()
		close(l.done)
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		for {
			select {
			case c := <-l.backlog:
				_ = c.Close()
			default:
				return
			}
		}
	})
	if !first {
		return l.opError("close", net.ErrClosed)
	}
	return nil
}

// Addr returns the bound address, a *net.TCPAddr.
func (l *listener) Addr() net.Addr { return tcpAddr(l.addr) }

func (l *listener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: tcpAddr(l.addr), Err: err}
}

// DialContext opens a stream to addr ("ip:port") from an ephemeral port of
// this host. It fails with syscall.ECONNREFUSED if nobody listens there and
// syscall.EHOSTUNREACH if no host has the IP. While a fault blocks either
// direction between the two hosts (a TCP handshake needs both) the dial
// waits, as a SYN into a silent drop does, and goes through if the fault
// heals in time; it gives up when ctx is done, with a timeout error
// (matching os.ErrDeadlineExceeded and context.DeadlineExceeded) or
// context.Canceled. A ctx without a deadline gets Config.ConnectTimeout, so
// a dial never waits forever.
func (h *Host) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	c, err := h.dial(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// dial is DialContext; tracker, if not nil, tracks the dialing end.
func (h *Host) dial(ctx context.Context, addr string, tracker *connSet) (*conn, error) {
	c, err := h.dialOnce(ctx, addr, tracker)
	if err != nil {
		h.stats.dialsFailed.Add(1)
		return nil, err
	}
	h.stats.dials.Add(1)
	return c, nil
}

func (h *Host) dialOnce(ctx context.Context, addr string, tracker *connSet) (*conn, error) {
	to, err := dialAddr(addr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	h.mu.Lock()
	from := netip.AddrPortFrom(h.ip, h.nextEphemeral(func(p uint16) bool {
		_, listening := h.listeners[p]
		return listening
	}))
	h.mu.Unlock()
	fail := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Source: tcpAddr(from), Addr: tcpAddr(to), Err: err}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.net.cfg.ConnectTimeout)
		defer cancel()
	}
	if ctx.Err() != nil {
		return nil, fail(contextError(ctx))
	}

	// The handshake: wait until both directions are open.
	for {
		f := h.net.faults.Load()
		if !f.route(from.Addr(), to.Addr()).blocked && !f.route(to.Addr(), from.Addr()).blocked {
			break
		}
		select {
		case <-f.changed:
		case <-ctx.Done():
			return nil, fail(contextError(ctx))
		}
	}

	dest := h.net.host(to.Addr())
	if dest == nil {
		return nil, fail(syscall.EHOSTUNREACH)
	}
	dest.mu.RLock()
	l := dest.listeners[to.Port()]
	dest.mu.RUnlock()
	if l == nil {
		return nil, fail(syscall.ECONNREFUSED)
	}

	client, server := newConnPair(h.net, h, from, dest, to)
	h.conns.add(client)
	dest.conns.add(server)
	if tracker != nil && !tracker.add(client) {
		return nil, fail(net.ErrClosed)
	}
	if err := l.enqueue(ctx, server); err != nil {
		_ = client.Close()
		_ = server.Close()
		return nil, fail(err)
	}
	return client, nil
}

// enqueue puts a dialed conn in the backlog, waiting for room until ctx is
// done. It fails with syscall.ECONNREFUSED if the listener is or gets
// closed.
func (l *listener) enqueue(ctx context.Context, c *conn) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return syscall.ECONNREFUSED
	}
	if l.tracker != nil && !l.tracker.add(c) {
		return syscall.ECONNREFUSED
	}
	select {
	case l.backlog <- c:
		return nil
	case <-l.done:
		return syscall.ECONNREFUSED
	case <-ctx.Done():
		return contextError(ctx)
	}
}

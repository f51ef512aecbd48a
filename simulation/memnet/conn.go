package memnet

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// conn is one end of a stream between two hosts, a net.Conn with TCP's
// manners: buffered both ways with a bounded buffer, deadlines, io.EOF
// after the peer closes and its bytes are read, errors for I/O after Close.
// Its addresses are *net.TCPAddr. Safe for concurrent use, like a net.Conn.
type conn struct {
	local, remote *net.TCPAddr
	// in carries the peer's bytes to us, out ours to the peer.
	in, out                     *pipe
	readDeadline, writeDeadline *deadline
	// trackMu guards trackers, the sets told when the conn closes: both
	// hosts', and a Transport's when it dialed or accepted the conn.
	trackMu  sync.Mutex
	trackers []*connSet

	closeOnce sync.Once
	// done is closed by Close.
	done chan struct{}
}

var _ net.Conn = (*conn)(nil)

// newConnPair returns the two ends of a new stream from the dialing host's
// address to the listening host's.
func newConnPair(n *Network, dialer *Host, from netip.AddrPort, listener *Host, to netip.AddrPort) (client, server *conn) {
	up, down := newPipe(n, dialer, listener), newPipe(n, listener, dialer)
	client = &conn{local: tcpAddr(from), remote: tcpAddr(to), in: down, out: up}
	server = &conn{local: tcpAddr(to), remote: tcpAddr(from), in: up, out: down}
	for _, c := range []*conn{client, server} {
		c.readDeadline, c.writeDeadline = newDeadline(), newDeadline()
		c.done = make(chan struct{})
	}
	return client, server
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

// Read reads the peer's bytes. It blocks while there are none, or while a
// fault holds them or latency has not yet let them arrive, until bytes can be read, the peer closes (io.EOF once
// all was read), the read deadline passes (os.ErrDeadlineExceeded) or the
// conn is closed (net.ErrClosed).
func (c *conn) Read(b []byte) (int, error) {
	for {
		if isClosed(c.done) {
			return 0, c.opError("read", net.ErrClosed)
		}
		expired := c.readDeadline.wait()
		if isClosed(expired) {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			return 0, nil
		}
		n, eof, pipeChanged, faultsChanged, wait := c.in.read(b)
		if eof {
			return 0, io.EOF
		}
		if n > 0 {
			return n, nil
		}
		var ready <-chan time.Time
		var timer *time.Timer
		if wait > 0 { // latency: the next bytes are readable after wait
			timer = time.NewTimer(wait)
			ready = timer.C
		}
		select {
		case <-pipeChanged:
		case <-faultsChanged:
		case <-c.done:
		case <-expired:
		case <-ready:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Write puts b in the stream's buffer for the peer to read. When the buffer
// is full it blocks until the peer reads, the write deadline passes
// (os.ErrDeadlineExceeded), the conn is closed (net.ErrClosed) or the
// peer's close reaches it (syscall.ECONNRESET); it returns how much of b
// went in.
func (c *conn) Write(b []byte) (int, error) {
	written := 0
	for {
		if isClosed(c.done) {
			return written, c.opError("write", net.ErrClosed)
		}
		expired := c.writeDeadline.wait()
		if isClosed(expired) {
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
		n, err, changed := c.out.write(b[written:])
		written += n
		if err != nil {
			return written, c.opError("write", err)
		}
		if written == len(b) {
			return written, nil
		}
		if changed != nil {
			select {
			case <-changed:
			case <-c.done:
			case <-expired:
			}
		}
	}
}

// Close closes the conn: its own blocked and later I/O fails with
// net.ErrClosed, the peer reads what was written before and then io.EOF,
// and the peer's unread bytes to it are discarded. A second Close returns
// an error wrapping net.ErrClosed.
func (c *conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.done)
		c.out.closeWrite()
		c.in.closeRead()
		c.trackMu.Lock()
		trackers := c.trackers
		c.trackMu.Unlock()
		for _, s := range trackers {
			s.remove(c)
		}
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines; see net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	if isClosed(c.done) {
		return c.opError("set deadline", net.ErrClosed)
	}
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}

// SetReadDeadline sets the read deadline; see net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error {
	if isClosed(c.done) {
		return c.opError("set deadline", net.ErrClosed)
	}
	c.readDeadline.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline; see net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if isClosed(c.done) {
		return c.opError("set deadline", net.ErrClosed)
	}
	c.writeDeadline.set(t)
	return nil
}

// connSet is a set of open conns: those a Transport closes on Shutdown, or
// those of a host, which Network.Crash closes.
type connSet struct {
	// mu guards conns, which is nil once the set is closed.
	mu    sync.Mutex
	conns map[*conn]struct{}
}

func newConnSet() *connSet { return &connSet{conns: make(map[*conn]struct{})} }

// add tracks c, or reports false if the set is already closed.
func (s *connSet) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	c.trackMu.Lock()
	c.trackers = append(c.trackers, s)
	c.trackMu.Unlock()
	return true
}

func (s *connSet) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// closeEach closes every tracked conn; conns added later are tracked.
func (s *connSet) closeEach() {
	s.mu.Lock()
	conns := s.conns
	if conns != nil {
		s.conns = make(map[*conn]struct{})
	}
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// closeAll closes every tracked conn and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

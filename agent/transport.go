package agent

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// RPCTransport is how the agent listens for and dials peer RPC. The default
// is TCP; simulation/memnet provides an in-memory one.
// Implementations must be safe for concurrent use.
type RPCTransport interface {
	Listen(addr string) (net.Listener, error)
	DialContext(ctx context.Context, addr string) (net.Conn, error)
}

// TCPTransport is the RPCTransport over the host's TCP stack.
type TCPTransport struct{}

var _ RPCTransport = TCPTransport{}

// Listen listens on a TCP address.
func (TCPTransport) Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

// DialContext dials a TCP address.
func (TCPTransport) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// countingTransport wraps a memberlist transport to count gossip bytes for
// the metrics. It forwards inbound packets through its own channel; the
// forwarding goroutine stops when the wrapped transport's packet channel
// closes or Shutdown is called.
type countingTransport struct {
	memberlist.NodeAwareTransport
	sent     func(n int)
	received func(n int)
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(t memberlist.NodeAwareTransport, sent, received func(n int)) *countingTransport {
	c := &countingTransport{
		NodeAwareTransport: t,
		sent:               sent,
		received:           received,
		packets:            make(chan *memberlist.Packet),
		streams:            make(chan net.Conn),
		stop:               make(chan struct{}),
	}
	c.wg.Add(2)
	go c.forwardPackets()
	go c.forwardStreams()
	return c
}

func (c *countingTransport) forwardPackets() {
	defer c.wg.Done()
	in := c.NodeAwareTransport.PacketCh()
	for {
		select {
		case p, ok := <-in:
			if !ok {
				return
			}
			c.received(len(p.Buf))
			select {
			case c.packets <- p:
			case <-c.stop:
				return
			}
		case <-c.stop:
			return
		}
	}
}

func (c *countingTransport) forwardStreams() {
	defer c.wg.Done()
	in := c.NodeAwareTransport.StreamCh()
	for {
		select {
		case conn, ok := <-in:
			if !ok {
				return
			}
			select {
			case c.streams <- &countingConn{Conn: conn, t: c}:
			case <-c.stop:
				conn.Close()
				return
			}
		case <-c.stop:
			return
		}
	}
}

func (c *countingTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *countingTransport) StreamCh() <-chan net.Conn           { return c.streams }

func (c *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t, err := c.NodeAwareTransport.WriteTo(b, addr)
	if err == nil {
		c.sent(len(b))
	}
	return t, err
}

func (c *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t, err := c.NodeAwareTransport.WriteToAddress(b, addr)
	if err == nil {
		c.sent(len(b))
	}
	return t, err
}

func (c *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, t: c}, nil
}

func (c *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, t: c}, nil
}

// Shutdown shuts the wrapped transport down and stops forwarding. Safe to
// call more than once.
func (c *countingTransport) Shutdown() error {
	err := c.NodeAwareTransport.Shutdown()
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	return err
}

type countingConn struct {
	net.Conn
	t *countingTransport
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.received(n)
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.t.sent(n)
	return n, err
}

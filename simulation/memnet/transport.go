package memnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// maxPacket is the largest payload a UDP datagram over IPv4 can carry.
const maxPacket = 65507

// Transport is a memberlist transport bound on one host's IP at one port,
// for packets (UDP) and streams (TCP) alike, as memberlist's NetTransport
// binds both. Set it as memberlist.Config.Transport (or serf's
// MemberlistConfig.Transport). Its methods are safe for concurrent use and
// never block on the network: packets are delivered or dropped at once,
// and dials wait at most their timeout.
type Transport struct {
	host    *Host
	addr    netip.AddrPort
	packets chan *memberlist.Packet
	streams *listener
	// conns holds every open stream this transport dialed or accepted, so
	// Shutdown can close them.
	conns *connSet

	shutdown atomic.Bool
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// GossipTransport binds a memberlist transport on this host's IP at port,
// taking the port for both packets and streams; port 0 picks a free
// ephemeral port. It fails with an error wrapping syscall.EADDRINUSE if
// either is taken. Call Shutdown (memberlist does) to unbind it.
func (h *Host) GossipTransport(port int) (*Transport, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("memnet: gossip port %d is not from 0 to 65535", port)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	conns := newConnSet()
	packetTaken := func(p uint16) bool {
		_, used := h.gossip[p]
		return used
	}
	streams, err := h.bindStreamLocked(uint16(port), conns, packetTaken)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		host:    h,
		addr:    streams.addr,
		packets: make(chan *memberlist.Packet, h.net.cfg.PacketQueue),
		streams: streams,
		conns:   conns,
	}
	h.gossip[t.addr.Port()] = t
	return t, nil
}

// Addr returns the address the transport is bound to, such as
// "10.0.0.1:7946".
func (t *Transport) Addr() string { return t.addr.String() }

// FinalAdvertiseAddr returns the address memberlist advertises: like
// NetTransport, the configured ip and port when ip is set, and otherwise
// the host's IP and the bound port.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return net.IP(t.addr.Addr().AsSlice()), int(t.addr.Port()), nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, 0, fmt.Errorf("memnet: advertise address %q is not an ip literal", ip)
	}
	return net.IP(addr.Unmap().AsSlice()), port, nil
}

// WriteTo sends b as one packet to addr ("ip:port"); see WriteToAddress.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends b as one packet to a.Addr (a.Name is not used),
// with UDP's manners: it never blocks, and a packet is silently dropped if a
// fault blocks the link or loses it, nobody is bound there, or the
// receiver's queue is full. Latency delays its arrival, not the call. It fails only for a bad address, a payload larger than a datagram
// (syscall.EMSGSIZE), or after Shutdown (net.ErrClosed). b may be reused
// once it returns.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	fail := func(dest net.Addr, err error) (time.Time, error) {
		return time.Time{}, &net.OpError{Op: "write", Net: "udp", Source: udpAddr(t.addr), Addr: dest, Err: err}
	}
	if t.shutdown.Load() {
		return fail(nil, net.ErrClosed)
	}
	to, err := dialAddr(a.Addr)
	if err != nil {
		return fail(nil, err)
	}
	if len(b) > maxPacket {
		return fail(udpAddr(to), syscall.EMSGSIZE)
	}
	now := time.Now()
	t.host.net.deliver(t.host, t.addr, to, b, now)
	return now, nil
}

// deliver sends one packet to whatever gossip transport is bound at to,
// or drops it. Its fate is decided by route: when it is sent (blocked,
// lost, delayed) and, for a delayed packet, again when it arrives (a link
// blocked meanwhile drops it, as a packet in flight into a new partition is
// lost).
func (n *Network) deliver(src *Host, from, to netip.AddrPort, b []byte, now time.Time) {
	size := uint64(len(b))
	src.stats.packetsSent.Add(1)
	src.stats.packetBytesSent.Add(size)
	dropped := func() {
		src.stats.packetsDropped.Add(1)
		src.stats.packetBytesDropped.Add(size)
	}
	v := n.faults.Load().route(from.Addr(), to.Addr())
	if v.blocked || n.lose(v) {
		dropped()
		return
	}
	packet := &memberlist.Packet{
		Buf:       append([]byte(nil), b...),
		From:      udpAddr(from),
		Timestamp: now,
	}
	arrive := func() {
		if dest := n.receiver(from, to); dest != nil {
			select {
			case dest.packets <- packet:
				src.stats.packetsDelivered.Add(1)
				src.stats.packetBytesDelivered.Add(size)
				dest.host.stats.packetsReceived.Add(1)
				dest.host.stats.packetBytesReceived.Add(size)
				return
			default: // the receiver's queue is full
			}
		}
		dropped()
	}
	if d := n.delay(v); d > 0 {
		n.inflight.after(d, func() {
			packet.Timestamp = time.Now() // memberlist reads it as the time of receipt
			arrive()
		}, dropped)
		return
	}
	arrive()
}

// receiver returns the open transport a packet from from to to reaches,
// or nil if the packet is lost.
func (n *Network) receiver(from, to netip.AddrPort) *Transport {
	if n.faults.Load().route(from.Addr(), to.Addr()).blocked {
		return nil
	}
	dest := n.host(to.Addr())
	if dest == nil {
		return nil
	}
	dest.mu.RLock()
	t := dest.gossip[to.Port()]
	dest.mu.RUnlock()
	if t == nil || t.shutdown.Load() {
		return nil
	}
	return t
}

// PacketCh returns the packets sent to this transport. It is never closed.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout opens a stream to addr; see DialAddressTimeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr (a.Name is not used) as
// Host.DialContext does, giving up after timeout (Config.ConnectTimeout
// if timeout is not positive). Shutdown closes the stream.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.shutdown.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Source: tcpAddr(t.addr), Err: net.ErrClosed}
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := t.host.dial(ctx, a.Addr, t.conns)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// StreamCh returns the streams dialed to this transport. It is never
// closed. Shutdown closes the streams still in it and those taken from it.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams.backlog }

// Shutdown unbinds the transport, drops packets sent to it from then on,
// refuses dials to it and closes every stream it dialed or accepted, so
// that memberlist's handlers of those streams end. Calling it again does
// nothing and returns nil.
func (t *Transport) Shutdown() error {
	t.stopOnce.Do(func() {
		t.shutdown.Store(true)
		t.host.mu.Lock()
		if t.host.gossip[t.addr.Port()] == t {
			delete(t.host.gossip, t.addr.Port())
		}
		t.host.mu.Unlock()
		_ = t.streams.Close()
		t.conns.closeAll()
	})
	return nil
}

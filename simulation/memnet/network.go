package memnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
)

// Network is one in-memory network: hosts, each with its own IP, that send
// each other packets and streams through one fault policy (faults.go).
//
// A Network owns no goroutine: packets are delivered by their sender's call
// and stream bytes are moved by their reader's. The one exception is
// latency: a delayed packet waits on a timer the network owns, which Close
// stops (inflight.go). All methods are safe for concurrent use.
type Network struct {
	cfg Config

	// faults is the fault picture every delivery decision consults; fault
	// methods swap in a new one whole, serialized by faultMu.
	faults  atomic.Pointer[faults]
	faultMu sync.Mutex

	// mu guards hosts and rng.
	mu    sync.RWMutex
	hosts map[netip.Addr]*Host
	rng   *rand.Rand

	// randMu guards rand, the random source of packet loss and jitter,
	// seeded from Config.Seed apart from rng so that adding hosts does not
	// change the faults' draws.
	randMu sync.Mutex
	rand   *rand.Rand

	// inflight holds the packets latency delays.
	inflight inflight
}

// New returns an empty network, or the error from cfg.Validate. It keeps a
// copy of cfg.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Network{
		cfg:   cfg,
		hosts: make(map[netip.Addr]*Host),
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6d656d6e6574)),
		rand:  rand.New(rand.NewPCG(cfg.Seed^0x6661756c7473, cfg.Seed)),
	}
	n.faults.Store(newFaults())
	return n, nil
}

// AddHost puts a host with the given IP (such as "10.0.0.1") on the network.
// It fails with ErrHostExists if the IP is taken, and with an error naming
// the problem if ip is not a unicast IP literal.
func (n *Network) AddHost(ip string) (*Host, error) {
	addr, err := parseHostIP(ip)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.hosts[addr]; ok {
		return nil, fmt.Errorf("memnet: add host %s: %w", addr, ErrHostExists)
	}
	h := &Host{
		net:       n,
		ip:        addr,
		stats:     new(hostStats),
		clock:     newClock(),
		conns:     newConnSet(),
		listeners: make(map[uint16]*listener),
		gossip:    make(map[uint16]*Transport),
		ephemeral: uint16(ephemeralFirst + n.rng.IntN(ephemeralCount)),
	}
	n.hosts[addr] = h
	return h, nil
}

// host returns the host with the given IP, or nil.
func (n *Network) host(ip netip.Addr) *Host {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.hosts[ip]
}

// Host is one machine on a Network, known by its IP. It binds gossip
// transports and stream listeners on its ports and dials other hosts. All
// methods are safe for concurrent use.
type Host struct {
	net   *Network
	ip    netip.Addr
	stats *hostStats
	clock *Clock
	// conns holds every open stream with an end on this host, for Crash.
	conns *connSet

	// mu guards listeners, gossip and ephemeral: the host's port tables.
	// listeners holds the stream (TCP) ports, gossip the packet (UDP) ports;
	// a gossip Transport holds its port in both.
	mu        sync.RWMutex
	listeners map[uint16]*listener
	gossip    map[uint16]*Transport
	ephemeral uint16
}

// IP returns the host's IP, such as "10.0.0.1".
func (h *Host) IP() string { return h.ip.String() }

// Network returns the network the host is on.
func (h *Host) Network() *Network { return h.net }

// Ephemeral ports, as Linux and IANA number them.
const (
	ephemeralFirst = 49152
	ephemeralCount = 65536 - ephemeralFirst
)

// nextEphemeral returns the next port in the ephemeral range for which
// taken is false, or 0 if none is left. The caller holds h.mu.
func (h *Host) nextEphemeral(taken func(port uint16) bool) uint16 {
	for range ephemeralCount {
		port := h.ephemeral
		h.ephemeral++
		if h.ephemeral == 0 {
			h.ephemeral = ephemeralFirst
		}
		if !taken(port) {
			return port
		}
	}
	return 0
}

// parseHostIP parses a host's IP: a unicast literal, IPv4 or IPv6.
func parseHostIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("memnet: host ip %q is not an ip literal such as 10.0.0.1", s)
	}
	ip = ip.Unmap()
	if ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("memnet: host ip %q must be a unicast address without a zone, such as 10.0.0.1", s)
	}
	return ip, nil
}

// splitAddr splits "host:port" into an IP (invalid when host is empty) and
// a port number; memnet has no DNS, so the host must be an IP literal.
func splitAddr(addr string) (netip.Addr, uint16, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("memnet: address %q is not host:port: %w", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("memnet: address %q: port %q is not a number from 0 to 65535", addr, portText)
	}
	if host == "" {
		return netip.Addr{}, uint16(port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("memnet: address %q: host %q is not an ip literal (memnet has no DNS)", addr, host)
	}
	return ip.Unmap(), uint16(port), nil
}

// bindAddr parses the address h is asked to bind: ":port", or "ip:port"
// where ip is h's own or unspecified (0.0.0.0, ::). Port 0 asks for a free
// ephemeral port.
func (h *Host) bindAddr(addr string) (uint16, error) {
	ip, port, err := splitAddr(addr)
	if err != nil {
		return 0, err
	}
	if ip.IsValid() && !ip.IsUnspecified() && ip != h.ip {
		return 0, fmt.Errorf("memnet: address %q: host %s can bind only its own ip or an unspecified one", addr, h.ip)
	}
	return port, nil
}

// dialAddr parses the address of a dial or packet: "ip:port" with a
// unicast ip and a port that is not 0.
func dialAddr(addr string) (netip.AddrPort, error) {
	ip, port, err := splitAddr(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !ip.IsValid() || ip.IsUnspecified() || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("memnet: address %q: need a host ip and a port that is not 0, such as 10.0.0.1:7946", addr)
	}
	return netip.AddrPortFrom(ip, port), nil
}

func tcpAddr(ap netip.AddrPort) *net.TCPAddr { return net.TCPAddrFromAddrPort(ap) }
func udpAddr(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

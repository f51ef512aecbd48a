package memnet

import "net"

// Crash stops a host's sockets as kill -9 stops a process's: at once and
// with no goodbye, every gossip Transport on it is shut down, every
// listener closed and every stream with an end on it closed. So
//
//   - its peers read the stream bytes it had already written, then io.EOF
//     (once any fault on the link lets them through), and their writes to
//     it fail with syscall.ECONNRESET;
//   - dials to its ports are refused and packets to it are dropped;
//   - code still running on it gets net.ErrClosed from every socket it had;
//     the caller stops that code (an agent's Shutdown, without Leave).
//
// The host stays on the network with its faults and its Clock, and can
// bind its ports again at once: start new code on it to restart it. Sockets
// it opens after Crash returns are not affected. It fails, changing
// nothing, if the IP names no host (ErrUnknownHost).
func (n *Network) Crash(ip string) error {
	ips, err := n.hostIPs(ip)
	if err != nil {
		return err
	}
	h := n.host(ips[0])
	h.mu.RLock()
	var transports []*Transport
	for _, t := range h.gossip {
		transports = append(transports, t)
	}
	var listeners []net.Listener
	for _, l := range h.listeners {
		listeners = append(listeners, l)
	}
	h.mu.RUnlock()
	for _, t := range transports {
		_ = t.Shutdown()
	}
	for _, l := range listeners {
		_ = l.Close() // a Transport's own was closed by its Shutdown: an error, ignored
	}
	h.conns.closeEach()
	return nil
}

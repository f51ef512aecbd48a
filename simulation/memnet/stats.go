package memnet

import "sync/atomic"

// HostStats counts one host's traffic since it was added. Sent, Delivered
// and Dropped count what the host sent (for packets Sent = Delivered +
// Dropped); Received counts what reached it from any host.
type HostStats struct {
	// Packets and their payload bytes. A packet is delivered when it
	// enters the receiving transport's queue; it is dropped by a fault
	// (blocked link, loss, paused host), a full queue, a closed or missing
	// receiver, or Network.Close while latency delays it. Until a delayed
	// packet arrives it is sent but neither delivered nor dropped.
	PacketsSent, PacketsDelivered, PacketsDropped, PacketsReceived                 uint64
	PacketBytesSent, PacketBytesDelivered, PacketBytesDropped, PacketBytesReceived uint64

	// Stream bytes. A byte is sent when a Write puts it in the stream's
	// buffer, delivered when the peer reads it, and dropped when the peer
	// closed before reading it. Bytes held by a fault are sent but not yet
	// delivered.
	StreamBytesSent, StreamBytesDelivered, StreamBytesDropped, StreamBytesReceived uint64

	// Dials this host made that connected, and that failed (refused,
	// unreachable, timed out or canceled).
	Dials, DialsFailed uint64
}

// hostStats is the live, atomically updated form of HostStats.
type hostStats struct {
	packetsSent, packetsDelivered, packetsDropped, packetsReceived                 atomic.Uint64
	packetBytesSent, packetBytesDelivered, packetBytesDropped, packetBytesReceived atomic.Uint64
	streamBytesSent, streamBytesDelivered, streamBytesDropped, streamBytesReceived atomic.Uint64
	dials, dialsFailed                                                             atomic.Uint64
}

func (s *hostStats) snapshot() HostStats {
	return HostStats{
		PacketsSent:          s.packetsSent.Load(),
		PacketsDelivered:     s.packetsDelivered.Load(),
		PacketsDropped:       s.packetsDropped.Load(),
		PacketsReceived:      s.packetsReceived.Load(),
		PacketBytesSent:      s.packetBytesSent.Load(),
		PacketBytesDelivered: s.packetBytesDelivered.Load(),
		PacketBytesDropped:   s.packetBytesDropped.Load(),
		PacketBytesReceived:  s.packetBytesReceived.Load(),
		StreamBytesSent:      s.streamBytesSent.Load(),
		StreamBytesDelivered: s.streamBytesDelivered.Load(),
		StreamBytesDropped:   s.streamBytesDropped.Load(),
		StreamBytesReceived:  s.streamBytesReceived.Load(),
		Dials:                s.dials.Load(),
		DialsFailed:          s.dialsFailed.Load(),
	}
}

// Stats returns every host's counters, keyed by IP. Each counter is read
// atomically, but traffic flowing meanwhile can make counters of one
// snapshot disagree by what was in flight.
func (n *Network) Stats() map[string]HostStats {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make(map[string]HostStats, len(n.hosts))
	for ip, h := range n.hosts {
		out[ip.String()] = h.stats.snapshot()
	}
	return out
}

// Stats returns this host's counters.
func (h *Host) Stats() HostStats { return h.stats.snapshot() }

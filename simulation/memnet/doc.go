// Package memnet is an in-memory network for running many real peers in
// one process: hosts with their own IPs that exchange packets and streams,
// and faults that cut them apart and heal them, each applied atomically.
//
// It carries both kinds of a peer's traffic:
//
//   - gossip: Host.GossipTransport binds a memberlist.NodeAwareTransport
//     on the host's IP, so memberlist and serf run over memnet unchanged;
//   - peer RPC: Host.Listen and Host.DialContext give net.Listener and
//     net.Conn values with TCP's manners (bounded buffers both ways,
//     deadlines, io.EOF after the peer's close, *net.TCPAddr addresses).
//
// Errors are the ones package net gives, as *net.OpError values wrapping
// syscall.ECONNREFUSED, os.ErrDeadlineExceeded, net.ErrClosed and so on, so
// code written for real sockets handles them unchanged; the list is with
// ErrHostExists.
//
// # Faults
//
// Network.Partition, Cut, CutOneWay and Isolate block links; Heal removes
// every fault at once. On a blocked link (from one host to another)
//
//   - packets are dropped;
//   - stream bytes already written or written later are held in the
//     stream's buffer, not lost, as TCP keeps retransmitting into a
//     partition; the reader blocks until its deadline, and the bytes flow
//     when the link heals. A writer blocks only once the buffer is full,
//     and never past its deadline;
//   - a dial waits while either direction is blocked, because a TCP
//     handshake needs both, until its context is done or the link heals.
//     So a one-way cut from→to makes dials both ways hang, while streams
//     already open keep flowing to→from.
//
// Partition puts hosts not listed in any group together in one more group.
//
// Every decision about a packet, a stream read or a dial goes through one
// policy function, so faults such as loss, latency and paused hosts can be
// added there. A Network owns no goroutine: the sender delivers a packet
// and the reader moves stream bytes.
package memnet

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
// Network.SetLoss and SetLinkLoss drop a percentage of packets, all links'
// or one directed link's; streams lose nothing, as TCP retransmits. The
// draws come from a random source seeded by Config.Seed, so the same seed
// and the same order of sends lose the same packets (goroutines that send
// concurrently make the order, and so the draws, vary between runs).
//
// Network.SetLatency and SetLinkLatency delay traffic by a base plus a
// seeded random jitter: a packet arrives late (and may overtake others), a
// stream write's bytes become readable late but in order. Senders never
// wait for latency.
//
// Network.Pause stops a host like SIGSTOP or a long GC pause: packets to
// and from it are dropped, its stream bytes and dials wait, and its Clock
// stands still with its timers, until Resume or Heal, when the clock jumps
// forward and due timers fire.
//
// Network.Crash closes every socket of a host at once, as kill -9 would:
// peers read what it sent, then io.EOF; its ports are free for a restart.
//
// Each host has a Clock (Host.Clock) with Now and NewTimer; Network.SetClock
// gives it a skew and a drift of at most MaxClockDrift. Heal leaves clocks
// as they are.
//
// Heal removes every fault at once: partition, cuts, isolations, loss,
// latency and pauses. Each fault method swaps in a new fault picture whole,
// so no packet or stream byte ever sees half of a change.
//
// # Goroutines
//
// Every decision about a packet, a stream read or a dial goes through one
// policy function. A Network owns no goroutine: the sender delivers a
// packet and the reader moves stream bytes. Two kinds of runtime timer
// exist: a packet delayed by latency waits on a timer the Network owns,
// which Network.Close stops (dropping the packet) and waits for; a Clock's
// Timer waits on a timer that its Stop, or its firing, releases. Neither
// timer's func blocks.
package memnet

// Package simulation runs many real Ringleader agents (the agent package,
// as `peer agent` runs it) in one process on an in-memory faulty network
// (simulation/memnet), drives them through a scenario of faults while
// clients write counters through random peers, and checks what they did.
//
// # Pieces
//
//   - Cluster (cluster.go): one memnet host per peer, each with its own
//     clock and its own crash-simulating pebble filesystem, so a crash
//     keeps exactly what the peer had synced. Crash (kill -9, no leave),
//     restart with the data dir or an empty one, pause, clock skew and
//     drift, partitions, one-way cuts, loss, latency, heal, graceful
//     leave. Every agent timing is divided by Config.Speed.
//   - Scenario (scenario.go): the text format, one step a line, and the
//     built-in library (scenarios/*.txt, embedded).
//   - The workload (clients.go): seeded clients writing increments and
//     decrements with consistency local or majority, each answer recorded
//     as acked, failed or ambiguous with its real-time interval.
//   - Checkers (check.go): after the final heal every running peer's
//     value of every key must be the sum of the acknowledged deltas
//     (ambiguous ones may count once or not at all); all running peers must
//     see the same alive members and ring.
//   - Report (report.go): a summary, the JSON history and an SVG timeline.
//
// Locks are not checked yet: the lock workload and its checkers (no two
// leases on a key overlap in real time, fencing tokens only grow, the
// minority grants nothing) arrive with locks (issue 6).
//
// # Goroutines
//
// Run owns everything it starts: the agents (shut down by Cluster.Close),
// the workload clients (stopped and waited for by each `workload stop` and
// at the end), the timeline sampler, and the timers that resume paused
// peers (stopped by a heal or Close). Every request has a deadline and
// every wait a bound, so a run always ends.
package simulation

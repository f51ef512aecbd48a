// Package simulation runs many real Ringleader agents (the agent package,
// as `peer agent` runs it) in one process on an in-memory faulty network
// (simulation/memnet), drives them through a scenario of faults while
// clients write counters and take locks through random peers, and checks
// what they did.
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
//   - The lock workload (locks.go): seeded clients that acquire a lock key
//     (waiting up to a TTL), hold it a random while (renewing every TTL/3),
//     and release it, each request through a random peer, on a few keys
//     picked so that the first peers each own one (n1 the busy first key).
//     Every request is recorded with its answer (granted with token, lease
//     and owner; held, no-quorum, unavailable, unknown-lease, peer-down,
//     ambiguous) and its real-time interval. The agents' lock-delay and
//     drift margin are scaled like every timing, but the lock-delay never
//     goes under the agent's 2 s floor; `wait locks` waits out the quiet
//     period of freshly started peers.
//   - Checkers (check.go): after the final heal every running peer's
//     value of every key must be the sum of the acknowledged deltas
//     (ambiguous ones may count once or not at all); all running peers must
//     see the same alive members and ring. Locks (reasoning in check.go):
//     no two leases of a key certainly live at the same time; fencing
//     tokens per key grow in the order grants can be told apart; no owner
//     grants from a minority side (by the recorded topology) once the
//     promises it had could have lapsed; refusals counted by reason; the
//     unavailability window of each key an owner held when it crashed.
//   - Report (report.go): a summary, the JSON history and an SVG timeline.
//
// # Deviations from real peers
//
// Besides the timings divided by Config.Speed (with floors under the
// timeouts and the lock-delay), the agents run with gossip compression
// off: memnet has no bandwidth to save, and at 200 peers compressing
// every memberlist packet took an eighth of two cores' CPU. Deviations
// lists them; the summary and the JSON report repeat them.
//
// # Goroutines
//
// Run owns everything it starts: the agents (shut down by Cluster.Close),
// the workload clients (stopped and waited for by each `workload stop` and
// at the end), the timeline sampler, and the timers that resume paused
// peers (stopped by a heal or Close). Every request has a deadline and
// every wait a bound, so a run always ends. A lock request runs in a
// goroutine of its own, as over a connection: the client hangs up when the
// peer stops or long after the deadline (reported as a hung request), and
// the call ends when the agent answers — except a queued acquire on an
// agent that was shut down, which never does (an agent bug; see
// TestAgentBugQueuedAcquireHangsAfterShutdown).
package simulation

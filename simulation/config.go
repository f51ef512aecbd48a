package simulation

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/lockmgr"
)

// Config configures a simulation run. Build it from DefaultConfig; Run
// never writes into it.
type Config struct {
	// Peers overrides the count of the scenario's `start` step (0 keeps
	// the scenario's own). Peer names and ranges written with N (such as
	// n{N/2}) follow it.
	Peers int
	// Seed fixes the workload (which client sends what to which peer) and
	// the network's random draws (loss, jitter). It does not fix goroutine
	// interleavings, so the report keeps the whole history.
	Seed uint64
	// Speed is how many times faster than real time a scenario runs: every
	// agent timing (gossip, probes, spread, anti-entropy, timeouts) and
	// every duration in the scenario is divided by it. 0 picks one for the
	// peer count (AutoSpeed). Timeouts keep floors so that a loaded machine
	// is not mistaken for a failed network.
	Speed float64
	// Clients is how many workload clients run (default 4).
	Clients int
	// Keys is how many counter keys the workload writes (default 8).
	Keys int
	// LockClients is how many lock clients run beside the counter
	// clients (default 3; 0 runs none).
	LockClients int
	// LockKeys is how many lock keys they contend for (default 3).
	LockKeys int
	// Logger gets the agents' logs; nil discards them.
	Logger *slog.Logger
	// Progress, if set, gets one line per scenario step as it starts.
	Progress io.Writer
}

// DefaultConfig returns a config for a quick run.
func DefaultConfig() Config {
	return Config{Seed: 1, Clients: 4, Keys: 8, LockClients: 3, LockKeys: 3}
}

// AutoSpeed is the speed a run of n peers gets when Config.Speed is 0: as
// fast as two cores keep up with before probes start timing out for want of
// CPU and membership flaps (measured: 50 peers flap at 4×, not at 1×; 200
// peers flap at 1× — after a heal of halves, 10 ms timers fired 1-9 s late
// and peers kept marking each other failed, thousands of times a minute,
// to the end of the run — and settle at 0.5×, where the storm ends about
// 15 s after the heal).
func AutoSpeed(n int) float64 {
	switch {
	case n <= 10:
		return 4
	case n <= 25:
		return 2
	case n <= 100:
		return 1
	}
	return 0.5
}

// withSpeed returns c with Speed set for n peers if it was 0.
func (c Config) withSpeed(n int) Config {
	if c.Speed == 0 {
		c.Speed = AutoSpeed(n)
	}
	return c
}

// Validate reports the first unusable setting. It does not change c.
func (c Config) Validate() error {
	if c.Peers < 0 || c.Peers > maxPeers {
		return fmt.Errorf("simulation: peers %d: give 1-%d (or 0 for the scenario's own)", c.Peers, maxPeers)
	}
	if c.Speed != 0 && !(c.Speed >= 0.1 && c.Speed <= 100) {
		return fmt.Errorf("simulation: speed %v: give 0.1-100, or 0 to pick one for the peer count", c.Speed)
	}
	if c.Clients < 1 || c.Clients > 1000 {
		return fmt.Errorf("simulation: clients %d: give 1-1000", c.Clients)
	}
	if c.Keys < 1 || c.Keys > 10000 {
		return fmt.Errorf("simulation: keys %d: give 1-10000", c.Keys)
	}
	if c.LockClients < 0 || c.LockClients > 1000 {
		return fmt.Errorf("simulation: lock clients %d: give 0-1000", c.LockClients)
	}
	if c.LockClients > 0 && (c.LockKeys < 1 || c.LockKeys > 1000) {
		return fmt.Errorf("simulation: lock keys %d: give 1-1000", c.LockKeys)
	}
	return nil
}

// scale turns a scenario (or agent) duration into wall time.
func (c Config) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.Speed)
}

// Floors under the scaled timeouts: a probe, a join or an RPC that times
// out because the machine (two cores, the race detector) was busy would
// look like a network fault the scenario never made.
const (
	floorProbeTimeout    = 100 * time.Millisecond
	floorTCPTimeout      = time.Second
	floorRPCTimeout      = 300 * time.Millisecond
	floorMajorityTimeout = 500 * time.Millisecond
	floorIdentityTimeout = 2 * time.Second
	floorSpreadInterval  = 10 * time.Millisecond
)

// timings returns the agent's gossip timings, RPC timeout and counter
// settings: the defaults divided by Speed, with the floors above.
func (c Config) timings() (agent.Timings, time.Duration, agent.CounterConfig) {
	f := 1 / c.Speed
	t := agent.DefaultTimings().Scaled(f)
	t.ProbeTimeout = max(t.ProbeTimeout, floorProbeTimeout)
	if t.ProbeInterval < 2*t.ProbeTimeout {
		t.ProbeInterval = 2 * t.ProbeTimeout
	}
	t.TCPTimeout = max(t.TCPTimeout, floorTCPTimeout)
	def := agent.DefaultConfig()
	rpc := max(c.scale(def.RPCTimeout), floorRPCTimeout)
	ctr := def.Counters
	ctr.SpreadInterval = max(c.scale(ctr.SpreadInterval), floorSpreadInterval)
	ctr.AntiEntropyInterval = c.scale(ctr.AntiEntropyInterval)
	ctr.MajorityTimeout = max(c.scale(ctr.MajorityTimeout), floorMajorityTimeout)
	ctr.IdentityTimeout = max(c.scale(ctr.IdentityTimeout), floorIdentityTimeout)
	return t, rpc, ctr
}

// gossipCompression is what the agents run with. A real peer compresses
// its gossip; memnet carries bytes for free, and compressing every packet
// cost 200 simulated peers an eighth of the machine's CPU (profile of a
// 200-peer halves run), CPU they need to keep their timers after a heal.
// It changes what goes over the network, not what the agents decide.
const gossipCompression = false

// Deviations lists how the agents of a run differ from `peer agent` with
// its defaults, beyond the timings divided by the speed (with their
// floors); the report shows them.
func Deviations() []string {
	var out []string
	if !gossipCompression {
		out = append(out, "gossip compression off (real peers compress memberlist packets and syncs; the in-memory network has no bandwidth to save)")
	}
	return out
}

// Lock timing floors: the agent refuses a lock-delay under 2 s and a drift
// margin under a twentieth of it.
const floorLockDelay = 2 * time.Second

// lockConfig returns the agent's lock settings: the lock-delay (promise
// period, and the quiet period of a restarted peer) and the drift margin
// divided by Speed, kept at or above the agent's floors (so at high speed
// the lock-delay stays 2 s: locks then fail over more slowly, in scenario
// time, than the rest), and a default TTL no longer than the longest the
// agent grants (lock-delay minus drift margin).
func (c Config) lockConfig() agent.LockConfig {
	lc := agent.DefaultLockConfig()
	lc.LockDelay = max(c.scale(lc.LockDelay), floorLockDelay)
	lc.DriftMargin = max(c.scale(lc.DriftMargin), lc.LockDelay/20)
	lc.DefaultTTL = min(max(c.scale(lc.DefaultTTL), lockmgr.MinTTL), lc.LockDelay-lc.DriftMargin)
	lc.MaxWait = max(c.scale(lc.MaxWait), lc.LockDelay)
	return lc
}

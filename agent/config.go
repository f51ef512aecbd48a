package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"

	"github.com/ringleader/ringleader/lockmgr"
	"github.com/ringleader/ringleader/ring"
)

// ProtocolVersion is the peer protocol this build speaks. It travels in serf
// tags; peers with a different one refuse to merge.
const ProtocolVersion = 1

// Version is the build's version, shown by /v1/status and `peer version`.
var Version = "0.1.0-dev"

// Config configures one agent. Build it from DefaultConfig; New copies it and
// never writes to the caller's value.
type Config struct {
	// NodeName names this peer in the cluster: 1-128 bytes of letters,
	// digits, '-', '.' and '_'. Default: the host name.
	NodeName string
	// BindAddr is the gossip address (UDP and TCP), host:port.
	BindAddr string
	// AdvertiseAddr is the gossip address other peers use, host:port; empty
	// means the bind address, or a private IP of this host when binding to
	// all interfaces.
	AdvertiseAddr string
	// RPCAddr is the peer RPC listen address, host:port.
	RPCAddr string
	// RPCAdvertiseAddr is the peer RPC address other peers dial; empty means
	// the gossip advertise IP with RPCAddr's port.
	RPCAdvertiseAddr string
	// HTTPAddr is the HTTP API address; empty disables the HTTP API.
	HTTPAddr string
	// EnableDebug serves Go's profiler (net/http/pprof) under
	// /debug/pprof/ on the HTTP API.
	EnableDebug bool
	// DataDir holds this peer's durable state: the store (counters,
	// idempotency records, its replica incarnation, the known peers) and
	// serf's snapshot. Empty keeps everything in memory: a restarted peer
	// then starts empty, under a new incarnation, and cannot rejoin by itself
	// (for tests and embedding).
	DataDir string
	// StartJoin are seeds joined during Start; Start fails if none answers.
	StartJoin []string
	// RetryJoin are seeds joined in the background, with backoff from
	// RetryJoinInterval up to RetryJoinMaxInterval, until one answers.
	RetryJoin            []string
	RetryJoinInterval    time.Duration
	RetryJoinMaxInterval time.Duration
	// RejoinAfterLeave lets a peer that left gracefully rejoin from its
	// snapshot when restarted (a restart for a deploy is a leave then a
	// start). Serf's default is false; ours is true.
	RejoinAfterLeave bool
	// EncryptKey is the cluster key: 32 bytes (AES-256-GCM for gossip, and
	// the HMAC key of peer RPC). Empty means no encryption or authentication.
	EncryptKey []byte
	// VNodes is the ring's virtual nodes per member. Cluster-wide: a peer with
	// a different value refuses to join.
	VNodes int
	// Timings are the gossip timings.
	Timings Timings
	// RPCTimeout is the deadline of a peer RPC call without its own.
	RPCTimeout time.Duration
	// Logger gets the agent's logs (serf's and memberlist's too); nil
	// discards them.
	Logger *slog.Logger
	// Clock drives the agent's timers and leases; nil means SystemClock.
	Clock Clock
	// GossipCompression compresses what memberlist sends (LZW, on packets
	// and push-pull streams), as memberlist does by default. Peers read
	// both, so it need not agree across the cluster. Off saves CPU at the
	// cost of bandwidth: the simulation turns it off, since its in-memory
	// network has no bandwidth to save and 200 simulated peers spent an
	// eighth of their CPU compressing. Default true.
	GossipCompression bool
	// GossipTransport replaces the UDP/TCP gossip transport (simulation);
	// BindAddr is then only used for its port.
	GossipTransport memberlist.NodeAwareTransport
	// RPCTransport replaces TCP for peer RPC; nil means TCPTransport.
	RPCTransport RPCTransport
	// StoreFS is the filesystem the data dir's store lives on; nil means the
	// real disk. The simulation passes pebble's crash-simulating vfs.MemFS.
	// Without a DataDir the store is kept in memory whatever this says.
	StoreFS vfs.FS
	// StoreMinSyncInterval is the shortest time between two syncs of the
	// store's write-ahead log. Every acknowledged write is still synced
	// first; while syncs are asked for faster than this, a write waits for
	// the next one and shares it with the writes that arrive meanwhile.
	// The interval runs from the end of one sync to the start of the next.
	// Under load that costs no throughput and saves fsyncs: 100-key batches
	// went from 415,000 to 541,000-550,000 increments/s on a 2-core VM (run
	// interleaved), single increments from 26,600-27,700 to
	// 27,100-27,700/s with a lower p99. An idle peer's write is not
	// delayed. It applies to a data dir on the real disk only (StoreFS nil):
	// syncs of an in-memory store cost nothing. 0 syncs as soon as the sync
	// before ended; at most 10 ms. Default 500 µs.
	StoreMinSyncInterval time.Duration
	// Counters tunes the counter service.
	Counters CounterConfig
	// Locks tunes the lock service.
	Locks LockConfig
}

// LockConfig tunes the lock service (docs/locks.md). LockDelay and
// DriftMargin are cluster-wide: every peer must use the same (they travel
// in serf tags, and a peer whose settings differ is refused).
type LockConfig struct {
	// LockDelay is the promise period: how long an acceptor promises a lock
	// key to one owner, so the longest a dead owner's keys stay
	// ungrantable, and how long a restarted peer promises nothing. Default
	// 15 s.
	LockDelay time.Duration
	// DriftMargin is how much two peers' clocks may disagree about one
	// LockDelay (bounded clock-rate drift). Lock leases end DriftMargin
	// before the ownership lease they are granted under, so the longest TTL
	// is LockDelay - DriftMargin. Default 2 s.
	DriftMargin time.Duration
	// DefaultTTL is the TTL of a request that gives none. Default 10 s.
	DefaultTTL time.Duration
	// MaxWait is the longest wait a request may ask for. Default 5 min.
	MaxWait time.Duration
	// MaxWaiters is how many waiters one key queues. Default 1024.
	MaxWaiters int
	// BootstrapExpect withholds every grant until this many voters have
	// formed (seen as role=peer members that have not left). Default 1.
	BootstrapExpect int
}

// DefaultLockConfig returns the lock defaults.
func DefaultLockConfig() LockConfig {
	d := lockmgr.DefaultConfig()
	return LockConfig{
		LockDelay:       d.LockDelay,
		DriftMargin:     d.DriftMargin,
		DefaultTTL:      d.DefaultTTL,
		MaxWait:         d.MaxWait,
		MaxWaiters:      d.MaxWaiters,
		BootstrapExpect: 1,
	}
}

// lockmgrConfig is the lockmgr configuration these settings make.
func (c LockConfig) lockmgrConfig() lockmgr.Config {
	lc := lockmgr.DefaultConfig()
	lc.LockDelay, lc.DriftMargin, lc.DefaultTTL = c.LockDelay, c.DriftMargin, c.DefaultTTL
	lc.MaxWait, lc.MaxWaiters = c.MaxWait, c.MaxWaiters
	lc.TTLSlack = c.LockDelay / 20
	lc.VoterRetry = c.LockDelay / 15
	return lc
}

func (c LockConfig) validate() error {
	if c.LockDelay < 2*time.Second {
		return fmt.Errorf("agent: lock-delay %v must be at least 2s", c.LockDelay)
	}
	if c.DriftMargin < c.LockDelay/20 {
		return fmt.Errorf("agent: lock drift margin %v must be at least 5%% of the lock-delay %v", c.DriftMargin, c.LockDelay)
	}
	if c.BootstrapExpect < 1 {
		return fmt.Errorf("agent: bootstrap-expect %d must be at least 1", c.BootstrapExpect)
	}
	if maxTTL := c.LockDelay - c.DriftMargin; c.DefaultTTL < lockmgr.MinTTL || c.DefaultTTL > maxTTL {
		return fmt.Errorf("agent: lock-default-ttl %v must be from %v to %v (lock-delay %v minus lock-drift-margin %v)",
			c.DefaultTTL, lockmgr.MinTTL, maxTTL, c.LockDelay, c.DriftMargin)
	}
	if c.MaxWait < 0 {
		return fmt.Errorf("agent: lock-max-wait %v must not be negative", c.MaxWait)
	}
	if err := c.lockmgrConfig().Validate(); err != nil {
		return fmt.Errorf("agent: locks: %w", err)
	}
	return nil
}

// CounterConfig tunes how counters spread, repair and deduplicate.
type CounterConfig struct {
	// SpreadInterval is how often locally written keys are pushed to every
	// alive peer, batched. A locally acknowledged write that was not yet
	// pushed dies with this peer's disk, so this bounds what an empty-dir
	// restart can lose. Default 50 ms.
	SpreadInterval time.Duration
	// AntiEntropyInterval is how often this peer compares digests with one
	// random alive peer and exchanges the keys that differ. It repairs lost
	// pushes, partitions and restarts. Default 1 s.
	AntiEntropyInterval time.Duration
	// MajorityTimeout is how long a consistency=majority write or read
	// waits for a majority of the voters. Default 2 s.
	MajorityTimeout time.Duration
	// IdentityTimeout bounds the startup check of this peer's replica
	// identity against its peers (see crdt's package documentation): writes
	// wait for it; when the peers cannot all be asked in time, the peer takes
	// a new incarnation. Default 10 s.
	IdentityTimeout time.Duration
	// IdempotencyWindow is how long an Idempotency-Key's first answer is kept
	// and replayed to retries. Default 10 min.
	IdempotencyWindow time.Duration
	// IdempotencyMaxRecords bounds the idempotency records this peer keeps;
	// a new idempotent write beyond it is refused (503) until old records
	// expire. Default 1,000,000 (about 150 MB of disk at most).
	IdempotencyMaxRecords int
}

// DefaultCounterConfig returns the counter defaults.
func DefaultCounterConfig() CounterConfig {
	return CounterConfig{
		SpreadInterval:        50 * time.Millisecond,
		AntiEntropyInterval:   time.Second,
		MajorityTimeout:       2 * time.Second,
		IdentityTimeout:       10 * time.Second,
		IdempotencyWindow:     10 * time.Minute,
		IdempotencyMaxRecords: 1_000_000,
	}
}

func (c CounterConfig) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"spread interval", c.SpreadInterval}, {"anti-entropy interval", c.AntiEntropyInterval},
		{"majority timeout", c.MajorityTimeout}, {"identity timeout", c.IdentityTimeout},
		{"idempotency window", c.IdempotencyWindow},
	} {
		if d.v <= 0 {
			return fmt.Errorf("agent: counter %s %v must be positive", d.name, d.v)
		}
	}
	if c.IdempotencyMaxRecords < 1 {
		return fmt.Errorf("agent: idempotency max records %d must be at least 1", c.IdempotencyMaxRecords)
	}
	return nil
}

// Timings are the gossip timings. DefaultTimings matches memberlist's LAN
// profile, with serf's reconnect and memberlist's push-pull tuned (see
// ReconnectInterval, PushPullInterval).
type Timings struct {
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	// PushPullInterval is how often memberlist swaps its whole member
	// table with one random member (memberlist stretches it past 32
	// members: ×2 at 50, ×4 at 200). memberlist's LAN default is 30 s; we
	// use 2 s because a full sync is what repairs a member left
	// marked failed after a healed partition: a failed member comes back
	// only with a higher incarnation, which it takes only when it hears it
	// is suspected, so once the storm of a heal is over a peer still
	// holding a stale "failed" waits for a full sync or for a reconnect
	// (see ReconnectInterval). A sync also carries a whole side's
	// refutations in one stream, where gossip carries about seven to a
	// packet. Measured with 50 simulated peers healing from halves: members
	// agreed 22.9 s and 34.2 s after the heal at 30 s, 2.2 s and 2.5 s at
	// 5 s; with 200 (at 0.5× speed, with the heal reconnects), 10.4 s at
	// 5 s and 9.1 s at 2 s. A sync costs one stream of N member records
	// each way: at 200 peers, about 40 KB each way per peer every 8 s.
	PushPullInterval time.Duration
	SuspicionMult    int
	// ReconnectInterval is how often serf tries to reach a failed member.
	// Serf's default is 30 s, so a healed partition took 1-20 s to be seen
	// (measured); we try every second: a healed partition is seen in a
	// second or two, at the cost of one connection attempt per second while
	// a member is failed. While failed members are coming back the agent
	// adds its own attempts at the same interval (reconnect.go).
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is kept (and retried)
	// before it is reaped.
	ReconnectTimeout time.Duration
	// LeavePropagateDelay is how long Leave waits for its intent to spread.
	LeavePropagateDelay time.Duration
	// TCPTimeout bounds memberlist's stream operations: a join's dial and
	// state exchange, push-pull syncs. memberlist's LAN default is 10 s; 5 s
	// keeps a join toward a silent seed from holding up a shutdown past the
	// 10 s a SIGTERM promises.
	TCPTimeout time.Duration
}

// DefaultTimings returns the LAN timings.
func DefaultTimings() Timings {
	return Timings{
		ProbeInterval:       time.Second,
		ProbeTimeout:        500 * time.Millisecond,
		GossipInterval:      200 * time.Millisecond,
		PushPullInterval:    2 * time.Second,
		SuspicionMult:       4,
		ReconnectInterval:   time.Second,
		ReconnectTimeout:    24 * time.Hour,
		LeavePropagateDelay: time.Second,
		TCPTimeout:          5 * time.Second,
	}
}

// Scaled returns t with every duration multiplied by f (for tests and the
// simulation, which run in fast time).
func (t Timings) Scaled(f float64) Timings {
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	return Timings{
		ProbeInterval:       s(t.ProbeInterval),
		ProbeTimeout:        s(t.ProbeTimeout),
		GossipInterval:      s(t.GossipInterval),
		PushPullInterval:    s(t.PushPullInterval),
		SuspicionMult:       t.SuspicionMult,
		ReconnectInterval:   s(t.ReconnectInterval),
		ReconnectTimeout:    s(t.ReconnectTimeout),
		LeavePropagateDelay: s(t.LeavePropagateDelay),
		TCPTimeout:          s(t.TCPTimeout),
	}
}

// DefaultConfig returns the configuration `peer agent` starts with.
func DefaultConfig() Config {
	name, err := os.Hostname()
	if err != nil {
		name = ""
	}
	return Config{
		NodeName:             name,
		BindAddr:             "0.0.0.0:7946",
		RPCAddr:              "0.0.0.0:7947",
		HTTPAddr:             "127.0.0.1:7948",
		DataDir:              "ringleader-data",
		RetryJoinInterval:    time.Second,
		RetryJoinMaxInterval: 30 * time.Second,
		RejoinAfterLeave:     true,
		VNodes:               ring.DefaultConfig().VNodes,
		Timings:              DefaultTimings(),
		GossipCompression:    true,
		StoreMinSyncInterval: 500 * time.Microsecond,
		RPCTimeout:           2 * time.Second,
		Counters:             DefaultCounterConfig(),
		Locks:                DefaultLockConfig(),
	}
}

// MaxStoreMinSyncInterval bounds Config.StoreMinSyncInterval: every
// synced write may wait that long.
const MaxStoreMinSyncInterval = 10 * time.Millisecond

// KeySize is the length of a cluster key in bytes.
const KeySize = 32

// Validate reports the first unusable setting. It does not change c.
func (c Config) Validate() error {
	if err := ValidateNodeName(c.NodeName); err != nil {
		return err
	}
	if c.StoreMinSyncInterval < 0 || c.StoreMinSyncInterval > MaxStoreMinSyncInterval {
		return fmt.Errorf("agent: --store-min-sync-interval %v must be 0 to %v", c.StoreMinSyncInterval, MaxStoreMinSyncInterval)
	}
	for _, a := range []struct{ flag, addr string }{
		{"bind", c.BindAddr}, {"rpc", c.RPCAddr},
	} {
		if err := validateHostPort(a.flag, a.addr, false); err != nil {
			return err
		}
	}
	for _, a := range []struct{ flag, addr string }{
		{"advertise", c.AdvertiseAddr}, {"rpc-advertise", c.RPCAdvertiseAddr}, {"http", c.HTTPAddr},
	} {
		if err := validateHostPort(a.flag, a.addr, true); err != nil {
			return err
		}
	}
	for _, s := range slices.Concat(c.StartJoin, c.RetryJoin) {
		if s == "" {
			return errors.New("agent: empty join address; give host or host:port")
		}
	}
	if len(c.EncryptKey) != 0 && len(c.EncryptKey) != KeySize {
		return fmt.Errorf("agent: encrypt key is %d bytes, want %d (make one with `peer keygen`)", len(c.EncryptKey), KeySize)
	}
	if err := (ring.Config{VNodes: c.VNodes}).Validate(); err != nil {
		return fmt.Errorf("agent: vnodes: %w", err)
	}
	if len(c.RetryJoin) > 0 && (c.RetryJoinInterval <= 0 || c.RetryJoinMaxInterval < c.RetryJoinInterval) {
		return fmt.Errorf("agent: retry-join interval %v must be positive and at most the max interval %v", c.RetryJoinInterval, c.RetryJoinMaxInterval)
	}
	if c.RPCTimeout <= 0 {
		return fmt.Errorf("agent: rpc timeout %v must be positive", c.RPCTimeout)
	}
	if err := c.Counters.validate(); err != nil {
		return err
	}
	if err := c.Locks.validate(); err != nil {
		return err
	}
	return c.Timings.validate()
}

func (t Timings) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"probe interval", t.ProbeInterval}, {"probe timeout", t.ProbeTimeout},
		{"gossip interval", t.GossipInterval}, {"push-pull interval", t.PushPullInterval},
		{"reconnect interval", t.ReconnectInterval}, {"reconnect timeout", t.ReconnectTimeout},
		{"tcp timeout", t.TCPTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("agent: %s %v must be positive", d.name, d.v)
		}
	}
	if t.SuspicionMult < 1 {
		return fmt.Errorf("agent: suspicion multiplier %d must be at least 1", t.SuspicionMult)
	}
	if t.LeavePropagateDelay < 0 {
		return fmt.Errorf("agent: leave propagate delay %v must not be negative", t.LeavePropagateDelay)
	}
	return nil
}

// ValidateNodeName checks a node name: 1-128 bytes of letters, digits, '-',
// '.' and '_'.
func ValidateNodeName(name string) error {
	if name == "" {
		return errors.New("agent: node name is empty; set --name")
	}
	if len(name) > 128 {
		return fmt.Errorf("agent: node name is %d bytes, limit 128", len(name))
	}
	for _, r := range name {
		ok := r == '-' || r == '.' || r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !ok {
			return fmt.Errorf("agent: node name %q has %q; use letters, digits, '-', '.' and '_'", name, r)
		}
	}
	return nil
}

func validateHostPort(flag, addr string, emptyOK bool) error {
	if addr == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("agent: --%s address is empty; give host:port", flag)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("agent: --%s %q: %v; give host:port", flag, addr, err)
	}
	_ = host // names are resolved by Start
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("agent: --%s %q: port must be 0-65535", flag, addr)
	}
	return nil
}

package simulation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/simulation/memnet"
)

// Errors of the cluster's fault and lifecycle methods.
var (
	// ErrUnknownPeer is returned (wrapped) for a peer name the cluster has
	// no host for.
	ErrUnknownPeer = errors.New("simulation: unknown peer")
	// ErrPeerState is returned (wrapped) when a peer is not in the state an
	// action needs (restart of a running peer, crash of a stopped one).
	ErrPeerState = errors.New("simulation: peer is in the wrong state")
	// ErrNoSeed is returned (wrapped) when a peer is started while no
	// running peer can be reached to join through.
	ErrNoSeed = errors.New("simulation: no reachable running peer to join through")
)

// PeerState is where a simulated peer is in its life.
type PeerState int

// Peer states.
const (
	// Down: never started, or crashed (its disk keeps what it synced).
	Down PeerState = iota
	// Running: its agent is started.
	Running
	// Left: it left the cluster gracefully and was shut down.
	Left
)

func (s PeerState) String() string {
	return [...]string{"down", "running", "left"}[s]
}

// Peer is one simulated host and the agent running on it (if any).
type Peer struct {
	Name string
	IP   string
	host *memnet.Host
	// dir holds serf's snapshot (on the real disk, under the cluster's
	// temporary root, so a crash keeps all of it, not only what was
	// synced); the store, which holds every counter and the peer's
	// identity, lives on fs.
	dir string

	// gen is bumped whenever the agent stops (crash or leave), before its
	// disk is cloned, so a request that saw another generation at its start
	// knows its answer may have come after the crash (clients.go).
	gen atomic.Uint64

	// mu guards fs, agent, state and started.
	mu sync.RWMutex
	// started is when its agent was last started.
	started time.Time
	// down is closed when the running agent stops (crash, leave, close):
	// a client talking to it then loses its connection, as it would to a
	// real process.
	down  chan struct{}
	fs    *vfs.MemFS
	agent *agent.Agent
	state PeerState
}

// Agent returns the running agent and its generation, or nil.
func (p *Peer) Agent() (*agent.Agent, uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != Running {
		return nil, p.gen.Load()
	}
	return p.agent, p.gen.Load()
}

// stop closes down. Called with mu held.
func (p *Peer) stop() {
	if p.down != nil {
		close(p.down)
		p.down = nil
	}
}

// connect returns the running agent, its generation and a channel closed
// when it stops; nil if it is not running.
func (p *Peer) connect() (*agent.Agent, uint64, <-chan struct{}) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != Running {
		return nil, p.gen.Load(), nil
	}
	return p.agent, p.gen.Load(), p.down
}

// stopped reports whether the peer's agent was ever stopped (crash or
// leave); a peer that is down and never stopped never ran, and has
// nothing to lose.
func (p *Peer) stopped() bool { return p.gen.Load() > 0 }

// State returns the peer's state.
func (p *Peer) State() PeerState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state
}

// agentClock makes a host's memnet clock an agent.Clock.
type agentClock struct{ *memnet.Clock }

func (c agentClock) NewTimer(d time.Duration) agent.Timer { return c.Clock.NewTimer(d) }

var _ agent.Clock = agentClock{}

// Cluster is real agents on one in-memory network, each on its own host
// with its own clock and its own crash-simulating in-memory filesystem.
// Its methods are safe for concurrent use; Close stops everything it
// started and waits for it.
type Cluster struct {
	cfg  Config
	net  *memnet.Network
	root string // temporary directory of the peers' serf snapshots
	// bootstrapExpect is every agent's --bootstrap-expect (0: 1); set
	// before the first Start.
	bootstrapExpect int

	// mu guards peers, groups, resumes and closed.
	mu    sync.Mutex
	peers map[string]*Peer
	// groups is the current partition (peer name → group), nil for none;
	// a joining peer joins through running peers of its own group.
	groups map[string]int
	// cuts holds the directed links cut ("from>to").
	cuts map[string]bool
	// resumes are the pending resumptions of paused peers.
	resumes map[*time.Timer]struct{}
	closed  bool
	// resumeWG counts resume callbacks that were scheduled and have neither
	// run nor been stopped.
	resumeWG sync.WaitGroup
}

// NewCluster makes a cluster with a host for every name in names (n1, n2,
// … at 10.0.0.1, 10.0.0.2, …) and no agent running yet.
func NewCluster(cfg Config, names []string) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withSpeed(len(names))
	ncfg := memnet.DefaultConfig()
	ncfg.Seed = cfg.Seed
	ncfg.ConnectTimeout = cfg.scale(10 * time.Second)
	net, err := memnet.New(ncfg)
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "ringleader-sim-")
	if err != nil {
		net.Close()
		return nil, fmt.Errorf("simulation: temporary directory for the peers' snapshots: %w", err)
	}
	c := &Cluster{cfg: cfg, net: net, root: root, peers: map[string]*Peer{}, cuts: map[string]bool{}, resumes: map[*time.Timer]struct{}{}}
	for _, name := range names {
		i, err := peerIndex(name)
		if err != nil {
			c.Close()
			return nil, err
		}
		ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		h, err := net.AddHost(ip)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.peers[name] = &Peer{Name: name, IP: ip, host: h, dir: filepath.Join(root, name), fs: vfs.NewCrashableMem()}
	}
	return c, nil
}

// Network is the cluster's in-memory network.
func (c *Cluster) Network() *memnet.Network { return c.net }

// Peer returns the named peer.
func (c *Cluster) Peer(name string) (*Peer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.peers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownPeer, name)
	}
	return p, nil
}

// Peers returns every peer, in name order (n2 before n10).
func (c *Cluster) Peers() []*Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Peer, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Peer) int { return comparePeerNames(a.Name, b.Name) })
	return out
}

// Running returns the running peers and their agents, in name order.
func (c *Cluster) Running() ([]*Peer, []*agent.Agent) {
	var ps []*Peer
	var as []*agent.Agent
	for _, p := range c.Peers() {
		if a, _ := p.Agent(); a != nil {
			ps = append(ps, p)
			as = append(as, a)
		}
	}
	return ps, as
}

// agentConfig is the config peer p runs with: the defaults with every
// timing scaled (Config.timings).
func (c *Cluster) agentConfig(p *Peer, fs *vfs.MemFS, seeds []string) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.NodeName = p.Name
	cfg.BindAddr = p.IP + ":7946"
	cfg.RPCAddr = p.IP + ":7947"
	cfg.HTTPAddr = ""
	cfg.DataDir = p.dir
	cfg.StoreFS = fs
	cfg.StartJoin = seeds
	cfg.Clock = agentClock{p.host.Clock()}
	cfg.RPCTransport = p.host
	cfg.Timings, cfg.RPCTimeout, cfg.Counters = c.cfg.timings()
	cfg.GossipCompression = gossipCompression
	cfg.Locks = c.cfg.lockConfig()
	cfg.Locks.BootstrapExpect = max(c.bootstrapExpect, 1)
	cfg.Logger = c.cfg.Logger
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// seeds returns the gossip addresses of the running peers p can reach now
// (same partition group, no cut either way), or ErrNoSeed if some run but
// none is reachable; nil when none runs (p starts the cluster).
func (c *Cluster) seeds(p *Peer) ([]string, error) {
	c.mu.Lock()
	groups, cuts := c.groups, c.cuts
	c.mu.Unlock()
	var out []string
	anyRunning := false
	for _, q := range c.Peers() {
		if q == p || q.State() != Running {
			continue
		}
		anyRunning = true
		if groups != nil && groups[q.Name] != groups[p.Name] {
			continue
		}
		if cuts[p.Name+">"+q.Name] || cuts[q.Name+">"+p.Name] {
			continue
		}
		out = append(out, q.IP+":7946")
	}
	if anyRunning && len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoSeed, p.Name)
	}
	const maxSeeds = 3 // memberlist tries every seed; a few are plenty
	if len(out) > maxSeeds {
		out = out[:maxSeeds]
	}
	return out, nil
}

// Start starts the agent of a peer that is down, with the disk it has,
// joined through running peers it can reach. The peer counts as down (its
// clients are refused) until its agent has started. Start, Crash, Wipe and
// Leave of one peer must not run concurrently (the run's step loop calls
// them one at a time).
func (c *Cluster) Start(ctx context.Context, name string) error {
	p, err := c.Peer(name)
	if err != nil {
		return err
	}
	seeds, err := c.seeds(p)
	if err != nil {
		return err
	}
	p.mu.Lock()
	state, fs := p.state, p.fs
	if state != Running {
		p.started = time.Now()
	}
	p.mu.Unlock()
	if state == Running {
		return fmt.Errorf("%w: start %s: it is running", ErrPeerState, name)
	}
	gossip, err := p.host.GossipTransport(7946)
	if err != nil {
		return fmt.Errorf("simulation: start %s: %w", name, err)
	}
	cfg := c.agentConfig(p, fs, seeds)
	cfg.GossipTransport = gossip
	a, err := agent.New(cfg)
	if err != nil {
		gossip.Shutdown()
		return fmt.Errorf("simulation: start %s: %w", name, err)
	}
	if err := a.Start(ctx); err != nil {
		// Start shut down what it started; the transport too if serf had
		// it (a second Shutdown does nothing).
		gossip.Shutdown()
		return fmt.Errorf("simulation: start %s: %w", name, err)
	}
	p.mu.Lock()
	p.agent, p.state, p.down = a, Running, make(chan struct{})
	p.mu.Unlock()
	return nil
}

// Crash stops a running peer as kill -9 would: its sockets close at once,
// it does not leave, and its disk keeps only what it had synced.
func (c *Cluster) Crash(name string) error {
	p, err := c.Peer(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.state != Running {
		p.mu.Unlock()
		return fmt.Errorf("%w: crash %s: it is %s", ErrPeerState, name, p.state)
	}
	p.gen.Add(1) // before the clone: answers after this are suspect
	p.stop()
	if err := c.net.Crash(p.IP); err != nil {
		p.mu.Unlock()
		return err
	}
	kept := p.fs.CrashClone(vfs.CrashCloneCfg{})
	a := p.agent
	p.agent, p.fs, p.state = nil, kept, Down
	p.mu.Unlock()
	a.Shutdown() // what it writes from here goes to the old disk, which is dropped
	return nil
}

// Wipe empties the disk of a peer that is down (restart --empty): its store
// and its serf snapshot.
func (c *Cluster) Wipe(name string) error {
	p, err := c.Peer(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == Running {
		return fmt.Errorf("%w: wipe %s: it is running", ErrPeerState, name)
	}
	p.fs = vfs.NewCrashableMem()
	return os.RemoveAll(p.dir)
}

// Leave makes a running peer leave gracefully (clients may still reach it
// meanwhile, and are refused once it stops taking writes), then shuts it
// down.
func (c *Cluster) Leave(ctx context.Context, name string) error {
	p, err := c.Peer(name)
	if err != nil {
		return err
	}
	p.mu.RLock()
	a, state := p.agent, p.state
	p.mu.RUnlock()
	if state != Running {
		return fmt.Errorf("%w: leave %s: it is %s", ErrPeerState, name, state)
	}
	lerr := a.Leave(ctx)
	p.mu.Lock()
	p.gen.Add(1)
	p.stop()
	p.agent, p.state = nil, Left
	p.mu.Unlock()
	a.Shutdown()
	if lerr != nil {
		return fmt.Errorf("simulation: leave %s: %w", name, lerr)
	}
	return nil
}

// ips returns the IPs of the named peers.
func (c *Cluster) ips(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		p, err := c.Peer(n)
		if err != nil {
			return nil, err
		}
		out = append(out, p.IP)
	}
	return out, nil
}

// Partition splits the network into groups of peers; peers not listed form
// one more group.
func (c *Cluster) Partition(groups [][]string) error {
	var ipGroups [][]string
	byName := map[string]int{}
	for i, g := range groups {
		ips, err := c.ips(g)
		if err != nil {
			return err
		}
		ipGroups = append(ipGroups, ips)
		for _, n := range g {
			byName[n] = i + 1
		}
	}
	if err := c.net.Partition(ipGroups...); err != nil {
		return err
	}
	c.mu.Lock()
	c.groups = byName
	c.mu.Unlock()
	return nil
}

// CutOneWay stops traffic from one peer to another.
func (c *Cluster) CutOneWay(from, to string) error {
	ips, err := c.ips([]string{from, to})
	if err != nil {
		return err
	}
	if err := c.net.CutOneWay(ips[0], ips[1]); err != nil {
		return err
	}
	c.mu.Lock()
	c.cuts[from+">"+to] = true
	c.mu.Unlock()
	return nil
}

// Pause stops a peer's network and clock (SIGSTOP) for d of real time, or
// until Heal.
func (c *Cluster) Pause(name string, d time.Duration) error {
	p, err := c.Peer(name)
	if err != nil {
		return err
	}
	if err := c.net.Pause(p.IP); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	var t *time.Timer
	c.resumeWG.Add(1)
	t = time.AfterFunc(d, func() {
		defer c.resumeWG.Done()
		c.mu.Lock()
		delete(c.resumes, t)
		c.mu.Unlock()
		_ = c.net.Resume(p.IP)
	})
	c.resumes[t] = struct{}{}
	return nil
}

// SetClock gives a peer's clock a skew and a drift (at most
// memnet.MaxClockDrift).
func (c *Cluster) SetClock(name string, skew time.Duration, drift float64) error {
	p, err := c.Peer(name)
	if err != nil {
		return err
	}
	return c.net.SetClock(p.IP, skew, drift)
}

// Heal removes every network fault at once: partition, cuts, loss,
// latency, pauses. Crashed peers stay down; clocks keep their skew.
func (c *Cluster) Heal() {
	c.stopResumes()
	c.net.Heal()
	c.mu.Lock()
	c.groups = nil
	c.cuts = map[string]bool{}
	c.mu.Unlock()
}

// stopResumes cancels the pending resumptions (Heal resumes every peer).
func (c *Cluster) stopResumes() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.resumes {
		if t.Stop() {
			c.resumeWG.Done()
		}
		delete(c.resumes, t)
	}
}

// Close heals the network, shuts every running agent down (without
// leaving), waits for them and removes the temporary files. Safe to call
// more than once.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.Heal()
	c.resumeWG.Wait()
	var wg sync.WaitGroup
	for _, p := range c.Peers() {
		p.mu.Lock()
		a := p.agent
		p.agent, p.state = nil, Down
		p.gen.Add(1)
		p.stop()
		p.mu.Unlock()
		if a != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.Shutdown()
			}()
		}
	}
	wg.Wait()
	c.net.Close()
	os.RemoveAll(c.root)
}

// topology returns the network's shape as the lock checker needs it: the
// voters (the agents' newest voter set; before one formed, the peers
// started and not left, crashed ones counted), which of them run, the partition groups and the
// cut links. starting names peers being started, counted as running.
func (c *Cluster) topology(starting ...string) Topology {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t Topology
	for _, name := range slices.SortedFunc(maps.Keys(c.peers), comparePeerNames) {
		p := c.peers[name]
		p.mu.RLock()
		state := p.state
		p.mu.RUnlock()
		switch {
		case state == Running || slices.Contains(starting, name):
			t.Voters = append(t.Voters, name)
			t.Running = append(t.Running, name)
		case state == Down && p.stopped():
			t.Voters = append(t.Voters, name)
		}
	}
	if set := c.voterSet(); len(set) > 0 {
		t.Voters = set
	}
	if c.groups != nil {
		byGroup := map[int][]string{}
		for _, name := range slices.SortedFunc(maps.Keys(c.peers), comparePeerNames) {
			g := c.groups[name] // 0: the peers no group named
			byGroup[g] = append(byGroup[g], name)
		}
		for _, g := range slices.Sorted(maps.Keys(byGroup)) {
			t.Groups = append(t.Groups, byGroup[g])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.cuts)) {
		from, to, _ := strings.Cut(k, ">")
		t.Cuts = append(t.Cuts, [2]string{from, to})
	}
	return t
}

// voterSet returns the members of the newest lock voter set a running
// agent has committed (the agents' own count of the voters: a peer that
// joined is one only once a majority admitted it), or nil before one
// formed. Called with c.mu held; agents never call into the cluster.
func (c *Cluster) voterSet() []string {
	var best agent.VoterSet
	for _, p := range c.peers {
		a, _ := p.Agent()
		if a == nil {
			continue
		}
		if v, err := a.Voters(); err == nil && v.Version > best.Version {
			best = v
		}
	}
	return slices.SortedFunc(slices.Values(best.Members), comparePeerNames)
}

// quietLeft returns how long until no running peer is in its lock quiet
// period: lockDelay (plus 5% for drift and 50 ms for the start itself)
// after its agent was started.
func (c *Cluster) quietLeft(lockDelay time.Duration) time.Duration {
	ps, _ := c.Running()
	var left time.Duration
	for _, p := range ps {
		p.mu.RLock()
		started := p.started
		p.mu.RUnlock()
		left = max(left, time.Until(started.Add(lockDelay+lockDelay/20+50*time.Millisecond)))
	}
	return left
}

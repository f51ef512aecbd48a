package agent

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/ringleader/ringleader/agent/peerrpc"
	"github.com/ringleader/ringleader/agent/store"
)

// Errors returned by the lifecycle methods.
var (
	// ErrNotStarted is returned by methods that need Start first.
	ErrNotStarted = errors.New("agent: not started")
	// ErrShutdown is returned after Shutdown.
	ErrShutdown = errors.New("agent: shut down")
	// ErrJoin is returned (wrapped) when no seed could be joined.
	ErrJoin = errors.New("agent: join failed")
)

type lifecycle int

const (
	created lifecycle = iota
	running
	leftCluster
	stopped
)

// Agent is one Ringleader peer: membership over serf, the ring kept in sync
// with it, peer RPC and the HTTP API. Create it with New, then Start; stop it
// with Leave (graceful: others see "left") and Shutdown. All methods are safe
// for concurrent use.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	clock   Clock
	metrics *metrics
	guard   *settingsGuard

	// view is the current ring and RPC addresses, swapped whole on every
	// membership change; readers never lock.
	view viewHolder

	// stop is closed by Shutdown; every background goroutine watches it and
	// is counted in wg.
	stop     chan struct{}
	wg       sync.WaitGroup
	fatal    chan error
	fatalErr sync.Once
	// joins counts this peer's joins in progress, and lastJoin is when
	// (Clock, Unix nanoseconds) the last one ended: a name conflict then
	// means this peer is the one that came later (nameConflict).
	joins    atomic.Int32
	lastJoin atomic.Int64

	// mu guards the lifecycle fields below.
	mu        sync.Mutex
	state     lifecycle
	serf      *serf.Serf
	serfQuit  bool // serf stopped by itself (watchSerfQuit), or this peer gave way in a name conflict
	rpcServer *peerrpc.Server
	rpcClient *peerrpc.Client
	// db is the store (on disk in the data dir, or in memory without one);
	// closed last.
	db *store.DB
	// ctr is the counter service, set by Start before any RPC or HTTP
	// request can reach it.
	ctr *counters
	// locks is the lock service, set by Start like ctr.
	locks *lockService
	// rejoining says a background join (retry-join or the rejoin of known
	// peers) was started, so the identity check waits for peers.
	rejoining bool
	// spread holds the push queues (spread.go); anti-entropy reads them.
	spread *spreader
	// lastReturn is when (Clock, Unix nanoseconds) a failed member was last
	// seen alive again; 0 never. Written by watchMembers, read by
	// healReconnectLoop.
	lastReturn atomic.Int64
	// rpcListener waits here between listenRPC and serveRPC.
	rpcListener net.Listener
	rpcAddr     string
	httpSrv     *http.Server
	httpAddr    string
	startedAt   time.Time
}

// New validates cfg and returns an agent that has done no I/O yet.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.StartJoin = append([]string(nil), cfg.StartJoin...)
	cfg.RetryJoin = append([]string(nil), cfg.RetryJoin...)
	cfg.EncryptKey = append([]byte(nil), cfg.EncryptKey...)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.RPCTransport == nil {
		cfg.RPCTransport = TCPTransport{}
	}
	a := &Agent{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeName),
		clock:   cfg.Clock,
		metrics: newMetrics(),
		guard:   &settingsGuard{self: cfg.NodeName, mine: settingsTags(cfg)},
		stop:    make(chan struct{}),
		fatal:   make(chan error, 1),
	}
	a.spread = &spreader{a: a, peers: map[string]*peerQueue{}}
	a.metrics.registerMembers(a)
	a.view.store(emptyView(cfg.VNodes))
	return a, nil
}

// Start opens the listeners, starts gossip and joins StartJoin. On error
// everything it started is stopped again.
func (a *Agent) Start(ctx context.Context) (err error) {
	a.mu.Lock()
	if a.state != created {
		a.mu.Unlock()
		return fmt.Errorf("agent: Start called twice")
	}
	a.state = running
	a.startedAt = a.clock.Now()
	a.mu.Unlock()
	defer func() {
		if err != nil {
			a.Shutdown()
		}
	}()

	if a.cfg.DataDir != "" {
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("agent: data dir: %w", err)
		}
	}
	if err := a.openCounters(); err != nil {
		return err
	}
	a.metrics.registerCounters(a.ctr)
	if err := a.openLocks(); err != nil {
		return err
	}
	if err := a.listenRPC(); err != nil {
		return err
	}
	if err := a.startSerf(); err != nil {
		return err
	}
	if err := a.serveRPC(); err != nil {
		return err
	}
	if err := a.startHTTP(); err != nil {
		return err
	}
	a.log.Info("peer started", "gossip", a.gossipAddr(), "rpc", a.RPCAddr(), "http", a.HTTPAddr(),
		"encrypted", len(a.cfg.EncryptKey) > 0, "vnodes", a.cfg.VNodes)
	if len(a.cfg.StartJoin) > 0 {
		if _, err := a.Join(ctx, a.cfg.StartJoin); err != nil {
			return err
		}
	}
	if len(a.cfg.RetryJoin) > 0 {
		a.rejoining = true
		a.wg.Add(1)
		go a.joinLoop("retry-join", a.cfg.RetryJoin, a.cfg.RetryJoinInterval, a.cfg.RetryJoinMaxInterval, nil)
	}
	if a.rejoining && len(a.cfg.StartJoin) == 0 {
		// Peers may still turn up: settle the identity in the background,
		// refusing writes until then.
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			ctx, cancel := a.runContext(0)
			defer cancel()
			if err := a.settleIdentity(ctx, true); err != nil && ctx.Err() == nil {
				a.log.Error("cannot settle the replica identity; counter writes stay refused", "err", err)
				a.reportFatal(err)
			}
		}()
	} else if err := a.settleIdentity(ctx, false); err != nil {
		return err
	}
	a.wg.Add(8)
	go a.moveIdemLoop()
	go a.locks.voterLoop()
	go a.locks.runTimers()
	go a.locks.renewLoop()
	go a.locks.handoffLoop()
	go a.spreadLoop()
	go a.antiEntropyLoop()
	go a.sweepIdempotency()
	return nil
}

func (a *Agent) startSerf() error {
	inner := a.cfg.GossipTransport
	_, portStr, err := net.SplitHostPort(a.cfg.BindAddr)
	if err != nil {
		return fmt.Errorf("agent: bind address %q: %w", a.cfg.BindAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	bindHost, _, _ := net.SplitHostPort(a.cfg.BindAddr)
	if bindHost, err = resolveHost(bindHost); err != nil {
		return fmt.Errorf("agent: --bind %s: %w", a.cfg.BindAddr, err)
	}
	if inner == nil {
		if bindHost == "" {
			bindHost = "0.0.0.0"
		}
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{bindHost},
			BindPort:  port,
			Logger:    log.New(&logWriter{log: a.log}, "", 0),
		})
		if err != nil {
			return fmt.Errorf("agent: gossip listen on %s: %w", a.cfg.BindAddr, err)
		}
		port = nt.GetAutoBindPort()
		inner = nt
	}
	transport := newCountingTransport(inner, a.metrics.gossipSent, a.metrics.gossipReceived)

	advHost, advPort := bindHost, port
	if advHost == "0.0.0.0" || advHost == "::" {
		advHost = ""
	}
	if a.cfg.AdvertiseAddr != "" {
		h, p, _ := net.SplitHostPort(a.cfg.AdvertiseAddr)
		if advHost, err = resolveHost(h); err != nil {
			transport.Shutdown()
			return fmt.Errorf("agent: --advertise %s: %w", a.cfg.AdvertiseAddr, err)
		}
		if advPort, err = strconv.Atoi(p); err != nil {
			transport.Shutdown()
			return fmt.Errorf("agent: advertise address %q: bad port", a.cfg.AdvertiseAddr)
		}
	}
	advIP, advPort, err := transport.FinalAdvertiseAddr(advHost, advPort)
	if err != nil {
		transport.Shutdown()
		return fmt.Errorf("agent: cannot pick the address to advertise (set --advertise): %w", err)
	}
	if a.cfg.RPCAdvertiseAddr == "" {
		_, rpcPort, _ := net.SplitHostPort(a.rpcAddr)
		a.rpcAddr = net.JoinHostPort(advIP.String(), rpcPort)
	}

	logger := log.New(&logWriter{log: a.log, nameConflict: a.nameConflict}, "", 0)
	ml := memberlist.DefaultLANConfig()
	ml.Transport = transport
	ml.AdvertiseAddr = advIP.String()
	ml.AdvertisePort = advPort
	ml.BindPort = port
	ml.Logger = logger
	t := a.cfg.Timings
	ml.ProbeInterval = t.ProbeInterval
	ml.ProbeTimeout = t.ProbeTimeout
	ml.GossipInterval = t.GossipInterval
	ml.PushPullInterval = t.PushPullInterval
	ml.SuspicionMult = t.SuspicionMult
	ml.TCPTimeout = t.TCPTimeout
	ml.EnableCompression = a.cfg.GossipCompression
	if len(a.cfg.EncryptKey) > 0 {
		kr, err := memberlist.NewKeyring(nil, a.cfg.EncryptKey)
		if err != nil {
			transport.Shutdown()
			return fmt.Errorf("agent: encrypt key: %w", err)
		}
		ml.Keyring = kr
	}

	events := make(chan serf.Event, 1024)
	sc := serf.DefaultConfig()
	sc.NodeName = a.cfg.NodeName
	sc.MemberlistConfig = ml
	sc.Logger = logger
	sc.EventCh = events
	sc.Merge = a.guard
	sc.RejoinAfterLeave = a.cfg.RejoinAfterLeave
	// Serf's own resolution of a name conflict is a vote of the other
	// members, and in a one-peer cluster there are none: the running peer
	// lost too and stopped. The peer that joined last gives way instead
	// (nameConflict).
	sc.EnableNameConflictResolution = false
	sc.ReconnectInterval = t.ReconnectInterval
	sc.ReconnectTimeout = t.ReconnectTimeout
	sc.LeavePropagateDelay = t.LeavePropagateDelay
	sc.Tags = map[string]string{TagRole: RolePeer, TagRPC: a.rpcAddr}
	maps.Copy(sc.Tags, settingsTags(a.cfg))
	sc.Tags[TagVoters] = voterTag(a.locks.acceptor.voterSet())
	if a.cfg.DataDir != "" {
		sc.SnapshotPath = filepath.Join(a.cfg.DataDir, "serf.snapshot")
	}
	s, err := serf.Create(sc)
	if err != nil {
		transport.Shutdown()
		return fmt.Errorf("agent: start gossip: %w", err)
	}
	a.mu.Lock()
	a.serf = s
	a.mu.Unlock()
	a.rebuildView(s.Members())
	a.wg.Add(3)
	go a.watchMembers(events)
	go a.healReconnectLoop()
	go a.watchSerfQuit(s)
	if a.cfg.DataDir != "" && len(a.cfg.StartJoin) == 0 {
		known, err := loadKnownPeers(a.db)
		if err != nil {
			return err
		}
		if len(known) > 0 {
			a.rejoining = true
			// Rejoin the peers an earlier run saved, until one answers
			// or another member finds this peer first.
			a.wg.Add(1)
			go a.joinLoop("rejoin of known peers", known, time.Second, 30*time.Second, a.hasOtherAlive)
		}
	}
	return nil
}

// resolveHost turns a host name into an IP address (IPv4 preferred); IPs and
// the empty host pass unchanged.
func resolveHost(host string) (string, error) {
	if host == "" || net.ParseIP(host) != nil {
		return host, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %q: %v", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	return ips[0].String(), nil
}

// Join joins the cluster through any of addrs (host or host:port) and
// returns how many answered. It fails with ErrSettingsMismatch when the
// cluster's settings differ, and ErrJoin when no seed could be joined. Seeds
// are tried at once, so a join takes at most one gossip TCP timeout however
// many seeds are silent.
func (a *Agent) Join(ctx context.Context, addrs []string) (int, error) {
	a.mu.Lock()
	switch {
	case a.state == stopped:
		a.mu.Unlock()
		return 0, ErrShutdown
	case a.serf == nil:
		a.mu.Unlock()
		return 0, ErrNotStarted
	}
	s := a.serf
	// serf.Join takes no context; each goroutine ends with memberlist's own
	// TCP timeout at the latest, and Shutdown waits for it.
	a.wg.Add(len(addrs))
	a.mu.Unlock()
	type result struct {
		n   int
		err error
	}
	results := make(chan result, len(addrs))
	for _, addr := range addrs {
		go func() {
			defer a.wg.Done()
			a.joins.Add(1)
			n, err := s.Join([]string{addr}, false)
			a.lastJoin.Store(a.clock.Now().UnixNano())
			a.joins.Add(-1)
			results <- result{n, err}
		}()
	}
	var joined int
	var errs []error
	for range addrs {
		select {
		case r := <-results:
			joined += r.n
			if r.err != nil {
				errs = append(errs, r.err)
			}
		case <-ctx.Done():
			return joined, fmt.Errorf("%w: %v", ErrJoin, ctx.Err())
		}
	}
	if joined > 0 {
		a.log.Info("joined cluster", "seeds", addrs, "answered", joined)
		return joined, nil
	}
	err := errors.Join(errs...)
	if mismatch := mismatchIn(err); mismatch != nil {
		return 0, mismatch
	}
	return 0, fmt.Errorf("%w: could not join any of %v: %s", ErrJoin, addrs, joinHint(err))
}

// joinHint flattens serf's multi-line join error and says what to do about
// the common causes.
func joinHint(err error) string {
	if err == nil {
		return "no seed answered"
	}
	text := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "* ", "")), " ")
	switch {
	case strings.Contains(text, "decrypt"), strings.Contains(text, "encryption"), strings.Contains(text, "No installed keys"):
		return text + " (the seed answered but its gossip could not be decrypted or it could not decrypt ours: every peer needs the same --encrypt key)"
	case strings.Contains(text, "connection refused"):
		return text + " (nothing listens there: is the seed's peer running, and is its gossip port right?)"
	}
	return text
}

// joinLoop joins addrs with exponential backoff (first, doubling up to
// maxWait) until a seed answers, the cluster refuses this peer's settings
// (reported on Fatal), done says to stop, or the agent stops. what names the
// loop in logs. It is run as a goroutine counted in a.wg.
func (a *Agent) joinLoop(what string, addrs []string, first, maxWait time.Duration, done func() bool) {
	defer a.wg.Done()
	wait := first
	for attempt := 1; ; attempt++ {
		if done != nil && done() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := a.Join(ctx, addrs)
		cancel()
		switch {
		case err == nil:
			a.log.Info(what+" succeeded", "seeds", len(addrs), "attempts", attempt)
			return
		case errors.Is(err, ErrSettingsMismatch):
			a.log.Error(what+" refused: the cluster's settings differ", "err", err)
			a.reportFatal(err)
			return
		case errors.Is(err, ErrShutdown):
			return
		}
		a.log.Warn(what+" failed; will retry", "attempt", attempt, "in", wait, "err", err)
		t := a.clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-a.stop:
			t.Stop()
			return
		}
		wait = min(2*wait, maxWait)
	}
}

// Fatal delivers at most one error that makes the agent unusable (its
// retry-join was refused for a settings mismatch). A program embedding the
// agent should watch it and shut down.
func (a *Agent) Fatal() <-chan error { return a.fatal }

func (a *Agent) reportFatal(err error) {
	a.fatalErr.Do(func() { a.fatal <- err })
}

// watchSerfQuit reports serf stopping by itself as fatal. Serf shut down
// when it lost a name conflict, before the agent turned its resolution off
// (see nameConflict); it is kept for any other way serf may stop. Such a
// peer is no member, and must not go on answering as one, nor leave (its
// leave could take another's place in the voter set). It is counted in
// a.wg.
func (a *Agent) watchSerfQuit(s *serf.Serf) {
	defer a.wg.Done()
	select {
	case <-a.stop:
		return
	case <-s.ShutdownCh():
	}
	select {
	case <-a.stop: // Shutdown closes stop before it shuts serf down
		return
	default:
	}
	a.mu.Lock()
	a.serfQuit = true
	a.mu.Unlock()
	a.log.Error("the gossip layer stopped by itself; this peer is no member any more", "name", a.cfg.NodeName)
	a.reportFatal(fmt.Errorf("%w: the gossip layer (serf) stopped by itself, so this peer is no member any more (see the log lines before this); restart it", ErrShutdown))
}

// nameConflictWindow is how long after its last join a peer that meets
// another node with its name takes itself for the newcomer and gives way.
const nameConflictWindow = 10 * time.Second

// nameConflict is called (from serf's log, with memberlist's locks held) when
// the node at other claims this peer's name. A peer that is joining, or
// joined within nameConflictWindow, came later: it is no member, reports
// that on Fatal and must not leave (its leave would take the name's place
// in the voter set). A peer that was there before stays and says so; the
// other one gives way on its side.
func (a *Agent) nameConflict(other string) {
	newcomer := a.joins.Load() > 0 || a.clock.Now().UnixNano()-a.lastJoin.Load() < int64(nameConflictWindow)
	go func() {
		if !newcomer {
			a.log.Error("another node claims this peer's name; it joined later and gives way", "name", a.cfg.NodeName, "other", other)
			return
		}
		a.mu.Lock()
		a.serfQuit = true
		a.mu.Unlock()
		a.log.Error("another member already has this peer's name; this peer joined later and gives way", "name", a.cfg.NodeName, "other", other)
		a.reportFatal(fmt.Errorf("%w: another member, at %s, already has the name %q; give each peer its own --name", ErrShutdown, other, a.cfg.NodeName))
	}()
}

// Leave leaves the cluster gracefully: it stops taking counter writes,
// hands every counter change not yet spread to the alive peers (handOff),
// then leaves, so the others see this peer as "left", not "failed". Call
// Shutdown afterwards. Safe to call more than once.
func (a *Agent) Leave(ctx context.Context) error {
	a.mu.Lock()
	if a.state != running {
		a.mu.Unlock()
		return nil
	}
	a.state = leftCluster
	s, quit := a.serf, a.serfQuit
	a.mu.Unlock()
	if s == nil {
		return nil
	}
	if quit {
		return fmt.Errorf("agent: leave: %w: this peer is no member (another member has its name, or its gossip layer stopped by itself), so it leaves nothing", ErrShutdown)
	}
	// Each step before the serf leave gets a share of what is left of ctx:
	// peers that cannot be reached (a partition) must not use up the time
	// the leave itself needs, or the others would see this peer failed.
	step := func(share float64) (context.Context, context.CancelFunc) {
		if dl, ok := ctx.Deadline(); ok {
			return context.WithDeadline(ctx, time.Now().Add(time.Duration(share*float64(time.Until(dl)))))
		}
		return context.WithCancel(ctx)
	}
	if a.ctr != nil {
		sctx, cancel := step(0.35)
		a.handOff(sctx)
		cancel()
		sctx, cancel = step(0.25)
		a.handOffIdem(sctx)
		cancel()
	}
	if ls, err := a.lockService(); err == nil {
		sctx, cancel := step(0.35)
		ls.leave(sctx)
		cancel()
		ls.leaveVoters(ctx) // half of what is left at most
	}
	done := make(chan error, 1)
	go func() { done <- s.Leave() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("agent: leave: %w", err)
		}
		a.mu.Lock()
		db := a.db
		a.mu.Unlock()
		if db != nil && !a.cfg.RejoinAfterLeave {
			if err := saveKnownPeers(db, nil); err != nil {
				a.log.Warn("cannot clear the known peers", "err", err)
			}
		}
		a.log.Info("left the cluster")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("agent: leave: %w", ctx.Err())
	}
}

// Shutdown stops everything without leaving: the others will see this peer
// fail. Safe to call more than once; it waits for every goroutine it owns.
func (a *Agent) Shutdown() error {
	a.mu.Lock()
	if a.state == stopped {
		a.mu.Unlock()
		return nil
	}
	a.state = stopped
	close(a.stop)
	s, rs, rc, hs, rl := a.serf, a.rpcServer, a.rpcClient, a.httpSrv, a.rpcListener
	a.mu.Unlock()
	if rl != nil {
		rl.Close()
	}

	var errs []error
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
		cancel()
	}
	if s != nil {
		if err := s.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if rs != nil {
		rs.Close()
	}
	if rc != nil {
		rc.Close()
	}
	a.wg.Wait()
	if s != nil {
		// serf.Shutdown shuts memberlist down, which closes the transport.
		<-s.ShutdownCh()
	}
	a.mu.Lock()
	db := a.db
	a.mu.Unlock()
	if db != nil {
		if err := db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	a.log.Info("peer stopped")
	return errors.Join(errs...)
}

// runContext returns a context for background work: it ends when Shutdown
// begins, and after timeout unless that is 0. Call cancel when done.
func (a *Agent) runContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	if timeout > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, timeout)
		inner := cancel
		cancel = func() { cancelTimeout(); inner() }
	}
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// ShutdownCh is closed when Shutdown begins.
func (a *Agent) ShutdownCh() <-chan struct{} { return a.stop }

func (a *Agent) serfOrErr() (*serf.Serf, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.state == stopped:
		return nil, ErrShutdown
	case a.serf == nil:
		return nil, ErrNotStarted
	case a.serfQuit:
		return nil, fmt.Errorf("%w: this peer is no member (another member has the name %q, or the gossip layer stopped by itself)", ErrShutdown, a.cfg.NodeName)
	}
	return a.serf, nil
}

// NodeName is this peer's name.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// RPCAddr is the peer RPC address this peer advertises.
func (a *Agent) RPCAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rpcAddr
}

// HTTPAddr is the address the HTTP API listens on, once started.
func (a *Agent) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

func (a *Agent) gossipAddr() string {
	s, err := a.serfOrErr()
	if err != nil {
		return ""
	}
	m := s.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

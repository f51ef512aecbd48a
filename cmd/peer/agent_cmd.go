package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/lockmgr"
)

// leaveTimeout bounds the graceful leave on SIGINT/SIGTERM, so the process
// exits within 10 s.
const leaveTimeout = 8 * time.Second

// agentNotes ends 'peer agent --help'.
const agentNotes = `Environment:
  GOGC, GOMEMLIMIT  Go's garbage collector settings. Without either, the peer sets the GC
                    percent itself once a second: under load the heap may grow by about one
                    second's allocation (at most 64 MiB), and back at rest it is 100 again.
                    Set either one to choose the GC's settings yourself.
`

func agentCommand(fs *pflag.FlagSet) func([]string) error {
	def := agent.DefaultConfig()
	name := fs.String("name", def.NodeName, "node name, unique in the cluster (letters, digits, '-', '.', '_')")
	bind := fs.String("bind", def.BindAddr, "gossip address to bind, host:port (UDP and TCP)")
	advertise := fs.String("advertise", "", "gossip address other peers use, host:port (default: the bind address, or a private IP when binding 0.0.0.0)")
	rpc := fs.String("rpc", def.RPCAddr, "peer RPC address to bind, host:port")
	rpcAdvertise := fs.String("rpc-advertise", "", "peer RPC address other peers dial, host:port (default: the gossip advertise IP with --rpc's port)")
	httpAddr := fs.String("http", def.HTTPAddr, "HTTP API address, host:port (keep it on loopback unless a proxy guards it); empty disables it")
	dataDir := fs.String("data-dir", def.DataDir, "directory for this peer's durable state; a restarted peer rejoins from its snapshot here")
	join := fs.StringSlice("join", nil, "seed address to join at start, host[:port] (repeatable or comma-separated); start fails if none answers")
	retryJoin := fs.StringSlice("retry-join", nil, "seed address to keep joining in the background with backoff until one answers (repeatable)")
	encrypt := fs.String("encrypt", "", "cluster key, base64 of 32 bytes (make one with 'peer keygen'); encrypts gossip and authenticates peer RPC. Prefer PEER_ENCRYPT: flags show in ps")
	vnodes := fs.Int("vnodes", def.VNodes, "virtual nodes per peer on the ring; must be the same on every peer")
	dc := def.Counters
	spread := fs.Duration("spread-interval", dc.SpreadInterval, "how often counter writes are pushed to every peer; a write acknowledged with consistency=local that was not pushed yet dies with this peer's disk")
	antiEntropy := fs.Duration("anti-entropy-interval", dc.AntiEntropyInterval, "how often this peer compares counters with a random peer and repairs what differs")
	majorityTimeout := fs.Duration("majority-timeout", dc.MajorityTimeout, "how long a consistency=majority write or read waits for a majority of the voters before answering 503")
	identityTimeout := fs.Duration("identity-timeout", dc.IdentityTimeout, "how long a starting peer waits to confirm its counter replica identity with its peers before taking a new one (writes wait for it)")
	idemWindow := fs.Duration("idempotency-window", dc.IdempotencyWindow, "how long the first answer to a write with an Idempotency-Key is kept and replayed to retries; set it the same on every peer (copies held for others last no longer than this)")
	idemMax := fs.Int("idempotency-max-records", dc.IdempotencyMaxRecords, "most idempotency records kept; past it, idempotent writes are refused (503) until old ones expire")
	minSync := fs.Duration("store-min-sync-interval", def.StoreMinSyncInterval, "shortest time between two fsyncs of the data dir's write-ahead log; writes are still acknowledged only once synced, and under load they share fsyncs (0: sync as soon as the last sync ended; at most 10ms)")
	dl := def.Locks
	lockDelay := fs.Duration("lock-delay", dl.LockDelay, "the lock promise period: how long a dead owner's locks stay ungrantable, and how long a restarted peer promises nothing; must be the same on every peer")
	lockDrift := fs.Duration("lock-drift-margin", dl.DriftMargin, "how much peers' clocks may disagree over one lock-delay; lock TTLs are at most lock-delay minus this; must be the same on every peer")
	lockTTL := fs.Duration("lock-default-ttl", dl.DefaultTTL, "TTL of a lock request that gives none; when not given and lock-delay minus lock-drift-margin is shorter, that is used instead, with a warning at start")
	lockMaxWait := fs.Duration("lock-max-wait", dl.MaxWait, "longest wait a lock request may ask for")
	bootstrapExpect := fs.Int("bootstrap-expect", dl.BootstrapExpect, "how many peers form the first lock voter set: a peer with no set forms it once it sees this many peers and none has one (start a new cluster's first N peers with N; later peers are added one at a time)")
	enableDebug := fs.Bool("enable-debug", false, "serve Go's profiler (net/http/pprof) under /debug/pprof/ on the HTTP API; anyone who reaches the API can read it")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("unexpected argument %q", args[0])
		}
		level, err := parseLevel(*logLevel)
		if err != nil {
			return usagef("%v", err)
		}
		cfg := def
		cfg.NodeName = *name
		cfg.BindAddr = withDefaultPort(*bind, "7946")
		cfg.AdvertiseAddr = *advertise
		cfg.RPCAddr = withDefaultPort(*rpc, "7947")
		cfg.RPCAdvertiseAddr = *rpcAdvertise
		cfg.HTTPAddr = withDefaultPort(*httpAddr, "7948")
		cfg.DataDir = *dataDir
		cfg.StartJoin = *join
		cfg.RetryJoin = *retryJoin
		cfg.VNodes = *vnodes
		cfg.StoreMinSyncInterval = *minSync
		cfg.Counters.SpreadInterval = *spread
		cfg.Counters.AntiEntropyInterval = *antiEntropy
		cfg.Counters.MajorityTimeout = *majorityTimeout
		cfg.Counters.IdentityTimeout = *identityTimeout
		cfg.Counters.IdempotencyWindow = *idemWindow
		cfg.Counters.IdempotencyMaxRecords = *idemMax
		cfg.Locks.LockDelay = *lockDelay
		cfg.Locks.DriftMargin = *lockDrift
		cfg.Locks.DefaultTTL = *lockTTL
		cfg.Locks.MaxWait = *lockMaxWait
		cfg.Locks.BootstrapExpect = *bootstrapExpect
		cfg.EnableDebug = *enableDebug
		if *encrypt != "" {
			key, err := base64.StdEncoding.DecodeString(*encrypt)
			if err != nil {
				return usagef("--encrypt: not base64: %v (make a key with 'peer keygen')", err)
			}
			cfg.EncryptKey = key
		}
		var handler slog.Handler
		opts := &slog.HandlerOptions{Level: level}
		if *logJSON {
			handler = slog.NewJSONHandler(os.Stderr, opts)
		} else {
			handler = slog.NewTextHandler(os.Stderr, opts)
		}
		cfg.Logger = slog.New(handler)
		warning := fitDefaultLockTTL(&cfg, fs.Changed("lock-default-ttl"))
		if err := cfg.Validate(); err != nil {
			return usagef("%v", err)
		}
		if warning != "" {
			cfg.Logger.Warn(warning, "lock_default_ttl", cfg.Locks.DefaultTTL.String())
		}
		return runAgent(cfg)
	}
}

// fitDefaultLockTTL lowers the default lock TTL to the longest TTL the
// lock-delay allows (lock-delay minus drift margin) when it is above it and
// --lock-default-ttl was not given, and returns the warning to log once
// the configuration is valid: lock requests without a TTL then get less
// than the documented 10 s. A --lock-default-ttl given too large, or
// settings that allow no TTL of 1s, are left for Validate to refuse.
func fitDefaultLockTTL(cfg *agent.Config, given bool) (warning string) {
	l := &cfg.Locks
	longest := l.LockDelay - l.DriftMargin
	if given || l.DefaultTTL <= longest || longest < lockmgr.MinTTL {
		return ""
	}
	warning = fmt.Sprintf("default lock TTL lowered from %v to %v, the lock-delay %v minus the drift margin %v: lock requests without a TTL get %v; set --lock-default-ttl to choose it",
		l.DefaultTTL, longest, l.LockDelay, l.DriftMargin, longest)
	l.DefaultTTL = longest
	return warning
}

// runAgent runs a peer until a signal: SIGINT or SIGTERM leaves the cluster
// gracefully (others see "left") and exits 0; a second signal stops at once.
func runAgent(cfg agent.Config) error {
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// Start may wait on --join seeds; a signal meanwhile stops it.
	startCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- a.Start(startCtx) }()
	select {
	case err := <-started:
		if err != nil {
			return err
		}
	case sig := <-sigs:
		cfg.Logger.Info("signal received while starting; stopping", "signal", sig.String())
		cancel()
		<-started
		a.Shutdown()
		return fmt.Errorf("stopped by %s before the peer had started", sig)
	}
	// Tuned from here on: the start's own burst of allocation (a million
	// counters read back, say) would otherwise raise the percent and leave
	// the heap of an idle peer larger.
	if gcTuningWanted() {
		t := startGCTuner(setGCPercent, gcPeriod)
		defer t.stop()
		cfg.Logger.Debug("Go's GC percent follows the allocation rate; set GOGC or GOMEMLIMIT to choose it yourself")
	}
	select {
	case sig := <-sigs:
		cfg.Logger.Info("signal received; leaving the cluster", "signal", sig.String())
	case err := <-a.Fatal():
		a.Shutdown()
		return err
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		done <- a.Leave(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			cfg.Logger.Warn("graceful leave incomplete", "err", err)
		}
	case <-sigs:
		cfg.Logger.Warn("second signal; stopping without finishing the leave")
	}
	return a.Shutdown()
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
}

// withDefaultPort turns "host" (a name, an IPv4 or a bare IPv6 address)
// into "host:port"; anything with a port is left alone.
func withDefaultPort(addr, port string) string {
	switch {
	case addr == "":
		return addr
	case net.ParseIP(addr) != nil, !strings.Contains(addr, ":"):
		return net.JoinHostPort(addr, port)
	}
	return addr
}

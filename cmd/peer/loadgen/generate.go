package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// config is one load run. Every field is set from a flag; see main.go.
type config struct {
	mode        string        // incr, batch, get, noop or redis
	target      string        // HTTP host:port (all modes but redis)
	redisAddr   string        // redis host:port (mode redis)
	connections int           // concurrent keep-alive connections, one goroutine each
	duration    time.Duration // issue no request after this
	requests    int64         // stop after this many requests in all (0: no limit)
	keys        int           // keys are keyPrefix + 0 .. keys-1
	keyPrefix   string
	batch       int           // items per :batch request
	seed        uint64        // for the key choice; worker i uses (seed, i)
	consistency string        // "" (the server's default), local or majority
	noopPath    string        // the path mode noop posts to
	timeout     time.Duration // bound on one request
	verify      bool          // decode every answer and check its shape
	allowRemote bool          // allow addresses other than loopback
}

// Limits on the flags, so a typo cannot start a runaway.
const (
	maxConnections = 10000
	maxKeys        = 100_000_000
	maxBatch       = 10000 // the API's limit per :batch request
	maxDuration    = 24 * time.Hour
)

func (c config) validate() error {
	switch c.mode {
	case "incr", "batch", "get", "noop", "redis":
	default:
		return fmt.Errorf("--mode %q: use incr, batch, get, noop or redis", c.mode)
	}
	if c.connections < 1 || c.connections > maxConnections {
		return fmt.Errorf("--connections %d: want 1 to %d", c.connections, maxConnections)
	}
	if c.duration <= 0 || c.duration > maxDuration {
		return fmt.Errorf("--duration %v: want more than 0 and at most %v", c.duration, maxDuration)
	}
	if c.requests < 0 {
		return fmt.Errorf("--requests %d: want 0 (no limit) or more", c.requests)
	}
	if c.keys < 1 || c.keys > maxKeys {
		return fmt.Errorf("--keys %d: want 1 to %d", c.keys, maxKeys)
	}
	if c.batch < 1 || c.batch > maxBatch || (c.mode == "batch" && c.batch > c.keys) {
		return fmt.Errorf("--batch %d: want 1 to %d, and at most --keys (the keys of one batch differ)", c.batch, maxBatch)
	}
	for i := 0; i < len(c.keyPrefix); i++ {
		if b := c.keyPrefix[i]; b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			return fmt.Errorf("--key-prefix %q: use printable ASCII without '\"' or '\\'", c.keyPrefix)
		}
	}
	switch c.consistency {
	case "", "local", "majority":
	default:
		return fmt.Errorf("--consistency %q: use local or majority", c.consistency)
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout %v: want more than 0", c.timeout)
	}
	if len(c.noopPath) == 0 || c.noopPath[0] != '/' {
		return fmt.Errorf("--noop-path %q: want a path starting with /", c.noopPath)
	}
	addr, flag := c.target, "--target"
	if c.mode == "redis" {
		addr, flag = c.redisAddr, "--redis-addr"
	}
	return checkAddr(flag, addr, c.allowRemote)
}

// checkAddr accepts host:port on a loopback address (or "localhost"), and
// any host:port when remote is allowed.
func checkAddr(flag, addr string, remote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port: %v", flag, addr, err)
	}
	if remote {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s %q is not a loopback address; the load generator stays on 127.0.0.1 unless --allow-remote", flag, addr)
}

// outcome is what one request did.
type outcome struct {
	answered bool   // an answer came back (its latency counts)
	class    string // "" for success, else the error class: an HTTP status, "net", "timeout", "redis-error", "bad-answer"
	items    int    // increments a success carried
}

// netClass is the error class of a failed request: "timeout" when it ran
// out of time (--timeout), else "net".
func netClass(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "net"
}

// session is one connection's sequence of requests; one goroutine owns it.
type session interface {
	do() outcome
	close()
}

// workerStats is one goroutine's tally; merged after every worker ends.
type workerStats struct {
	requests  int64
	successes int64
	items     int64
	errors    map[string]int64
	latency   histogram
}

// generate runs cfg's load until cfg.duration passes, cfg.requests have
// been issued, or ctx ends, and returns the tally. Each of the
// cfg.connections goroutines issues one request at a time; a request in
// flight at the end finishes (within cfg.timeout) and counts.
func generate(ctx context.Context, cfg config) (*result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	addr := cfg.target
	if cfg.mode == "redis" {
		addr = cfg.redisAddr
	}
	// One dial first, so an unreachable target is one clear error rather
	// than a run of failures.
	conn, err := net.DialTimeout("tcp", addr, cfg.timeout)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %v", addr, err)
	}
	conn.Close()

	var dials atomic.Int64
	var newSession func(worker int) session
	var closeAll func()
	if cfg.mode == "redis" {
		newSession, closeAll = redisSessions(cfg, &dials)
	} else {
		newSession, closeAll = httpSessions(cfg, &dials)
	}
	defer closeAll()

	stats := make([]workerStats, cfg.connections)
	var issued atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for i := range cfg.connections {
		s := newSession(i)
		st := &stats[i]
		st.errors = map[string]int64{}
		wg.Go(func() {
			defer s.close()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if cfg.requests > 0 && issued.Add(1) > cfg.requests {
					return
				}
				t0 := time.Now()
				o := s.do()
				if o.answered {
					st.latency.record(time.Since(t0))
				}
				st.requests++
				if o.class != "" {
					st.errors[o.class]++
					continue
				}
				st.successes++
				st.items += int64(o.items)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	r := &result{
		Mode:        cfg.mode,
		Target:      addr,
		Connections: cfg.connections,
		Seed:        cfg.seed,
		ElapsedS:    elapsed.Seconds(),
		Errors:      map[string]int64{},
		ConnsOpened: dials.Load(),
	}
	var h histogram
	for i := range stats {
		st := &stats[i]
		r.Requests += st.requests
		r.Successes += st.successes
		r.Increments += st.items
		for k, v := range st.errors {
			r.Errors[k] += v
			r.ErrorCount += v
		}
		h.merge(&st.latency)
	}
	r.fill(&h, elapsed)
	return r, nil
}

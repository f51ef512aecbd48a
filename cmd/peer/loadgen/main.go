// Command loadgen measures a peer's counter API, a no-op handler on the
// same HTTP stack, and redis-server INCR, with one load generator so the
// figures compare. See README.md for the measuring recipe and figures.
//
//	go run ./cmd/peer/loadgen --mode incr --target 127.0.0.1:7948
//	go run ./cmd/peer/loadgen --serve-noop 127.0.0.1:18080      (another shell)
//	go run ./cmd/peer/loadgen --mode noop --target 127.0.0.1:18080
//	go run ./cmd/peer/loadgen --mode redis --redis-addr 127.0.0.1:16379
//	go run ./cmd/peer/loadgen --serve-store 127.0.0.1:18081 --store-dir /var/tmp/floor
//
// Each of --connections goroutines keeps one keep-alive connection and
// issues one request at a time on it, until --duration passes or
// --requests have been issued. Addresses must be loopback unless
// --allow-remote.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

const (
	defaultDuration = 10 * time.Second
	defaultTimeout  = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code (0 ok, 1 the
// run failed or had errors, 2 bad flags). Ending ctx stops a run early (it
// still reports) or stops --serve-noop and --serve-store.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("loadgen", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg config
	fs.StringVar(&cfg.mode, "mode", "incr", "incr (POST /v1/counters/{key} {\"delta\":1}), batch (POST /v1/counters:batch), get, noop (POST --noop-path) or redis (RESP INCR)")
	fs.StringVar(&cfg.target, "target", "127.0.0.1:7948", "HTTP host:port of the peer or the no-op server")
	fs.StringVar(&cfg.redisAddr, "redis-addr", "127.0.0.1:6379", "redis-server host:port for --mode redis")
	fs.IntVar(&cfg.connections, "connections", 64, "concurrent keep-alive connections, each with one request in flight")
	fs.DurationVar(&cfg.duration, "duration", defaultDuration, "issue requests for this long")
	fs.Int64Var(&cfg.requests, "requests", 0, "stop after this many requests in all (0: only --duration bounds the run)")
	fs.IntVar(&cfg.keys, "keys", 10000, "number of distinct keys, chosen uniformly at random")
	fs.StringVar(&cfg.keyPrefix, "key-prefix", "lg:", "keys are this prefix and a number")
	fs.IntVar(&cfg.batch, "batch", 100, "items per request for --mode batch (distinct keys)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the key choice")
	fs.StringVar(&cfg.consistency, "consistency", "", "consistency query parameter for incr, batch and get: local or majority (default: none sent)")
	fs.StringVar(&cfg.noopPath, "noop-path", "/v1/noop", "path --mode noop posts to")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "bound on one request (and on a dial)")
	fs.BoolVar(&cfg.verify, "verify", false, "decode every answer and count a malformed one as an error (costs generator CPU)")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	serveNoop := fs.String("serve-noop", "", "instead of generating load, serve the no-op handler on this host:port until SIGINT/SIGTERM")
	serveStore := fs.String("serve-store", "", "instead of generating load, serve the storage floor on this host:port until SIGINT/SIGTERM: POST /v1/counters/{key} makes one synced store write (needs --store-dir)")
	storeDir := fs.String("store-dir", "", "data dir of --serve-store (created if missing; pebble, fsync on)")
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: go run ./cmd/peer/loadgen [flags]\n\nLoad generator for the counter API, a no-op handler and redis-server.\n\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "loadgen: %v\n\n", err)
		usage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	switch {
	case *serveNoop != "" && *serveStore != "":
		fmt.Fprintln(stderr, "loadgen: give --serve-noop or --serve-store, not both (run each in its own process)")
		return 2
	case *storeDir != "" && *serveStore == "":
		fmt.Fprintln(stderr, "loadgen: --store-dir is the data dir of --serve-store; give --serve-store ADDR too")
		return 2
	}
	if *serveNoop != "" {
		if err := checkAddr("--serve-noop", *serveNoop, cfg.allowRemote); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 2
		}
		l, err := net.Listen("tcp", *serveNoop)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
		var s noopServer
		fmt.Fprintf(stderr, "loadgen: no-op handler on http://%s (any path); SIGINT or SIGTERM stops it\n", l.Addr())
		err = serveHTTP(ctx, l, s.handler())
		fmt.Fprintf(stderr, "loadgen: served %d requests\n", s.served.Load())
		if err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
		return 0
	}

	if *serveStore != "" {
		return runStoreServer(ctx, stderr, *serveStore, *storeDir, cfg.allowRemote)
	}

	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	r, err := generate(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	if *asJSON {
		err = r.writeJSON(stdout)
	} else {
		err = r.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	if r.ErrorCount > 0 {
		return 1
	}
	return 0
}

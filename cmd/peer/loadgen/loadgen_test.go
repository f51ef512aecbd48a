package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startNoop serves the no-op handler on a loopback port until the test
// ends, and returns it and its address.
func startNoop(t *testing.T) (*noopServer, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &noopServer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, l, s.handler()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("no-op server: %v", err)
		}
	})
	return s, l.Addr().String()
}

// runJSON runs the generator's command line with --json and decodes the
// result.
func runJSON(t *testing.T, args ...string) (*result, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(args, "--json"), &stdout, &stderr)
	if code == 2 || stdout.Len() == 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output is not a result: %v\n%s", err, stdout.String())
	}
	return &r, code, stderr.String()
}

// checkConsistent checks the tally adds up: every request either succeeded
// or counted as an error, every answered one has a latency, and no more
// connections were opened than asked for (keep-alive held), but for those
// a failed request closed.
func checkConsistent(t *testing.T, r *result) {
	t.Helper()
	var byClass int64
	for _, n := range r.Errors {
		byClass += n
	}
	if r.Successes+r.ErrorCount != r.Requests || byClass != r.ErrorCount {
		t.Errorf("successes %d + errors %d (by class %d) != requests %d", r.Successes, r.ErrorCount, byClass, r.Requests)
	}
	if r.Answered > uint64(r.Requests) || r.Answered < uint64(r.Successes) {
		t.Errorf("answered %d, want between successes %d and requests %d", r.Answered, r.Successes, r.Requests)
	}
	broken := r.Errors["net"] + r.Errors["timeout"] // each closes its connection
	if (r.Requests > 0 && r.ConnsOpened < 1) || r.ConnsOpened > int64(r.Connections)+broken {
		t.Errorf("opened %d connections for %d workers", r.ConnsOpened, r.Connections)
	}
	if r.Answered > 0 && !(0 < r.LatencyP50Ms && r.LatencyP50Ms <= r.LatencyP90Ms && r.LatencyP90Ms <= r.LatencyP99Ms && r.LatencyP99Ms <= r.LatencyMaxMs) {
		t.Errorf("latencies not ordered: p50 %v p90 %v p99 %v max %v", r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs)
	}
}

func TestNoopServerAndGenerator(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, addr := startNoop(t)
		r, code, stderr := runJSON(t, "--mode", "noop", "--target", addr, "--connections", "4", "--requests", "500", "--duration", "2s", "--verify")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkConsistent(t, r)
		if r.Requests != 500 || r.Successes != 500 || r.ErrorCount != 0 || r.Answered != 500 {
			t.Errorf("requests %d successes %d errors %v answered %d; want 500, 500, none, 500", r.Requests, r.Successes, r.Errors, r.Answered)
		}
		if got := srv.served.Load(); got != 500 {
			t.Errorf("the server answered %d requests, want 500", got)
		}
		if r.Increments != 0 || r.RequestsPerS <= 0 {
			t.Errorf("increments %d (want 0 for noop), %v requests/s", r.Increments, r.RequestsPerS)
		}
	}()
	// The generator closes its connections at the end of the run, so its
	// goroutines and the server's per-connection ones end; what remains is
	// the server's two (Serve, and serve waiting for the test's end).
	waitFor(t, "the connections' goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// waitFor polls cond until it holds, for at most 2 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestDurationBoundsTheRun(t *testing.T) {
	_, addr := startNoop(t)
	start := time.Now()
	r, code, stderr := runJSON(t, "--mode", "incr", "--target", addr, "--connections", "8", "--duration", "150ms", "--keys", "10")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkConsistent(t, r)
	if r.Requests == 0 || r.Successes != r.Increments {
		t.Errorf("requests %d, successes %d, increments %d", r.Requests, r.Successes, r.Increments)
	}
	if r.ElapsedS < 0.15 || took > time.Second {
		t.Errorf("a 150 ms run took %.3fs by its own clock, %v by the test's", r.ElapsedS, took)
	}
}

// counterAPI is a fake of the counter API's write and read routes that
// checks each request's shape and sums the deltas per key.
type counterAPI struct {
	t           *testing.T
	consistency string
	keys        int
	// mu guards sums and requests.
	mu       sync.Mutex
	sums     map[string]int64
	requests int
	fail     func(n int) bool // answer 503 to the n-th request (from 1)
}

func (a *counterAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if got := r.URL.Query().Get("consistency"); got != a.consistency {
		a.t.Errorf("consistency %q, want %q", got, a.consistency)
	}
	a.mu.Lock()
	a.requests++
	n := a.requests
	a.mu.Unlock()
	if a.fail != nil && a.fail(n) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"majority not reached; the increment still happened locally"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/counters:batch":
		var req struct {
			Items []struct {
				Key   string `json:"key"`
				Delta int64  `json:"delta"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			a.t.Errorf("batch body %q: %v", body, err)
		}
		seen := map[string]bool{}
		var out bytes.Buffer
		out.WriteString(`{"items":[`)
		for i, it := range req.Items {
			a.checkKey(it.Key)
			if seen[it.Key] || it.Delta != 1 {
				a.t.Errorf("batch item %q delta %d: repeated, or delta not 1", it.Key, it.Delta)
			}
			seen[it.Key] = true
			v := a.add(it.Key, it.Delta)
			if i > 0 {
				out.WriteByte(',')
			}
			fmt.Fprintf(&out, `{"key":%q,"value":%d}`, it.Key, v)
		}
		out.WriteString(`]}`)
		w.Write(out.Bytes())
	case strings.HasPrefix(r.URL.Path, "/v1/counters/"):
		key := strings.TrimPrefix(r.URL.Path, "/v1/counters/")
		a.checkKey(key)
		var v int64
		if r.Method == "POST" {
			if string(body) != `{"delta":1}` || r.Header.Get("Content-Type") != "application/json" {
				a.t.Errorf("incr body %q, Content-Type %q", body, r.Header.Get("Content-Type"))
			}
			v = a.add(key, 1)
		} else {
			v = a.add(key, 0)
		}
		fmt.Fprintf(w, `{"key":%q,"value":%d}`, key, v)
	default:
		a.t.Errorf("unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
	}
}

func (a *counterAPI) checkKey(key string) {
	n, err := strconv.Atoi(strings.TrimPrefix(key, "lg:"))
	if !strings.HasPrefix(key, "lg:") || err != nil || n < 0 || n >= a.keys {
		a.t.Errorf("key %q is not lg:0 .. lg:%d", key, a.keys-1)
	}
}

func (a *counterAPI) add(key string, d int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sums[key] += d
	return a.sums[key]
}

func (a *counterAPI) total() (sum int64, keys int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, v := range a.sums {
		sum += v
	}
	return sum, len(a.sums)
}

func TestHTTPModesAgainstAFakeAPI(t *testing.T) {
	for _, tc := range []struct {
		mode        string
		consistency string
		keys, batch int
		requests    int64
		fail        func(int) bool
		wantIncr    int64
	}{
		{mode: "incr", consistency: "majority", keys: 50, requests: 400, wantIncr: 400},
		{mode: "incr", keys: 1, requests: 100, wantIncr: 100},
		{mode: "batch", consistency: "local", keys: 150, batch: 100, requests: 40, wantIncr: 4000},
		{mode: "batch", keys: 10, batch: 10, requests: 20, wantIncr: 200}, // every key in every batch
		{mode: "get", keys: 20, requests: 300, wantIncr: 0},
		{mode: "incr", keys: 30, requests: 300, fail: func(n int) bool { return n%3 == 0 }, wantIncr: 200},
	} {
		name := fmt.Sprintf("%s/keys=%d/batch=%d/failing=%t", tc.mode, tc.keys, tc.batch, tc.fail != nil)
		t.Run(name, func(t *testing.T) {
			api := &counterAPI{t: t, consistency: tc.consistency, keys: tc.keys, sums: map[string]int64{}, fail: tc.fail}
			srv := httptest.NewServer(api)
			defer srv.Close()
			cfg := testConfig(tc.mode, srv.Listener.Addr().String())
			cfg.consistency, cfg.keys, cfg.requests = tc.consistency, tc.keys, tc.requests
			if tc.batch > 0 {
				cfg.batch = tc.batch
			}
			r, err := generate(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkConsistent(t, r)
			if r.Requests != tc.requests || r.Increments != tc.wantIncr {
				t.Errorf("requests %d increments %d, want %d and %d", r.Requests, r.Increments, tc.requests, tc.wantIncr)
			}
			sum, _ := api.total()
			if tc.fail == nil && sum != r.Increments {
				t.Errorf("the server counted %d increments, the generator %d", sum, r.Increments)
			}
			if tc.fail != nil && (r.Errors["503"] != tc.requests-tc.wantIncr || r.ErrorCount != r.Errors["503"]) {
				t.Errorf("errors %v, want 503: %d", r.Errors, tc.requests-tc.wantIncr)
			}
		})
	}
}

func testConfig(mode, target string) config {
	return config{
		mode: mode, target: target, redisAddr: target,
		connections: 4, duration: 2 * time.Second, keys: 100, keyPrefix: "lg:",
		batch: 100, seed: 7, noopPath: "/v1/noop", timeout: 2 * time.Second, verify: true,
	}
}

// fakeRedis answers RESP INCR commands on a loopback port until the test
// ends, counting per key, and can answer an error reply instead.
type fakeRedis struct {
	addr string
	// mu guards counts and conns.
	mu     sync.Mutex
	counts map[string]int64
	conns  map[net.Conn]bool
	n      atomic.Int64       // commands read
	errAt  func(n int64) bool // answer -ERR to the n-th command (from 1)
	wg     sync.WaitGroup
}

func startFakeRedis(t *testing.T, errAt func(int64) bool) *fakeRedis {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{addr: l.Addr().String(), counts: map[string]int64{}, conns: map[net.Conn]bool{}, errAt: errAt}
	f.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Go(func() {
				if err := f.serve(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					t.Errorf("fake redis: %v", err)
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// serve reads "*2\r\n$4\r\nINCR\r\n$N\r\nKEY\r\n" commands and answers
// ":VALUE\r\n".
func (f *fakeRedis) serve(c net.Conn) error {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		var key string
		for i, want := range []string{"*2", "$4", "INCR", "$"} {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			line = strings.TrimSuffix(line, "\r\n")
			if i == 3 {
				n, err := strconv.Atoi(strings.TrimPrefix(line, "$"))
				if !strings.HasPrefix(line, "$") || err != nil || n < 0 || n > 512 {
					return fmt.Errorf("bad bulk length %q", line)
				}
				b := make([]byte, n+2)
				if _, err := io.ReadFull(r, b); err != nil {
					return err
				}
				key = string(b[:n])
			} else if line != want {
				return fmt.Errorf("got %q, want %q", line, want)
			}
		}
		if f.errAt != nil && f.errAt(f.n.Add(1)) {
			io.WriteString(c, "-MISCONF disk is full\r\n")
			continue
		}
		f.mu.Lock()
		f.counts[key]++
		v := f.counts[key]
		f.mu.Unlock()
		fmt.Fprintf(c, ":%d\r\n", v)
	}
}

func (f *fakeRedis) total() (sum int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.counts {
		sum += v
	}
	return sum
}

func TestRedisMode(t *testing.T) {
	f := startFakeRedis(t, nil)
	r, code, stderr := runJSON(t, "--mode", "redis", "--redis-addr", f.addr, "--connections", "5", "--requests", "600", "--duration", "2s", "--keys", "40")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkConsistent(t, r)
	if r.Requests != 600 || r.Successes != 600 || r.Increments != 600 || r.ErrorCount != 0 {
		t.Errorf("requests %d successes %d increments %d errors %v; want 600, 600, 600, none", r.Requests, r.Successes, r.Increments, r.Errors)
	}
	if got := f.total(); got != 600 {
		t.Errorf("the fake redis counted %d INCRs, want 600", got)
	}
	if r.ConnsOpened != 5 {
		t.Errorf("opened %d connections, want 5", r.ConnsOpened)
	}
}

func TestRedisErrorReplies(t *testing.T) {
	f := startFakeRedis(t, func(n int64) bool { return n%4 == 0 })
	cfg := testConfig("redis", f.addr)
	cfg.requests = 200
	r, err := generate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, r)
	if r.Errors["redis-error"] != 50 || r.Successes != 150 || f.total() != 150 {
		t.Errorf("errors %v successes %d, server %d; want 50 redis-error and 150", r.Errors, r.Successes, f.total())
	}
}

func TestFlags(t *testing.T) {
	_, addr := startNoop(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		stderr   string
	}{
		{name: "remote target", args: []string{"--target", "10.1.2.3:80"}, wantCode: 2, stderr: "not a loopback address"},
		{name: "remote redis", args: []string{"--mode", "redis", "--redis-addr", "example.com:6379"}, wantCode: 2, stderr: "--redis-addr"},
		{name: "remote no-op server", args: []string{"--serve-noop", "0.0.0.0:0"}, wantCode: 2, stderr: "--serve-noop"},
		{name: "both servers", args: []string{"--serve-noop", "127.0.0.1:0", "--serve-store", "127.0.0.1:0", "--store-dir", t.TempDir()}, wantCode: 2, stderr: "not both"},
		{name: "store dir alone", args: []string{"--store-dir", t.TempDir()}, wantCode: 2, stderr: "give --serve-store ADDR too"},
		{name: "store floor without dir", args: []string{"--serve-store", "127.0.0.1:0"}, wantCode: 2, stderr: "--store-dir"},
		{name: "remote store floor", args: []string{"--serve-store", "0.0.0.0:0", "--store-dir", t.TempDir()}, wantCode: 2, stderr: "--serve-store"},
		{name: "no port", args: []string{"--target", "127.0.0.1"}, wantCode: 2, stderr: "want host:port"},
		{name: "bad mode", args: []string{"--mode", "set"}, wantCode: 2, stderr: `--mode "set"`},
		{name: "no connections", args: []string{"--connections", "0"}, wantCode: 2, stderr: "--connections 0"},
		{name: "no duration", args: []string{"--duration", "0s"}, wantCode: 2, stderr: "--duration"},
		{name: "negative requests", args: []string{"--requests", "-1"}, wantCode: 2, stderr: "--requests"},
		{name: "batch above keys", args: []string{"--mode", "batch", "--keys", "10", "--batch", "11"}, wantCode: 2, stderr: "--batch 11"},
		{name: "bad consistency", args: []string{"--consistency", "all"}, wantCode: 2, stderr: "--consistency"},
		{name: "quote in key prefix", args: []string{"--key-prefix", `a"b`}, wantCode: 2, stderr: "--key-prefix"},
		{name: "bad noop path", args: []string{"--noop-path", "noop"}, wantCode: 2, stderr: "--noop-path"},
		{name: "argument", args: []string{"extra"}, wantCode: 2, stderr: `unexpected argument "extra"`},
		{name: "unknown flag", args: []string{"--rate", "5"}, wantCode: 2, stderr: "unknown flag"},
		{name: "help", args: []string{"--help"}, wantCode: 0},
		{name: "nobody listening", args: []string{"--target", "127.0.0.1:1"}, wantCode: 1, stderr: "cannot reach 127.0.0.1:1"},
		{name: "text output", args: []string{"--target", addr, "--requests", "10", "--connections", "2"}, wantCode: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d, want %d; stderr lacks %q?\n%s", code, tc.wantCode, tc.stderr, stderr.String())
			}
			if tc.name == "text output" && !strings.Contains(stdout.String(), "requests             10") {
				t.Errorf("text output:\n%s", stdout.String())
			}
		})
	}
}

func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		class   string
	}{
		{name: "status", class: "422", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":"Idempotency-Key reused"}`, http.StatusUnprocessableEntity)
		}},
		{name: "redirect counted, not followed", class: "301", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				t.Errorf("the generator followed a redirect")
			}
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		}},
		{name: "malformed answer", class: "bad-answer", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"key":"k"}`)
		}},
		{name: "timeout", class: "timeout", handler: func(w http.ResponseWriter, r *http.Request) {
			// With the body read, the server notices when the client
			// gives up and closes the connection.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			defer srv.CloseClientConnections() // ends a handler still waiting
			cfg := testConfig("incr", srv.Listener.Addr().String())
			cfg.connections, cfg.requests, cfg.timeout = 2, 6, 100*time.Millisecond
			r, err := generate(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkConsistent(t, r)
			if r.Errors[tc.class] != 6 || r.ErrorCount != 6 || r.Successes != 0 {
				t.Errorf("errors %v, successes %d; want 6 of class %s", r.Errors, r.Successes, tc.class)
			}
			if wantAnswered := tc.class != "timeout"; (r.Answered == 6) != wantAnswered {
				t.Errorf("answered %d of 6", r.Answered)
			}
		})
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	srv, addr := startNoop(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig("noop", addr)
	cfg.duration = time.Minute
	var r *result
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err = generate(ctx, cfg)
	}()
	waitFor(t, "the run to be under way", func() bool { return srv.served.Load() >= 20 })
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("generate did not stop within 2 s of the cancel")
	}
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, r)
	if r.Requests < 20 || r.ErrorCount != 0 {
		t.Errorf("requests %d, errors %v; want 20 or more, none", r.Requests, r.Errors)
	}
}

func TestHistogramBuckets(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 100000 {
		v := time.Duration(rng.Int64N(1 << uint(rng.IntN(63))))
		i := histIndex(v)
		lo, next := histLow(i), histLow(i+1)
		if i < 0 || i >= histBuckets || v < lo || (i+1 < histBuckets && v >= next) {
			t.Fatalf("seed %d: %d ns in bucket %d = [%d, %d)", seed, v, i, lo, next)
		}
		if i >= 2*histSub && float64(next-lo) > float64(lo)/histSub {
			t.Fatalf("seed %d: bucket %d = [%d, %d) is wider than 1/%d", seed, i, lo, next, histSub)
		}
	}
	for i := range histBuckets - 1 { // buckets are contiguous and ordered
		if histIndex(histLow(i)) != i || histLow(i+1) <= histLow(i) {
			t.Fatalf("bucket %d: low %d maps to %d; next low %d", i, histLow(i), histIndex(histLow(i)), histLow(i+1))
		}
	}
	if histIndex(1<<63-1) != histBuckets-1 {
		t.Fatalf("the largest duration is in bucket %d of %d", histIndex(1<<63-1), histBuckets)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var a, b histogram
	for i := 1; i <= 1000; i++ { // 1 µs .. 1000 µs, split over two
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.record(time.Duration(i) * time.Microsecond)
	}
	a.merge(&b)
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.9, 900 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := a.quantile(tc.q)
		if d := float64(got - tc.want); d > float64(tc.want)/histSub || -d > float64(tc.want)/histSub {
			t.Errorf("q%.2f = %v, want %v within 1/%d", tc.q, got, tc.want, histSub)
		}
	}
	if a.max != time.Millisecond || a.n != 1000 {
		t.Errorf("max %v n %d", a.max, a.n)
	}
	var empty histogram
	if empty.quantile(0.99) != 0 {
		t.Error("an empty histogram's p99 is not 0")
	}
}

func TestBatchKeysDistinct(t *testing.T) {
	for _, tc := range []struct{ keys, batch int }{{150, 100}, {100, 100}, {1, 1}, {10000, 100}} {
		cfg := testConfig("batch", "127.0.0.1:1")
		cfg.keys, cfg.batch = tc.keys, tc.batch
		s := &httpSession{cfg: cfg, rng: rand.New(rand.NewPCG(1, 2)), chosen: map[int]struct{}{}}
		for range 50 {
			var body struct {
				Items []struct {
					Key   string `json:"key"`
					Delta int    `json:"delta"`
				} `json:"items"`
			}
			if err := json.Unmarshal(s.batchBody(), &body); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, it := range body.Items {
				n, err := strconv.Atoi(strings.TrimPrefix(it.Key, "lg:"))
				if seen[it.Key] || err != nil || n < 0 || n >= tc.keys || it.Delta != 1 {
					t.Fatalf("keys %d batch %d: item %+v repeated or out of range", tc.keys, tc.batch, it)
				}
				seen[it.Key] = true
			}
			if len(seen) != tc.batch {
				t.Fatalf("keys %d batch %d: %d items", tc.keys, tc.batch, len(seen))
			}
		}
	}
}

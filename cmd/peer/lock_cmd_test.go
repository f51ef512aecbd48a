package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/agent/client"
	"github.com/ringleader/ringleader/agent/client/clienttest"
)

const lease1 = "0123456789abcdef0123456789abcdef"

func TestLockRequests(t *testing.T) {
	grant := `{"key":"jobs/nightly","token":4294967297,"lease":"` + lease1 + `","ttl_ms":30000,"owner":"n2"}`
	for _, tc := range []struct {
		name     string
		args     []string // after "lock"; --http-addr is added
		script   []exchange
		wantCode int
		stdout   string // exact
		stderr   string // contained
	}{
		{
			name: "acquire",
			args: []string{"acquire", "jobs/nightly", "--ttl", "30s", "--wait", "1m30s", "--holder", "cron@h1"},
			script: []exchange{{method: "POST", uri: "/v1/locks/jobs%2Fnightly", body: `{"ttl":"30s","wait":"1m30s","holder":"cron@h1"}`,
				respBody: grant}},
			stdout: "key    jobs/nightly\ntoken  4294967297\nlease  " + lease1 + "\nttl    30s\nowner  n2\n",
		},
		{
			name: "acquire --json",
			args: []string{"acquire", "..", "--holder", "h", "--json"},
			script: []exchange{{method: "POST", uri: "/v1/locks/%2E%2E", body: `{"holder":"h"}`,
				respBody: `{"key":"..","token":1,"lease":"` + lease1 + `","ttl_ms":10000,"owner":"n1"}`}},
			stdout: `{"key":"..","token":1,"lease":"` + lease1 + `","ttl_ms":10000,"owner":"n1"}` + "\n",
		},
		{
			name: "acquire held after the wait",
			args: []string{"acquire", "k", "--wait", "2s", "--holder", "me"},
			script: []exchange{{method: "POST", uri: "/v1/locks/k", body: `{"wait":"2s","holder":"me"}`,
				status: 409, respBody: `{"error":"\"k\" is held","holder":"cron@h2","remaining_ms":1234}`}},
			wantCode: 1, stderr: `peer lock: lock "k" is held by "cron@h2" (1.234s left on its lease) after waiting 2s; give --wait to wait longer` + "\n",
		},
		{
			name: "acquire held --json",
			args: []string{"acquire", "k", "--holder", "me", "--json"},
			script: []exchange{{method: "POST", uri: "/v1/locks/k", body: `{"holder":"me"}`,
				status: 409, respBody: `{"error":"\"k\" is held","holder":"cron@h2","remaining_ms":1234}`}},
			wantCode: 1, stdout: `{"key":"k","code":409,"error":"\"k\" is held","holder":"cron@h2","remaining_ms":1234}` + "\n",
			stderr: `peer lock: lock "k" is held by "cron@h2"`,
		},
		{
			name: "acquire held by no label --json",
			args: []string{"acquire", "k", "--holder", "me", "--json"},
			script: []exchange{{method: "POST", uri: "/v1/locks/k", body: `{"holder":"me"}`,
				status: 409, respBody: `{"error":"held","holder":"","remaining_ms":5}`}},
			wantCode: 1, stdout: `{"key":"k","code":409,"error":"held","holder":"","remaining_ms":5}` + "\n",
			stderr: "held by another holder",
		},
		{
			name: "acquire without quorum --json",
			args: []string{"acquire", "k", "--holder", "me", "--json"},
			script: []exchange{{method: "POST", uri: "/v1/locks/k", body: `{"holder":"me"}`,
				status: 503, respBody: `{"error":"no quorum: 2 of 5 voters promised"}`}},
			wantCode: 1, stdout: `{"key":"k","code":503,"error":"no quorum: 2 of 5 voters promised"}` + "\n",
			stderr: "peer lock: no quorum: 2 of 5 voters promised\n",
		},
		{
			name: "renew unknown lease --json",
			args: []string{"renew", "k", lease1, "--json"},
			script: []exchange{{method: "PUT", uri: "/v1/locks/k", body: `{"lease":"` + lease1 + `"}`,
				status: 404, respBody: `{"error":"unknown lease"}`}},
			wantCode: 1, stdout: `{"key":"k","code":404,"error":"unknown lease"}` + "\n", stderr: "peer lock: unknown lease\n",
		},
		{
			name: "info owner unreachable --json",
			args: []string{"info", "k", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/locks/k",
				status: 503, respBody: `{"error":"n3, the owner of lock key \"k\", did not answer"}`}},
			wantCode: 1, stdout: `{"key":"k","code":503,"error":"n3, the owner of lock key \"k\", did not answer"}` + "\n",
			stderr: "did not answer",
		},
		{
			name: "acquire without quorum",
			args: []string{"acquire", "k", "--holder", "me"},
			script: []exchange{{method: "POST", uri: "/v1/locks/k", body: `{"holder":"me"}`,
				status: 503, respBody: `{"error":"no quorum: 2 of 5 voters promised"}`}},
			wantCode: 1, stderr: "peer lock: no quorum: 2 of 5 voters promised\n",
		},
		{
			name: "acquire TTL refused",
			args: []string{"acquire", "k", "--holder", "me", "--ttl", "1h"},
			script: []exchange{{method: "POST", uri: "/v1/locks/k", body: `{"ttl":"1h0m0s","holder":"me"}`,
				status: 400, respBody: `{"error":"ttl 1h0m0s is above lock-delay 15s minus the drift margin"}`}},
			wantCode: 1, stderr: "above lock-delay",
		},
		{
			name: "renew",
			args: []string{"renew", "jobs/nightly", lease1, "--ttl", "30s"},
			script: []exchange{{method: "PUT", uri: "/v1/locks/jobs%2Fnightly", body: `{"lease":"` + lease1 + `","ttl":"30s"}`,
				respBody: grant}},
			stdout: "key    jobs/nightly\ntoken  4294967297\nlease  " + lease1 + "\nttl    30s\nowner  n2\n",
		},
		{
			name: "renew unknown lease",
			args: []string{"renew", "k", lease1},
			script: []exchange{{method: "PUT", uri: "/v1/locks/k", body: `{"lease":"` + lease1 + `"}`,
				status: 404, respBody: `{"error":"unknown lease ` + lease1 + `"}`}},
			wantCode: 1, stderr: "peer lock: unknown lease " + lease1 + "\n", // the peer's message, with nothing added
		},
		{
			name:   "release",
			args:   []string{"release", "a b", lease1},
			script: []exchange{{method: "DELETE", uri: "/v1/locks/a%20b?lease=" + lease1, respBody: `{"key":"a b","released":true}`}},
			stdout: "released a b\n",
		},
		{
			name:   "release --json",
			args:   []string{"release", "k", lease1, "--json"},
			script: []exchange{{method: "DELETE", uri: "/v1/locks/k?lease=" + lease1, respBody: `{"key":"k","released":true}`}},
			stdout: `{"key":"k","released":true}` + "\n",
		},
		{
			name: "release owner unreachable",
			args: []string{"release", "k", lease1},
			script: []exchange{{method: "DELETE", uri: "/v1/locks/k?lease=" + lease1,
				status: 503, respBody: `{"error":"owner n3 unreachable: dial timeout"}`}},
			wantCode: 1, stderr: "owner n3 unreachable",
		},
		{
			name: "info held",
			args: []string{"info", "k"},
			script: []exchange{{method: "GET", uri: "/v1/locks/k",
				respBody: `{"key":"k","held":true,"holder":"cron@h1","token":7,"remaining_ms":1500,"waiters":2,"owner":"n3"}`}},
			stdout: "key        k\nheld       yes\nholder     cron@h1\ntoken      7\nremaining  1.5s\nwaiters    2\nowner      n3\n",
		},
		{
			name: "info free",
			args: []string{"info", "k"},
			script: []exchange{{method: "GET", uri: "/v1/locks/k",
				respBody: `{"key":"k","held":false,"holder":"","token":0,"remaining_ms":0,"waiters":0,"owner":"n3"}`}},
			stdout: "key      k\nheld     no\nwaiters  0\nowner    n3\n",
		},
		{
			name: "info --json",
			args: []string{"info", "k", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/locks/k",
				respBody: `{"key":"k","held":false,"holder":"","token":0,"remaining_ms":0,"waiters":0,"owner":"n3"}`}},
			stdout: `{"key":"k","held":false,"holder":"","token":0,"remaining_ms":0,"waiters":0,"owner":"n3"}` + "\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runScripted(t, "lock", tc.script, tc.args, tc.wantCode, tc.stdout, tc.stderr)
		})
	}
}

// TestLockCLI checks help and the mistakes caught before any request
// (nothing listens at 127.0.0.1:1).
func TestLockCLI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string // after "lock"
		env      map[string]string
		wantCode int
		stdout   string
		stderr   string
	}{
		{name: "help", args: []string{"--help"}, stdout: "Usage: peer lock [flags] KEY -- CMD [ARGS...]"},
		{name: "help lists the subcommands", args: []string{"-h"}, stdout: "release KEY LEASE"},
		{name: "help tells the exit status", args: []string{"-h"}, stdout: "128+N"},
		{name: "help tells the status when CMD is not found", args: []string{"-h"}, stdout: "127           CMD was not found"},
		{name: "acquire help", args: []string{"acquire", "--help"}, stdout: "Usage: peer lock acquire [flags] KEY"},
		{name: "acquire help shows its flags", args: []string{"acquire", "--help"}, stdout: "--holder"},
		{name: "renew help", args: []string{"renew", "-h"}, stdout: "Usage: peer lock renew [flags] KEY LEASE"},
		{name: "release help", args: []string{"--help", "release"}, stdout: "the next waiter"},
		{name: "info help", args: []string{"info", "--help"}, stdout: "Usage: peer lock info [flags] KEY"},
		{name: "run help", args: []string{"k", "--help", "--", "true"}, stdout: "RINGLEADER_FENCING_TOKEN"},
		{name: "help for unknown subcommand", args: []string{"frob", "--help"}, wantCode: 2, stderr: `unknown subcommand "frob"`},
		{name: "nothing", args: []string{}, wantCode: 2, stderr: "give a subcommand (acquire, renew, release or info), or run a command"},
		{name: "key without --", args: []string{"k", "true"}, wantCode: 2, stderr: `unknown subcommand "k"`},
		{name: "no command after --", args: []string{"k", "--"}, wantCode: 2, stderr: "no command after '--'"},
		{name: "two keys before --", args: []string{"a", "b", "--", "true"}, wantCode: 2, stderr: "want one KEY before '--'"},
		{name: "no key before --", args: []string{"--", "true"}, wantCode: 2, stderr: "want one KEY before '--'"},
		{name: "empty key", args: []string{"", "--", "true"}, wantCode: 2, stderr: "KEY is empty"},
		{name: "ttl not above grace and margin", args: []string{"k", "--ttl", "5s", "--", "true"}, wantCode: 2,
			stderr: "--ttl 5s must exceed --grace 5s plus the safety margin 500ms"},
		{name: "ttl equal to grace and margin", args: []string{"k", "--ttl", "2s", "--grace", "1.8s", "--", "true"}, wantCode: 2,
			stderr: "--ttl 2s must exceed --grace 1.8s plus the safety margin 200ms"},
		{name: "negative grace", args: []string{"k", "--grace", "-1s", "--", "true"}, wantCode: 2, stderr: "none may be negative"},
		{name: "negative ttl", args: []string{"acquire", "k", "--ttl", "-1s"}, wantCode: 2, stderr: "none may be negative"},
		{name: "grace on acquire", args: []string{"acquire", "k", "--grace", "1s"}, wantCode: 2, stderr: "--grace does not apply to acquire"},
		{name: "grace from env on acquire", args: []string{"acquire", "k"}, env: map[string]string{"PEER_GRACE": "1s"}, wantCode: 1, stderr: "cannot reach the peer"},
		{name: "wait on renew", args: []string{"renew", "k", lease1, "--wait", "1s"}, wantCode: 2, stderr: "--wait does not apply to renew"},
		{name: "ttl on info", args: []string{"info", "k", "--ttl", "5s"}, wantCode: 2, stderr: "--ttl does not apply to info"},
		{name: "acquire without key", args: []string{"acquire"}, wantCode: 2, stderr: "acquire: want KEY"},
		{name: "acquire two keys", args: []string{"acquire", "a", "b"}, wantCode: 2, stderr: "acquire: want KEY"},
		{name: "release without lease", args: []string{"release", "k"}, wantCode: 2, stderr: "release: want KEY LEASE"},
		{name: "release bad lease", args: []string{"release", "k", "xyz"}, wantCode: 2, stderr: `LEASE "xyz": want the 32 hex digits`},
		{name: "renew lease not hex", args: []string{"renew", "k", strings.Repeat("g", 32)}, wantCode: 2, stderr: "want the 32 hex digits"},
		{name: "info empty key", args: []string{"info", ""}, wantCode: 2, stderr: "KEY is empty"},
		{name: "usage follows the message", args: []string{"acquire"}, wantCode: 2, stderr: "Usage: peer lock [flags] KEY -- CMD"},
		{name: "no peer to talk to", args: []string{"info", "k"}, wantCode: 1, stderr: "cannot reach the peer at 127.0.0.1:1 (is 'peer agent' running?"},
		{name: "no peer to talk to --json", args: []string{"info", "k", "--json"}, wantCode: 1,
			stdout: `{"key":"k","error":"cannot reach the peer at 127.0.0.1:1 (is 'peer agent' running?`, stderr: "cannot reach the peer"},
		{name: "no peer to wait at", args: []string{"k", "--", "true"}, wantCode: 1, stderr: "cannot reach the peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"lock", "--http-addr", "127.0.0.1:1"}, tc.args...)
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Fatalf("stdout lacks %q:\n%s", tc.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that a child's output copier and the test
// may use at once.
type syncBuffer struct {
	// mu guards b.
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lockRunner runs 'peer lock' against an in-memory lock table, in the
// background, with signals the test sends.
type lockRunner struct {
	t       *testing.T
	locks   *clienttest.LockServer
	srv     *httptest.Server
	sigs    chan chan<- os.Signal // the channel peer relays signals to
	stdout  syncBuffer
	stderr  syncBuffer
	code    chan int
	endedAt time.Time
}

func newLockRunner(t *testing.T) *lockRunner {
	r := &lockRunner{t: t, locks: clienttest.NewLockServer(), sigs: make(chan chan<- os.Signal, 1), code: make(chan int, 1)}
	r.srv = httptest.NewServer(r.locks)
	t.Cleanup(r.srv.Close)
	old := notifySignals
	notifySignals = func(c chan<- os.Signal) func() {
		r.sigs <- c
		return func() {}
	}
	t.Cleanup(func() { notifySignals = old })
	return r
}

func (r *lockRunner) start(args ...string) {
	go func() {
		r.code <- run(append([]string{"lock", "--http-addr", r.srv.Listener.Addr().String()}, args...), &r.stdout, &r.stderr)
	}()
}

// wait returns peer's exit status, and notes when it came.
func (r *lockRunner) wait(timeout time.Duration) int {
	r.t.Helper()
	select {
	case code := <-r.code:
		r.endedAt = time.Now()
		return code
	case <-time.After(timeout):
		r.t.Fatalf("peer lock still runs after %v\nstdout: %s\nstderr: %s", timeout, r.stdout.String(), r.stderr.String())
		return 0
	}
}

// waitOutput waits for the child to print a line matching re, and returns
// its submatches.
func (r *lockRunner) waitOutput(re string) []string {
	r.t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitFor(r.t, 10*time.Second, "child printed "+re, func() bool {
		m = rx.FindStringSubmatch(r.stdout.String())
		return m != nil
	})
	return m
}

func (r *lockRunner) held(key string) bool {
	c, err := client.New(r.srv.Listener.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	s, err := c.LockInfo(context.Background(), key)
	if err != nil {
		r.t.Fatal(err)
	}
	return s.Held
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLockRunPassesTokenAndStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		code   int
	}{
		{name: "exit 0", script: `echo "$RINGLEADER_FENCING_TOKEN $RINGLEADER_LOCK_KEY $RINGLEADER_LOCK_LEASE"`, code: 0},
		{name: "exit 3", script: `echo "$RINGLEADER_FENCING_TOKEN $RINGLEADER_LOCK_KEY $RINGLEADER_LOCK_LEASE"; exit 3`, code: 3},
		{name: "killed by a signal", script: `echo "$RINGLEADER_FENCING_TOKEN $RINGLEADER_LOCK_KEY $RINGLEADER_LOCK_LEASE"; kill -KILL $$`, code: 128 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLockRunner(t)
			r.start("jobs/a b", "--holder", "test", "--", "sh", "-c", tc.script)
			if code := r.wait(10 * time.Second); code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, tc.code, r.stderr.String())
			}
			m := regexp.MustCompile(`^1 jobs/a b ([0-9a-f]{32})\n$`).FindStringSubmatch(r.stdout.String())
			if m == nil {
				t.Fatalf("child printed %q, want its token, key and lease", r.stdout.String())
			}
			dels := r.locks.Requests("DELETE")
			if len(dels) != 1 || dels[0].Lease != m[1] || r.held("jobs/a b") {
				t.Fatalf("not released after the command: %+v", dels)
			}
			if r.stderr.String() != "" {
				t.Errorf("stderr: %s", r.stderr.String())
			}
		})
	}
}

// TestLockRunStopsCommandWhenLockLost: once renewals fail, the command gets
// SIGTERM, and SIGKILL if it ignores that, and has ended before the owner
// could end the lease.
func TestLockRunStopsCommandWhenLockLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		renew  clienttest.RenewMode
		script string
		code   int
		stdout string
		stderr string
	}{
		{name: "SIGTERM, no quorum", renew: clienttest.RenewUnavailable,
			script: `trap 'echo got TERM; exit 0' TERM; echo ready $RINGLEADER_LOCK_LEASE; while :; do sleep 0.05; done`,
			code:   1, stdout: "got TERM", stderr: "sending SIGTERM"},
		{name: "SIGTERM, unknown lease", renew: clienttest.RenewUnknown,
			script: `trap 'echo got TERM; exit 0' TERM; echo ready $RINGLEADER_LOCK_LEASE; while :; do sleep 0.05; done`,
			code:   1, stdout: "got TERM", stderr: "unknown lease"},
		{name: "SIGTERM ends it", renew: clienttest.RenewHang,
			script: `echo ready $RINGLEADER_LOCK_LEASE; while :; do sleep 0.05; done`,
			code:   128 + 15, stderr: "was lost while sh ran"},
		{name: "SIGKILL after grace", renew: clienttest.RenewUnavailable,
			script: `trap '' TERM; echo ready $RINGLEADER_LOCK_LEASE; while :; do sleep 0.05; done`,
			code:   128 + 9, stderr: "sending SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLockRunner(t)
			r.start("k", "--ttl", "2s", "--grace", "500ms", "--", "sh", "-c", tc.script)
			lease := r.waitOutput(`ready ([0-9a-f]{32})\n`)[1]
			// Renewals are sent one after another: once one arrives after
			// the switch, the lease's end is settled.
			n := len(r.locks.Requests("PUT"))
			r.locks.SetRenew(tc.renew)
			waitFor(t, 10*time.Second, "a renewal after the switch", func() bool { return len(r.locks.Requests("PUT")) > n })
			expiry := r.locks.Expiry(lease)
			code := r.wait(10 * time.Second)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !r.endedAt.Before(expiry) {
				t.Errorf("the command ended %v after the lease could expire", r.endedAt.Sub(expiry))
			}
			if !strings.Contains(r.stdout.String(), tc.stdout) || !strings.Contains(r.stderr.String(), tc.stderr) {
				t.Errorf("stdout %q lacks %q or stderr %q lacks %q", r.stdout.String(), tc.stdout, r.stderr.String(), tc.stderr)
			}
		})
	}
}

func TestLockRunForwardsSignals(t *testing.T) {
	r := newLockRunner(t)
	r.start("k", "--", "sh", "-c", `trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.05; done`)
	sigs := <-r.sigs
	r.waitOutput("ready\n")
	sigs <- syscall.SIGINT
	if code := r.wait(10 * time.Second); code != 7 {
		t.Fatalf("exit %d, want the command's 7; stderr: %s", code, r.stderr.String())
	}
	if !strings.Contains(r.stdout.String(), "got INT") || r.held("k") {
		t.Fatalf("stdout %q; held after: %v", r.stdout.String(), r.held("k"))
	}
}

func TestLockRunWaits(t *testing.T) {
	r := newLockRunner(t)
	c, err := client.New(r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	other, err := c.Acquire(ctx, "k", client.LockOptions{TTL: 30 * time.Second, Holder: "other"})
	if err != nil {
		t.Fatal(err)
	}

	// A bounded wait runs out: exit 1, naming the holder, command not run.
	r.start("k", "--wait", "100ms", "--", "sh", "-c", "echo ran")
	<-r.sigs
	if code := r.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(r.stderr.String(), `lock "k" is held by "other"`) || r.stdout.String() != "" {
		t.Fatalf("stdout %q stderr %q", r.stdout.String(), r.stderr.String())
	}

	// Without --wait, it waits until the holder lets go.
	r2 := newLockRunner(t)
	r2.locks, r2.srv = r.locks, r.srv
	r2.start("k", "--", "sh", "-c", `echo token $RINGLEADER_FENCING_TOKEN`)
	<-r2.sigs
	waitFor(t, 10*time.Second, "queued", func() bool {
		s, err := c.LockInfo(ctx, "k")
		return err == nil && s.Waiters == 1
	})
	if err := c.Release(ctx, "k", other.Lease); err != nil {
		t.Fatal(err)
	}
	if code := r2.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, r2.stderr.String())
	}
	if r2.stdout.String() != "token 2\n" {
		t.Fatalf("stdout %q", r2.stdout.String())
	}
}

func TestLockRunInterruptedWhileWaiting(t *testing.T) {
	r := newLockRunner(t)
	c, _ := client.New(r.srv.Listener.Addr().String())
	defer c.Close()
	if _, err := c.Acquire(context.Background(), "k", client.LockOptions{TTL: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	r.start("k", "--", "sh", "-c", "echo ran")
	sigs := <-r.sigs
	waitFor(t, 10*time.Second, "queued", func() bool { return len(r.locks.Requests("POST")) == 2 })
	sigs <- syscall.SIGTERM
	if code := r.wait(10 * time.Second); code != 128+15 {
		t.Fatalf("exit %d, want 143", code)
	}
	if !strings.Contains(r.stderr.String(), "while waiting for the lock") || r.stdout.String() != "" {
		t.Fatalf("stdout %q stderr %q", r.stdout.String(), r.stderr.String())
	}
}

func TestLockRunCommandNotFound(t *testing.T) {
	r := newLockRunner(t)
	r.start("k", "--", "/no/such/command")
	<-r.sigs
	if code := r.wait(10 * time.Second); code != 127 {
		t.Fatalf("exit %d, want 127", code)
	}
	if !strings.Contains(r.stderr.String(), "cannot run /no/such/command") || r.held("k") {
		t.Fatalf("stderr %q, held %v", r.stderr.String(), r.held("k"))
	}
}

// TestLockAcquireWaitsThroughNoQuorum: 'peer lock acquire --wait' asks
// again while the peer answers 503 (a new cluster's quiet start), as
// 'peer lock KEY -- CMD' does, until it is granted or the wait ends;
// without --wait it asks once.
func TestLockAcquireWaitsThroughNoQuorum(t *testing.T) {
	grant := `{"key":"k","token":9,"lease":"` + lease1 + `","ttl_ms":10000,"owner":"n1"}`
	for _, tc := range []struct {
		name      string
		args      []string // after "lock acquire k --holder me"
		refusals  int      // 503 answers before the grant
		firstWait string   // the first request's "wait"
		wantAsked int
		wantCode  int
		stdout    string
		stderr    string
	}{
		{name: "granted once the quorum forms", args: []string{"--wait", "1m"}, firstWait: "1m0s", refusals: 2, wantAsked: 3,
			stdout: "key    k\ntoken  9\nlease  " + lease1 + "\nttl    10s\nowner  n1\n", stderr: "peer lock: no quorum: the voters have not formed yet; waiting\n"},
		{name: "without a wait", refusals: 1, wantAsked: 1, wantCode: 1, stderr: "peer lock: no quorum: the voters have not formed yet\n"},
		{name: "wait ends first", args: []string{"--wait", "300ms", "--json"}, firstWait: "300ms", refusals: 1 << 30, wantCode: 1,
			stdout: `{"key":"k","code":503,"error":"no quorum: the voters have not formed yet"}` + "\n", stderr: "waiting\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu    sync.Mutex
				asked int
				waits []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var b struct{ Wait, Holder string }
				if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Method != "POST" || r.URL.Path != "/v1/locks/k" || b.Holder != "me" {
					t.Errorf("unexpected request %s %s (%v)", r.Method, r.URL, err)
				}
				mu.Lock()
				asked++
				waits = append(waits, b.Wait)
				n := asked
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				if n <= tc.refusals {
					w.WriteHeader(503)
					io.WriteString(w, `{"error":"no quorum: the voters have not formed yet"}`)
					return
				}
				io.WriteString(w, grant)
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			args := append([]string{"lock", "--http-addr", srv.Listener.Addr().String(), "acquire", "k", "--holder", "me"}, tc.args...)
			code := run(args, &stdout, &stderr)
			mu.Lock()
			defer mu.Unlock()
			if code != tc.wantCode || stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d, want %d\nstdout: %q\nwant:   %q\nstderr: %q, want it to hold %q", code, tc.wantCode, stdout.String(), tc.stdout, stderr.String(), tc.stderr)
			}
			if tc.wantAsked > 0 && asked != tc.wantAsked {
				t.Fatalf("asked %d times, want %d", asked, tc.wantAsked)
			}
			if len(waits) == 0 || waits[0] != tc.firstWait {
				t.Fatalf("waits asked %q, want the first to be the whole --wait %q", waits, tc.firstWait)
			}
		})
	}
}

// TestFitDefaultLockTTL: a lock-delay too short for the 10 s default TTL
// lowers it, with one warning naming both; a --lock-default-ttl given is
// never changed (Validate refuses it if too large).
func TestFitDefaultLockTTL(t *testing.T) {
	for _, tc := range []struct {
		name         string
		delay, drift time.Duration
		ttl          time.Duration
		given        bool
		wantTTL      time.Duration
		warning      string // contained; "" for none
	}{
		{name: "defaults", delay: 15 * time.Second, drift: 2 * time.Second, ttl: 10 * time.Second, wantTTL: 10 * time.Second},
		{name: "short lock-delay", delay: 8 * time.Second, drift: 2 * time.Second, ttl: 10 * time.Second, wantTTL: 6 * time.Second,
			warning: "default lock TTL lowered from 10s to 6s, the lock-delay 8s minus the drift margin 2s: lock requests without a TTL get 6s; set --lock-default-ttl"},
		{name: "exactly the longest", delay: 12 * time.Second, drift: 2 * time.Second, ttl: 10 * time.Second, wantTTL: 10 * time.Second},
		{name: "given", delay: 8 * time.Second, drift: 2 * time.Second, ttl: 10 * time.Second, given: true, wantTTL: 10 * time.Second},
		{name: "no TTL fits", delay: 2 * time.Second, drift: 1500 * time.Millisecond, ttl: 10 * time.Second, wantTTL: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := agent.DefaultConfig()
			cfg.Locks.LockDelay, cfg.Locks.DriftMargin, cfg.Locks.DefaultTTL = tc.delay, tc.drift, tc.ttl
			warning := fitDefaultLockTTL(&cfg, tc.given)
			if cfg.Locks.DefaultTTL != tc.wantTTL {
				t.Errorf("default TTL %v, want %v", cfg.Locks.DefaultTTL, tc.wantTTL)
			}
			if (tc.warning == "") != (warning == "") || !strings.Contains(warning, tc.warning) {
				t.Errorf("warning %q, want one holding %q", warning, tc.warning)
			}
		})
	}
}

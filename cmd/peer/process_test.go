package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// This file runs real peer processes on 127.0.0.1 for the end-to-end tests
// and the cluster benchmarks.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// peerBinary builds the peer command once per test binary.
func peerBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "peer-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "peer")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", buildPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

var (
	portsMu sync.Mutex
	// portsUsed holds every port handed out, so no two peers get one.
	portsUsed = map[int]bool{}
)

// freePort returns a port free for both TCP and UDP on 127.0.0.1, from below
// Linux's ephemeral range (32768 up), so an outgoing connection of another
// process cannot take it between this check and the peer's bind.
func freePort(tb testing.TB) int {
	tb.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsUsed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			portsUsed[port] = true
			return port
		}
	}
	tb.Fatal("no free port")
	return 0
}

// peerProc is one running peer process.
type peerProc struct {
	name    string
	dataDir string
	gossip  int
	rpc     int
	http    int
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{}
	exitErr error
}

// newPeer reserves ports and a data dir for a peer.
func newPeer(tb testing.TB, name string) *peerProc {
	return &peerProc{
		name:    name,
		dataDir: filepath.Join(tb.TempDir(), name),
		gossip:  freePort(tb),
		rpc:     freePort(tb),
		http:    freePort(tb),
	}
}

func (p *peerProc) gossipAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.gossip) }
func (p *peerProc) httpAddr() string   { return fmt.Sprintf("127.0.0.1:%d", p.http) }

// start runs the peer with its standard flags plus extra.
func (p *peerProc) start(tb testing.TB, extra ...string) {
	tb.Helper()
	args := []string{"agent", "--name", p.name,
		"--bind", p.gossipAddr(),
		"--rpc", fmt.Sprintf("127.0.0.1:%d", p.rpc),
		"--http", p.httpAddr(),
		"--data-dir", p.dataDir,
		"--log-level", "debug",
	}
	args = append(args, extra...)
	p.cmd = exec.Command(peerBinary(tb), args...)
	logDir := filepath.Dir(p.dataDir)
	if d := os.Getenv("PEER_E2E_LOGDIR"); d != "" {
		logDir = d // keep the logs for study after the test
	}
	logPath := filepath.Join(logDir, p.name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	p.log = f
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		if tb.Failed() && os.Getenv("PEER_E2E_LOGDIR") != "" {
			p.cmd.Process.Signal(syscall.SIGQUIT) // a goroutine dump into the log
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		p.kill()
		if tb.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				tb.Logf("log of %s:\n%s", p.name, tail(b, 4000))
			}
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// kill sends SIGKILL and waits for the process.
func (p *peerProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (p *peerProc) stop(tb testing.TB, timeout time.Duration) (int, time.Duration) {
	tb.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("%s did not exit within %v of SIGTERM", p.name, timeout)
	}
	code := 0
	if p.exitErr != nil {
		code = -1
		if ee, ok := p.exitErr.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return code, time.Since(start)
}

// exited reports whether the process has ended.
func (p *peerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

var e2eClient = &http.Client{Timeout: 2 * time.Second}

// getJSON fetches an API path from the peer into v.
func (p *peerProc) getJSON(path string, v any) error {
	resp, err := e2eClient.Get("http://" + p.httpAddr() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// view is what one peer reports: member statuses and its ring.
type view struct {
	statuses map[string]string
	checksum string
	ring     int
}

func (p *peerProc) view() (view, error) {
	var ms struct {
		Members []agent.Member `json:"members"`
	}
	if err := p.getJSON("/v1/members", &ms); err != nil {
		return view{}, err
	}
	var st agent.Status
	if err := p.getJSON("/v1/status", &st); err != nil {
		return view{}, err
	}
	v := view{statuses: map[string]string{}, checksum: st.RingChecksum, ring: st.RingMembers}
	for _, m := range ms.Members {
		v.statuses[m.Name] = m.Status
	}
	return v, nil
}

// agree checks that every peer in ps sees the statuses in want and that all
// report one ring checksum over the alive ones.
func agree(ps []*peerProc, want map[string]string) error {
	alive := 0
	for _, st := range want {
		if st == "alive" {
			alive++
		}
	}
	return agreeRing(ps, want, alive)
}

// agreeRing is agree with the ring size given: the alive members that are
// peers.
func agreeRing(ps []*peerProc, want map[string]string, alive int) error {
	var sum string
	for _, p := range ps {
		v, err := p.view()
		if err != nil {
			return fmt.Errorf("%s: %v", p.name, err)
		}
		for name, st := range want {
			if v.statuses[name] != st {
				return fmt.Errorf("%s sees %s as %q, want %q", p.name, name, v.statuses[name], st)
			}
		}
		if v.ring != alive {
			return fmt.Errorf("%s's ring has %d members, want %d", p.name, v.ring, alive)
		}
		if sum == "" {
			sum = v.checksum
		} else if v.checksum != sum {
			return fmt.Errorf("%s's ring checksum %s differs from %s", p.name, v.checksum, sum)
		}
	}
	return nil
}

// waitUntil polls cond every 20 ms until it holds or timeout passes, and
// returns how long it took.
func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			tb.Fatalf("after %v, still waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func names(ps []*peerProc, status string) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p.name] = status
	}
	return m
}

func itoa(i int) string { return strconv.Itoa(i) }
